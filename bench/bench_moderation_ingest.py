"""Moderation inside ingestion: a live message event in → its decision recorded and its action
queued, committed. p50 / p99 per message, on SQLite and PostgreSQL.

Two organisations in one database, the same groups, members and messages: one with a policy of
``--words`` words (sampled from the real lexicon in ``../shared/data/sensitive-lexicon/``, else
generated) and the default rules (sensitive words by the ladder, contact solicitation, links,
flood); the other with no policy (the baseline: the same ingest with the engine finding nothing
to do). Each message is its own ``ingest(live=True)`` call in its own transaction, timed from
the call to the commit; the two organisations' messages alternate so that both see the same
machine. About 5 % of the messages carry a listed word (a warning, later a kick, is queued);
``--listed 0.25`` makes it a quarter, for a p99 of the firing path over more than a few dozen.

Besides wall time, the engine's own statements (SQLAlchemy ``before_cursor_execute``) and its CPU
time (``time.thread_time``: this process only, so on PostgreSQL the server's share is left out)
are printed per message, clean and firing: on a loaded machine they are the figures that hold.
``--trace`` prints the statements of the first firing message.

    .venv/bin/python -m bench.bench_moderation_ingest [--messages 3000] [--words 10000] [--db sqlite,pg]
        [--listed 0.05] [--trace] [--profile 30]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bench.common import ROOT, fresh_pg

LEXICON = ROOT.parent / "shared" / "data" / "sensitive-lexicon"
GROUPS = 20
MEMBERS = 2000
CHAT = [
    "早上好",
    "今天天气不错，适合骑车",
    "这个优惠券怎么用？",
    "订单号 2026030212345678 还没发货",
    "谢谢群主",
    "周末活动几点开始",
    "收到啦👍",
    "价格是 199 元吗",
    "有人一起去吗",
    "好的 ok",
]


def lexicon_words(count: int, rng: random.Random) -> list[str]:
    words: list[str] = []
    if LEXICON.is_dir():
        from qunyun.moderation.wordfiles import read_lexicon_dir

        words = [e.word for e in read_lexicon_dir(LEXICON).entries if len(e.word) >= 2]
        rng.shuffle(words)
    while len(words) < count:
        words.append("".join(rng.choice("违禁词汇测试样本关键内容") for _ in range(4)) + str(len(words)))
    return words[:count]


def setup(url: str, words: list[str]) -> tuple[sessionmaker[Session], int, int]:
    from qunyun.auth.scope import Scope
    from qunyun.connections.service import default_connection
    from qunyun.db.migrate import upgrade
    from qunyun.db.session import make_engine, unit_of_work
    from qunyun.ingestion.service import ingest
    from qunyun.models import Role
    from qunyun.moderation.service import DEFAULT_SETTINGS, create_policy
    from qunyun.team.service import create_organisation

    engine = make_engine(url)
    upgrade(engine)
    factory = sessionmaker(bind=engine, expire_on_commit=False)
    start = datetime.now(UTC) - timedelta(days=1)
    orgs = []
    for slug in ("moderated", "plain"):
        with unit_of_work(factory) as s:
            org = create_organisation(s, name=slug, slug=slug)
            default_connection(s, org.id, "simulator")
            events: list[dict[str, Any]] = [
                {"id": f"g{g}", "ts": start.isoformat(), "kind": "group.created", "group": f"G{g}", "name": f"群{g}"}
                for g in range(GROUPS)
            ]
            events += [
                {
                    "id": f"j{m}",
                    "ts": (start + timedelta(seconds=m)).isoformat(),
                    "kind": "member.joined",
                    "group": f"G{m % GROUPS}",
                    "member": f"M{m}",
                    "member_name": f"成员{m}",
                }
                for m in range(MEMBERS)
            ]
            ingest(s, org.id, events, platform="simulator", source="bench", live=False)
            if slug == "moderated":
                create_policy(
                    s,
                    Scope(staff_id=0, org_id=org.id, role=Role.LEAD),
                    name="bench",
                    target_type="organisation",
                    settings=DEFAULT_SETTINGS,
                    words=[{"word": w, "category": "custom"} for w in words],
                )
            orgs.append(org.id)
    return factory, orgs[0], orgs[1]


def messages(count: int, words: list[str], rng: random.Random, listed_share: float = 0.05) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    out = []
    for i in range(count):
        member = rng.randrange(MEMBERS)
        text = rng.choice(CHAT)
        listed = rng.random() < listed_share
        if listed:
            text = f"{text} {rng.choice(words[:200])}"
        out.append(
            {
                "listed": listed,
                "id": f"msg{i}",
                "ts": (now + timedelta(milliseconds=i)).isoformat(),
                "kind": "message.posted",
                "group": f"G{member % GROUPS}",
                "member": f"M{member}",
                "msg_type": "text",
                "text": text,
                "message": f"wx-{i}",
            }
        )
    return out


def plain_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k != "listed"}


def run(label: str, url: str, args: argparse.Namespace) -> None:
    from qunyun.db.session import unit_of_work
    from qunyun.ingestion.service import ingest
    from qunyun.models import ModerationDecision, OutboundAction
    from qunyun.modules import load_domain_modules

    load_domain_modules()
    engine_times = _time_the_engine()
    rng = random.Random(args.seed)
    words = lexicon_words(args.words, rng)
    factory, moderated, plain = setup(url, words)
    _count_statements(factory)
    batch = messages(args.messages, words, rng, args.listed)
    times: dict[int, list[float]] = {moderated: [], plain: []}
    # Warm-up: compile the policy, fill the caches (not counted).
    for org in (moderated, plain):
        with unit_of_work(factory) as s:
            ingest(s, org, [{**plain_event(batch[0]), "id": "warm"}], platform="simulator", source="bench", live=True)
    engine_times.clear()
    _ENGINE_STATEMENTS.clear()
    _ENGINE_CPU.clear()
    if args.profile:
        _PROFILER[:] = [cProfile.Profile(time.thread_time)]  # CPU time: the waits on the server are not the code's
    for i, event in enumerate(batch):
        order = (moderated, plain) if i % 2 == 0 else (plain, moderated)
        for org in order:
            started = time.perf_counter()
            with unit_of_work(factory) as s:
                ingest(s, org, [plain_event(event)], platform="simulator", source="bench", live=True)
            times[org].append(time.perf_counter() - started)
    with factory() as s:
        decisions = ModerationDecision.org_id == moderated
        decided = s.scalar(select(func.count()).select_from(ModerationDecision).where(decisions))
        queued = s.scalar(select(func.count()).select_from(OutboundAction).where(OutboundAction.org_id == moderated))
    print(f"\n{label}: {args.messages} messages per organisation, {args.words} words")
    print(f"  {decided} decisions, {queued} actions queued")
    print(f"{'':34}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    mine = engine_times[moderated]
    rows = [
        ("ingest + commit, with the policy", times[moderated]),
        (
            "  messages without a listed word",
            [t for t, e in zip(times[moderated], batch, strict=True) if not e["listed"]],
        ),
        (
            "  messages with one (action queued)",
            [t for t, e in zip(times[moderated], batch, strict=True) if e["listed"]],
        ),
        ("ingest + commit, no policy", times[plain]),
        ("  the same messages as those with one", [t for t, e in zip(times[plain], batch, strict=True) if e["listed"]]),
        ("the engine alone, with the policy", mine),
        ("  messages without a listed word", [t for t, e in zip(mine, batch, strict=True) if not e["listed"]]),
        ("  messages with one (action queued)", [t for t, e in zip(mine, batch, strict=True) if e["listed"]]),
        ("the engine alone, no policy", engine_times[plain]),
    ]
    for name, values in rows:
        ts = sorted(values)
        p50 = ts[len(ts) // 2] * 1000
        p99 = ts[min(len(ts) - 1, int(len(ts) * 0.99))] * 1000
        print(f"{name:34}{p50:9.2f}{p99:9.2f}{statistics.fmean(ts) * 1000:9.2f}")
    statements = _ENGINE_STATEMENTS[moderated]
    cpu = _ENGINE_CPU[moderated]
    print(f"the engine's statements and CPU time per message{'':2}{'stmts':>7}{'max':>5}{'cpu p50':>9}{'cpu p99':>9}")
    for name, listed in (("  without a listed word", False), ("  with one (action queued)", True)):
        counts = [len(c) for c, e in zip(statements, batch, strict=True) if e["listed"] is listed]
        cpus = sorted(t for t, e in zip(cpu, batch, strict=True) if e["listed"] is listed)
        if not counts:
            continue
        print(
            f"{name:50}{statistics.fmean(counts):7.1f}{max(counts):5d}"
            f"{cpus[len(cpus) // 2] * 1000:9.2f}{cpus[min(len(cpus) - 1, int(len(cpus) * 0.99))] * 1000:9.2f}"
        )
    print(f"  load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if _PROFILER:
        profiler = _PROFILER.pop()
        print("the engine's calls, by own CPU time (--profile):")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
    if args.trace:
        first = next((c for c, e in zip(statements, batch, strict=True) if e["listed"]), [])
        print("statements of the first firing message:")
        for sql in first:
            print("  " + " ".join(sql.split())[:160])


_ENGINE_TIMES: dict[int, list[float]] = {}
_ENGINE_STATEMENTS: dict[int, list[list[str]]] = {}
_ENGINE_CPU: dict[int, list[float]] = {}
_CURRENT: list[list[str]] = []  # the statements of the engine call in progress (none: not counting)
_PROFILER: list[cProfile.Profile] = []  # --profile: the engine's calls only, warm-up excluded


def _count_statements(factory: sessionmaker[Session]) -> None:
    """Record each statement the engine sends while it runs (``_CURRENT``)."""
    bind = factory.kw["bind"]

    @sa_event.listens_for(bind, "before_cursor_execute")
    def _seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if _CURRENT:
            _CURRENT[-1].append(statement)


def _time_the_engine() -> dict[int, list[float]]:
    """Time the moderation follow-up on its own, per organisation (it runs inside the ingest).
    Installed once per process; each run starts from an empty record."""
    from dataclasses import replace

    from qunyun.ingestion import followups
    from qunyun.moderation import engine

    def timed(session: Session, org_id: int, events: list[Any]) -> None:
        _CURRENT.append([])
        started = time.perf_counter()
        cpu = time.thread_time()
        if _PROFILER:
            _PROFILER[0].enable()
        try:
            engine.moderate(session, org_id, events)
        finally:
            if _PROFILER:
                _PROFILER[0].disable()
            _ENGINE_CPU.setdefault(org_id, []).append(time.thread_time() - cpu)
            _ENGINE_TIMES.setdefault(org_id, []).append(time.perf_counter() - started)
            _ENGINE_STATEMENTS.setdefault(org_id, []).append(_CURRENT.pop())

    followups._REGISTRY[:] = [
        replace(f, handler=timed) if f.handler is engine.moderate else f for f in followups._REGISTRY
    ]
    _ENGINE_TIMES.clear()
    _ENGINE_STATEMENTS.clear()
    _ENGINE_CPU.clear()
    return _ENGINE_TIMES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--words", type=int, default=10_000)
    parser.add_argument("--db", default="sqlite,pg")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--listed", type=float, default=0.05, help="share of messages carrying a listed word")
    parser.add_argument("--trace", action="store_true", help="print the statements of the first firing message")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the engine's N costliest functions")
    args = parser.parse_args()
    for db in args.db.split(","):
        if db == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                run("SQLite", f"sqlite:///{Path(tmp) / 'bench.db'}", args)
        elif db == "pg":
            url = fresh_pg("qunyun_bench_moderation_ingest")
            if url is None:
                print("\nPostgreSQL: not reachable, skipped")
                continue
            run("PostgreSQL", url, args)


if __name__ == "__main__":
    main()
