"""Reading the event log within the caller's scope (``GET /api/v1/events``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from qunyun.auth.scope import Scope, group_id_visible, require_group, require_member
from qunyun.errors import InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import Event, Group, Member
from qunyun.models.event import KIND_BY_NAME


@dataclass(frozen=True)
class LoggedEvent:
    """A stored event with its group's and member's external ids."""

    event: Event
    group_external_id: str | None
    member_external_id: str | None


def _visible(scope: Scope) -> Select[Event, str, str]:
    query = (
        select(Event, Group.external_id, Member.external_id)
        .outerjoin(Group, Group.id == Event.group_id)
        .outerjoin(Member, Member.id == Event.member_id)
        .where(Event.org_id == scope.org_id)
    )
    if not scope.whole_org:
        query = query.where(group_id_visible(Event.group_id, scope))
    return query


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise InvalidInput(Msg("api.needs_time_zone", field=field), field=field)
    return value


def list_events(
    session: Session,
    scope: Scope,
    *,
    group_id: int | None = None,
    member_id: int | None = None,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> list[LoggedEvent]:
    """Events the caller may see, oldest first: of one group or member (404 outside the scope),
    of one kind (its interchange name), in ``[since, until)``, after the cursor ``after_id``."""
    query = _visible(scope)
    if group_id is not None:
        query = query.where(Event.group_id == require_group(session, scope, group_id).id)
    if member_id is not None:
        query = query.where(Event.member_id == require_member(session, scope, member_id).id)
    if kind is not None:
        if kind not in KIND_BY_NAME:
            raise InvalidInput(Msg("edge.kind_one_of", kinds=", ".join(sorted(KIND_BY_NAME))), field="kind")
        query = query.where(Event.kind == int(KIND_BY_NAME[kind]))
    if (start := _aware(since, "since")) is not None:
        query = query.where(Event.ts >= start)
    if (end := _aware(until, "until")) is not None:
        query = query.where(Event.ts < end)
    if after_id is not None:
        query = query.where(Event.id > after_id)
    rows = session.execute(query.order_by(Event.id).limit(limit)).all()
    return [LoggedEvent(event, g, m) for event, g, m in rows]


def get_event(session: Session, scope: Scope, event_id: int) -> LoggedEvent:
    """One event the caller may see; 404 for a missing one and for one outside the scope."""
    row = session.execute(_visible(scope).where(Event.id == event_id)).one_or_none()
    if row is None:
        raise NotFound(Msg("edge.no_event", id=event_id), field="event_id")
    event, group_ext, member_ext = row
    return LoggedEvent(event, group_ext, member_ext)
