"""A Synapse homeserver for the whole session (see ``homeserver.py``); each test registers its
own accounts, so tests do not see each other's rooms."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.api.conftest import api_app, password_hash, world
from tests.connectors.matrix.homeserver import Homeserver, User

__all__ = ["api_app", "password_hash", "world"]


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Homeserver]:
    hs = Homeserver(tmp_path_factory.mktemp("synapse"))
    hs.start()
    yield hs
    hs.stop()


@pytest.fixture
def new_user(synapse: Homeserver) -> object:
    def make(prefix: str = "u") -> User:
        return synapse.register(f"{prefix}{secrets.token_hex(4)}")

    return make
