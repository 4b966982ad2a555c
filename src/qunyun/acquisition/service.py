"""Channels: the cost model of each acquisition route and what a member acquired through it cost.

CAC = (touches × cost per touch + members × reward per member + fixed cost) / members, where
members are the distinct members whose join event carried the channel. The expected CAC uses the
expected join rate instead: e.g. SMS at 0.05 元 with a 1.5 元 red packet at 8 % → 2.13 元/人.

Spend is recorded with its day (``channel_spend``): touches and fixed costs, which the channel
report (``acquisition/report.py``) prices over a range of days. The channel's ``touches`` and
``fixed_cost`` are the running totals of those rows; setting them records the difference.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.acquisition.schemas import ChannelCreate, ChannelOut, SpendCreate, SpendOut
from qunyun.audit.service import apply_changes, record_by
from qunyun.auth.scope import Scope, group_id_visible, require_lead
from qunyun.errors import Conflict, NotFound
from qunyun.groups.service import count_rows
from qunyun.locale import Msg
from qunyun.models import Channel, Event, EventKind, LiveCodeJoin, Organisation
from qunyun.models.channel import ChannelSpend
from qunyun.timeutil import day_key, utcnow

_CENT = Decimal("0.01")
_MONEY_FIELDS = {
    "cost_per_touch": "cost_per_touch_fen",
    "reward_per_member": "reward_per_member_fen",
    "fixed_cost": "fixed_cost_fen",
}


def yuan_to_fen(value: Decimal) -> int:
    """Validated yuan (at most two decimals) → integer fen."""
    return int((value * 100).to_integral_value())


def fen_to_yuan(fen: int | Decimal) -> str:
    """Fen → yuan decimal string with two decimals, rounding half up ("2.125" → "2.13")."""
    return str((Decimal(fen) / 100).quantize(_CENT, rounding=ROUND_HALF_UP))


def actual_cac_fen(channel: Channel, members: int) -> Decimal | None:
    if members <= 0:
        return None
    cost = (
        channel.touches * channel.cost_per_touch_fen + members * channel.reward_per_member_fen + channel.fixed_cost_fen
    )
    return Decimal(cost) / members


def expected_cac_fen(channel: Channel) -> Decimal | None:
    """Planned cost per member from the expected join rate; None when no rate is set, or when a
    fixed cost cannot be spread because no touches are planned."""
    if channel.expected_rate_bp <= 0:
        return None
    rate = Decimal(channel.expected_rate_bp) / 10_000
    per_member = Decimal(channel.cost_per_touch_fen) / rate + channel.reward_per_member_fen
    if channel.fixed_cost_fen:
        if channel.touches <= 0:
            return None
        per_member += Decimal(channel.fixed_cost_fen) / (channel.touches * rate)
    return per_member


def _joins_through(org_id: int, *, events: Sequence[Any] = (), codes: Sequence[Any] = ()) -> Any:
    """(channel id, member id) of the joins that carry a channel: the event names it, or the
    join was attributed to a live code of it (``live_code_joins``)."""
    direct = select(Event.channel_id.label("channel_id"), Event.member_id.label("member_id")).where(
        Event.org_id == org_id, Event.kind == int(EventKind.MEMBER_JOINED), Event.channel_id.is_not(None), *events
    )
    via_code = select(LiveCodeJoin.channel_id, LiveCodeJoin.member_id).where(
        LiveCodeJoin.org_id == org_id, LiveCodeJoin.channel_id.is_not(None), *codes
    )
    return union_all(direct, via_code).subquery()


def members_acquired(session: Session, org_id: int, channel_ids: Sequence[int]) -> dict[int, int]:
    """Distinct members per channel whose join carried that channel, directly or through the
    live code it was attributed to."""
    if not channel_ids:
        return {}
    joins = _joins_through(
        org_id, events=[Event.channel_id.in_(channel_ids)], codes=[LiveCodeJoin.channel_id.in_(channel_ids)]
    )
    rows = session.execute(
        select(joins.c.channel_id, func.count(func.distinct(joins.c.member_id))).group_by(joins.c.channel_id)
    )
    return {int(channel_id): int(n) for channel_id, n in rows if channel_id is not None}


def channel_out(channel: Channel, members: int) -> ChannelOut:
    actual = actual_cac_fen(channel, members)
    expected = expected_cac_fen(channel)
    return ChannelOut(
        id=channel.id,
        code=channel.code,
        name=channel.name,
        kind=channel.kind,
        cost_per_touch=fen_to_yuan(channel.cost_per_touch_fen),
        reward_per_member=fen_to_yuan(channel.reward_per_member_fen),
        fixed_cost=fen_to_yuan(channel.fixed_cost_fen),
        touches=channel.touches,
        expected_rate_bp=channel.expected_rate_bp,
        members_acquired=members,
        cac=fen_to_yuan(actual) if actual is not None else None,
        expected_cac=fen_to_yuan(expected) if expected is not None else None,
        created_at=channel.created_at,
    )


def _require_channel(session: Session, scope: Scope, channel_id: int) -> Channel:
    channel = session.scalar(select(Channel).where(Channel.id == channel_id, Channel.org_id == scope.org_id))
    if channel is None:
        raise NotFound(Msg("err.acquisition.no_channel", id=channel_id), field="channel_id")
    return channel


def list_channels(
    session: Session, scope: Scope, *, kind: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[ChannelOut], int]:
    """The organisation's channels with their acquisition figures (every role may read them:
    they are organisation-wide aggregates, not member data)."""
    query = select(Channel).where(Channel.org_id == scope.org_id)
    if kind is not None:
        query = query.where(Channel.kind == kind)
    total = count_rows(session, query)
    channels = session.scalars(query.order_by(Channel.id).limit(limit).offset(offset)).all()
    acquired = members_acquired(session, scope.org_id, [c.id for c in channels])
    return [channel_out(c, acquired.get(c.id, 0)) for c in channels], total


def channel_choices(session: Session, scope: Scope) -> list[tuple[int, str]]:
    """(id, name) of the organisation's channels, for a filter's choices."""
    query = select(Channel.id, Channel.name).where(Channel.org_id == scope.org_id).order_by(Channel.id)
    return [(int(i), n) for i, n in session.execute(query)]


def channel_names(session: Session, scope: Scope, channel_ids: Collection[int]) -> dict[int, str]:
    """Names of the organisation's channels ``channel_ids`` by id."""
    if not channel_ids:
        return {}
    query = select(Channel.id, Channel.name).where(Channel.org_id == scope.org_id, Channel.id.in_(list(channel_ids)))
    return {int(i): n for i, n in session.execute(query)}


def acquired_in_my_groups(session: Session, scope: Scope) -> dict[int, int]:
    """For staff who see some groups: distinct members each channel brought into those groups
    (by channel id). Empty for leads and analysts, whose figure is the organisation's."""
    if scope.whole_org:
        return {}
    joins = _joins_through(
        scope.org_id,
        events=[group_id_visible(Event.group_id, scope)],
        codes=[group_id_visible(LiveCodeJoin.group_id, scope)],
    )
    rows = session.execute(
        select(joins.c.channel_id, func.count(func.distinct(joins.c.member_id))).group_by(joins.c.channel_id)
    )
    return {int(c or 0): int(n) for c, n in rows}


def get_channel(session: Session, scope: Scope, channel_id: int) -> ChannelOut:
    channel = _require_channel(session, scope, channel_id)
    return channel_out(channel, members_acquired(session, scope.org_id, [channel.id]).get(channel.id, 0))


def _to_columns(values: dict[str, Any]) -> dict[str, Any]:
    return {
        _MONEY_FIELDS.get(field, field): yuan_to_fen(value) if field in _MONEY_FIELDS else value
        for field, value in values.items()
    }


def create_channel(
    session: Session, scope: Scope, data: ChannelCreate, *, request: HTTPConnection | None = None
) -> ChannelOut:
    """Create a channel (lead only: channels and their budgets are organisation-wide)."""
    require_lead(scope)
    if session.scalar(select(Channel.id).where(Channel.org_id == scope.org_id, Channel.code == data.code)):
        raise Conflict(Msg("err.acquisition.channel_exists", code=data.code), field="code")
    columns = _to_columns(data.model_dump())
    touches, fixed = columns.pop("touches"), columns.pop("fixed_cost_fen")
    now = utcnow()
    channel = Channel(org_id=scope.org_id, created_at=now, touches=0, fixed_cost_fen=0, **columns)
    session.add(channel)
    session.flush()
    if touches or fixed:
        add_spend(
            session,
            channel,
            day=local_day(session, scope.org_id, now),
            touches=touches,
            fixed_cost_fen=fixed,
            source="created",
            staff_id=scope.staff_id or None,
        )
    record_by(
        session,
        scope,
        action="channel.create",
        target_type="channel",
        target_id=channel.id,
        detail={"code": channel.code, "name": channel.name},
        request=request,
    )
    return channel_out(channel, 0)


def update_channel(
    session: Session,
    scope: Scope,
    channel_id: int,
    changes: dict[str, Any],
    *,
    request: HTTPConnection | None = None,
) -> ChannelOut:
    """Change a channel's name, kind or cost model (lead only)."""
    channel = _require_channel(session, scope, channel_id)
    require_lead(scope)
    columns = _to_columns(changes)
    # New totals are spend of today: the difference becomes a dated row (negative: a correction).
    touches = columns.get("touches", channel.touches) - channel.touches
    fixed = columns.get("fixed_cost_fen", channel.fixed_cost_fen) - channel.fixed_cost_fen
    apply_changes(session, scope, channel, columns, action="channel.update", target_type="channel", request=request)
    if touches or fixed:
        add_spend(
            session,
            channel,
            day=local_day(session, scope.org_id, utcnow()),
            touches=touches,
            fixed_cost_fen=fixed,
            source="changed",
            staff_id=scope.staff_id or None,
            move_totals=False,
        )
    return get_channel(session, scope, channel.id)


# --- spend ------------------------------------------------------------------------------


def org_zone(session: Session, org_id: int) -> ZoneInfo:
    zone = session.scalar(select(Organisation.time_zone).where(Organisation.id == org_id))
    if zone is None:
        raise NotFound(Msg("api.no_organisation", org=org_id))
    return ZoneInfo(zone)


def local_day(session: Session, org_id: int, instant: datetime) -> date:
    """The organisation's calendar day of ``instant``."""
    return instant.astimezone(org_zone(session, org_id)).date()


def add_spend(
    session: Session,
    channel: Channel,
    *,
    day: date,
    touches: int = 0,
    fixed_cost_fen: int = 0,
    note: str = "",
    source: str,
    staff_id: int | None = None,
    move_totals: bool = True,
) -> ChannelSpend:
    """Record spend on ``channel`` dated ``day`` and move the channel's totals with it (unless
    the caller has set them already)."""
    row = ChannelSpend(
        org_id=channel.org_id,
        channel_id=channel.id,
        day=day_key(day),
        touches=touches,
        fixed_cost_fen=fixed_cost_fen,
        note=note,
        source=source,
        created_by_id=staff_id,
        created_at=utcnow(),
    )
    session.add(row)
    if move_totals:
        channel.touches += touches
        channel.fixed_cost_fen += fixed_cost_fen
    session.flush()
    return row


def spend_out(row: ChannelSpend) -> SpendOut:
    d = row.day
    return SpendOut(
        id=row.id,
        channel_id=row.channel_id,
        day=date(d // 10000, d // 100 % 100, d % 100),
        touches=row.touches,
        fixed_cost=fen_to_yuan(row.fixed_cost_fen),
        note=row.note,
        source=row.source,
        created_at=row.created_at,
    )


def record_spend(
    session: Session, scope: Scope, channel_id: int, data: SpendCreate, *, request: HTTPConnection | None = None
) -> SpendOut:
    """Record touches and fixed costs of one day on a channel (lead only: budgets are
    organisation-wide)."""
    channel = _require_channel(session, scope, channel_id)
    require_lead(scope)
    row = add_spend(
        session,
        channel,
        day=data.day,
        touches=data.touches,
        fixed_cost_fen=yuan_to_fen(data.fixed_cost),
        note=data.note,
        source="staff",
        staff_id=scope.staff_id,
    )
    record_by(
        session,
        scope,
        action="channel.spend",
        target_type="channel",
        target_id=channel.id,
        detail={"day": data.day.isoformat(), "touches": data.touches, "fixed_cost": str(data.fixed_cost)},
        request=request,
    )
    return spend_out(row)


def list_spend(
    session: Session, scope: Scope, channel_id: int, *, limit: int = 50, offset: int = 0
) -> tuple[list[SpendOut], int]:
    """A channel's spend, latest day first (every role may read it, like the channel)."""
    channel = _require_channel(session, scope, channel_id)
    query = select(ChannelSpend).where(ChannelSpend.channel_id == channel.id)
    total = count_rows(session, query)
    rows = session.scalars(
        query.order_by(ChannelSpend.day.desc(), ChannelSpend.id.desc()).limit(limit).offset(offset)
    ).all()
    return [spend_out(r) for r in rows], total
