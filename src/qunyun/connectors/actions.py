"""Typed outbound actions: one frozen dataclass per kind, which declares everything about it.

An action class owns its kind (the string stored in ``OutboundAction.action``), the capability a
platform needs for it, the targets it takes (group, member), its payload (its dataclass fields,
read by ``parse``) and the catalogue key of the title of a task about it. Defining the class
registers the kind: nothing else needs to change for the dispatcher to request, route, delegate or
perform it (a connector that does not know it refuses it, and a person does it instead)::

    @dataclass(frozen=True)
    class PinMessage(ActionBase, kind="pin_message", capability=Capability.PIN, targets=GROUP):
        group: str
        message: str

An ``OutboundAction`` row stores the kind, the target group and member (internal ids) and a JSON
payload; the dispatcher turns it into one of these, with the group and member as the platform's
external ids, and hands it to ``Connector.perform``. ``action_from_payload`` validates the payload
and names the offending field, so bad input is refused when the action is requested, not when the
job runs.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, ClassVar, Self, TypeAlias

from qunyun.connectors.base import Capability
from qunyun.errors import InvalidInput
from qunyun.locale import Msg

# message.posted msg_type values of the interchange format.
MSG_TYPES = frozenset({"text", "image", "link", "miniprogram", "file", "video", "card", "voice", "other"})
MAX_TEXT = 4000
# Payload keys the dispatcher adds beside an action's own fields.
RESERVED_PAYLOAD_KEYS = frozenset({"deadline", "assignee_id"})
TARGET_FIELDS = ("group", "member")


class Target(enum.StrEnum):
    REQUIRED = "required"
    OPTIONAL = "optional"


# The usual target declarations.
NO_TARGET: Mapping[str, Target] = MappingProxyType({})
GROUP: Mapping[str, Target] = MappingProxyType({"group": Target.REQUIRED})
ANY_GROUP: Mapping[str, Target] = MappingProxyType({"group": Target.OPTIONAL})
MEMBER: Mapping[str, Target] = MappingProxyType({"member": Target.REQUIRED})
GROUP_MEMBER: Mapping[str, Target] = MappingProxyType({"group": Target.REQUIRED, "member": Target.REQUIRED})

_REGISTRY: dict[str, type[ActionBase]] = {}


class _Kinds(type):
    def __iter__(cls) -> Iterator[ActionKind]:
        return (ActionKind(kind) for kind in list(_REGISTRY))


class ActionKind(str, metaclass=_Kinds):
    """The name of a registered action kind (what ``OutboundAction.action`` stores);
    ``ActionKind("teleport")`` raises ``ValueError``. Each action class has one: ``Kick.kind``;
    ``for kind in ActionKind`` goes through all of them."""

    __slots__ = ()

    def __new__(cls, value: object) -> ActionKind:
        if isinstance(value, ActionKind):
            return value
        if not isinstance(value, str) or value not in _REGISTRY:
            raise ValueError(f"unknown action kind {value!r}")
        return super().__new__(cls, value)

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def action_class(self) -> type[ActionBase]:
        return _REGISTRY[self]

    @property
    def capability(self) -> Capability:
        """The capability a platform must declare to perform this kind of action."""
        return _REGISTRY[self].capability

    @property
    def targets(self) -> Mapping[str, Target]:
        return _REGISTRY[self].targets

    @property
    def title_key(self) -> str:
        """Catalogue key of the title of a task about this kind of action."""
        return _REGISTRY[self].title_key


def action_kinds() -> Iterator[ActionKind]:
    """Every registered kind, in the order the classes were defined."""
    return iter(ActionKind)


def action_class(kind: ActionKind | str) -> type[ActionBase]:
    """The class of ``kind``; ``InvalidInput`` naming ``action`` for an unknown one."""
    try:
        return ActionKind(kind).action_class
    except ValueError as exc:
        raise InvalidInput(Msg("err.outbound.unknown_action", action=repr(kind)), field="action") from exc


def unregister_action(kind: str) -> None:
    """Forget a kind (tests that define one of their own clean up with this)."""
    _REGISTRY.pop(kind, None)


@dataclass(frozen=True)
class ActionBase:
    """Base of every action class; subclasses declare themselves in the class statement:
    ``kind``, ``capability``, ``targets`` (``{"group": Target.REQUIRED, …}``; absent: not taken)
    and optionally ``title_key`` (default ``task.title.<kind>``)."""

    kind: ClassVar[ActionKind]
    capability: ClassVar[Capability]
    targets: ClassVar[Mapping[str, Target]]
    title_key: ClassVar[str]

    def __init_subclass__(
        cls,
        *,
        kind: str,
        capability: Capability,
        targets: Mapping[str, Target] = NO_TARGET,
        title_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        previous = _REGISTRY.get(kind)
        if previous is not None and previous.__qualname__ != cls.__qualname__:
            raise TypeError(f"action kind {kind!r} is declared twice ({previous.__qualname__}, {cls.__qualname__})")
        unknown = set(targets) - set(TARGET_FIELDS)
        if unknown:
            raise TypeError(f"{cls.__qualname__}: unknown targets {sorted(unknown)}")
        _REGISTRY[kind] = cls
        cls.kind = ActionKind(kind)
        cls.capability = capability
        cls.targets = MappingProxyType(dict(targets))
        cls.title_key = title_key or f"task.title.{kind}"

    def required_capabilities(self) -> frozenset[Capability]:
        return frozenset({self.capability})

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        """Build the action from a payload (targets checked already). By default every dataclass
        field is read by its type: ``str`` (required unless it has a default), ``str | None``,
        ``int | None`` (at least 1), ``datetime | None``, ``tuple[str, ...]``; override for more."""
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for fld in fields(cls):
            if fld.name in TARGET_FIELDS:
                values[fld.name] = group if fld.name == "group" else member
                continue
            has_default = fld.default is not MISSING or fld.default_factory is not MISSING
            value = f.read(fld.name, hints[fld.name], required=not has_default)
            if value is not None:
                values[fld.name] = value
        return cls(**values)

    def to_payload(self) -> dict[str, Any]:
        """The JSON payload stored on the OutboundAction (group and member are columns)."""
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            if name in TARGET_FIELDS or value is None:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class SendGroupMessage(ActionBase, kind="send_group_message", capability=Capability.SEND_GROUP_MESSAGE, targets=GROUP):
    group: str
    text: str
    msg_type: str = "text"
    # A content-library material (image URL, mini-program, file) sent along with the text.
    material: str | None = None

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        msg_type = f.text("msg_type", required=False) or "text"
        if msg_type not in MSG_TYPES:
            raise f.bad("msg_type", Msg("err.action.unknown_msg_type", value=repr(msg_type)))
        material = f.text("material", required=False)
        text = f.text("text", required=msg_type == "text" or material is None) or ""
        assert group is not None
        return cls(group=group, text=text, msg_type=msg_type, material=material)


@dataclass(frozen=True)
class SendWelcome(ActionBase, kind="send_welcome", capability=Capability.SEND_GROUP_MESSAGE, targets=GROUP_MEMBER):
    """Greet one new member in the group (@member + text). A personal greeting is an ordinary group
    message; platforms that greet by themselves are configured with SET_WELCOME_MESSAGE instead."""

    group: str
    member: str
    text: str


@dataclass(frozen=True)
class WelcomeMembers(ActionBase, kind="welcome_members", capability=Capability.SEND_GROUP_MESSAGE, targets=GROUP):
    """One welcome for the members who joined a group lately (onboarding's raid protection
    greets everyone who joined within its window at once). ``text`` already names them;
    ``mentions`` (their external ids) are @-mentioned too, which needs MENTION: onboarding asks
    for mentions only where the platform has it."""

    group: str
    text: str
    mentions: tuple[str, ...] = ()

    def required_capabilities(self) -> frozenset[Capability]:
        return frozenset({self.capability, Capability.MENTION} if self.mentions else {self.capability})


@dataclass(frozen=True)
class RemindNameCard(ActionBase, kind="remind_name_card", capability=Capability.SEND_GROUP_MESSAGE, targets=GROUP):
    """A reminder to new members to set their name card (群名片) in the playbook's format; as
    WelcomeMembers, ``mentions`` only where the platform has MENTION."""

    group: str
    text: str
    mentions: tuple[str, ...] = ()

    def required_capabilities(self) -> frozenset[Capability]:
        return frozenset({self.capability, Capability.MENTION} if self.mentions else {self.capability})


@dataclass(frozen=True)
class SendPrivateMessage(
    ActionBase,
    kind="send_private_message",
    capability=Capability.DIRECT_MESSAGE,
    targets=MappingProxyType({"member": Target.REQUIRED, "group": Target.OPTIONAL}),
):
    """A private message to a member (a new-member benefit's coupon code). ``group`` is where
    the member came from: whoever does it by hand is that group's owner."""

    member: str
    text: str
    group: str | None = None


@dataclass(frozen=True)
class SetWelcomeMessage(
    ActionBase, kind="set_welcome_message", capability=Capability.WELCOME_ON_JOIN, targets=ANY_GROUP
):
    """Configure the message the platform greets joiners with (``group`` None: the default)."""

    group: str | None
    text: str


@dataclass(frozen=True)
class DeleteMessage(ActionBase, kind="delete_message", capability=Capability.DELETE_MESSAGE, targets=GROUP):
    group: str
    message: str

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        assert group is not None
        return cls(group=group, message=f.required_text("message", max_len=200))


@dataclass(frozen=True)
class Mute(ActionBase, kind="mute", capability=Capability.MUTE, targets=GROUP_MEMBER):
    """Stop a member posting for ``seconds`` from when it is performed (None: until unmuted)."""

    group: str
    member: str
    seconds: int | None = None


@dataclass(frozen=True)
class Unmute(ActionBase, kind="unmute", capability=Capability.MUTE, targets=GROUP_MEMBER):
    group: str
    member: str


@dataclass(frozen=True)
class Kick(ActionBase, kind="kick", capability=Capability.KICK, targets=GROUP_MEMBER):
    group: str
    member: str
    reason: str = ""

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        assert group is not None and member is not None
        return cls(group=group, member=member, reason=f.text("reason", required=False, max_len=200) or "")


@dataclass(frozen=True)
class CreateGroup(ActionBase, kind="create_group", capability=Capability.CREATE_GROUP):
    name: str
    capacity: int | None = None
    owner: str | None = None  # the platform account of the owning staff member

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        return cls(
            name=f.required_text("name", max_len=200),
            capacity=f.integer("capacity"),
            owner=f.text("owner", required=False, max_len=128),
        )


def invite_link_capabilities(
    member_limit: int | None, expire_at: datetime | None, *, join_request: bool = False
) -> frozenset[Capability]:
    """What creating or editing an invite link needs: a member limit, an expiry and joins that
    wait for approval each need their own capability on top of creating links."""
    needed = {Capability.CREATE_INVITE_LINK}
    if join_request:
        needed.add(Capability.JOIN_REQUESTS)
    if member_limit is not None:
        needed.add(Capability.INVITE_LINK_MEMBER_LIMIT)
    if expire_at is not None:
        needed.add(Capability.INVITE_LINK_EXPIRY)
    return frozenset(needed)


@dataclass(frozen=True)
class CreateInviteLink(ActionBase, kind="create_invite_link", capability=Capability.CREATE_INVITE_LINK, targets=GROUP):
    """An invite link (live-code target). A member limit or an expiry needs the matching
    capability; callers that can do without them should leave them out. ``join_request``: a
    join through the link is a request that waits for approval (Telegram's
    ``creates_join_request``), which excludes a member limit."""

    group: str
    name: str = ""
    member_limit: int | None = None
    expire_at: datetime | None = None
    channel: str | None = None  # channel code the joins through this link are attributed to
    join_request: bool = False

    def required_capabilities(self) -> frozenset[Capability]:
        return invite_link_capabilities(self.member_limit, self.expire_at, join_request=self.join_request)

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        assert group is not None
        join_request = f.payload.get("join_request", False)
        if not isinstance(join_request, bool):
            raise f.bad("join_request", Msg("err.action.boolean"))
        member_limit = f.integer("member_limit")
        if join_request and member_limit is not None:
            raise f.bad("member_limit", Msg("err.action.limit_with_join_request"))
        return cls(
            group=group,
            name=f.text("name", required=False, max_len=64) or "",
            member_limit=member_limit,
            expire_at=f.instant("expire_at"),
            channel=f.text("channel", required=False, max_len=64),
            join_request=join_request,
        )


@dataclass(frozen=True)
class RevokeInviteLink(ActionBase, kind="revoke_invite_link", capability=Capability.CREATE_INVITE_LINK, targets=GROUP):
    group: str
    link: str

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        assert group is not None
        return cls(group=group, link=f.required_text("link", max_len=500))


@dataclass(frozen=True)
class SetTags(ActionBase, kind="set_tags", capability=Capability.TAGS, targets=MEMBER):
    member: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        assert member is not None
        add, remove = f.words("add"), f.words("remove")
        if not add and not remove:
            raise InvalidInput(Msg("err.action.no_tags"), field="payload.add")
        return cls(member=member, add=add, remove=remove)


@dataclass(frozen=True)
class SyncInterceptRules(
    ActionBase, kind="sync_intercept_rules", capability=Capability.INTERCEPT_RULES, targets=ANY_GROUP
):
    """Replace the platform's intercept rule ``name`` with ``words`` (``group`` None: all groups)."""

    name: str
    words: tuple[str, ...]
    group: str | None = None

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        return cls(name=f.required_text("name", max_len=64), words=f.words("words", required=True), group=group)


# Any action: an instance of a registered ActionBase subclass.
Action: TypeAlias = ActionBase


def action_capabilities() -> Mapping[ActionKind, Capability]:
    """Each registered kind's capability (built from the classes)."""
    return MappingProxyType({ActionKind(kind): cls.capability for kind, cls in _REGISTRY.items()})


def action_targets(kind: ActionKind | str) -> Mapping[str, Target]:
    """``{"group": Target.REQUIRED|OPTIONAL, "member": …}`` for the targets ``kind`` takes."""
    return action_class(kind).targets


_TARGET_NAMES = {"group": Msg("err.target.group"), "member": Msg("err.target.member")}


class PayloadFields:
    """Reads typed fields from a payload, naming the field (``payload.text``) on bad input."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        if not isinstance(payload, Mapping):
            raise InvalidInput(Msg("err.action.payload_object"), field="payload")
        self.payload = payload

    def bad(self, name: str, message: Msg) -> InvalidInput:
        field = f"payload.{name}"
        return InvalidInput(Msg("err.action.field", field=field, reason=message), field=field)

    def read(self, name: str, hint: Any, *, required: bool) -> Any:
        """A field by its type hint (see ``ActionBase.parse``)."""
        optional = False
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(args) < len(typing.get_args(hint))
            hint = args[0] if len(args) == 1 else hint
        required = required and not optional
        if hint is str:
            return self.text(name, required=required)
        if hint is int or hint is datetime:
            value = self.integer(name) if hint is int else self.instant(name)
            if value is None and required:
                raise self.bad(name, Msg("err.event.required"))
            return value
        if typing.get_origin(hint) is tuple:
            return self.words(name, required=required)
        raise TypeError(f"no default reader for payload field {name!r} of type {hint!r}: override parse()")

    def text(self, name: str, *, required: bool = True, max_len: int = MAX_TEXT) -> str | None:
        value = self.payload.get(name)
        if value is None or value == "":
            if required:
                raise self.bad(name, Msg("err.event.required"))
            return None
        if not isinstance(value, str):
            raise self.bad(name, Msg("err.event.string"))
        if len(value) > max_len:
            raise self.bad(name, Msg("err.event.too_long", limit=max_len))
        return value

    def required_text(self, name: str, *, max_len: int = MAX_TEXT) -> str:
        value = self.text(name, max_len=max_len)
        assert value is not None
        return value

    def integer(self, name: str, *, minimum: int = 1, maximum: int | None = None) -> int | None:
        value = self.payload.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.bad(name, Msg("err.action.integer"))
        if value < minimum or (maximum is not None and value > maximum):
            raise self.bad(
                name,
                Msg("err.action.between", min=minimum, max=maximum)
                if maximum is not None
                else Msg("err.action.at_least", min=minimum),
            )
        return value

    def instant(self, name: str) -> datetime | None:
        value = self.payload.get(name)
        if value is None:
            return None
        return parse_instant(value, f"payload.{name}")

    def words(self, name: str, *, required: bool = False) -> tuple[str, ...]:
        value = self.payload.get(name, [])
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
            raise self.bad(name, Msg("err.action.words"))
        if required and not value:
            raise self.bad(name, Msg("err.action.not_empty"))
        return tuple(value)


def parse_instant(value: Any, field: str) -> datetime:
    """An aware datetime from a datetime or an ISO 8601 string with offset."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise InvalidInput(
                Msg("err.action.field", field=field, reason=Msg("err.event.ts_format", value=repr(value))), field=field
            ) from exc
    if not isinstance(value, datetime):
        raise InvalidInput(Msg("err.action.field", field=field, reason=Msg("err.action.time_type")), field=field)
    if value.tzinfo is None:
        raise InvalidInput(Msg("err.action.field", field=field, reason=Msg("err.action.time_offset")), field=field)
    return value


def action_from_payload(
    kind: ActionKind | str,
    payload: Mapping[str, Any],
    *,
    group: str | None = None,
    member: str | None = None,
) -> Action:
    """Build and validate the typed action; ``InvalidInput`` names the bad field."""
    cls = action_class(kind)
    for name, value in (("group", group), ("member", member)):
        need = cls.targets.get(name)
        if need == Target.REQUIRED and value is None:
            raise InvalidInput(
                Msg("err.action.needs_target", action=cls.kind.value, target=_TARGET_NAMES[name]), field=f"{name}_id"
            )
        if need is None and value is not None:
            raise InvalidInput(
                Msg("err.action.no_target", action=cls.kind.value, target=_TARGET_NAMES[name]), field=f"{name}_id"
            )
    f = PayloadFields(payload)
    known = {fld.name for fld in fields(cls)} - set(TARGET_FIELDS)
    for name in payload:
        if name not in known and name not in RESERVED_PAYLOAD_KEYS:
            raise f.bad(name, Msg("err.action.unknown_field", action=cls.kind.value))
    return cls.parse(f, group=group, member=member)


# More kinds, declared in their own modules (each registers itself on import).
from qunyun.connectors import actions_entry, actions_rooms  # noqa: E402, F401
