"""The playbook fields onboarding reads, and their checks when a playbook is saved (the
community form calls :func:`clean_field` for each of them)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.onboarding.texts import VARIABLES, check_name_card_format, check_template

# Saved with the welcome text, in the setup's welcome step and the full edit form.
FIELDS = (
    "welcome_text",
    "welcome_interval_seconds",
    "rules_url",
    "name_card_format",
    "name_card_delay_minutes",
    "name_card_text",
    "benefit_text",
)
# (minimum, maximum) of the whole-number fields.
BOUNDS = {
    # 0: no raid protection (each batch of joins greeted as soon as it arrives); at most an hour.
    "welcome_interval_seconds": (0, 3600),
    # 0: at once; at most a day.
    "name_card_delay_minutes": (0, 1440),
}
DEFAULTS = {"welcome_interval_seconds": 60, "name_card_delay_minutes": 10}
URL_LIMIT = 500
FORMAT_LIMIT = 200
TEXT_LIMIT = 4000


def clean_field(field: str, raw: Any) -> Any:
    """The value to store for ``field`` from what a form submitted; ``InvalidInput`` naming the
    field (and, for a text, the unknown variable) when it cannot be stored."""
    value = str(raw if raw is not None else "").strip()
    if field in BOUNDS:
        low, high = BOUNDS[field]
        if value == "":
            return DEFAULTS[field]
        try:
            number = int(value)
        except ValueError:
            number = None
        if number is None or not low <= number <= high:
            raise InvalidInput(
                Msg("err.onboarding.whole_number", label=Msg(f"f_{field}"), min=low, max=high),
                field=field,
                min=low,
                max=high,
            )
        return number
    limit = URL_LIMIT if field == "rules_url" else FORMAT_LIMIT if field == "name_card_format" else TEXT_LIMIT
    if len(value) > limit:
        raise InvalidInput(
            Msg("err.onboarding.too_long", label=Msg(f"f_{field}"), limit=limit), field=field, limit=limit
        )
    if field in VARIABLES:
        check_template(field, value)
    elif field == "rules_url" and value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InvalidInput(Msg("err.onboarding.rules_url"), field=field)
    elif field == "name_card_format":
        check_name_card_format(value)
    return value
