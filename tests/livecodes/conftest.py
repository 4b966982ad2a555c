from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from qunyun.livecodes import routing


@pytest.fixture(autouse=True)
def _fresh_pool_cache() -> Iterator[None]:
    """Each test starts with an empty pool cache (ids come round again after a truncate)."""
    routing.forget()
    yield
    routing.forget()


@pytest.fixture
def lc_db(db: sessionmaker[Session]) -> sessionmaker[Session]:
    return db
