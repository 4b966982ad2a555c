"""User-facing messages: Simplified Chinese (default) and English.

Each language is ``<lang>.json`` plus any ``<lang>.<part>.json`` (``zh.errors.json``, …), merged
into one catalogue; a key may be defined in one file only. ``Msg`` is a message not yet rendered:
errors carry one, and whoever shows it (a console page, an API answer, the CLI) renders it in the
reader's language.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SUPPORTED = ("zh", "en")
FALLBACK = "zh"
_DIR = Path(__file__).parent


def catalogue_files(lang: str) -> list[Path]:
    """The files that make up the catalogue of ``lang``, the main one first."""
    return [_DIR / f"{lang}.json", *sorted(_DIR.glob(f"{lang}.*.json"))]


@lru_cache
def catalogue(lang: str) -> dict[str, str]:
    """The messages of ``lang`` (a supported language code)."""
    if lang not in SUPPORTED:
        raise ValueError(f"unsupported language {lang!r}")
    merged: dict[str, str] = {}
    for path in catalogue_files(lang):
        data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        twice = merged.keys() & data.keys()
        if twice:
            raise ValueError(f"{path.name}: keys defined in another catalogue file too: {sorted(twice)}")
        merged.update(data)
    return merged


def pick_language(*candidates: str | None) -> str:
    """The first supported language among ``candidates`` (cookie, staff setting, default…)."""
    for candidate in candidates:
        if candidate in SUPPORTED:
            return candidate
    return FALLBACK


class Msg:
    """A message by key with its values, rendered later in the reader's language.

    Values may be Msgs themselves (a field's label, a unit); they are rendered in the same
    language. ``str(msg)`` is the English text (API default, logs, tests).
    """

    __slots__ = ("key", "values")

    def __init__(self, key: str, **values: Any) -> None:
        self.key = key
        self.values = values

    def render(self, lang: str) -> str:
        return Translator(lang)(self.key, **self.values)

    def __str__(self) -> str:
        return self.render("en")

    def __repr__(self) -> str:
        return f"Msg({self.key!r}, **{self.values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Msg) and (self.key, self.values) == (other.key, other.values)

    def __hash__(self) -> int:
        return hash(self.key)


class Translator:
    """``t("hello", name="李雷")`` → the message in this language; a missing key falls back to
    Chinese, then to the key itself, so a gap shows up in the page rather than as an error."""

    def __init__(self, lang: str) -> None:
        self.lang = pick_language(lang)
        self._messages = catalogue(self.lang)

    def __call__(self, key: str, **values: Any) -> str:
        text = self._messages.get(key) or catalogue(FALLBACK).get(key) or key
        if not values:
            return text
        rendered = {k: v.render(self.lang) if isinstance(v, Msg) else v for k, v in values.items()}
        return text.format(**rendered)
