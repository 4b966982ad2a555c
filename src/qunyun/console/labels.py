"""How the console shows codes and numbers: names for channel kinds and platforms, money with
thousands separators, ratios as percentages, "—" where a ratio has no base."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from qunyun.locale import FALLBACK, Translator, catalogue

NO_VALUE = "—"


def code_name(t: Translator, prefix: str, code: str | None) -> str:
    """The catalogue's name for ``code`` (``display.kind.sms`` → 短信); the code itself when the
    catalogue has none (a kind or platform someone added)."""
    if not code:
        return NO_VALUE
    key = f"{prefix}.{code}"
    if key in catalogue(t.lang) or key in catalogue(FALLBACK):
        return t(key)
    return code


def kind_name(t: Translator, kind: str | None) -> str:
    return code_name(t, "display.kind", kind)


def platform_name(t: Translator, platform: str | None) -> str:
    return code_name(t, "display.platform", platform)


def money(value: str | int | float | Decimal | None) -> str:
    """Yuan with two decimals and thousands separators: "12345.5" → "12,345.50"."""
    if value is None or value == "":
        return NO_VALUE
    try:
        return f"{Decimal(str(value)):,.2f}"
    except InvalidOperation:
        return str(value)


def percent(value: float | None) -> str:
    """A ratio as a percentage with one decimal; "—" for none."""
    return NO_VALUE if value is None else f"{value * 100:.1f}%"
