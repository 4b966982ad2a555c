"""Every console page answers hostile URLs (ids and numbers out of range, garbage in each query
parameter a page reads) with a page or a 4xx, never a 500, for a lead and for a group owner."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import World, console_login

HOSTILE_IDS = ["0", "-1", "abc", str(2**31), str(2**63), "9" * 40]
HOSTILE_VALUES = ["-1", "abc", "9" * 40, "9999-12-31", "0001-01-01"]
QUERY_NAMES = [
    "page", "before", "sort", "dir", "group", "member", "tag", "channel", "community", "owner",
    "status", "region", "q", "from", "to", "format", "per_group", "kind", "lang",
]  # fmt: skip


def _console_get_paths() -> list[str]:
    """The GET pages of the console's routers (an included router is walked into)."""
    from qunyun.api.console import router as console_router
    from qunyun.console.pages import router as pages_router

    paths: set[str] = set()

    def walk(items: Any) -> None:
        for route in items:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
            elif "GET" in (getattr(route, "methods", None) or ()):
                paths.add(route.path)

    walk(console_router.routes)
    walk(pages_router.routes)
    return sorted(paths)


def _fill(path: str, value: str, real: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: real.get(m.group(1), value), path)


@pytest.mark.parametrize("who", ["lead", "owner"])
def test_no_console_page_answers_hostile_input_with_a_500(client: TestClient, world: World, who: str) -> None:
    console_login(client, who)
    paths = _console_get_paths()
    assert "/groups/{group_id}" in paths and "/stats" in paths
    failures = []
    for path in paths:
        # Path parameters: each hostile id in turn; a real step key where a page needs one.
        for value in HOSTILE_IDS if "{" in path else [""]:
            url = _fill(path, value, {"key": "positioning"})
            if (status := client.get(url).status_code) >= 500:
                failures.append((url, status))
        if "{" not in path:
            for name in QUERY_NAMES:
                for value in HOSTILE_VALUES:
                    url = f"{path}?{name}={value}"
                    if (status := client.get(url).status_code) >= 500:
                        failures.append((url, status))
    assert not failures
