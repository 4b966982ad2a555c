"""A member's personal data, exported and erased on request (PIPL access and deletion rights).

Only the organisation's lead answers such requests: the export holds everything the organisation
keeps about one person, and erasure cannot be undone.

**Export** (:func:`export_member`) gathers, per section: the profile and tags, memberships,
every event (with the message text still within the retention window), orders and refunds, live
code visits and attributed joins, onboarding notices and benefits, moderation decisions and roles,
outbound actions aimed at the member and the staff tasks behind them, join requests and
live-code invitations.

**Erasure** (:func:`erase_member`) removes what identifies the person and keeps the facts the
metrics are built from, under the member's internal id only:

- the profile: name, persona fields and the WeCom corp are cleared; the platform id is replaced
  by a one-way digest (``erased:…``), so the record no longer leads back to the account — a later
  event from the same account starts a new member;
- tags, message texts, live-code answers, region and IP prefix of their scans go;
- moderation keeps its decisions as facts but drops their excerpts and matched words;
- outbound actions aimed at the member and their staff tasks have the member's name replaced.

Events, memberships, rollups, orders and decisions stay (pseudonymous), so the figures of past
days do not change. The audit log records the erasure with the counts, never the values.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from qunyun.audit.service import record_by
from qunyun.auth.scope import Scope, require_lead, require_member
from qunyun.errors import Conflict
from qunyun.livecodes.join_requests import erase_for_member, export_for_member
from qunyun.locale import Msg
from qunyun.models import (
    BenefitGrant,
    CouponCode,
    Event,
    EventKind,
    Group,
    LiveCodeJoin,
    LiveCodeScan,
    LiveCodeVisitor,
    MembershipSpan,
    MessageText,
    MsgType,
    OnboardingNotice,
    Order,
    OutboundAction,
    Refund,
    StaffTask,
    Tag,
    Tagging,
)
from qunyun.models.event import KIND_NAMES
from qunyun.timeutil import utcnow

ERASED_NAME = "[已删除]"
FORMAT_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _group_names(session: Session, org_id: int, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = session.execute(select(Group.id, Group.name).where(Group.org_id == org_id, Group.id.in_(ids)))
    return {gid: name for gid, name in rows}


def _enum_name(enum_type: Any, value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return str(enum_type(value).name.lower())
    except ValueError:
        return str(value)


def export_member(session: Session, scope: Scope, member_id: int) -> dict[str, Any]:
    """Everything the organisation holds about one member, as one JSON-able document."""
    from qunyun.connectors.wecom.contacts import export_member_contacts
    from qunyun.moderation.service import export_member_evidence

    require_lead(scope)
    member = require_member(session, scope, member_id)
    org_id = scope.org_id
    tags = session.execute(
        select(Tag.name, Tag.category, Tagging.source, Tagging.created_at)
        .join(Tagging, Tagging.tag_id == Tag.id)
        .where(Tagging.member_id == member.id)
        .order_by(Tag.name)
    ).all()
    spans = session.scalars(
        select(MembershipSpan)
        .where(MembershipSpan.org_id == org_id, MembershipSpan.member_id == member.id)
        .order_by(MembershipSpan.joined_at, MembershipSpan.id)
    ).all()
    events = session.execute(
        select(Event, MessageText.text)
        .outerjoin(MessageText, MessageText.event_id == Event.id)
        .where(Event.org_id == org_id, Event.member_id == member.id)
        .order_by(Event.ts, Event.id)
    ).all()
    orders = session.scalars(
        select(Order).where(Order.org_id == org_id, Order.member_id == member.id).order_by(Order.paid_at, Order.id)
    ).all()
    refunds = (
        session.scalars(
            select(Refund)
            .where(Refund.org_id == org_id, Refund.order_ref.in_([o.external_id for o in orders]))
            .order_by(Refund.refunded_at, Refund.id)
        ).all()
        if orders
        else []
    )
    groups = _group_names(
        session,
        org_id,
        {s.group_id for s in spans} | {e.group_id for e, _ in events if e.group_id is not None},
    )
    visitors = session.scalars(
        select(LiveCodeVisitor).where(LiveCodeVisitor.org_id == org_id, LiveCodeVisitor.member_id == member.id)
    ).all()
    scans = (
        session.scalars(
            select(LiveCodeScan)
            .where(
                LiveCodeScan.org_id == org_id,
                LiveCodeScan.visitor.in_({v.visitor for v in visitors}),
                LiveCodeScan.live_code_id.in_({v.live_code_id for v in visitors}),
            )
            .order_by(LiveCodeScan.at, LiveCodeScan.id)
        ).all()
        if visitors
        else []
    )
    joins = session.scalars(
        select(LiveCodeJoin).where(LiveCodeJoin.org_id == org_id, LiveCodeJoin.member_id == member.id)
    ).all()
    notices = session.scalars(
        select(OnboardingNotice).where(OnboardingNotice.org_id == org_id, OnboardingNotice.member_id == member.id)
    ).all()
    grants = session.execute(
        select(BenefitGrant, CouponCode.code)
        .outerjoin(CouponCode, CouponCode.grant_id == BenefitGrant.id)
        .where(BenefitGrant.org_id == org_id, BenefitGrant.member_id == member.id)
    ).all()
    actions = session.scalars(
        select(OutboundAction)
        .where(OutboundAction.org_id == org_id, OutboundAction.member_id == member.id)
        .order_by(OutboundAction.id)
    ).all()
    tasks = (
        session.scalars(
            select(StaffTask)
            .where(StaffTask.org_id == org_id, StaffTask.outbound_action_id.in_([a.id for a in actions]))
            .order_by(StaffTask.id)
        ).all()
        if actions
        else []
    )
    return {
        "format": FORMAT_VERSION,
        "exported_at": utcnow().isoformat(),
        "member": {
            "id": member.id,
            "platform": member.platform,
            "external_id": member.external_id,
            "display_name": member.display_name,
            "gender": member.gender,
            "birth_year": member.birth_year,
            "occupation": member.occupation,
            "region": member.region,
            "interests": list(member.interests or []),
            "corp": member.corp,
            "first_seen_at": _iso(member.first_seen_at),
            "erased_at": _iso(member.erased_at),
        },
        "tags": [
            {"name": name, "category": category, "source": source, "at": _iso(at)}
            for name, category, source, at in tags
        ],
        "memberships": [
            {
                "group_id": s.group_id,
                "group": groups.get(s.group_id, ""),
                "joined_at": _iso(s.joined_at),
                "left_at": _iso(s.left_at),
            }
            for s in spans
        ],
        "events": [
            {
                "id": e.external_id,
                "kind": KIND_NAMES.get(EventKind(e.kind), str(e.kind)),
                "ts": _iso(e.ts),
                "group_id": e.group_id,
                "group": groups.get(e.group_id, "") if e.group_id is not None else None,
                "msg_type": _enum_name(MsgType, e.msg_type),
                "length": e.length,
                "scene": e.scene,
                "reason": e.reason,
                "message": e.message_ref,
                "text": text,
            }
            for e, text in events
        ],
        "orders": [
            {
                "id": o.external_id,
                "group_id": o.group_id,
                "product": o.product,
                "amount_fen": o.amount_fen,
                "paid_at": _iso(o.paid_at),
            }
            for o in orders
        ],
        "refunds": [{"order": r.order_ref, "amount_fen": r.amount_fen, "at": _iso(r.refunded_at)} for r in refunds],
        "live_codes": {
            "visits": [
                {
                    "live_code_id": v.live_code_id,
                    "group_id": v.group_id,
                    "first_at": _iso(v.first_at),
                    "region": v.region,
                }
                for v in visitors
            ],
            "scans": [
                {
                    "live_code_id": s.live_code_id,
                    "at": _iso(s.at),
                    "outcome": s.outcome,
                    "group_id": s.group_id,
                    "device": s.ua_class,
                    "ip_prefix": s.ip_prefix,
                    "answers": s.answers,
                }
                for s in scans
            ],
            "joins": [
                {
                    "live_code_id": j.live_code_id,
                    "group_id": j.group_id,
                    "matched_by": j.matched_by,
                    "at": _iso(j.joined_at),
                }
                for j in joins
            ],
        },
        **export_for_member(session, org_id, member.id),
        "onboarding": {
            "notices": [
                {"group_id": n.group_id, "kind": n.kind, "status": n.status, "at": _iso(n.created_at)} for n in notices
            ],
            "benefits": [{"group_id": g.group_id, "status": g.status, "code": code} for g, code in grants],
        },
        "moderation": export_member_evidence(session, org_id, member.id),
        "wecom_contacts": export_member_contacts(session, org_id, member),
        "outbound_actions": [
            {
                "id": a.id,
                "action": a.action,
                "group_id": a.group_id,
                "state": str(a.state),
                "payload": a.payload,
                "created_at": _iso(a.created_at),
            }
            for a in actions
        ],
        "tasks": [
            {
                "id": t.id,
                "title": t.title,
                "status": str(t.status),
                "created_at": _iso(t.created_at),
                "done_at": _iso(t.done_at),
            }
            for t in tasks
        ],
    }


def _scrub(value: Any, names: tuple[str, ...]) -> Any:
    """``value`` with every occurrence of ``names`` in its strings replaced (recursively)."""
    if isinstance(value, str):
        for name in names:
            value = value.replace(name, ERASED_NAME)
        return value
    if isinstance(value, list):
        return [_scrub(item, names) for item in value]
    if isinstance(value, dict):
        return {key: _scrub(item, names) for key, item in value.items()}
    return value


def erased_external_id(platform: str, external_id: str) -> str:
    """The one-way stand-in for an erased member's platform id (unique per account)."""
    digest = hashlib.sha256(f"{platform}\x00{external_id}".encode()).hexdigest()[:40]
    return f"erased:{digest}"


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount or 0)


def erase_member(session: Session, scope: Scope, member_id: int, *, request: Any = None) -> dict[str, int]:
    """Erase one member's personal data (see the module's docstring); returns what was erased,
    per section. A member erased already is a Conflict. Flushes; the caller commits."""
    from qunyun.connectors.wecom.contacts import erase_member_contacts
    from qunyun.moderation.service import erase_member_evidence

    require_lead(scope)
    member = require_member(session, scope, member_id, write=True)
    if member.erased_at is not None:
        raise Conflict(Msg("privacy.err.erased"), field="member_id")
    org_id = scope.org_id
    now = utcnow()
    names = tuple(n for n in {member.display_name.strip(), member.external_id} if len(n) >= 2)
    counts: dict[str, int] = {}
    counts["tags"] = _rowcount(session.execute(delete(Tagging).where(Tagging.member_id == member.id)))
    texts = select(Event.id).where(Event.org_id == org_id, Event.member_id == member.id)
    counts["message_texts"] = _rowcount(
        session.execute(
            delete(MessageText).where(MessageText.event_id.in_(texts)).execution_options(synchronize_session=False)
        )
    )
    visitors = session.scalars(
        select(LiveCodeVisitor).where(LiveCodeVisitor.org_id == org_id, LiveCodeVisitor.member_id == member.id)
    ).all()
    scans = 0
    for visitor in visitors:
        visitor.region = ""
        scans += _rowcount(
            session.execute(
                update(LiveCodeScan)
                .where(
                    LiveCodeScan.org_id == org_id,
                    LiveCodeScan.live_code_id == visitor.live_code_id,
                    LiveCodeScan.visitor == visitor.visitor,
                )
                .values(answers=None, ip_prefix=None)
                .execution_options(synchronize_session=False)
            )
        )
    counts["live_code_scans"] = scans
    counts["moderation_decisions"] = erase_member_evidence(session, org_id, member.id, staff_id=scope.staff_id or None)
    erased_wecom = erased_external_id(member.platform, member.external_id)
    counts["wecom_contacts"] = erase_member_contacts(session, org_id, member, erased_wecom)
    actions = session.scalars(
        select(OutboundAction).where(OutboundAction.org_id == org_id, OutboundAction.member_id == member.id)
    ).all()
    for action in actions:
        action.payload = _scrub(dict(action.payload or {}), names)
    counts["outbound_actions"] = len(actions)
    tasks = (
        session.scalars(
            select(StaffTask).where(
                StaffTask.org_id == org_id, StaffTask.outbound_action_id.in_([a.id for a in actions])
            )
        ).all()
        if actions
        else []
    )
    for task in tasks:
        task.title = _scrub(task.title, names)
        task.title_values = _scrub(task.title_values, names)
        task.detail = _scrub(dict(task.detail or {}), names)
        if task.evidence_text:
            task.evidence_text = _scrub(task.evidence_text, names)
    counts["tasks"] = len(tasks)
    erased_id = erased_external_id(member.platform, member.external_id)
    counts["join_requests"] = erase_for_member(session, org_id, member.id, erased_id)
    member.external_id = erased_id
    member.display_name = ""
    member.display_name_at = now
    member.gender = ""
    member.birth_year = None
    member.occupation = ""
    member.region = ""
    member.interests = []
    member.corp = ""
    member.erased_at = now
    session.flush()
    record_by(
        session, scope, action="member.erase", target_type="member", target_id=member.id, detail=counts, request=request
    )
    return counts
