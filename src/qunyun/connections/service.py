"""Connections: lookup and the default connection of a platform.

(Adding, testing, disabling and key rotation are the console's, the API's and the CLI's; they
live here too.)
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from qunyun.connectors.base import get_profile
from qunyun.errors import NotFound
from qunyun.locale import Msg
from qunyun.models import Connection, ConnectionStatus
from qunyun.timeutil import utcnow


def get_connection(session: Session, org_id: int, connection_id: int) -> Connection:
    """Connection ``connection_id`` of ``org_id``; ``NotFound`` for a missing one or another
    organisation's."""
    row = session.get(Connection, connection_id)
    if row is None or row.org_id != org_id:
        raise NotFound(Msg("err.connection.not_found", id=connection_id), field="connection_id")
    return row


def default_connection(session: Session, org_id: int, platform: str) -> Connection:
    """The organisation's default connection for ``platform``: the one named after the platform,
    created on first use (events imported without a connection, and the simulator, use it).
    Safe under concurrent first use."""
    get_profile(platform)  # InvalidInput for an unknown platform
    query = select(Connection).where(Connection.org_id == org_id, Connection.name == platform)
    row = session.scalar(query)
    if row is not None:
        return row
    now = utcnow()
    row = Connection(
        org_id=org_id,
        platform=platform,
        name=platform,
        settings={},
        secrets="",
        status=ConnectionStatus.ACTIVE.value,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        existing = session.scalar(query)
        if existing is None:
            raise
        return existing
    return row
