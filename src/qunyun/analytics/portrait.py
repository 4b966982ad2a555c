"""Group portrait (客户群画像) and member segmentation: who is in a group, and how each member
stands — class by activity (KOL, 头部, 活跃, 普通) and tier by spending (初级/中级/高级)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, require_group
from qunyun.models import Member, MemberDay, MembershipSpan, Order, Tag, Tagging
from qunyun.timeutil import day_key

AGE_BANDS = (
    (0, 18, "<18"),
    (18, 25, "18-24"),
    (25, 35, "25-34"),
    (35, 45, "35-44"),
    (45, 55, "45-54"),
    (55, 200, "55+"),
)
TOP_INTERESTS = 12
TOP_REGIONS = 10
# Class thresholds over the last ACTIVE_WINDOW days in the group.
ACTIVE_WINDOW = 30
HEAD_SHARE = 0.1  # the top 10 % of posters (with at least HEAD_MIN messages) are 头部用户
HEAD_MIN = 10
KOL_TAG = "KOL"
# Tier by paid orders: 高级 from HIGH_ORDERS orders or HIGH_SPEND_FEN spent, 中级 from one order.
HIGH_ORDERS = 3
HIGH_SPEND_FEN = 300_000


@dataclass
class Portrait:
    total: int = 0
    gender: list[tuple[str, int]] = field(default_factory=list)
    age: list[tuple[str, int]] = field(default_factory=list)
    region: list[tuple[str, int]] = field(default_factory=list)
    interests: list[tuple[str, int]] = field(default_factory=list)


def age_band(birth_year: int | None, today: date) -> str:
    if birth_year is None:
        return ""
    age = today.year - birth_year
    for lo, hi, label in AGE_BANDS:
        if lo <= age < hi:
            return label
    return ""


def group_portrait(session: Session, scope: Scope, group_id: int, today: date) -> Portrait:
    """The portrait of the members now in a group in scope (else NotFound)."""
    group = require_group(session, scope, group_id)
    current = select(MembershipSpan.member_id).where(
        MembershipSpan.org_id == scope.org_id, MembershipSpan.group_id == group.id, MembershipSpan.left_at.is_(None)
    )
    return _portrait(session, current, today)


def _portrait(session: Session, member_ids: Select[Any], today: date) -> Portrait:
    """Gender, age band, region and interest distributions of the members ``member_ids`` selects
    (unknown values are counted under "")."""
    rows = session.execute(
        select(Member.gender, Member.birth_year, Member.region, Member.interests).where(
            Member.id.in_(member_ids), Member.erased_at.is_(None)
        )
    ).all()
    gender: Counter[str] = Counter()
    ages: Counter[str] = Counter()
    regions: Counter[str] = Counter()
    interests: Counter[str] = Counter()
    for g, birth_year, region, likes in rows:
        gender[g or ""] += 1
        ages[age_band(birth_year, today)] += 1
        regions[region or ""] += 1
        interests.update(set(likes or ()))
    order = [label for _, _, label in AGE_BANDS] + [""]
    return Portrait(
        total=len(rows),
        gender=sorted(gender.items(), key=lambda kv: (-kv[1], kv[0])),
        age=[(label, ages[label]) for label in order if ages[label]],
        region=regions.most_common(TOP_REGIONS),
        interests=interests.most_common(TOP_INTERESTS),
    )


def member_classes(
    session: Session, scope: Scope, group_id: int, today: date, member_ids: Sequence[int]
) -> dict[int, str]:
    """kol | head | active | normal for each of ``member_ids`` in the group (of the scope's
    organisation): KOL by tag, 头部 the group's top posters of the last 30 days, 活跃 anyone who
    posted in the last 7 days."""
    org_id = scope.org_id
    since = day_key(today - timedelta(days=ACTIVE_WINDOW - 1))
    recent = day_key(today - timedelta(days=6))
    counts: dict[int, tuple[int, int]] = {
        int(m): (int(total or 0), int(last or 0))
        for m, total, last in session.execute(
            select(MemberDay.member_id, func.sum(MemberDay.messages), func.max(MemberDay.day))
            .where(
                MemberDay.org_id == org_id,
                MemberDay.day >= since,
                MemberDay.group_id == group_id,
                MemberDay.messages > 0,
            )
            .group_by(MemberDay.member_id)
        )
    }
    ranked = sorted((n for n, _ in counts.values()), reverse=True)
    cut = max(1, int(len(ranked) * HEAD_SHARE)) if ranked else 0
    head_min = max(HEAD_MIN, ranked[cut - 1]) if cut else HEAD_MIN
    kols = (
        {
            int(m)
            for m in session.scalars(
                select(Tagging.member_id)
                .join(Tag, Tag.id == Tagging.tag_id)
                .where(Tag.org_id == org_id, Tag.name == KOL_TAG, Tagging.member_id.in_(list(member_ids)))
            )
        }
        if member_ids
        else set()
    )
    out: dict[int, str] = {}
    for m in member_ids:
        total, last = counts.get(m, (0, 0))
        if m in kols:
            out[m] = "kol"
        elif total >= head_min:
            out[m] = "head"
        elif last >= recent:
            out[m] = "active"
        else:
            out[m] = "normal"
    return out


def member_tiers(session: Session, scope: Scope, member_ids: Sequence[int]) -> dict[int, str]:
    """junior | middle | senior (初级/中级/高级) by paid orders (in the scope's organisation) for
    each of ``member_ids``."""
    if not member_ids:
        return {}
    org_id = scope.org_id
    spent = {
        int(m): (int(n), int(total or 0))
        for m, n, total in session.execute(
            select(Order.member_id, func.count(), func.sum(Order.amount_fen))
            .where(Order.org_id == org_id, Order.member_id.in_(list(member_ids)))
            .group_by(Order.member_id)
        )
    }
    out = {}
    for m in member_ids:
        n, total = spent.get(m, (0, 0))
        out[m] = "senior" if n >= HIGH_ORDERS or total >= HIGH_SPEND_FEN else "middle" if n else "junior"
    return out
