"""The acquisition tests reuse the API tests' world (two organisations, staff of every role,
groups g1-g3 with their owners) for the endpoints and their denials."""

from tests.api.conftest import api_app, client, password_hash, world

__all__ = ["api_app", "client", "password_hash", "world"]
