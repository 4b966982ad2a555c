"""The ingestion tests read the CLI's messages in English, the wording PRODUCT.md's interchange
format documents (``line 3: field 'ts': …``); test_import_messages.py checks the Chinese default."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def english_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from qunyun.config import get_settings

    monkeypatch.setenv("QUNYUN_DEFAULT_LANGUAGE", "en")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()
