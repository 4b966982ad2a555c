"""Welcomes and name-card reminders, batched per group: the raid protection.

A join leaves a *notice* per greeting its playbook asks for (``welcome`` at once, ``name_card``
after the playbook's delay). A group's notices of one kind go out together, in one message
naming every member who is due, at most once per the playbook's ``welcome_interval_seconds``:

- :func:`add_notices` (inline, in the ingest transaction) records the notices and makes sure a
  job will send them: the group's throttle row (locked) says when the last greeting went out and
  whether a job is already scheduled; a new job is due at ``max(due, last sent + interval)``;
- the job (:func:`send_due`) locks the same row, takes every pending notice that is due, skips
  the members who left, were erased or (name card) already carry a name in the format, requests
  ONE outbound action naming the rest, and schedules the next job if notices remain.

Everything is under the throttle row's lock, so a join that commits while the job runs is
either seen by it or finds no job scheduled and schedules one: none is lost, none named twice.
The action's idempotency key is its first notice's join event (``welcome:<event id>``): a job
run again after a crash builds the same batch, and a redelivered join never reaches a follow-up.

Times are the platform's (a simulation runs on a virtual clock): a notice is due at the join's
time, the throttle counts in platform time, and a job's ``run_at`` is now plus the wait in
platform time. A job trusts its schedule: when it runs, the platform time is at least the time
it was scheduled for, so each job makes progress even when a virtual clock stands still.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qunyun.config import get_settings
from qunyun.connections.service import default_connection
from qunyun.connectors import registry
from qunyun.connectors.actions import MAX_TEXT, RemindNameCard, WelcomeMembers
from qunyun.connectors.base import Capability
from qunyun.connectors.dispatch import request_action
from qunyun.db.unique import insert_or_get
from qunyun.locale import Msg, catalogue
from qunyun.models import Connection, Group, Member, MembershipSpan, Playbook, Staff
from qunyun.models.onboarding import NoticeKind, NoticeStatus, OnboardingNotice, OnboardingThrottle, SkipReason
from qunyun.onboarding.texts import NameCardFormat, render_stored, uses
from qunyun.timeutil import utcnow
from qunyun.worker.queue import enqueue

GREET_JOB = "onboarding.greet"
# At most this many members named in one message; a bigger raid is greeted in several, spaced
# by the interval like any others.
MAX_NAMED = 50
# A scheduled job that has not run this long after its time is taken for lost (dead after its
# attempts, purged): the next join schedules another, whose generation retires it.
LOST_AFTER = timedelta(minutes=10)


class GreetJob(BaseModel):
    """The payload of a greet job: the group, the kind of greeting, the throttle's generation."""

    org_id: int
    group_id: int
    kind: NoticeKind
    generation: int


@dataclass(frozen=True)
class Due:
    """A notice to add: the join, the member, when it is due (platform time)."""

    event_id: int
    group_id: int
    member_id: int
    kind: NoticeKind
    joined_at: datetime
    due_at: datetime


def platform_now(connection_id: int | None) -> datetime:
    """The platform's time: a connector bound in this process may run on a virtual clock."""
    connector = registry.bound_connector(connection_id) if connection_id is not None else None
    return connector.now() if connector is not None else utcnow()


def add_notices(
    session: Session, org_id: int, notices: Sequence[Due], *, intervals: dict[int, int], now: dict[int, datetime]
) -> None:
    """Record ``notices`` and schedule their groups' greetings (``intervals``: seconds per group,
    ``now``: the platform's time per group)."""
    if not notices:
        return
    created = utcnow()
    session.add_all(
        OnboardingNotice(
            org_id=org_id,
            group_id=n.group_id,
            member_id=n.member_id,
            kind=n.kind.value,
            event_id=n.event_id,
            joined_at=n.joined_at,
            due_at=n.due_at,
            status=NoticeStatus.PENDING.value,
            reason="",
            created_at=created,
        )
        for n in notices
    )
    session.flush()
    earliest: dict[tuple[int, NoticeKind], datetime] = {}
    for n in notices:
        key = (n.group_id, n.kind)
        earliest[key] = min(earliest.get(key, n.due_at), n.due_at)
    # Locked in one order by every writer, so two ingests never wait on each other in a circle;
    # a group's welcome first, so that its job goes before a reminder due at the same time.
    for (group_id, kind), due in sorted(
        earliest.items(), key=lambda item: (item[0][0], item[0][1] != NoticeKind.WELCOME)
    ):
        throttle = _lock_throttle(session, org_id, group_id, kind)
        _schedule(session, throttle, due, intervals[group_id], now[group_id])


def _lock_throttle(session: Session, org_id: int, group_id: int, kind: NoticeKind) -> OnboardingThrottle:
    query = (
        select(OnboardingThrottle)
        .where(OnboardingThrottle.group_id == group_id, OnboardingThrottle.kind == kind.value)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    throttle = session.scalar(query)
    if throttle is None:
        row = OnboardingThrottle(group_id=group_id, kind=kind.value, org_id=org_id, generation=0)
        insert_or_get(session, row, lambda: session.scalar(query))
        throttle = session.scalar(query)
        assert throttle is not None
    return throttle


def _schedule(session: Session, throttle: OnboardingThrottle, due: datetime, interval: int, now: datetime) -> None:
    """Make sure a job sends the throttle's group's greeting due at ``due``: keep the scheduled
    job if it goes no later, else schedule one (a new generation) at the first time allowed."""
    at = due
    if throttle.last_sent_at is not None:
        at = max(at, throttle.last_sent_at + timedelta(seconds=interval))
    scheduled = throttle.next_at
    if scheduled is not None and scheduled <= at and scheduled > now - LOST_AFTER:
        return
    throttle.next_at = at
    throttle.generation += 1
    session.flush()
    wait = max(at - now, timedelta())
    enqueue(
        session,
        GREET_JOB,
        {
            "org_id": throttle.org_id,
            "group_id": throttle.group_id,
            "kind": throttle.kind,
            "generation": throttle.generation,
        },
        org_id=throttle.org_id,
        run_at=utcnow() + wait,
        key=f"{GREET_JOB}:{throttle.group_id}:{throttle.kind}:{throttle.generation}",
    )


def send_due(session: Session, job: GreetJob) -> int | None:
    """The greet job: one message naming the group's due members (see the module docstring).
    Returns the outbound action's id, or None when nothing went out."""
    throttle = session.scalar(
        select(OnboardingThrottle)
        .where(OnboardingThrottle.group_id == job.group_id, OnboardingThrottle.kind == job.kind.value)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if throttle is None or throttle.generation != job.generation:
        return None  # a sooner job replaced this one
    group = session.get(Group, job.group_id)
    if group is None:
        return None
    playbook = session.get(Playbook, group.playbook_id) if group.playbook_id is not None else None
    interval = playbook.welcome_interval_seconds if playbook is not None else 60
    # The schedule said the platform's time has reached next_at; a virtual clock that stands
    # still (a simulation's last jobs) must not keep the job waiting for ever.
    now = max(platform_now(group.connection_id), throttle.next_at or utcnow())
    throttle.next_at = None
    notices = list(
        session.scalars(
            select(OnboardingNotice)
            .where(
                OnboardingNotice.group_id == group.id,
                OnboardingNotice.kind == job.kind.value,
                OnboardingNotice.status == NoticeStatus.PENDING.value,
                OnboardingNotice.due_at <= now,
            )
            .order_by(OnboardingNotice.joined_at, OnboardingNotice.id)
            .limit(MAX_NAMED)
        )
    )
    action_id = None
    if notices:
        action_id = _greet(session, group, playbook, job.kind, notices, now)
        if action_id is not None:
            throttle.last_sent_at = now
    later = session.scalar(
        select(func.min(OnboardingNotice.due_at)).where(
            OnboardingNotice.group_id == group.id,
            OnboardingNotice.kind == job.kind.value,
            OnboardingNotice.status == NoticeStatus.PENDING.value,
        )
    )
    if later is not None:
        _schedule(session, throttle, later, interval, now)
    session.flush()
    return action_id


def _greet(
    session: Session,
    group: Group,
    playbook: Playbook | None,
    kind: NoticeKind,
    notices: list[OnboardingNotice],
    now: datetime,
) -> int | None:
    """Skip whom not to name, request one action naming the others; its id (None: nobody left)."""
    done_at = utcnow()
    template = ""
    if playbook is not None:
        template = playbook.welcome_text if kind == NoticeKind.WELCOME else playbook.name_card_text
    fmt = NameCardFormat.parse(playbook.name_card_format) if playbook is not None else None
    members = {m.id: m for m in session.scalars(select(Member).where(Member.id.in_({n.member_id for n in notices})))}
    present = set(
        session.scalars(
            select(MembershipSpan.member_id).where(
                MembershipSpan.group_id == group.id,
                MembershipSpan.member_id.in_(list(members)),
                MembershipSpan.left_at.is_(None),
            )
        )
    )
    named: list[OnboardingNotice] = []
    for notice in notices:
        member = members.get(notice.member_id)
        reason: SkipReason | None = None
        if (
            playbook is None
            or (kind == NoticeKind.WELCOME and not template)
            or (kind == NoticeKind.NAME_CARD and fmt is None)
        ):
            reason = SkipReason.UNSET
        elif member is None or member.erased_at is not None:
            reason = SkipReason.ERASED
        elif notice.member_id not in present:
            reason = SkipReason.LEFT
        elif (
            kind == NoticeKind.NAME_CARD
            and fmt is not None
            and member.display_name_at is not None
            and fmt.matches(member.display_name)
        ):
            reason = SkipReason.NAMED  # the platform reports names, and this one follows the format
        if reason is None:
            named.append(notice)
        else:
            notice.status, notice.reason, notice.done_at = NoticeStatus.SKIPPED.value, reason.value, done_at
    if not named or playbook is None:
        return None
    lang = get_settings().default_language
    mention = _can_mention(session, group)
    batch = named
    while True:
        text = _compose(session, group, playbook, kind, [members[n.member_id] for n in batch], lang, mention)
        if len(text) <= MAX_TEXT or len(batch) == 1:
            break
        batch = batch[: len(batch) // 2]  # the rest stay pending, for the next message
    action_class = WelcomeMembers if kind == NoticeKind.WELCOME else RemindNameCard
    action = request_action(
        session,
        group.org_id,
        action_class.kind,
        group_id=group.id,
        payload={
            "text": text[:MAX_TEXT],
            "mentions": [members[n.member_id].external_id for n in batch] if mention else [],
        },
        idempotency_key=f"{'welcome' if kind == NoticeKind.WELCOME else 'name_card'}:{batch[0].event_id}",
    )
    for notice in batch:
        notice.status, notice.action_id, notice.done_at = NoticeStatus.SENT.value, action.id, done_at
    return action.id


def _can_mention(session: Session, group: Group) -> bool:
    connection = (
        session.get(Connection, group.connection_id)
        if group.connection_id is not None
        else default_connection(session, group.org_id, group.platform)
    )
    return connection is not None and registry.profile_of(connection).has(Capability.MENTION)


def nickname(member: Member, lang: str) -> str:
    """How a greeting names a member: the name the platform reported, else a friendly word
    (an external id means nothing to the group)."""
    return member.display_name.strip() or catalogue(lang).get("onb.nickname_unknown", "新朋友")


def owner_name(session: Session, group: Group) -> str:
    if group.owner_id is None:
        return ""
    return session.scalar(select(Staff.display_name).where(Staff.id == group.owner_id)) or ""


def _compose(
    session: Session,
    group: Group,
    playbook: Playbook,
    kind: NoticeKind,
    members: list[Member],
    lang: str,
    mention: bool,
) -> str:
    names = catalogue(lang).get("onb.names_joiner", "、").join(nickname(m, lang) for m in members)
    values = {
        "nickname": names,
        "group_name": group.name,
        "owner_name": owner_name(session, group),
        "rules_url": playbook.rules_url,
        "name_card_format": playbook.name_card_format,
    }
    if kind == NoticeKind.WELCOME:
        field, template = "welcome_text", playbook.welcome_text
    else:
        field, template = "name_card_text", playbook.name_card_text or catalogue(lang)["onb.default.name_card_text"]
    text = render_stored(field, template, values)
    if not mention and not uses(template, "nickname"):
        # Neither an @-mention nor the text names them: name them in front of it.
        text = Msg("onb.named_prefix", names=names, text=text).render(lang)
    return text
