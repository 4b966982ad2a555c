"""The ingestion tests read the CLI's messages in English, the wording PRODUCT.md's interchange
format documents (``line 3: field 'ts': …``); test_import_messages.py checks the Chinese default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker


@pytest.fixture(autouse=True)
def english_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from qunyun.config import get_settings

    monkeypatch.setenv("QUNYUN_DEFAULT_LANGUAGE", "en")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def org_id(db: sessionmaker[Session]) -> int:
    """An organisation, committed (modules that need one in their own session define their own)."""
    from qunyun.team.service import create_organisation

    with db() as s:
        org = create_organisation(s, name="Acme", slug="acme")
        s.commit()
        return org.id
