"""The moderation engine: an inline follow-up of live ``message.posted`` and ``member.joined``.

Per ingest batch (a handful of queries for the whole batch, never one per event):

1. the organisation's enabled policies (id, version, target; kept a second per process): none →
   done; each group's effective policy is the most specific one (group, playbook, community,
   organisation), and compiled policies come from the per-process cache (``cache.py``) by
   (id, version);
2. joins: a member with a blacklist entry covering the group is kicked (a decision of its own);
3. one query for the members: names and corps, roles (members holding an exempt role of their
   group's policy are skipped), open memberships (join time, a kick's key), strikes and, with a
   flood rule, recent messages (on PostgreSQL the batch's own recent rows are written and rows
   out of the window deleted in the same statement);
4. each event is judged once (``rules.evaluate``) with its context and the member's strikes, so
   that a ladder rule takes its step;
5. a firing decision's actions are requested through dispatch in one batch (``actions.py``;
   their keys are new: no look-up), then the decision is written once with their ids (Core,
   append-only), all in the ingest transaction: nothing reaches the platform before the ingest
   commits. Dry-run policies record decisions and request nothing.

A clean message costs 2 statements (1 on PostgreSQL), one that queues an action 6 (3): see
docs/moderation.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text
from sqlalchemy.orm import Session

from qunyun.connectors.dispatch import ActionRef, ConnectionRow, GroupRow, MemberRow, request_action_refs
from qunyun.db.base import from_micros
from qunyun.errors import QunyunError
from qunyun.ingestion.followups import LiveEvent, follow_up
from qunyun.livecodes.blacklist import register_check
from qunyun.models import (
    Connection,
    Group,
    ModerationDecision,
    ModerationPolicy,
    PolicyTarget,
)
from qunyun.models.event import EventKind
from qunyun.moderation import actions, cache, state
from qunyun.moderation.policy import CompiledPolicy
from qunyun.moderation.rules import evaluate
from qunyun.moderation.types import SEVERITY, Action, Decision, MessageContext, Recent, RuleKind

MESSAGE = EventKind.MESSAGE_POSTED
JOIN = EventKind.MEMBER_JOINED
_SECOND = 1_000_000
MAX_EXCERPT_SOURCE = 4000


@dataclass
class _Policy:
    """A policy as the batch uses it."""

    id: int
    version: int
    strike_window_days: int
    compiled: CompiledPolicy
    kinds: frozenset[RuleKind] = field(default_factory=frozenset)


@dataclass
class _Batch:
    """What the batch looked up, shared by its events."""

    org_id: int
    policies: dict[int, _Policy]  # by group id
    names: dict[int, tuple[str, str]] = field(default_factory=dict)  # member id → (name, corp)
    joined: dict[tuple[int, int], int] = field(default_factory=dict)  # (group, member) → join ts
    # (group, member) → the join event of the open membership (a kick's key)
    join_events: dict[tuple[int, int], int | None] = field(default_factory=dict)
    recent: dict[tuple[int, int], list[Recent]] = field(default_factory=lambda: defaultdict(list))
    own_corps: dict[int, frozenset[str]] = field(default_factory=dict)  # connection id → corps
    # (group, member, ts, event id, text) of moderation_recent_messages, read with the members
    recent_rows: list[tuple[int, int, int, int, str | None]] = field(default_factory=list)
    recent_written: bool = False  # the batch's own rows written, stale ones deleted (PostgreSQL)
    strikes: dict[int, int] = field(default_factory=dict)  # member id → strikes (none: left out)
    # (group, member) → the rows dispatch routes their actions by (members of the group only)
    routes: dict[tuple[int, int], tuple[GroupRow, MemberRow, ConnectionRow]] = field(default_factory=dict)


def _route(member_id: int, group_id: int, route: list[Any]) -> tuple[GroupRow, MemberRow, ConnectionRow]:
    """A member's routing rows, from the ``_ROUTE_SQL`` columns of their row."""
    m_org, m_platform, m_external, g_org, connection_id, g_platform, g_external, c_org, c_platform, name, at = route
    return (
        GroupRow(group_id, g_org, connection_id, g_platform, g_external),
        MemberRow(member_id, m_org, m_platform, m_external),
        ConnectionRow(connection_id, c_org, c_platform, name, from_micros(int(at))),
    )


# The hot path's statements, written once: built per call with the ORM they cost more than the
# queries themselves (a live message is one ingest call).
_POLICIES = text(
    "SELECT id, version, target_key, strike_window_days, updated_at FROM moderation_policies"
    " WHERE org_id = :org AND enabled = :on"
)
_GROUP_PLACES = text("SELECT id, playbook_id, community_id FROM groups WHERE id IN :groups").bindparams(
    bindparam("groups", expanding=True)
)
# The batch's members in one round trip: name and corp, their roles in the batch's groups (exempt
# roles), their open memberships there (join time for the new-member rule, join event for a
# kick's key) and their strikes (decisions in force of action ≥ warn since :since, as
# ``state.strikes`` counts them). A clean message reads the strikes and spans too: index
# look-ups, cheaper than the round trip a firing message would otherwise make for them.
_STRIKE_ACTIONS = ", ".join(f"'{a}'" for a in state.STRIKE_ACTIONS)  # constants: written inline
# With each open membership, what dispatch routes an action by (the group, its connection, the
# member: ``ROUTE_COLUMNS``), so that a firing message's actions need not read them again.
_ROUTE_SQL = (
    "m.org_id, m.platform, m.external_id, g.org_id, g.connection_id, g.platform, g.external_id,"
    " c.org_id, c.platform, c.name, c.updated_at"
)
ROUTE_COLUMNS = 11
_MEMBERS_SQL = (
    "SELECT 0 AS part, m.id, m.display_name, m.corp, r.group_id, r.role, s.group_id, s.joined_at, s.join_event_id,"
    " (SELECT count(*) FROM moderation_decisions d WHERE d.member_id = m.id AND d.org_id = :org"
    f"  AND d.at >= :since AND d.action IN ({_STRIKE_ACTIONS}) AND NOT d.dry_run"
    "  AND NOT EXISTS (SELECT 1 FROM moderation_reversals v WHERE v.decision_id = d.id)),"
    f" {_ROUTE_SQL}"
    " FROM members m"
    " LEFT JOIN member_group_roles r ON r.member_id = m.id AND r.group_id IN :groups"
    " LEFT JOIN membership_spans s ON s.member_id = m.id AND s.group_id IN :groups AND s.left_at IS NULL"
    " LEFT JOIN groups g ON g.id = s.group_id LEFT JOIN connections c ON c.id = g.connection_id"
    " WHERE m.id IN :members"
)
# With the members' recent messages in the batch's groups (policies with a history window), in
# the same round trip: rows of part 1 are (1, member, text, -, group, -, -, ts, event id, -, …).
_RECENT_SQL = (
    "SELECT 1, r.member_id, t.text, NULL, r.group_id, NULL, NULL, r.ts, r.event_id, NULL"
    + ", NULL" * ROUTE_COLUMNS
    + " FROM moderation_recent_messages r LEFT JOIN message_texts t ON t.event_id = r.event_id"
    " WHERE r.member_id IN :members AND r.group_id IN :groups"
)
_EXPANDING: tuple[Any, ...] = (bindparam("members", expanding=True), bindparam("groups", expanding=True))
_MEMBERS = text(_MEMBERS_SQL).bindparams(*_EXPANDING)
_MEMBERS_AND_RECENT = text(f"{_MEMBERS_SQL} UNION ALL {_RECENT_SQL} ORDER BY 1, 8, 9").bindparams(*_EXPANDING)
# PostgreSQL: the same, and in the same statement the batch's messages written to
# moderation_recent_messages and the rows out of the window deleted (data-modifying CTEs see the
# statement's snapshot: the SELECT reads neither, hence its ``ts >= :cutoff``). Built per number
# of messages (up to RECENT_IN_CTE; more go the separate way).
RECENT_IN_CTE = 100
_PG_MEMBERS_AND_RECENT: dict[int, Any] = {}


def _pg_members_and_recent(count: int) -> Any:
    found = _PG_MEMBERS_AND_RECENT.get(count)
    if found is None:
        values = ", ".join(f"(:e{i}, :org, :g{i}, :m{i}, :t{i})" for i in range(count))
        found = text(
            "WITH dropped AS (DELETE FROM moderation_recent_messages"
            " WHERE member_id IN :recent_members AND group_id IN :recent_groups AND ts < :cutoff),"
            " added AS (INSERT INTO moderation_recent_messages (event_id, org_id, group_id, member_id, ts)"
            f" VALUES {values}) {_MEMBERS_SQL} UNION ALL {_RECENT_SQL} AND r.ts >= :cutoff ORDER BY 1, 8, 9"
        ).bindparams(
            *_EXPANDING, bindparam("recent_members", expanding=True), bindparam("recent_groups", expanding=True)
        )
        _PG_MEMBERS_AND_RECENT[count] = found
    return found


# A joining member's open membership (a blacklisted join's kick key; judged events read theirs
# with the members).
_JOIN_EVENT = text(
    "SELECT join_event_id FROM membership_spans WHERE group_id = :group AND member_id = :member"
    " AND left_at IS NULL ORDER BY joined_at DESC LIMIT 1"
)
_DECISIONS = cast(Table, ModerationDecision.__table__)
# Decisions are append-only: written once, with Core (no ORM object, no flush).
_INSERT_DECISION = insert(_DECISIONS).returning(_DECISIONS.c.id)
_ADD_RECENT = text(
    "INSERT INTO moderation_recent_messages (event_id, org_id, group_id, member_id, ts)"
    " VALUES (:event_id, :org_id, :group_id, :member_id, :ts)"
)
_REUSE_RECENT = text(
    "UPDATE moderation_recent_messages SET event_id = :event_id, org_id = :org_id, group_id = :group_id,"
    " member_id = :member_id, ts = :ts WHERE event_id = :old"
)
_DROP_RECENT = text("DELETE FROM moderation_recent_messages WHERE event_id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)


def _policy_rows(session: Session, org_id: int) -> list[Any]:
    return cache.org_policy_rows(session, org_id, lambda: list(session.execute(_POLICIES, {"org": org_id, "on": True})))


def _compiled(session: Session, policy_id: int, stamp: cache.Stamp) -> CompiledPolicy | None:
    found, compiled = cache.cached(policy_id, stamp)
    if found:
        return compiled
    row = session.get(ModerationPolicy, policy_id)
    if row is None:
        return None
    return cache.compiled_for(row)


def _effective(session: Session, org_id: int, group_ids: set[int]) -> dict[int, _Policy]:
    """Each group's effective policy (groups without one are left out)."""
    rows = _policy_rows(session, org_id)
    if not rows:
        return {}
    by_key = {r.target_key: r for r in rows}
    chains: dict[int, list[str]] = {}
    if all(r.target_key == PolicyTarget.ORGANISATION for r in rows):
        chains = {g: [str(PolicyTarget.ORGANISATION)] for g in group_ids}
    else:
        needs_group_row = any(r.target_key.startswith(("community:", "playbook:")) for r in rows)
        places: dict[int, tuple[int | None, int | None]] = {}
        if needs_group_row:
            places = {gid: (pb, cm) for gid, pb, cm in session.execute(_GROUP_PLACES, {"groups": sorted(group_ids)})}
        for g in group_ids:
            playbook_id, community_id = places.get(g, (None, None))
            chain = [f"group:{g}"]
            if playbook_id is not None:
                chain.append(f"playbook:{playbook_id}")
            if community_id is not None:
                chain.append(f"community:{community_id}")
            chain.append(str(PolicyTarget.ORGANISATION))
            chains[g] = chain
    loaded: dict[int, _Policy | None] = {}
    out: dict[int, _Policy] = {}
    for g, chain in chains.items():
        row = next((by_key[k] for k in chain if k in by_key), None)
        if row is None:
            continue
        if row.id not in loaded:
            compiled = _compiled(session, row.id, (row.version, row.updated_at))
            loaded[row.id] = (
                _Policy(
                    row.id,
                    row.version,
                    row.strike_window_days,
                    compiled,
                    frozenset(r.rule.kind for r in compiled.rules),
                )
                if compiled is not None
                else None
            )
        policy = loaded[row.id]
        if policy is not None:
            out[g] = policy
    return out


def _members(session: Session, batch: _Batch, events: list[LiveEvent]) -> set[tuple[int, int]]:
    """Names and corps of the batch's members, their open memberships in the batch's groups and
    their strikes (into ``batch``), and the (group, member) pairs whose member holds one of their
    group policy's exempt roles. One query."""
    member_ids = sorted({e.member_id for e in events if e.member_id is not None})
    group_ids = sorted({e.group_id for e in events if e.group_id is not None})
    pairs = {(e.group_id, e.member_id) for e in events}
    # The strike window ends at the events' own (platform) time: decisions are dated by theirs.
    window = max(p.strike_window_days for p in batch.policies.values())
    since = min(e.ts for e in events) - window * 86_400 * _SECOND
    exempt: set[tuple[int, int]] = set()
    params: dict[str, Any] = {"members": member_ids, "groups": group_ids, "org": batch.org_id, "since": since}
    recent = _recent_events(batch, events)
    statement = _MEMBERS_AND_RECENT if recent else _MEMBERS
    if recent and len(recent) <= RECENT_IN_CTE and session.get_bind().dialect.name == "postgresql":
        # One round trip for the members and the recent messages, written and read. (An exempt
        # member's message is kept too: it is not judged now, and would be if they lost the role.)
        statement = _pg_members_and_recent(len(recent))
        params["recent_members"] = sorted({e.member_id for e in recent})
        params["recent_groups"] = sorted({e.group_id for e in recent})
        params["cutoff"] = _cutoff(batch, recent)
        for i, e in enumerate(recent):
            params.update({f"e{i}": e.event_id, f"g{i}": e.group_id, f"m{i}": e.member_id, f"t{i}": e.ts})
        batch.recent_written = True
    rows = session.execute(statement, params)
    for part, mid, name, corp, role_group, role, span_group, joined_at, join_event, strikes, *route in rows:
        if part == 1:  # a recent message: (1, member, text, -, group, -, -, ts, event id, -, …)
            batch.recent_rows.append((role_group, mid, int(joined_at), int(join_event), name))
            continue
        batch.names[mid] = (name or "", corp or "")
        if strikes:
            batch.strikes[mid] = int(strikes)
        if span_group is not None and joined_at is not None:
            pair = (span_group, mid)
            if int(joined_at) > batch.joined.get(pair, -1):
                batch.joined[pair] = int(joined_at)
                batch.join_events[pair] = int(join_event)
            if route[4] is not None and route[7] is not None:  # the group and its connection
                batch.routes[pair] = _route(mid, span_group, route)
        policy = batch.policies.get(role_group) if role_group is not None else None
        if policy is not None and (role_group, mid) in pairs and role in policy.compiled.exempt_roles:
            exempt.add((role_group, mid))
    return exempt


def _load_context(session: Session, batch: _Batch, events: list[LiveEvent]) -> None:
    """Own corps and recent messages: only what the batch's policies need (names, corps and join
    times came with the members)."""
    kinds: set[RuleKind] = set()
    for p in batch.policies.values():
        kinds |= p.kinds
    if RuleKind.OTHER_CORP in kinds:
        connection_ids = sorted({e.connection_id for e in events if e.connection_id is not None})
        for cid, settings in session.execute(
            select(Connection.id, Connection.settings).where(Connection.id.in_(connection_ids))
        ):
            corps = (settings or {}).get("corp_id") or (settings or {}).get("corp_ids") or ()
            batch.own_corps[cid] = frozenset([corps] if isinstance(corps, str) else [str(c) for c in corps])
    _load_recent(session, batch, events)


def _recent_events(batch: _Batch, events: list[LiveEvent]) -> list[LiveEvent]:
    """The messages whose group's policy has a history window (flood): they go to
    moderation_recent_messages."""
    return [
        e
        for e in events
        if e.kind == MESSAGE and e.group_id in batch.policies and batch.policies[e.group_id].compiled.history_seconds
    ]


def _cutoff(batch: _Batch, recent: list[LiveEvent]) -> int:
    """Rows of moderation_recent_messages older than this are out of every window of the batch."""
    window = max(batch.policies[e.group_id].compiled.history_seconds for e in recent if e.group_id is not None)
    return min(e.ts for e in recent) - window * _SECOND


def _load_recent(session: Session, batch: _Batch, events: list[LiveEvent]) -> None:
    """Earlier messages of the batch's members in moderated groups with a history window;
    rows that fell out of the window are deleted as they are seen."""
    recent = _recent_events(batch, events)
    pairs = {(e.group_id, e.member_id) for e in recent}
    if not pairs:
        return
    cutoff = _cutoff(batch, recent)
    if batch.recent_written:  # read, written and pruned with the members (PostgreSQL)
        for g, m, ts, _event_id, body in batch.recent_rows:
            if ts >= cutoff and (g, m) in pairs:
                batch.recent[(g, m)].append(Recent(int(ts), body))
        return
    stale: list[int] = []
    members = {m for _, m in pairs}
    groups = {g for g, _ in pairs}
    # The rows came with the members (of every member and group of the batch, in time order):
    # those of these members in these groups are theirs.
    for g, m, ts, event_id, body in batch.recent_rows:
        if m not in members or g not in groups:
            continue
        if ts < cutoff:
            stale.append(event_id)
        elif (g, m) in pairs:
            batch.recent[(g, m)].append(Recent(int(ts), body))
    added = [
        {"event_id": e.event_id, "org_id": batch.org_id, "group_id": e.group_id, "member_id": e.member_id, "ts": e.ts}
        for e in events
        if e.kind == MESSAGE and (e.group_id, e.member_id) in pairs
    ]
    # A row that fell out of the window becomes a new message's (one statement where a member
    # who posts less often than the window would otherwise cost a DELETE and an INSERT).
    reused = min(len(stale), len(added))
    if reused:
        session.execute(_REUSE_RECENT, [{**row, "old": old} for row, old in zip(added, stale, strict=False)])
    if len(stale) > reused:
        session.execute(_DROP_RECENT, {"ids": stale[reused:]})
    if len(added) > reused:
        session.execute(_ADD_RECENT, added[reused:])


def _context(batch: _Batch, e: LiveEvent, policy: _Policy) -> MessageContext:
    assert e.group_id is not None and e.member_id is not None
    name, corp = batch.names.get(e.member_id, ("", ""))
    recent: tuple[Recent, ...] = ()
    if e.kind == MESSAGE and policy.compiled.history_seconds:
        since = e.ts - policy.compiled.history_seconds * _SECOND
        recent = tuple(r for r in batch.recent.get((e.group_id, e.member_id), ()) if since <= r.ts < e.ts)
    return MessageContext(
        id=e.external_id,
        ts=e.ts,
        msg_type=e.msg_type.name.lower() if e.kind == MESSAGE and e.msg_type is not None else None,
        text=e.text if e.kind == MESSAGE else None,
        member_name=e.member_name or name,
        joined_ts=batch.joined.get((e.group_id, e.member_id)),
        member_corp=corp,
        own_corps=batch.own_corps.get(e.connection_id or 0, frozenset()),
        recent=recent,
    )


def _record(
    session: Session,
    batch: _Batch,
    e: LiveEvent,
    decision: Decision,
    policy: _Policy | None,
    ctx: MessageContext | None,
) -> int:
    """Request the decision's actions and write it (once, with their ids); its id."""
    assert e.group_id is not None and e.member_id is not None
    matches = [{"word": h.word, "category": h.category, "start": h.start, "end": h.end} for h in decision.matches]
    if decision.rule_kind is RuleKind.NAME_CARD and ctx is not None and not (ctx.text and ctx.msg_type):
        source = ctx.member_name
    else:
        source = (ctx.text if ctx is not None else None) or (ctx.member_name if ctx is not None else "")
    dry_run = bool(policy is not None and policy.compiled.dry_run)
    action = decision.action
    values: dict[str, Any] = {
        "org_id": batch.org_id,
        "group_id": e.group_id,
        "member_id": e.member_id,
        "event_id": e.event_id,
        "event_external_id": e.external_id,
        "message_ref": e.message,
        "policy_id": policy.id if policy is not None else None,
        "policy_version": policy.version if policy is not None else None,
        "rule": decision.rule,
        "rule_kind": str(decision.rule_kind) if decision.rule_kind is not None else None,
        "category": decision.category,
        "action": str(action),
        "matches": matches,
        "detail": dict(decision.detail),
        "excerpt": actions.excerpt((source or "")[:MAX_EXCERPT_SOURCE], matches),
        "dry_run": dry_run,
        "source": "engine",
        "decided_by_id": None,
        "blacklist_scope": None,
        "community_id": None,
        "mute_seconds": decision.detail.get("mute_seconds") if action is Action.MUTE else None,
        "action_ids": [],
        "erased_at": None,
        "at": e.ts,
    }
    if action is Action.BLACKLIST and policy is not None:
        values["blacklist_scope"] = policy.compiled.policy.blacklist_scope
        if values["blacklist_scope"] == "community":
            values["community_id"] = session.scalar(select(Group.community_id).where(Group.id == e.group_id))
            if values["community_id"] is None:
                values["blacklist_scope"] = "group"
    delegated: list[ActionRef] = []
    draft: ModerationDecision | None = None
    if not dry_run and action is not Action.ALLOW:
        # What the texts and the evidence read; never added to the session (written below).
        draft = ModerationDecision(**values)
        name = ctx.member_name if ctx is not None and ctx.member_name else batch.names.get(e.member_id, ("", ""))[0]
        pair = (e.group_id, e.member_id)
        if action in (Action.KICK, Action.BLACKLIST) and pair not in batch.join_events:
            batch.join_events[pair] = session.scalar(_JOIN_EVENT, {"group": e.group_id, "member": e.member_id})
        requests = actions.requests_for(
            draft,
            member_name=name or e.member or "",
            membership=batch.join_events[pair] if action in (Action.KICK, Action.BLACKLIST) else None,
        )
        written = draft

        def record(outcomes: list[ActionRef | QunyunError]) -> tuple[Table, dict[str, Any]]:
            # An action that cannot be requested leaves the decision standing, with the reason
            # in its detail, rather than failing the ingest.
            values["action_ids"], found = actions.settle(written, outcomes)
            values["detail"] = written.detail
            delegated.extend(found)
            return _DECISIONS, values

        # The decision is written with its actions' history (one round trip on PostgreSQL).
        _, recorded = request_action_refs(
            session, batch.org_id, requests, known=batch.routes.get(pair, ()), record=record
        )
        assert recorded is not None
        decision_id = recorded
        if SEVERITY[action] >= SEVERITY[Action.WARN]:
            batch.strikes[e.member_id] = batch.strikes.get(e.member_id, 0) + 1
    else:
        decision_id = int(session.execute(_INSERT_DECISION, values).scalar_one())
    if delegated and draft is not None:
        draft.id = decision_id
        actions.attach_evidence(session, draft, delegated)
    return decision_id


@follow_up(MESSAGE, JOIN)
def moderate(session: Session, org_id: int, events: list[LiveEvent]) -> None:
    """Judge the batch's live messages and joins; record decisions and request their actions."""
    events = sorted(
        (e for e in events if e.group_id is not None and e.member_id is not None), key=lambda e: (e.ts, e.event_id)
    )
    if not events:
        return
    policies = _effective(session, org_id, {e.group_id for e in events if e.group_id is not None})
    joins = [e for e in events if e.kind == JOIN]
    kicked: set[int] = set()
    batch = _Batch(org_id, policies)
    if joins:
        pairs = {(e.group_id, e.member_id) for e in joins if e.group_id is not None and e.member_id is not None}
        barred = state.blacklisted_in(session, org_id, pairs)
        for e in joins:
            entry = barred.get((e.group_id or 0, e.member_id or 0))
            if entry is None:
                continue
            decision = Decision(
                e.external_id, Action.KICK, detail={"blacklist_decision": entry.id, "scope": entry.blacklist_scope}
            )
            ctx = MessageContext(id=e.external_id, ts=e.ts, msg_type=None, member_name=e.member_name or "")
            _record(session, batch, e, decision, None, ctx)
            kicked.add(e.event_id)
    judged = [e for e in events if e.group_id in policies and e.event_id not in kicked]
    if not judged:
        return
    exempt = _members(session, batch, judged)
    judged = [e for e in judged if (e.group_id, e.member_id) not in exempt]
    if not judged:
        return
    _load_context(session, batch, judged)
    for e in judged:
        assert e.group_id is not None and e.member_id is not None
        policy = policies[e.group_id]
        ctx = _context(batch, e, policy)
        # Judged once, with the member's strikes (read with the members): they pick a ladder
        # rule's step only, and whether anything fires does not depend on them.
        decision = evaluate(policy.compiled, ctx, strikes=batch.strikes.get(e.member_id, 0))
        if decision.action is not Action.ALLOW:
            _record(session, batch, e, decision, policy, ctx)
        if e.kind == MESSAGE and policy.compiled.history_seconds:
            batch.recent[(e.group_id, e.member_id)].append(Recent(e.ts, e.text))


def live_code_check(session: Session, org_id: int, member_ids: Iterable[int]) -> bool:
    """Live codes refuse members with a blacklist entry reaching past one group."""
    return state.refused_by_live_codes(session, org_id, list(member_ids))


register_check(live_code_check)

# The periodic purge of evidence excerpts registers with the engine, in every worker.
import qunyun.moderation.retention  # noqa: E402, F401  isort: skip
