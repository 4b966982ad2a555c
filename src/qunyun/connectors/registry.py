"""Connectors per connection.

A connector is built for one connection (an organisation's corp app, bot or account) from its
settings and decrypted secrets, by the factory its platform registers, and reused in this process
until the connection changes. Every process (server, worker, simulation) builds its own.

A process that holds a live connector of its own (a simulation's in-memory platform, a test's
fake) binds it to its connection for a block with :func:`bind`; ``connector_for`` then returns it.

Built-in platforms provide ``qunyun.connectors.<platform>.factory.build(config)``; a platform
without one has only its declared profile, and what it is asked to do becomes a staff task.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from qunyun.connections.secrets import decrypt
from qunyun.connectors.base import (
    BUILTIN_PLATFORMS,
    Connector,
    ConnectorUnavailable,
    PlatformProfile,
    get_profile,
)
from qunyun.errors import InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import Connection, ConnectionStatus


@dataclass(frozen=True)
class ConnectionConfig:
    """What a factory builds a connector from (secrets decrypted; never log them)."""

    id: int
    org_id: int
    platform: str
    name: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, Any]

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"ConnectionConfig(id={self.id}, platform={self.platform!r}, name={self.name!r})"


Factory = Callable[[ConnectionConfig], Connector]
Check = Callable[[ConnectionConfig], None]
ConnectorT = TypeVar("ConnectorT", bound=Connector)

_lock = threading.Lock()
_factories: dict[str, Factory] = {}
_checks: dict[str, Check] = {}
_bound: dict[int, Connector] = {}
_built: dict[int, tuple[datetime, Connector]] = {}


def register_factory(platform: str, factory: Factory, check: Check | None = None) -> None:
    """Let connectors of ``platform`` be built by ``factory`` (and tested by ``check``)."""
    with _lock:
        _factories[platform] = factory
        if check is not None:
            _checks[platform] = check
        else:
            _checks.pop(platform, None)


def _load_builtin(platform: str) -> None:
    if platform in _factories or platform not in BUILTIN_PLATFORMS:
        return
    try:
        module = importlib.import_module(f"qunyun.connectors.{platform}.factory")
    except ModuleNotFoundError as exc:
        if exc.name != f"qunyun.connectors.{platform}.factory":
            raise  # the factory exists but something it imports does not: a bug, not "no connector"
        return
    register_factory(platform, module.build, getattr(module, "check", None))


def factory_for(platform: str) -> Factory | None:
    """The factory of ``platform``'s connectors; None while the platform has no connector."""
    _load_builtin(platform)
    return _factories.get(platform)


def check_for(platform: str) -> Check | None:
    """The platform's connection check (``check(config)`` in its factory module, raising with the
    reason when the platform cannot be reached or refuses the credentials); None when it has none."""
    _load_builtin(platform)
    return _checks.get(platform)


@contextmanager
def bind(connection_id: int, connector: ConnectorT) -> Iterator[ConnectorT]:
    """Use ``connector`` for connection ``connection_id`` in this process during the block."""
    with _lock:
        previous = _bound.get(connection_id)
        _bound[connection_id] = connector
    try:
        yield connector
    finally:
        with _lock:
            if previous is None:
                _bound.pop(connection_id, None)
            else:
                _bound[connection_id] = previous


def bound_connector(connection_id: int) -> Connector | None:
    return _bound.get(connection_id)


def config_of(row: Connection) -> ConnectionConfig:
    return ConnectionConfig(row.id, row.org_id, row.platform, row.name, dict(row.settings or {}), decrypt(row.secrets))


def connector_for(session: Session, connection_id: int) -> Connector:
    """The connector of connection ``connection_id``: bound, built earlier (while the connection
    is unchanged), or built now. ``ConnectorUnavailable`` when the connection is disabled or its
    platform has no connector."""
    bound = _bound.get(connection_id)
    if bound is not None:
        return bound
    row = session.get(Connection, connection_id)
    if row is None:
        raise NotFound(Msg("err.connection.not_found", id=connection_id), field="connection_id")
    return connector_of(row)


def connector_of(row: Connection, *, even_disabled: bool = False) -> Connector:
    """:func:`connector_for` for a loaded connection row (``even_disabled``: build it for a
    disabled connection too, to test it before enabling it)."""
    bound = _bound.get(row.id)
    if bound is not None:
        return bound
    if row.status == ConnectionStatus.DISABLED and not even_disabled:
        raise ConnectorUnavailable(Msg("err.connection.disabled", name=row.name), field="connection_id")
    cached = _cached(row)
    if cached is not None:
        return cached
    factory = factory_for(row.platform)
    if factory is None:
        title = _title(row.platform)
        raise ConnectorUnavailable(Msg("err.connection.no_connector", platform=title), field="connection_id")
    connector = factory(config_of(row))
    with _lock:
        _built[row.id] = (row.updated_at, connector)
    return connector


def _title(platform: str) -> str:
    try:
        return get_profile(platform).title
    except InvalidInput:  # a platform of imported data ("import")
        return platform


def profile_of(row: Connection) -> PlatformProfile:
    """What the connection's platform can do: its live connector's profile where there is one,
    else the platform's declared profile."""
    connector = _bound.get(row.id) or _cached(row)
    return connector.profile if connector is not None else get_profile(row.platform)


def _cached(row: Connection) -> Connector | None:
    """The connector built for ``row`` while it was as it is now (same platform, unchanged since);
    an entry left by a changed connection, or by a deleted one whose id came round again, is not."""
    cached = _built.get(row.id)
    if cached is None or cached[0] != row.updated_at or cached[1].platform != row.platform:
        return None
    return cached[1]


def forget(connection_id: int) -> None:
    """Drop the connector built for ``connection_id`` (its settings or secrets changed)."""
    with _lock:
        _built.pop(connection_id, None)
