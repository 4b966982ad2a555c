"""The texts onboarding sends: templates with variables, checked when a playbook is saved, and
the name-card format a member's name is compared with.

A template is literal text, ``{{`` / ``}}`` for a brace, and ``{variable}`` placeholders from a
fixed list per text. Nothing else: no format specs, conversions or attribute access, so a
template can neither fail while rendering nor reach into the values (``{nickname.__class__}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.texttemplate import TemplateError, fill, fill_lenient, placeholders

# What every onboarding text may name (PRODUCT.md M2, issue 10 point 5).
COMMON_VARIABLES = ("nickname", "group_name", "owner_name", "rules_url")
VARIABLES: Mapping[str, tuple[str, ...]] = {
    "welcome_text": COMMON_VARIABLES,
    "name_card_text": (*COMMON_VARIABLES, "name_card_format"),
    "benefit_text": (*COMMON_VARIABLES, "code"),
}
TEXT_LIMIT = 4000  # what an outbound action's text may hold

# Characters that separate the parts of a name card (城市-昵称-车型, 上海|老王, 北京 · 小李 …).
_SEPARATORS = "-－—_|｜/／·・ 　,，、+＋"
_SEPARATOR_RUN = re.compile(f"[{re.escape(_SEPARATORS)}]+")


def check_template(field: str, template: str) -> None:
    """``InvalidInput`` naming ``field`` and the first placeholder that is not one of its
    variables (or a stray brace); nothing when the template is fine."""
    render(field, template, {name: "" for name in VARIABLES[field]})


def variables_of(field: str) -> str:
    return " ".join("{" + name + "}" for name in VARIABLES[field])


def render(field: str, template: str, values: Mapping[str, str]) -> str:
    """``template`` with its placeholders replaced by ``values`` (which must hold every variable
    the field allows); ``InvalidInput`` for an unknown placeholder or a stray brace."""
    try:
        return fill(template, values, allowed=VARIABLES[field])
    except TemplateError as error:
        if error.stray_brace:
            raise InvalidInput(
                Msg("err.onboarding.stray_brace", label=Msg(f"f_{field}"), brace=error.token, position=error.position),
                field=field,
                position=error.position,
            ) from None
        raise InvalidInput(
            Msg(
                "err.onboarding.unknown_variable",
                label=Msg(f"f_{field}"),
                variable=error.token,
                allowed=variables_of(field),
            ),
            field=field,
            variable=error.token,
        ) from None


def render_stored(field: str, template: str, values: Mapping[str, str]) -> str:
    """As :func:`render`, for a template stored before it was checked: an unknown placeholder
    or a stray brace is left as it is rather than failing the send."""
    return fill_lenient(template, values, allowed=VARIABLES[field])


@dataclass(frozen=True)
class NameCardFormat:
    """A name-card format as the playbook's rules give it, e.g. ``城市-昵称-车型``: parts joined
    by separators. A name follows it when it has as many non-empty parts, joined by separators
    (any of them: members type ``上海 老王 公路车`` as often as ``上海-老王-公路车``)."""

    text: str
    parts: int

    @classmethod
    def parse(cls, text: str) -> NameCardFormat | None:
        """The format of ``text``; None when it is empty (no reminder)."""
        text = text.strip()
        if not text:
            return None
        return cls(text, len(_parts(text)))

    def matches(self, name: str) -> bool:
        return len(_parts(name)) == self.parts


def _parts(text: str) -> list[str]:
    return [p for p in _SEPARATOR_RUN.split(text.strip()) if p]


def check_name_card_format(text: str) -> None:
    """A name-card format needs two parts at least: with one, every name would follow it."""
    fmt = NameCardFormat.parse(text)
    if fmt is not None and fmt.parts < 2:
        raise InvalidInput(Msg("err.onboarding.name_card_parts", format=text.strip()), field="name_card_format")


def uses(template: str, variable: str) -> bool:
    """Whether ``template`` has the placeholder ``{variable}``."""
    return variable in placeholders(template)
