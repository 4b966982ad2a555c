"""The connection tests reuse the API tests' world: two organisations, staff of every role."""

from tests.api.conftest import api_app, client, password_hash, world

__all__ = ["api_app", "client", "password_hash", "world"]
