"""The connector interface: declared capabilities, inbound normalization, outbound actions.

Every platform (the built-in simulator, WeCom, Telegram, Matrix) is a :class:`Connector`. The rest
of qunyun never talks to a platform directly: it ingests what ``Connector.normalize`` produces
(event interchange format v1, see PRODUCT.md) and asks for outbound work through
``qunyun.connectors.dispatch.request_action``, which consults the declared capabilities and turns
whatever a platform cannot do into a staff task.

The typed actions and their kinds live in :mod:`qunyun.connectors.actions`; this module holds
the capabilities, results and errors, the abstract connector and platform profiles. Connectors
are built per connection by :mod:`qunyun.connectors.registry`.
"""

from __future__ import annotations

import enum
import importlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qunyun.errors import InvalidInput, QunyunError
from qunyun.locale import Msg
from qunyun.timeutil import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qunyun.connectors.actions import Action
    from qunyun.models import Connection


class Capability(enum.StrEnum):
    """Something a platform can do through its API (a connector declares the ones it has)."""

    SEND_GROUP_MESSAGE = "send_group_message"
    # The platform can deliver a group message, but only after a person presses send on it
    # (WeCom group mass sends wait for the group owner). Satisfies SEND_GROUP_MESSAGE's need.
    SEND_REQUIRES_CONFIRMATION = "send_requires_confirmation"
    DELETE_MESSAGE = "delete_message"
    MUTE = "mute"
    KICK = "kick"
    CREATE_GROUP = "create_group"
    CREATE_INVITE_LINK = "create_invite_link"
    INVITE_LINK_MEMBER_LIMIT = "invite_link_member_limit"
    INVITE_LINK_EXPIRY = "invite_link_expiry"
    # Joins through a link are reported with that link, so they can be attributed to its channel.
    INVITE_LINK_ATTRIBUTION = "invite_link_attribution"
    # A visitor can be invited by their platform id (a live code's page asks for it), and their
    # join is reported as that id's, so it can be attributed to the code (Matrix).
    INVITATION_ATTRIBUTION = "invitation_attribution"
    READ_MESSAGES = "read_messages"
    MEMBERSHIP_EVENTS = "membership_events"
    # The platform (or our bot) greets every joiner with a configured welcome message.
    WELCOME_ON_JOIN = "welcome_on_join"
    TAGS = "tags"
    INTERCEPT_RULES = "intercept_rules"
    # Persona fields of a member (name, gender, …) can be fetched by external id.
    MEMBER_PROFILES = "member_profiles"
    # A group message can @-mention members so that they are notified (else: their names as text).
    MENTION = "mention"
    # The bot can message a member privately (a new-member benefit's code goes there).
    DIRECT_MESSAGE = "direct_message"
    # Requests to join (a link that creates join requests) can be approved or declined by the bot.
    JOIN_REQUESTS = "join_requests"
    # The group's description (about text) can be set through the API.
    SET_DESCRIPTION = "set_description"


# A capability that stands in for another one, at the price of a human confirmation.
CONFIRMATION_SUBSTITUTES: Mapping[Capability, Capability] = MappingProxyType(
    {Capability.SEND_GROUP_MESSAGE: Capability.SEND_REQUIRES_CONFIRMATION}
)


def missing_capabilities(action: Action, capabilities: frozenset[Capability]) -> frozenset[Capability]:
    """The capabilities ``action`` needs that ``capabilities`` lacks (empty: it can be performed)."""
    missing = set()
    for needed in action.required_capabilities():
        substitute = CONFIRMATION_SUBSTITUTES.get(needed)
        if needed in capabilities or (substitute is not None and substitute in capabilities):
            continue
        missing.add(needed)
    return frozenset(missing)


def needs_confirmation(action: Action, capabilities: frozenset[Capability]) -> bool:
    """True when the platform can perform ``action`` only after a person confirms it."""
    return any(
        needed not in capabilities and CONFIRMATION_SUBSTITUTES.get(needed) in capabilities
        for needed in action.required_capabilities()
    )


class ResultStatus(enum.StrEnum):
    DONE = "done"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    FAILED = "failed"  # permanent: retrying with the same key gives the same answer


@dataclass(frozen=True)
class ActionResult:
    """What the platform answered. ``external_ref`` is its id for what was created or queued
    (message id, group id, invite link URL, mass-send task id)."""

    status: ResultStatus
    external_ref: str | None = None
    detail: str = ""

    @classmethod
    def done(cls, external_ref: str | None = None, detail: str = "") -> ActionResult:
        return cls(ResultStatus.DONE, external_ref, detail)

    @classmethod
    def awaiting_confirmation(cls, external_ref: str | None = None, detail: str = "") -> ActionResult:
        return cls(ResultStatus.AWAITING_CONFIRMATION, external_ref, detail)

    @classmethod
    def failed(cls, detail: str) -> ActionResult:
        return cls(ResultStatus.FAILED, None, detail)


@dataclass(frozen=True)
class MemberProfile:
    """What a platform knows about a member's persona. ``None`` means "not known" (the stored
    value is kept); a platform fills what it has: WeCom's externalcontact/get gives the name and
    gender, surveys and tags the rest."""

    display_name: str | None = None
    gender: str | None = None  # male | female
    birth_year: int | None = None
    occupation: str | None = None
    region: str | None = None
    interests: tuple[str, ...] | None = None


class TransientError(Exception):
    """A temporary platform failure (timeout, rate limit, 5xx): retry later with the same key.
    ``retry_after`` (seconds), when the platform said how long to wait (a 429): the retry waits
    at least that long."""

    retry_after: float | None = None


class UnsupportedAction(Exception):
    """The connector cannot perform this action; the dispatcher hands it to a person instead."""


class ConnectorUnavailable(QunyunError):
    status_code = 503
    code = "connector_unavailable"


@dataclass(frozen=True, eq=False)  # one instance per platform: compared and hashed by identity
class PlatformProfile:
    """A platform's declared capabilities, limits and notes (what it can do, not how)."""

    platform: str
    title: str
    capabilities: frozenset[Capability]
    # Why a capability is missing or how it is provided; shown on staff tasks and in the docs.
    notes: Mapping[Capability, str] = field(default_factory=dict)
    limits: Mapping[str, int] = field(default_factory=dict)
    # True while only the declaration exists (no client yet): actions it declares are queued,
    # but with no connector registered the job hands them to a person.
    declaration_only: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", MappingProxyType(dict(self.notes)))
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))

    def has(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def note(self, capability: Capability) -> str:
        return self.notes.get(capability, "")


class Connector(ABC):
    """One platform account behind one interface.

    Subclasses set ``profile`` (class or instance attribute) and implement ``normalize`` and
    ``perform``. ``perform`` is called outside any transaction, once per attempt, with the
    action's idempotency key; it raises :class:`TransientError` for failures worth retrying that
    changed nothing, and :class:`UnsupportedAction` for actions outside its capabilities. Any
    other exception means "the outcome is unknown": the dispatcher then reconciles or asks a person.

    A connector declares what its platform can tell after a crash (docs/connectors.md):

    - ``key_idempotent``: the platform itself performs a call once per key and answers a repeated
      call with the first result (Matrix's transaction id), so calling again is safe for as long
      as it remembers the key (``key_memory`` from the first attempt; None: always). An attempt
      that may have reached it is settled by calling again with the same key;
    - ``reconciles``: :meth:`reconcile` can ask the platform what became of a key (WeCom: the
      mass-send task behind a msgid).

    A connector with neither: an attempt that may have reached the platform is handed to a
    person ("may have been sent: check and confirm"), never repeated blindly.
    """

    key_idempotent: bool = False
    key_memory: timedelta | None = None
    reconciles: bool = False

    profile: PlatformProfile

    @property
    def platform(self) -> str:
        return self.profile.platform

    @property
    def capabilities(self) -> frozenset[Capability]:
        return self.profile.capabilities

    def supports(self, action: Action) -> bool:
        return not missing_capabilities(action, self.capabilities)

    def now(self) -> datetime:
        """The platform's current time (the simulator runs on a virtual clock)."""
        return utcnow()

    @abstractmethod
    def normalize(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Turn one raw platform payload into interchange-format v1 events (maybe none)."""

    def record_extras(self, session: Session, connection: Connection, raw: Mapping[str, Any]) -> None:
        """Store what a payload carries besides its events, in the transaction that ingests
        them (Telegram: join requests); nothing for most platforms."""
        return None

    @abstractmethod
    def perform(self, action: Action, idempotency_key: str) -> ActionResult:
        """Carry out ``action`` on the platform (once per call, unless ``key_idempotent``)."""

    def reconcile(self, action: Action, idempotency_key: str) -> ActionResult | None:
        """What the platform did with the call made with ``idempotency_key``: its result, or None
        when the platform never received one. Only for connectors that declare ``reconciles``;
        raises :class:`TransientError` when the platform cannot answer now."""
        raise UnsupportedAction(f"{self.profile.title} cannot tell what became of an earlier call")

    def fetch_member_profiles(self, external_ids: Sequence[str]) -> dict[str, MemberProfile]:
        """Persona fields of the given members (``member_profiles``); unknown ids are left out.
        Raises :class:`TransientError` when worth retrying, :class:`UnsupportedAction` without
        the capability."""
        raise UnsupportedAction(f"{self.profile.title} cannot fetch member profiles")


# --- Profiles -----------------------------------------------------------------------------------
#
# What a platform can do is declared once per platform; connectors are built per connection
# (qunyun.connectors.registry), never one per platform for the whole process.

# Platforms whose profile ships with qunyun: qunyun.connectors.<name>.capabilities.PROFILE.
BUILTIN_PLATFORMS = ("simulator", "wecom", "telegram", "matrix")

_lock = threading.Lock()
_profiles: dict[str, PlatformProfile] = {}


def register_profile(profile: PlatformProfile) -> None:
    """Declare a platform's profile (built-in ones are loaded on first use)."""
    with _lock:
        _profiles[profile.platform] = profile


def get_profile(platform: str) -> PlatformProfile:
    """The declared profile of ``platform``; ``InvalidInput`` for an unknown platform."""
    profile = _profiles.get(platform)
    if profile is None and platform in BUILTIN_PLATFORMS:
        module = importlib.import_module(f"qunyun.connectors.{platform}.capabilities")
        profile = module.PROFILE
        register_profile(profile)
    if profile is None:
        raise InvalidInput(Msg("err.connector.unknown_platform", platform=repr(platform)), field="platform")
    return profile


def all_profiles() -> list[PlatformProfile]:
    """Every built-in and registered profile, built-ins first."""
    builtin = [get_profile(name) for name in BUILTIN_PLATFORMS]
    return builtin + [p for name, p in sorted(_profiles.items()) if name not in BUILTIN_PLATFORMS]
