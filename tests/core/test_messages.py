"""Every error a user can see carries a Msg (rendered in the reader's language), and every Msg key
the code uses exists in both catalogues. Static scans of src/qunyun: a new English-only error or
a misspelt key fails here, not in front of a user."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from qunyun.locale import catalogue

SRC = Path(__file__).resolve().parents[2] / "src" / "qunyun"

# Files allowed to raise errors with plain text (none: every user-visible error is a Msg).
NOT_YET_CONVERTED: set[str] = set()


def _files() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        yield rel, ast.parse(path.read_text(encoding="utf-8"), filename=rel)


def _allowed(rel: str) -> bool:
    return rel in NOT_YET_CONVERTED or any(
        pattern.endswith("/*") and rel.startswith(pattern[:-1]) for pattern in NOT_YET_CONVERTED
    )


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _error_classes(modules: list[tuple[str, ast.Module]]) -> set[str]:
    """QunyunError and the names of its subclasses anywhere in src (to a fixed point)."""
    classes = {"QunyunError"}
    defined = [
        (node.name, {_base_name(b) for b in node.bases})
        for _, module in modules
        for node in ast.walk(module)
        if isinstance(node, ast.ClassDef)
    ]
    while True:
        more = {name for name, bases in defined if bases & classes} - classes
        if not more:
            return classes
        classes |= more


def _is_text(node: ast.expr) -> bool:
    """A message built as text: a literal, an f-string, a concatenation or a .format() call."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    if isinstance(node, ast.JoinedStr):
        return True
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) or _is_text(node.orelse)
    if isinstance(node, ast.Call):
        func = node.func
        return (isinstance(func, ast.Attribute) and func.attr in ("format", "join")) or (
            isinstance(func, ast.Name) and func.id == "str"
        )
    return False


def test_every_raised_error_carries_a_msg() -> None:
    modules = list(_files())
    errors = _error_classes(modules)
    assert {"InvalidInput", "NotFound", "Conflict", "Forbidden", "ConnectorUnavailable"} <= errors
    found = []
    for rel, module in modules:
        if _allowed(rel):
            continue
        for node in ast.walk(module):
            call = node.exc if isinstance(node, ast.Raise) else None
            if not isinstance(call, ast.Call) or _base_name(call.func) not in errors:
                continue
            message = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "message"), None)
            # No message at all: the class builds its own (e.g. LoginsBusy, TooManyAttempts).
            if message is not None and _is_text(message):
                found.append(f"{rel}:{node.lineno}")
    assert not found, f"raise with a text message instead of Msg(...): {found}"


def _msg_keys() -> Iterator[tuple[str, str]]:
    for rel, module in _files():
        for node in ast.walk(module):
            if (
                isinstance(node, ast.Call)
                and _base_name(node.func) == "Msg"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                yield f"{rel}:{node.lineno}", node.args[0].value


def test_every_msg_key_in_the_code_is_in_both_catalogues() -> None:
    keys = list(_msg_keys())
    assert any(key.startswith("err.") for _, key in keys)
    for lang in ("zh", "en"):
        messages = catalogue(lang)
        missing = [f"{where} {key}" for where, key in keys if key not in messages]
        assert not missing, f"keys missing from the {lang} catalogue: {missing}"
