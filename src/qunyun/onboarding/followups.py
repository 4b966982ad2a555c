"""Follow-ups of live membership events, run by ingestion in the event's own transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.connectors.base import get_profile
from qunyun.errors import InvalidInput
from qunyun.ingestion.followups import LiveEvent, follow_up
from qunyun.models import Group, Playbook
from qunyun.models.event import EventKind
from qunyun.models.onboarding import CouponPool, NoticeKind
from qunyun.onboarding.benefits import BENEFIT_JOB
from qunyun.onboarding.greetings import Due, add_notices, platform_now
from qunyun.worker.queue import enqueue

# The jobs this follow-up enqueues register with it, in every process that loads the follow-ups.
import qunyun.onboarding.jobs  # noqa: F401  isort: skip


def has_profile(platform: str) -> bool:
    try:
        get_profile(platform)
    except InvalidInput:
        return False
    return True


@follow_up(EventKind.MEMBER_JOINED)
def welcome_new_members(session: Session, org_id: int, events: list[LiveEvent]) -> None:
    """What a live join sets going, per its group's playbook: a welcome and a name-card
    reminder (notices that the group's next greeting names, at most one greeting per interval:
    see ``greetings``), and the new-member benefit (a job per join: see ``benefits``).

    Inline: one query per ingest call for the playbooks, then only the groups that ask for
    something. Events from a file or from a platform qunyun knows nothing of greet nobody.
    """
    joins = [e for e in events if e.group_id and e.member_id]
    if not joins:
        return
    plans = {
        row.id: row
        for row in session.execute(
            select(
                Group.id,
                Group.platform,
                Group.connection_id,
                Playbook.welcome_text,
                Playbook.welcome_interval_seconds,
                Playbook.name_card_format,
                Playbook.name_card_delay_minutes,
                CouponPool.id.label("pool_id"),
            )
            .join(Playbook, Playbook.id == Group.playbook_id)
            .outerjoin(CouponPool, CouponPool.playbook_id == Playbook.id)
            .where(Group.id.in_({e.group_id for e in joins}))
        )
        if (row.welcome_text or row.name_card_format or row.pool_id is not None) and has_profile(row.platform)
    }
    if not plans:
        return
    notices: list[Due] = []
    now: dict[int, datetime] = {}
    for e in joins:
        plan = plans.get(e.group_id)
        if plan is None:
            continue
        assert e.group_id is not None and e.member_id is not None
        if e.group_id not in now:
            now[e.group_id] = platform_now(plan.connection_id)
        if plan.welcome_text:
            notices.append(Due(e.event_id, e.group_id, e.member_id, NoticeKind.WELCOME, e.at, e.at))
        if plan.name_card_format:
            due = e.at + timedelta(minutes=plan.name_card_delay_minutes)
            notices.append(Due(e.event_id, e.group_id, e.member_id, NoticeKind.NAME_CARD, e.at, due))
        if plan.pool_id is not None:
            enqueue(
                session,
                BENEFIT_JOB,
                {
                    "org_id": org_id,
                    "pool_id": plan.pool_id,
                    "group_id": e.group_id,
                    "member_id": e.member_id,
                    "event_id": e.event_id,
                },
                org_id=org_id,
                key=f"{BENEFIT_JOB}:{e.event_id}",
            )
    add_notices(
        session,
        org_id,
        notices,
        intervals={group_id: plan.welcome_interval_seconds for group_id, plan in plans.items()},
        now=now,
    )
