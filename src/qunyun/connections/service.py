"""Connections: an organisation's accounts on platforms, added, tested, disabled and enabled by a
lead (the API, the console and the CLI call these), the default connection of a platform, and
the re-encryption of every secret after a key change.

Secrets are validated, encrypted and stored; nothing here returns, logs or audits their values.

Checking a connection calls its platform, which may be slow or hang. It never happens inside a
transaction: the operations that check (add, update, test, enable) validate and read first, end
the caller's transaction (which must not hold writes of its own yet), probe the platform with
no transaction open, then lock the row and write everything in a new transaction — so a slow
platform holds no lock, and a check that never returns leaves nothing half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import record
from qunyun.auth.scope import Scope, require_lead
from qunyun.connections import secrets as secret_box
from qunyun.connections.platforms import platform_setup, validate_setup
from qunyun.connectors import registry
from qunyun.connectors.base import BUILTIN_PLATFORMS, get_profile
from qunyun.connectors.registry import ConnectionConfig
from qunyun.db.unique import insert_or_get, try_insert
from qunyun.errors import Conflict, InvalidInput, NotFound, QunyunError
from qunyun.locale import Msg
from qunyun.models import Connection, ConnectionStatus
from qunyun.timeutil import utcnow

log = logging.getLogger(__name__)

MAX_NAME = 100
MAX_ERROR = 1000
NO_CONNECTOR = "no connector for this platform yet"
# Names of default connections: the built-in platforms', and those of events imported from a file
# (``qunyun events import``) or posted to the API without a connection.
RESERVED_NAMES = frozenset({*BUILTIN_PLATFORMS, "import", "api"})


def get_connection(session: Session, org_id: int, connection_id: int) -> Connection:
    """Connection ``connection_id`` of ``org_id``; ``NotFound`` for a missing one or another
    organisation's."""
    row = session.get(Connection, connection_id)
    if row is None or row.org_id != org_id:
        raise NotFound(Msg("err.connection.not_found", id=connection_id), field="connection_id")
    return row


def require_connection(session: Session, scope: Scope, connection_id: int) -> Connection:
    """Connection ``connection_id`` for a lead of its organisation: ``NotFound`` when it is missing
    or another organisation's, ``Forbidden`` for other roles."""
    require_lead(scope)
    return get_connection(session, scope.org_id, connection_id)


def default_connection(session: Session, org_id: int, platform: str) -> Connection:
    """The organisation's default connection for ``platform``: the one named after the platform,
    created on first use (events imported without a connection, and the simulator, use it).
    Safe under concurrent first use."""
    if platform in BUILTIN_PLATFORMS:
        get_profile(platform)
    query = select(Connection).where(
        Connection.org_id == org_id, Connection.name == platform, Connection.platform == platform
    )
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
    return insert_or_get(session, row, lambda: session.scalar(query))[0]


def list_connections(session: Session, scope: Scope) -> list[Connection]:
    """The organisation's connections, by platform and name (leads only)."""
    require_lead(scope)
    query = select(Connection).where(Connection.org_id == scope.org_id).order_by(Connection.platform, Connection.name)
    return list(session.scalars(query))


def _clean_name(name: str, platform: str) -> str:
    text = (name or "").strip()
    if not text:
        raise InvalidInput(Msg("err.connection.required", field="name"), field="name")
    if len(text) > MAX_NAME:
        raise InvalidInput(Msg("err.connection.too_long", field="name", limit=MAX_NAME), field="name")
    # A platform's name is its default connection's: another platform's connection may not take it.
    if text in RESERVED_NAMES and text != platform:
        raise InvalidInput(Msg("err.connection.name_reserved", name=text), field="name")
    return text


def _audit(
    session: Session,
    scope: Scope,
    action: str,
    row: Connection,
    detail: dict[str, Any] | None = None,
    request: HTTPConnection | None = None,
) -> None:
    record(
        session,
        org_id=row.org_id,
        staff_id=scope.staff_id or None,
        action=action,
        target_type="connection",
        target_id=row.id,
        detail={"platform": row.platform, "name": row.name, **(detail or {})},
        request=request,
    )


def add_connection(
    session: Session,
    scope: Scope,
    platform: str,
    name: str,
    settings: Mapping[str, Any],
    secrets: Mapping[str, Any],
    *,
    request: HTTPConnection | None = None,
) -> Connection:
    """Add a connection (leads only): settings and secrets checked against the platform's setup
    fields (``InvalidInput`` naming the field), the name unique in the organisation (``Conflict``),
    secrets encrypted. It is stored even when the platform cannot be reached; its status and
    ``last_error`` say why."""
    require_lead(scope)
    platform_setup(platform)  # InvalidInput (field "platform") for an unknown platform
    clean_name = _clean_name(name, platform)
    clean_settings, clean_secrets = validate_setup(platform, settings, secrets)
    taken = select(Connection.id).where(Connection.org_id == scope.org_id, Connection.name == clean_name)
    if session.scalar(taken) is not None:
        raise Conflict(Msg("err.connection.name_taken", name=clean_name), field="name")
    # Probed before anything is written (the connection has no id yet: 0).
    config = ConnectionConfig(0, scope.org_id, platform, clean_name, clean_settings, clean_secrets)
    with outside_transaction(session):
        error = probe(config)
    now = utcnow()
    row = Connection(
        org_id=scope.org_id,
        platform=platform,
        name=clean_name,
        settings=clean_settings,
        secrets=secret_box.encrypt(clean_secrets),
        status=ConnectionStatus.ACTIVE.value,
        created_at=now,
        updated_at=now,
    )
    if not try_insert(session, row):  # the same name added meanwhile
        raise Conflict(Msg("err.connection.name_taken", name=clean_name), field="name") from None
    _audit(
        session,
        scope,
        "connection.add",
        row,
        {"settings": sorted(clean_settings), "secrets": sorted(clean_secrets)},
        request,
    )
    _record_check(row, config, error)
    session.flush()
    _log_check(row, error)
    return row


def update_connection(
    session: Session,
    scope: Scope,
    connection_id: int,
    *,
    name: str | None = None,
    settings: Mapping[str, Any] | None = None,
    secrets: Mapping[str, Any] | None = None,
    request: HTTPConnection | None = None,
) -> Connection:
    """Change a connection's name, settings (replaced as a whole) or secrets (each one given
    replaces the stored one; the others are kept); the connector built for it is dropped and the
    connection tested again."""
    row = require_connection(session, scope, connection_id)
    version = row.updated_at
    changes: dict[str, Any] = {}
    if name is not None:
        clean_name = _clean_name(name, row.platform)
        if clean_name != row.name:
            _name_free(session, row, clean_name)
            changes["name"] = clean_name
    stored = secret_box.decrypt(row.secrets)
    new_secrets: dict[str, Any] = {}
    if settings is not None or secrets is not None:
        clean_settings, new_secrets = validate_setup(
            row.platform,
            settings if settings is not None else dict(row.settings or {}),
            secrets or {},
            stored_secrets=stored,
        )
        if clean_settings != dict(row.settings or {}):
            changes["settings"] = clean_settings
    if not changes and not new_secrets:
        return row
    config = ConnectionConfig(
        row.id,
        row.org_id,
        row.platform,
        changes.get("name", row.name),
        changes.get("settings", dict(row.settings or {})),
        {**stored, **new_secrets},
    )
    error: str | None = None
    checking = row.status != ConnectionStatus.DISABLED
    if checking:
        with outside_transaction(session):
            error = probe(config)
    row = _locked(session, scope.org_id, connection_id)
    if row.updated_at != version:  # changed by someone else while the platform was asked
        raise Conflict(Msg("err.connection.changed_meanwhile", name=row.name), field="connection_id")
    if "name" in changes:
        _name_free(session, row, changes["name"])
        row.name = changes["name"]
    if "settings" in changes:
        row.settings = changes["settings"]
    if new_secrets:
        row.secrets = secret_box.encrypt({**stored, **new_secrets})
    changed = [*(k for k in ("name", "settings") if k in changes), *(f"secrets.{k}" for k in sorted(new_secrets))]
    row.updated_at = utcnow()
    session.flush()
    registry.forget(row.id)
    _audit(session, scope, "connection.update", row, {"fields": changed}, request)
    if checking:
        _record_check(row, config, error)
        session.flush()
        _log_check(row, error)
    return row


def _name_free(session: Session, row: Connection, name: str) -> None:
    taken = select(Connection.id).where(
        Connection.org_id == row.org_id, Connection.name == name, Connection.id != row.id
    )
    if session.scalar(taken) is not None:
        raise Conflict(Msg("err.connection.name_taken", name=name), field="name")


def _reason(exc: BaseException, hidden: Mapping[str, Any]) -> str:
    """What a failed check says, in English, with any secret value it echoes masked."""
    text = exc.localized("en") if isinstance(exc, QunyunError) else (str(exc).strip() or type(exc).__name__)
    for value in hidden.values():
        if isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "***")
    return text[:MAX_ERROR]


@contextmanager
def outside_transaction(session: Session) -> Iterator[None]:
    """Run the block (a platform call) with no transaction open: the caller's transaction, which
    must hold no writes yet beyond its own bookkeeping (a request's token use), is committed
    first, and a new one is begun after the block — on SQLite with the write lock taken at
    once, as a writer's unit of work does, so reading and then writing cannot fail on a stale
    snapshot. Whoever writes after it locks and reads again what the call depended on."""
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("outside_transaction: the caller has unflushed changes")
    session.commit()
    try:
        yield
    finally:
        if session.get_bind().dialect.name == "sqlite":
            session.connection(execution_options={"sqlite_begin": "IMMEDIATE"})


def probe(config: ConnectionConfig) -> str | None:
    """Build a connector from ``config`` and run its platform's check (calls the platform: run it
    outside any transaction). Returns why it failed, in English with any secret masked, or None.
    A connector bound in this process (a simulation's) is not built again."""
    try:
        factory = registry.factory_for(config.platform)
        if factory is None:
            return NO_CONNECTOR
        if registry.bound_connector(config.id) is None:
            factory(config)
        check = registry.check_for(config.platform)
        if check is not None:
            check(config)
    except Exception as exc:  # any failure of the platform or the factory is the status's reason
        return _reason(exc, config.secrets)
    return None


def _locked(session: Session, org_id: int, connection_id: int) -> Connection:
    """The connection as stored now, locked until the transaction ends."""
    row = session.scalar(
        select(Connection)
        .where(Connection.id == connection_id, Connection.org_id == org_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        raise NotFound(Msg("err.connection.not_found", id=connection_id), field="connection_id")
    return row


def _record_check(row: Connection, config: ConnectionConfig, error: str | None) -> None:
    """Record a check's outcome on ``row`` if it was made with what the row holds now (else the
    change made meanwhile was checked on its own); a connection not disabled takes its status
    from its last error."""
    current = (row.platform, dict(row.settings or {}), secret_box.decrypt(row.secrets))
    if current == (config.platform, dict(config.settings), dict(config.secrets)):
        row.tested_at = utcnow()
        row.last_error = error
    if row.status != ConnectionStatus.DISABLED:
        row.status = (ConnectionStatus.ERROR if row.last_error else ConnectionStatus.ACTIVE).value


def _log_check(row: Connection, error: str | None) -> None:
    log.info("connection %s (%s) checked: %s", row.id, row.platform, "error" if error else "ok")


def _check_outside(
    session: Session, scope: Scope, connection_id: int
) -> tuple[Connection, ConnectionConfig, str | None]:
    """Probe the connection as stored with no transaction open, then lock it again."""
    row = require_connection(session, scope, connection_id)
    config = registry.config_of(row)
    with outside_transaction(session):
        error = probe(config)
    return _locked(session, scope.org_id, connection_id), config, error


def test_connection(
    session: Session, scope: Scope, connection_id: int, *, request: HTTPConnection | None = None
) -> Connection:
    """Try the connection again (leads only): its status becomes ``active`` or ``error`` with the
    reason in ``last_error`` (a disabled one stays disabled, with the outcome recorded)."""
    row, config, error = _check_outside(session, scope, connection_id)
    _record_check(row, config, error)
    session.flush()
    _log_check(row, error)
    return row


def disable_connection(
    session: Session, scope: Scope, connection_id: int, *, request: HTTPConnection | None = None
) -> Connection:
    """Turn a connection off (leads only): nothing is sent through it and its webhooks are refused."""
    row = require_connection(session, scope, connection_id)
    if row.status != ConnectionStatus.DISABLED:
        row.status = ConnectionStatus.DISABLED.value
        row.updated_at = utcnow()
        session.flush()
        registry.forget(row.id)
        _audit(session, scope, "connection.disable", row, request=request)
    return row


def enable_connection(
    session: Session, scope: Scope, connection_id: int, *, request: HTTPConnection | None = None
) -> Connection:
    """Turn a disabled connection back on (leads only) and test it."""
    row = require_connection(session, scope, connection_id)
    if row.status != ConnectionStatus.DISABLED:
        return row
    row, config, error = _check_outside(session, scope, connection_id)
    if row.status == ConnectionStatus.DISABLED:  # not enabled by someone else meanwhile
        row.status = ConnectionStatus.ACTIVE.value
        row.updated_at = utcnow()
        registry.forget(row.id)
        _audit(session, scope, "connection.enable", row, request=request)
    _record_check(row, config, error)
    session.flush()
    _log_check(row, error)
    return row


def rotate_key(session: Session) -> int:
    """Re-encrypt every connection's secrets with the current key (after ``QUNYUN_SECRET_KEY``
    changed and the old one went into ``QUNYUN_PREVIOUS_SECRET_KEYS``); returns how many were
    re-encrypted. ``SecretsUnreadable`` when some no configured key opens (then nothing changes)."""
    rows = session.scalars(select(Connection).where(Connection.secrets != "").order_by(Connection.id)).all()
    rotated: dict[int, list[int]] = {}
    for row in rows:
        row.secrets = secret_box.rotate(row.secrets)
        rotated.setdefault(row.org_id, []).append(row.id)
    session.flush()
    for org_id, ids in sorted(rotated.items()):
        record(
            session,
            org_id=org_id,
            staff_id=None,
            action="connection.rotate_key",
            target_type="connection",
            detail={"connections": ids},
        )
    return len(rows)
