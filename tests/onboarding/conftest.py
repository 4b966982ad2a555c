"""The API tests' organisations, staff and console client, for the console pages of onboarding."""

from tests.api.conftest import api_app, client, password_hash, world  # noqa: F401
