"""Live code tests: the API tests' world (two organisations, staff of every role, groups g1-g3
of "acme", gb1 of "rival") for the HTTP tests, and the helpers' own organisations for the rest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qunyun.livecodes import routing
from tests.api.conftest import World, anon, api_app, client, password_hash, world

__all__ = ["World", "anon", "api_app", "client", "password_hash", "world"]


@pytest.fixture(autouse=True)
def _fresh_pool_cache() -> Iterator[None]:
    """Each test starts with an empty pool cache (ids come round again after a truncate)."""
    routing.forget()
    yield
    routing.forget()
