"""What each platform needs to set up a connection: its settings (shown back) and its secrets
(encrypted, never shown back), declared once for the service, the API, the CLI and the console.

Validation is here too: :func:`validate_setup` returns the cleaned values or raises
``InvalidInput`` naming the field (``settings.corp_id``, ``secrets.aes_key``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qunyun.connectors.base import BUILTIN_PLATFORMS, get_profile
from qunyun.errors import InvalidInput
from qunyun.locale import Msg

MAX_VALUE = 2000  # characters of any one setting or secret


@dataclass(frozen=True)
class SetupField:
    """One setting or secret of a platform's connection.

    ``kind``: ``text``, ``int``, ``choice`` (one of ``choices``) or ``url`` (http or https).
    ``pattern`` is a full match the text must satisfy; ``hint`` says what it looks like (shown as
    the input's placeholder and in error messages). ``required_when`` makes an optional field
    required when another setting has a given value (Telegram's webhook secret in webhook mode).
    """

    name: str
    secret: bool = False
    required: bool = True
    kind: str = "text"
    choices: tuple[str, ...] = ()
    default: str | int | None = None
    pattern: str | None = None
    hint: str = ""
    required_when: tuple[str, str] | None = None

    @property
    def label_key(self) -> str:
        """Catalogue key of the field's label (``conn.field.<name>``)."""
        return f"conn.field.{self.name}"

    @property
    def path(self) -> str:
        """How errors name the field: ``settings.<name>`` or ``secrets.<name>``."""
        return f"{'secrets' if self.secret else 'settings'}.{self.name}"

    def needed(self, settings: Mapping[str, Any]) -> bool:
        if self.required:
            return True
        if self.required_when is not None:
            other, value = self.required_when
            return settings.get(other) == value
        return False


@dataclass(frozen=True)
class PlatformSetup:
    platform: str
    fields: tuple[SetupField, ...]

    @property
    def settings_fields(self) -> tuple[SetupField, ...]:
        return tuple(f for f in self.fields if not f.secret)

    @property
    def secret_fields(self) -> tuple[SetupField, ...]:
        return tuple(f for f in self.fields if f.secret)

    def field(self, name: str, *, secret: bool) -> SetupField | None:
        return next((f for f in self.fields if f.name == name and f.secret == secret), None)


_TOKEN_CHARS = r"[A-Za-z0-9_\-]"

PLATFORMS: dict[str, PlatformSetup] = {
    "simulator": PlatformSetup(
        "simulator",
        (
            SetupField("seed", required=False, kind="int", hint="0"),
            # Signs the simulator's webhooks when set (the webhook inbox checks it).
            SetupField("webhook_secret", secret=True, required=False, pattern=f"{_TOKEN_CHARS}{{8,256}}"),
        ),
    ),
    "wecom": PlatformSetup(
        "wecom",
        (
            SetupField("corp_id", pattern=r"w[wx][A-Za-z0-9]{8,30}", hint="ww0123456789abcdef"),
            SetupField("agent_id", kind="int", hint="1000002"),
            SetupField("secret", secret=True, pattern=f"{_TOKEN_CHARS}{{8,128}}"),
            # The callback's token (3-32 letters and digits) and EncodingAESKey (43 characters).
            SetupField("token", secret=True, pattern=r"[A-Za-z0-9]{3,32}"),
            SetupField("aes_key", secret=True, pattern=r"[A-Za-z0-9]{43}", hint="43"),
        ),
    ),
    "telegram": PlatformSetup(
        "telegram",
        (
            SetupField("mode", kind="choice", choices=("webhook", "polling"), default="webhook"),
            SetupField("bot_token", secret=True, pattern=r"[0-9]{3,15}:[A-Za-z0-9_\-]{30,64}", hint="123456:ABC…"),
            # Telegram's secret_token: 1-256 of A-Z a-z 0-9 _ -; only webhooks carry it.
            SetupField(
                "webhook_secret",
                secret=True,
                required=False,
                pattern=f"{_TOKEN_CHARS}{{1,256}}",
                required_when=("mode", "webhook"),
            ),
        ),
    ),
    "matrix": PlatformSetup(
        "matrix",
        (
            SetupField("homeserver", kind="url", hint="https://matrix.example.org"),
            SetupField("user_id", pattern=r"@[^:\s]+:[^\s]+", hint="@qunyun:example.org"),
            SetupField("access_token", secret=True, pattern=r"[^\s]{8,1024}"),
        ),
    ),
}


def platform_setup(platform: str) -> PlatformSetup:
    """The setup fields of ``platform``; ``InvalidInput`` (field ``platform``) for an unknown one."""
    setup = PLATFORMS.get(platform)
    if setup is None:
        get_profile(platform)  # an unknown platform: the registry's message
        setup = PlatformSetup(platform, ())  # a registered platform that declares no setup
    return setup


def platform_names() -> list[str]:
    """The platforms a connection can be added for, built-ins first."""
    return [*BUILTIN_PLATFORMS, *sorted(p for p in PLATFORMS if p not in BUILTIN_PLATFORMS)]


def _clean(field: SetupField, value: Any) -> str | int:
    path = field.path
    if field.kind == "int":
        if isinstance(value, bool):
            raise InvalidInput(Msg("err.connection.not_integer", field=path), field=path)
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or abs(value) >= 2**63:
            raise InvalidInput(Msg("err.connection.not_integer", field=path), field=path)
        return value
    if not isinstance(value, str):
        raise InvalidInput(Msg("err.connection.not_text", field=path), field=path)
    # Secrets are taken as given (a pasted token's spaces are an error, not trimmed silently).
    text = value if field.secret else value.strip()
    if len(text) > MAX_VALUE:
        raise InvalidInput(Msg("err.connection.too_long", field=path, limit=MAX_VALUE), field=path)
    if field.kind == "choice" and text not in field.choices:
        raise InvalidInput(Msg("err.connection.bad_choice", field=path, choices=", ".join(field.choices)), field=path)
    if field.kind == "url" and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s]*)?", text):
        raise InvalidInput(Msg("err.connection.bad_url", field=path), field=path)
    if field.pattern is not None and not re.fullmatch(field.pattern, text):
        if field.name == "aes_key":
            raise InvalidInput(Msg("err.connection.aes_key", field=path), field=path)
        raise InvalidInput(Msg("err.connection.bad_format", field=path, example=field.hint or "—"), field=path)
    return text


def validate_setup(
    platform: str,
    settings: Mapping[str, Any],
    secrets: Mapping[str, Any],
    *,
    stored_secrets: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``settings`` and ``secrets`` checked against ``platform``'s fields: unknown names, missing
    required ones and bad values are ``InvalidInput`` naming the field. Blank values count as not
    given. ``stored_secrets`` (a change of an existing connection) satisfy required secrets that
    are not given again. Returns the cleaned (settings, secrets)."""
    setup = platform_setup(platform)
    cleaned: dict[str, dict[str, Any]] = {"settings": {}, "secrets": {}}
    for part, given, secret in (("settings", settings, False), ("secrets", secrets, True)):
        for name, value in given.items():
            field = setup.field(str(name), secret=secret)
            if field is None:
                path = f"{part}.{name}"
                raise InvalidInput(Msg("err.connection.unknown_field", field=path, platform=platform), field=path)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            cleaned[part][field.name] = _clean(field, value)
    for field in setup.settings_fields:
        if field.name not in cleaned["settings"] and field.default is not None:
            cleaned["settings"][field.name] = field.default
    kept = stored_secrets or {}
    for field in setup.fields:
        part = "secrets" if field.secret else "settings"
        present = field.name in cleaned[part] or (field.secret and field.name in kept)
        if not present and field.needed(cleaned["settings"]):
            raise InvalidInput(Msg("err.connection.required", field=field.path), field=field.path)
    return cleaned["settings"], cleaned["secrets"]
