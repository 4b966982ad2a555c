"""Per group-day and per organisation-day rollups, kept up to date as facts arrive."""

from __future__ import annotations

from qunyun.ingestion.sql import SqlDialect


def update_rollups(db: SqlDialect, org: int, facts: dict[tuple[int, int, int], list[int]]) -> None:
    """Add ``facts`` ((day, group, member) -> [org, day, group, member, joins, leaves, messages])
    to ``member_days`` and bring ``group_daily`` and ``org_daily`` up to date."""
    days = sorted({d for d, _, _ in facts})
    # Days with no stored facts yet (the usual case for a live stream or a chronological
    # import): their rollups follow from ``facts`` alone. Other days are recomputed from
    # all their stored facts, which is right whatever the arrival order.
    stored_days = {
        row[0]
        for row in db.select_in("SELECT DISTINCT day FROM member_days WHERE org_id = ? AND day {in_}", (org,), days)
    }
    upsert = (
        " ON CONFLICT (org_id, day, group_id, member_id) DO UPDATE SET"
        f" joined = {db.greatest}(member_days.joined, excluded.joined),"
        f" departed = {db.greatest}(member_days.departed, excluded.departed),"
        " messages = member_days.messages + excluded.messages"
    )
    columns = "org_id, day, group_id, member_id, joined, departed, messages"
    if db.pg:
        db.copy_in(
            "ingest_member_days",
            columns,
            "org_id int, day int, group_id int, member_id int, joined smallint, departed smallint, messages int",
            facts.values(),
        )
        db.run(
            f"INSERT INTO member_days ({columns}) SELECT org_id, day, group_id, member_id, LEAST(joined, 1),"
            " LEAST(departed, 1), messages FROM ingest_member_days" + upsert
        )
    else:
        # facts count joins and leaves; the stored fact is whether there was one
        db.many(
            f"INSERT INTO member_days ({columns}) VALUES (?,?,?,?,min(?, 1),min(?, 1),?)" + upsert,
            list(facts.values()),
        )
    set_counts = (
        " ON CONFLICT ({key}) DO UPDATE SET joins = excluded.joins, lefts = excluded.lefts,"
        " actives = excluded.actives, messages = excluded.messages"
    )
    group_rows: dict[tuple[int, int], list[int]] = {}
    org_sets: dict[int, tuple[set[int], set[int], set[int], list[int]]] = {}
    for (d, g, m), fact in facts.items():
        if d in stored_days:
            continue
        joined, departed, messages = min(fact[4], 1), min(fact[5], 1), fact[6]
        row = group_rows.get((g, d))
        if row is None:
            row = group_rows[(g, d)] = [g, d, org, 0, 0, 0, 0]
        row[3] += joined
        row[4] += departed
        row[5] += 1 if messages else 0
        row[6] += messages
        per_day = org_sets.get(d)
        if per_day is None:
            per_day = org_sets[d] = (set(), set(), set(), [0])
        if joined:
            per_day[0].add(m)
        if departed:
            per_day[1].add(m)
        if messages:
            per_day[2].add(m)
            per_day[3][0] += messages
    db.many(
        "INSERT INTO group_daily (group_id, day, org_id, joins, lefts, actives, messages, members_delta)"
        " VALUES (?,?,?,?,?,?,?,0)" + set_counts.format(key="group_id, day"),
        list(group_rows.values()),
    )
    db.many(
        "INSERT INTO org_daily (org_id, day, joins, lefts, actives, messages, members_delta)"
        " VALUES (?,?,?,?,?,?,0)" + set_counts.format(key="org_id, day"),
        [(org, d, len(j), len(lv), len(a), n[0]) for d, (j, lv, a, n) in org_sets.items()],
    )
    if not stored_days:
        return
    pairs = sorted({(g, d) for d, g, _ in facts if d in stored_days})
    source, params = db.pair_join(pairs, "member_days AS m", "m.org_id = ? AND m.day = {b} AND m.group_id = {a}")
    db.run(
        "INSERT INTO group_daily (group_id, day, org_id, joins, lefts, actives, messages, members_delta)"
        " SELECT m.group_id, m.day, ?, sum(m.joined), sum(m.departed),"
        " sum(CASE WHEN m.messages > 0 THEN 1 ELSE 0 END), sum(m.messages), 0"
        f" FROM {source} GROUP BY m.group_id, m.day" + set_counts.format(key="group_id, day"),
        (org, *params, org),
    )
    recompute = sorted(stored_days)
    for start in range(0, len(recompute), 500):
        chunk = recompute[start : start + 500]
        db.run(
            "INSERT INTO org_daily (org_id, day, joins, lefts, actives, messages, members_delta)"
            " SELECT org_id, day, count(DISTINCT CASE WHEN joined = 1 THEN member_id END),"
            " count(DISTINCT CASE WHEN departed = 1 THEN member_id END),"
            " count(DISTINCT CASE WHEN messages > 0 THEN member_id END), sum(messages), 0"
            f" FROM member_days WHERE org_id = ? AND day IN ({','.join('?' * len(chunk))})"
            " GROUP BY org_id, day" + set_counts.format(key="org_id, day"),
            (org, *chunk),
        )
