"""The API tests' organisations, staff and client, for moderation's API and console tests."""

from tests.api.conftest import api_app, client, password_hash, world  # noqa: F401
