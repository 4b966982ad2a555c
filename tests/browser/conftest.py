"""A real browser (Debian's Chromium driven by Playwright) against a real server on loopback,
serving the demo community loaded by the same code as `qunyun demo`."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tests.conftest import _truncate

CHROMIUM = os.environ.get("QUNYUN_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
DEMO_PASSWORD = "demo-browser-test-password"


# The demo as loaded the first time in this process: what load_demo returned and every table's
# rows. Simulating it cost minutes per module; the modules after the first get the same rows back.
_loaded: tuple[Any, dict[str, list[dict[str, Any]]]] | None = None


def _restore(rows: dict[str, list[dict[str, Any]]]) -> None:
    """Put ``rows`` back into emptied tables with their ids; PostgreSQL's sequences go on after them."""
    from sqlalchemy import func, select, text

    from qunyun.db.base import Base
    from qunyun.db.session import get_engine

    engine = get_engine()
    _truncate(engine)
    with engine.begin() as conn:
        for table in Base.metadata.sorted_tables:
            if rows[table.name]:
                conn.execute(table.insert(), rows[table.name])
                if engine.dialect.name == "postgresql" and "id" in table.c:
                    sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table.name})
                    if sequence is not None:
                        top = conn.scalar(select(func.max(table.c.id)))
                        conn.execute(text("SELECT setval(:s, :v)"), {"s": sequence, "v": top})


@pytest.fixture(scope="module")
def demo(database_url: str) -> Any:
    """The demo community, small: loaded for each module (whose tests may add to it), simulated
    once per process and copied back for the modules after the first."""
    global _loaded
    from sqlalchemy import select

    from qunyun.db.base import Base
    from qunyun.db.session import get_engine
    from qunyun.simulate.demo import load_demo

    if _loaded is not None:
        _restore(_loaded[1])
        return _loaded[0]
    _truncate(get_engine())
    result = load_demo(seed=4, days=28, members=600, password=DEMO_PASSWORD)
    with get_engine().connect() as conn:
        rows = {t.name: [dict(r._mapping) for r in conn.execute(select(t))] for t in Base.metadata.sorted_tables}
    _loaded = (result, rows)
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(demo: Any) -> Iterator[str]:
    from qunyun.api.app import create_app

    port = _free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console server did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium (apt-get install chromium)")
    with sync_playwright() as p:
        instance = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield instance
        instance.close()


@pytest.fixture
def context(browser: Any, server: str) -> Iterator[Any]:
    ctx = browser.new_context(base_url=server, locale="zh-CN", accept_downloads=True)
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def login(page: Any, username: str, password: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
