"""The ways in stay thin: console pages and REST endpoints parse, call a domain service and render
or return; the queries live in the services, which narrow every read by the caller's scope
(issue 9, point 8). A page or an endpoint that builds a query or runs one on a session is a second
implementation of a service, and the place where scope is forgotten."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "qunyun"
# SQLAlchemy's query constructs: building a statement is a service's job.
QUERY_CONSTRUCTS = {"select", "func", "update", "insert", "delete", "text"}
# Running a statement on a session.
SESSION_CALLS = {"execute", "scalars", "scalar"}
# Files not converted yet, each with why; remove an entry once its file passes.
ALLOWED: dict[str, str] = {}


def thin_modules() -> list[Path]:
    """Every console page and every REST endpoint module of the package."""
    pages = sorted((SRC / "console" / "pages").glob("*.py"))
    endpoints = sorted(SRC.rglob("endpoints.py"))
    return pages + endpoints


def violations(path: Path) -> list[str]:
    """Query constructs imported, and statements run on a session, in ``path``: one line each."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            found += [
                f"line {node.lineno}: imports {alias.name} from {node.module}"
                for alias in node.names
                if alias.name in QUERY_CONSTRUCTS or alias.name == "*"
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"line {node.lineno}: imports {alias.name}"
                for alias in node.names
                if alias.name.split(".")[0] == "sqlalchemy"
            ]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SESSION_CALLS:
            found.append(f"line {node.lineno}: calls .{node.func.attr}(")
    return found


def test_pages_and_endpoints_hold_no_queries() -> None:
    offenders = {}
    for path in thin_modules():
        name = path.relative_to(SRC).as_posix()
        if name in ALLOWED:
            continue
        if found := violations(path):
            offenders[name] = found
    assert not offenders, (
        f"console pages and endpoints call domain services instead of querying (issue 9, point 8): {offenders}"
    )


def test_the_allow_list_names_existing_files() -> None:
    assert all((SRC / name).is_file() for name in ALLOWED), [n for n in ALLOWED if not (SRC / n).is_file()]


def test_the_check_sees_a_query(tmp_path: Path) -> None:
    # The checker itself: each kind of offence is found, and a thin page passes.
    page = tmp_path / "page.py"
    page.write_text(
        "from sqlalchemy import func, select\n"
        "import sqlalchemy.orm\n"
        "def handler(page):\n"
        "    page.db.execute(select(1))\n"
        "    return page.db.scalar(select(func.count()))\n",
        encoding="utf-8",
    )
    assert violations(page) == [
        "line 1: imports func from sqlalchemy",
        "line 1: imports select from sqlalchemy",
        "line 2: imports sqlalchemy.orm",
        "line 4: calls .execute(",
        "line 5: calls .scalar(",
    ]
    page.write_text(
        "from qunyun.groups.service import list_groups\n"
        "def handler(page):\n"
        "    return list_groups(page.db, page.scope)\n",
        encoding="utf-8",
    )
    assert violations(page) == []
