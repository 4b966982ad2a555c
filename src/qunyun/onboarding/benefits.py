"""The new-member benefit (新人福利): a coupon pool per playbook, each code given out once.

Codes are imported from a file (one a line, or a CSV with a code column) by a lead in the
console or with ``qunyun onboarding coupons import``. A live join into a group of a playbook with
a pool enqueues a job (:func:`grant`) that, in its own transaction:

1. records the member's grant of the pool (unique per pool and member: one benefit per member,
   however many of the playbook's groups they join, and a job run twice grants once);
2. takes the first free code with ``FOR UPDATE SKIP LOCKED``: concurrent grants on PostgreSQL
   each lock a different row and never wait on one another; SQLite runs one writer at a time.
   A code belongs to at most one grant (``coupon_codes.grant_id`` is unique), and a grant whose
   transaction rolls back leaves its code free: no code given twice, none lost;
3. sends the code privately through ``send_private_message`` — where the platform cannot
   (``direct_message``), the dispatcher hands it to the group's owner as a task, text included;
4. with no code left, records the grant as missed and gives the group's owner a task to import
   more, once: while that task is open, no other one is opened.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, group_visible, require_lead
from qunyun.config import get_settings
from qunyun.connectors.actions import SendPrivateMessage
from qunyun.connectors.dispatch import request_action
from qunyun.db.unique import insert_or_get, try_insert
from qunyun.errors import InvalidInput, NotFound
from qunyun.locale import Msg, catalogue
from qunyun.models import Group, Member, Playbook, StaffTask, TaskKind, TaskStatus
from qunyun.models.onboarding import BenefitGrant, CouponCode, CouponPool, GrantStatus
from qunyun.onboarding.greetings import nickname, owner_name
from qunyun.onboarding.texts import render_stored
from qunyun.tasks.service import complete, open_task
from qunyun.tasks.titles import to_json
from qunyun.timeutil import utcnow

BENEFIT_JOB = "onboarding.benefit"
CODE_LIMIT = 100  # characters of a code (coupon_codes.code)
IMPORT_LIMIT = 50_000  # codes in one file
# Header names of the code column (a CSV may carry other columns, e.g. the coupon's value).
CODE_HEADERS = ("code", "codes", "coupon", "coupon code", "coupon_code", "券码", "优惠券", "优惠码", "兑换码", "券号")
RECENT = 20


class BenefitJob(BaseModel):
    """The payload of a benefit job: the join that earned it."""

    org_id: int
    pool_id: int
    group_id: int
    member_id: int
    event_id: int


@dataclass(frozen=True)
class ImportReport:
    added: int  # new codes in the pool
    duplicates: int  # codes already in the pool, or twice in the file (left out)
    free: int  # codes left to give after the import


@dataclass(frozen=True)
class GrantRow:
    at: datetime
    member: str
    group: str
    status: str
    code: str  # masked: the middle is hidden


@dataclass(frozen=True)
class PoolStatus:
    playbook_id: int
    playbook: str
    free: int
    given: int
    missed: int
    empty_task_open: bool
    recent: list[GrantRow]


# --- granting --------------------------------------------------------------------------------


def grant(session: Session, job: BenefitJob) -> BenefitGrant | None:
    """The benefit of one join (see the module docstring); None when the member had it already
    or their data was erased."""
    member = session.get(Member, job.member_id)
    if member is None or member.erased_at is not None:
        return None
    row = BenefitGrant(
        org_id=job.org_id,
        pool_id=job.pool_id,
        member_id=job.member_id,
        group_id=job.group_id,
        event_id=job.event_id,
        status=GrantStatus.GIVEN.value,
        created_at=utcnow(),
    )
    if not try_insert(session, row):
        return None  # one benefit per member and pool
    code = _claim(session, job.pool_id, row.id)
    if code is None:
        row.status = GrantStatus.MISSED.value
        _pool_ran_empty(session, job, member)
        session.flush()
        return row
    row.code = code
    group = session.get(Group, job.group_id)
    pool = session.get_one(CouponPool, job.pool_id)
    playbook = session.get_one(Playbook, pool.playbook_id)
    assert group is not None
    lang = get_settings().default_language
    template = playbook.benefit_text or catalogue(lang)["onb.default.benefit_text"]
    text = render_stored(
        "benefit_text",
        template,
        {
            "nickname": nickname(member, lang),
            "group_name": group.name,
            "owner_name": owner_name(session, group),
            "rules_url": playbook.rules_url,
            "code": code,
        },
    )
    action = request_action(
        session,
        job.org_id,
        SendPrivateMessage.kind,
        group_id=group.id,
        member_id=member.id,
        payload={"text": text},
        idempotency_key=f"benefit:{row.id}",
    )
    row.action_id = action.id
    session.flush()
    return row


def _claim(session: Session, pool_id: int, grant_id: int) -> str | None:
    """Give the pool's first free code to ``grant_id``; None when there is none."""
    found = session.execute(
        select(CouponCode.id, CouponCode.code)
        .where(CouponCode.pool_id == pool_id, CouponCode.grant_id.is_(None))
        .order_by(CouponCode.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    if found is None:
        return None
    session.execute(update(CouponCode).where(CouponCode.id == found.id).values(grant_id=grant_id))
    return str(found.code)


def _pool_ran_empty(session: Session, job: BenefitJob, member: Member) -> None:
    """A task for the group's owner to import codes, unless one is open already."""
    # FOR NO KEY UPDATE: the grants being inserted by other jobs hold a key-share lock on the
    # pool (their foreign key); a plain FOR UPDATE would wait for them while they wait for it.
    pool = session.scalar(
        select(CouponPool)
        .where(CouponPool.id == job.pool_id)
        .with_for_update(key_share=True)  # PostgreSQL: FOR NO KEY UPDATE
        .execution_options(populate_existing=True)
    )
    assert pool is not None
    if pool.empty_task_id is not None:
        status = session.scalar(select(StaffTask.status).where(StaffTask.id == pool.empty_task_id))
        if status == TaskStatus.OPEN.value:
            return
    playbook = session.get_one(Playbook, pool.playbook_id)
    group = session.get_one(Group, job.group_id)
    lang = get_settings().default_language
    reason = Msg("onb.task.pool_empty_reason", member=nickname(member, lang), group=group.name)
    task = open_task(
        session,
        org_id=job.org_id,
        kind=TaskKind.OTHER,
        title=Msg("onb.task.pool_empty", playbook=playbook.name),
        detail={
            "pool_id": pool.id,
            "playbook_id": playbook.id,
            "community_id": playbook.community_id,
            "reason": str(reason),
            "reason_msg": to_json(reason),
        },
        group_id=group.id,
    )
    pool.empty_task_id = task.id


# --- importing ---------------------------------------------------------------------------------


def _playbook(session: Session, scope: Scope, playbook_id: int) -> Playbook:
    playbook = session.scalar(select(Playbook).where(Playbook.id == playbook_id, Playbook.org_id == scope.org_id))
    if playbook is None:
        raise NotFound(Msg("err.onboarding.no_playbook", id=playbook_id), field="playbook_id")
    return playbook


def playbook_by_name(session: Session, scope: Scope, name: str) -> Playbook:
    """The organisation's playbook called ``name`` (NotFound naming ``playbook``)."""
    playbook = session.scalar(select(Playbook).where(Playbook.org_id == scope.org_id, Playbook.name == name))
    if playbook is None:
        raise NotFound(Msg("err.onboarding.no_playbook_named", name=name), field="playbook")
    return playbook


def parse_codes(data: bytes) -> list[tuple[int, str]]:
    """``(row, code)`` of each code in a file: one code a line, or a CSV whose code column is
    named by its header (``code``, ``券码``…; else the first column). UTF-8 (with or without a
    BOM) or GB18030, as Excel saves a CSV on a Chinese Windows. Rows are numbered as the user
    sees them (the header is row 1); ``InvalidInput`` names the row and the column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise InvalidInput(Msg("err.onboarding.codes_encoding"), field="file") from exc
    rows = list(csv.reader(io.StringIO(text)))
    column, column_name, start = 0, "1", 0
    if rows and rows[0]:
        header = [cell.strip().casefold() for cell in rows[0]]
        for index, name in enumerate(header):
            if name in CODE_HEADERS:
                column, column_name, start = index, rows[0][index].strip(), 1
                break
    codes: list[tuple[int, str]] = []
    for number, row in enumerate(rows[start:], start=start + 1):
        if not any(cell.strip() for cell in row):
            continue  # a blank line
        value = row[column].strip() if column < len(row) else ""
        if not value:
            raise InvalidInput(
                Msg("err.onboarding.code_missing", row=number, column=column_name), field="file", row=number
            )
        if len(value) > CODE_LIMIT:
            raise InvalidInput(
                Msg("err.onboarding.code_too_long", row=number, column=column_name, limit=CODE_LIMIT),
                field="file",
                row=number,
            )
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            raise InvalidInput(
                Msg("err.onboarding.code_spaces", row=number, column=column_name), field="file", row=number
            )
        codes.append((number, value))
        if len(codes) > IMPORT_LIMIT:
            raise InvalidInput(Msg("err.onboarding.too_many_codes", limit=IMPORT_LIMIT), field="file")
    if not codes:
        raise InvalidInput(Msg("err.onboarding.no_codes"), field="file")
    return codes


def import_codes(session: Session, scope: Scope, playbook_id: int, data: bytes) -> ImportReport:
    """Add the codes of a file to the playbook's pool (created on first import; lead only). All
    or nothing: a bad row refuses the file. Codes already in the pool are left out and counted.
    An open "pool empty" task is completed by a staff member's import."""
    require_lead(scope)
    playbook = _playbook(session, scope, playbook_id)
    codes = parse_codes(data)
    query = select(CouponPool).where(CouponPool.playbook_id == playbook.id)
    pool = session.scalar(query)
    if pool is None:
        pool = insert_or_get(
            session,
            CouponPool(org_id=scope.org_id, playbook_id=playbook.id, created_at=utcnow()),
            lambda: session.scalar(query),
        )[0]
    seen: set[str] = set()
    for start in range(0, len(codes), 5000):
        chunk = [code for _, code in codes[start : start + 5000]]
        seen.update(
            session.scalars(select(CouponCode.code).where(CouponCode.pool_id == pool.id, CouponCode.code.in_(chunk)))
        )
    now = utcnow()
    fresh: list[str] = []
    for _, code in codes:
        if code not in seen:
            seen.add(code)
            fresh.append(code)
    session.add_all(CouponCode(org_id=scope.org_id, pool_id=pool.id, code=code, imported_at=now) for code in fresh)
    session.flush()
    if fresh and pool.empty_task_id is not None and scope.staff_id:
        status = session.scalar(select(StaffTask.status).where(StaffTask.id == pool.empty_task_id))
        if status == TaskStatus.OPEN.value:
            complete(
                session,
                scope,
                pool.empty_task_id,
                note=Msg("onb.task.pool_refilled", count=len(fresh)).render(get_settings().default_language),
                confirm_action=False,
            )
    return ImportReport(added=len(fresh), duplicates=len(codes) - len(fresh), free=_free(session, pool.id))


def _free(session: Session, pool_id: int) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(CouponCode)
            .where(CouponCode.pool_id == pool_id, CouponCode.grant_id.is_(None))
        )
        or 0
    )


# --- reading -----------------------------------------------------------------------------------


def pool_status(session: Session, scope: Scope, playbook_id: int) -> PoolStatus:
    """The pool's counts and its latest grants in the scope's groups (codes masked)."""
    playbook = _playbook(session, scope, playbook_id)
    pool = session.scalar(select(CouponPool).where(CouponPool.playbook_id == playbook.id))
    if pool is None:
        return PoolStatus(playbook.id, playbook.name, 0, 0, 0, False, [])
    counts = dict(
        session.execute(
            select(BenefitGrant.status, func.count())
            .where(BenefitGrant.pool_id == pool.id)
            .group_by(BenefitGrant.status)
        ).all()
    )
    open_task = pool.empty_task_id is not None and (
        session.scalar(select(StaffTask.status).where(StaffTask.id == pool.empty_task_id)) == TaskStatus.OPEN.value
    )
    lang = get_settings().default_language
    recent = [
        GrantRow(at, nickname(member, lang), group_name or "", status, mask(code or ""))
        for at, member, group_name, status, code in session.execute(
            select(BenefitGrant.created_at, Member, Group.name, BenefitGrant.status, BenefitGrant.code)
            .join(Member, Member.id == BenefitGrant.member_id)
            .join(Group, Group.id == BenefitGrant.group_id)
            .where(BenefitGrant.pool_id == pool.id, group_visible(scope))
            .order_by(BenefitGrant.id.desc())
            .limit(RECENT)
        )
    ]
    return PoolStatus(
        playbook_id=playbook.id,
        playbook=playbook.name,
        free=_free(session, pool.id),
        given=int(counts.get(GrantStatus.GIVEN.value, 0)),
        missed=int(counts.get(GrantStatus.MISSED.value, 0)),
        empty_task_open=open_task,
        recent=recent,
    )


def mask(code: str) -> str:
    """A code as a list may show it: its ends, the middle hidden (a code is as good as money)."""
    if len(code) <= 4:
        return "*" * len(code)
    keep = max(1, len(code) // 4)
    return code[:keep] + "*" * (len(code) - 2 * keep) + code[-keep:]
