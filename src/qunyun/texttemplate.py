"""The one template language of the texts qunyun writes: literal text, ``{{`` / ``}}`` for a
brace, and ``{variable}`` placeholders from a fixed list given by the caller.

Nothing else: no format specs, conversions or attribute access, so a template can neither fail
while rendering nor reach into the values (``{nickname.__class__}``). Group naming templates,
onboarding texts and SOP scripts all use it; each turns :class:`TemplateError` into an error
message of its own (naming its field).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class TemplateError(Exception):
    """A stray brace (``variable`` None) or a placeholder that is not one of the allowed ones;
    ``token`` as written, ``position`` counted from 1."""

    token: str
    position: int
    variable: str | None = None

    @property
    def stray_brace(self) -> bool:
        return self.variable is None


def fill(template: str, values: Mapping[str, str], *, allowed: Collection[str] | None = None) -> str:
    """``template`` with its placeholders replaced by ``values``; :class:`TemplateError` for a
    stray brace or a placeholder outside ``allowed`` (default: the keys of ``values``, which
    must hold every allowed variable)."""
    names = values.keys() if allowed is None else allowed
    out: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        out.append(template[pos : match.start()])
        pos = match.end()
        token = match.group(0)
        if token in ("{{", "}}"):
            out.append(token[0])
        elif match.group(1) is None:
            raise TemplateError(token, match.start() + 1)
        elif match.group(1) in names:
            out.append(values[match.group(1)])
        else:
            raise TemplateError(token, match.start() + 1, match.group(1))
    out.append(template[pos:])
    return "".join(out)


def fill_lenient(template: str, values: Mapping[str, str], *, allowed: Collection[str] | None = None) -> str:
    """As :func:`fill`, for a template stored before it was checked: a stray brace or an unknown
    placeholder is left as written rather than failing."""
    names = values.keys() if allowed is None else allowed

    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        name = match.group(1)
        if name is not None and name in names:
            return values.get(name, token)
        return token

    return _TOKEN.sub(one, template)


def placeholders(template: str) -> Iterator[str]:
    """The variable names ``template`` uses, in order (repeats included)."""
    for match in _TOKEN.finditer(template):
        if match.group(1) is not None:
            yield match.group(1)
