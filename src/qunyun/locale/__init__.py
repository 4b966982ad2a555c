"""The console's message catalogue: Simplified Chinese (default) and English, one JSON file each."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

SUPPORTED = ("zh", "en")
FALLBACK = "zh"
_DIR = Path(__file__).parent


@lru_cache
def catalogue(lang: str) -> dict[str, str]:
    """The messages of ``lang`` (a supported language code)."""
    if lang not in SUPPORTED:
        raise ValueError(f"unsupported language {lang!r}")
    data: dict[str, str] = json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def pick_language(*candidates: str | None) -> str:
    """The first supported language among ``candidates`` (cookie, staff setting, default…)."""
    for candidate in candidates:
        if candidate in SUPPORTED:
            return candidate
    return FALLBACK


class Translator:
    """``t("hello", name="李雷")`` → the message in this language; a missing key falls back to
    Chinese, then to the key itself, so a gap shows up in the page rather than as an error."""

    def __init__(self, lang: str) -> None:
        self.lang = pick_language(lang)
        self._messages = catalogue(self.lang)

    def __call__(self, key: str, **values: Any) -> str:
        text = self._messages.get(key) or catalogue(FALLBACK).get(key) or key
        return text.format(**values) if values else text
