"""What an import leaves behind, without surrogate ids: compared against the figures the code
before the interchange additions produced for the same file (tests/ingestion/fixtures)."""

from __future__ import annotations

ROLLUP_QUERIES = {
    "groups": "SELECT external_id, name, capacity, member_count, created_at FROM groups",
    "members": "SELECT external_id, display_name, first_seen_at FROM members",
    "group_daily": "SELECT g.external_id, d.day, d.joins, d.lefts, d.actives, d.messages, d.members_delta"
    " FROM group_daily d JOIN groups g ON g.id = d.group_id",
    "org_daily": "SELECT day, joins, lefts, actives, messages, members_delta FROM org_daily",
    "membership_spans": "SELECT g.external_id, m.external_id, s.joined_at, s.left_at FROM membership_spans s"
    " JOIN groups g ON g.id = s.group_id JOIN members m ON m.id = s.member_id",
    "orders": "SELECT external_id, amount_fen, paid_at FROM orders",
    "refunds": "SELECT order_ref, amount_fen, refunded_at FROM refunds",
}
