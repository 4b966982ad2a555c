from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.connectors.telegram.fakebot import FakeBotApi, Served


@pytest.fixture
def fakebot() -> Iterator[FakeBotApi]:
    served = Served(FakeBotApi())
    try:
        yield served.fake
    finally:
        served.stop()
