"""What each platform needs to set up a connection: its settings (shown back) and its secrets
(encrypted, never shown back), declared once for the service, the API, the CLI and the console.

Validation is here too: :func:`validate_setup` returns the cleaned values or raises
``InvalidInput`` naming the field (``settings.corp_id``, ``secrets.aes_key``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qunyun.config import get_settings
from qunyun.connectors.base import BUILTIN_PLATFORMS, get_profile
from qunyun.errors import InvalidInput
from qunyun.locale import Msg

MAX_VALUE = 2000  # characters of any one setting or secret
MAX_ITEMS = 500  # ids in a list setting
_TRUE = frozenset({"true", "1", "on", "yes"})
_FALSE = frozenset({"false", "0", "off", "no"})


@dataclass(frozen=True)
class SetupField:
    """One setting or secret of a platform's connection.

    ``kind``: ``text``, ``int``, ``choice`` (one of ``choices``), ``url`` (http or https), ``bool``
    (true or false; a form's checkbox), ``list`` (ids, given as a list or as text separated by
    commas or lines, each a full match of ``pattern``) or ``var_path`` (a file in the var directory:
    a relative path is taken under ``var/<platform>/``, an absolute one must lie inside ``var/``).
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
            # What SimulatorConnector.from_settings takes.
            SetupField("seed", required=False, kind="int", hint="0"),
            # Behave like Matrix's transaction ids: remember each key, answer a repeat with the
            # first answer, and tell what became of a key after a crash.
            SetupField("reconcile", required=False, kind="bool"),
            # The file every call is appended to (the platform's record, shared by processes).
            SetupField("record_to", required=False, kind="var_path", hint="calls.jsonl"),
            # Groups the simulated platform starts with (a worker's world is otherwise empty).
            SetupField("groups", required=False, kind="list", pattern=r"[^\s,]{1,200}", hint="g1, g2"),
            # Signs the simulator's webhooks when set (the webhook inbox checks it).
            SetupField("webhook_secret", secret=True, required=False, pattern=f"{_TOKEN_CHARS}{{8,256}}"),
        ),
    ),
    "wecom": PlatformSetup(
        "wecom",
        (
            SetupField("corp_id", pattern=r"w[wx][A-Za-z0-9]{8,30}", hint="ww0123456789abcdef"),
            # The self-built app's AgentId: optional (customer-contact APIs take the secret alone).
            SetupField("agent_id", required=False, kind="int", hint="1000002"),
            # Where the API answers (a test server or an egress proxy); WeCom's own by default.
            SetupField("api_base", required=False, kind="url", hint="https://qyapi.weixin.qq.com"),
            SetupField("secret", secret=True, pattern=f"{_TOKEN_CHARS}{{8,128}}"),
            # The callback's token (3-32 letters and digits) and EncodingAESKey (43 characters).
            SetupField("token", secret=True, pattern=r"[A-Za-z0-9]{3,32}"),
            SetupField("aes_key", secret=True, pattern=r"[A-Za-z0-9]{43}", hint="43"),
            # The welcome a new customer contact gets (send_welcome_msg) when its State names no
            # live code with one of its own; empty: none.
            SetupField("welcome_text", required=False, hint="您好，欢迎添加！"),
        ),
    ),
    "telegram": PlatformSetup(
        "telegram",
        (
            SetupField("mode", kind="choice", choices=("webhook", "polling"), default="webhook"),
            # Where the Bot API answers (a local Bot API server or a test server); Telegram's by default.
            SetupField("api_base", required=False, kind="url", hint="https://api.telegram.org"),
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
            # bot: an account that syncs; appservice: the homeserver pushes transactions to us.
            SetupField("mode", kind="choice", choices=("bot", "appservice"), default="bot"),
            SetupField("homeserver", kind="url", hint="https://matrix.example.org"),
            # The bot's user id (the appservice's sender); asked of the homeserver when left out.
            SetupField("user_id", required=False, pattern=r"@[^:\s]+:[^\s]+", hint="@qunyun:example.org"),
            SetupField(
                "access_token", secret=True, required=False, pattern=r"[^\s]{8,1024}", required_when=("mode", "bot")
            ),
            # An application service's two tokens (its registration file's as_token and hs_token).
            SetupField(
                "as_token", secret=True, required=False, pattern=r"[^\s]{8,1024}", required_when=("mode", "appservice")
            ),
            SetupField(
                "hs_token", secret=True, required=False, pattern=r"[^\s]{8,1024}", required_when=("mode", "appservice")
            ),
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


def _clean(field: SetupField, value: Any) -> str | int | bool | list[str]:
    path = field.path
    if field.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise InvalidInput(Msg("err.connection.not_bool", field=path), field=path)
    if field.kind == "list":
        return _clean_list(field, value)
    if field.kind == "var_path":
        return _clean_var_path(field, value)
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


def _clean_list(field: SetupField, value: Any) -> list[str]:
    path = field.path
    if isinstance(value, str):
        items = [item.strip() for item in re.split(r"[,\n]", value)]
    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise InvalidInput(Msg("err.connection.not_list", field=path), field=path)
    items = list(dict.fromkeys(item for item in items if item))  # blanks dropped, order kept, once each
    if len(items) > MAX_ITEMS:
        raise InvalidInput(Msg("err.connection.too_many", field=path, limit=MAX_ITEMS), field=path)
    for item in items:
        if field.pattern is not None and not re.fullmatch(field.pattern, item):
            raise InvalidInput(
                Msg("err.connection.bad_item", field=path, item=item[:50], example=field.hint or "—"), field=path
            )
    return items


def _clean_var_path(field: SetupField, value: Any) -> str:
    """A file inside the var directory, as an absolute path: the server never writes elsewhere
    for a connection (a lead's setting must not name ~/.bashrc)."""
    path = field.path
    if not isinstance(value, str):
        raise InvalidInput(Msg("err.connection.not_text", field=path), field=path)
    text = value.strip()
    if len(text) > MAX_VALUE or "\x00" in text:
        raise InvalidInput(Msg("err.connection.too_long", field=path, limit=MAX_VALUE), field=path)
    var = get_settings().var_dir.resolve()
    given = Path(text)
    resolved = (given if given.is_absolute() else var / "simulator" / given).resolve()
    if not resolved.is_relative_to(var) or resolved == var or text.endswith(("/", "\\")) or resolved.is_dir():
        raise InvalidInput(Msg("err.connection.outside_var", field=path, var=str(var)), field=path)
    return str(resolved)


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
