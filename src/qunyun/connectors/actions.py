"""Typed outbound actions: one frozen dataclass per :class:`ActionKind`.

An ``OutboundAction`` row stores the kind, the target group and member (internal ids) and a JSON
payload; the dispatcher turns it into one of these, with the group and member as the platform's
external ids, and hands it to ``Connector.perform``. ``action_from_payload`` validates the payload
and names the offending field, so bad input is refused when the action is requested, not when the
job runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, TypeAlias

from qunyun.connectors.base import ACTION_CAPABILITY, ActionKind, Capability
from qunyun.errors import InvalidInput
from qunyun.locale import Msg

# message.posted msg_type values of the interchange format.
MSG_TYPES = frozenset({"text", "image", "link", "miniprogram", "file", "video", "card", "voice", "other"})
MAX_TEXT = 4000
# Payload keys the dispatcher adds beside an action's own fields.
RESERVED_PAYLOAD_KEYS = frozenset({"deadline", "assignee_id"})


@dataclass(frozen=True)
class _ActionBase:
    kind: ClassVar[ActionKind]

    def required_capabilities(self) -> frozenset[Capability]:
        return frozenset({ACTION_CAPABILITY[self.kind]})

    def to_payload(self) -> dict[str, Any]:
        """The JSON payload stored on the OutboundAction (group and member are columns)."""
        out: dict[str, Any] = {}
        for name, value in vars(self).items():
            if name in ("group", "member") or value is None:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True)
class SendGroupMessage(_ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.SEND_GROUP_MESSAGE
    group: str
    text: str
    msg_type: str = "text"
    # A content-library material (image URL, mini-program, file) sent along with the text.
    material: str | None = None


@dataclass(frozen=True)
class SendWelcome(_ActionBase):
    """Greet one new member in the group (@member + text)."""

    kind: ClassVar[ActionKind] = ActionKind.SEND_WELCOME
    group: str
    member: str
    text: str


@dataclass(frozen=True)
class SetWelcomeMessage(_ActionBase):
    """Configure the message the platform greets joiners with (``group`` None: the default)."""

    kind: ClassVar[ActionKind] = ActionKind.SET_WELCOME_MESSAGE
    group: str | None
    text: str


@dataclass(frozen=True)
class DeleteMessage(_ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.DELETE_MESSAGE
    group: str
    message: str


@dataclass(frozen=True)
class Mute(_ActionBase):
    """Stop a member posting for ``seconds`` from when it is performed (None: until unmuted)."""

    kind: ClassVar[ActionKind] = ActionKind.MUTE
    group: str
    member: str
    seconds: int | None = None


@dataclass(frozen=True)
class Unmute(_ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.UNMUTE
    group: str
    member: str


@dataclass(frozen=True)
class Kick(_ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.KICK
    group: str
    member: str
    reason: str = ""


@dataclass(frozen=True)
class CreateGroup(_ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.CREATE_GROUP
    name: str
    capacity: int | None = None
    owner: str | None = None  # the platform account of the owning staff member


@dataclass(frozen=True)
class CreateInviteLink(_ActionBase):
    """An invite link (live-code target). A member limit or an expiry needs the matching
    capability; callers that can do without them should leave them out."""

    kind: ClassVar[ActionKind] = ActionKind.CREATE_INVITE_LINK
    group: str
    name: str = ""
    member_limit: int | None = None
    expire_at: datetime | None = None
    channel: str | None = None  # channel code the joins through this link are attributed to

    def required_capabilities(self) -> frozenset[Capability]:
        needed = {Capability.CREATE_INVITE_LINK}
        if self.member_limit is not None:
            needed.add(Capability.INVITE_LINK_MEMBER_LIMIT)
        if self.expire_at is not None:
            needed.add(Capability.INVITE_LINK_EXPIRY)
        return frozenset(needed)


@dataclass(frozen=True)
class RevokeInviteLink(_ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.REVOKE_INVITE_LINK
    group: str
    link: str


@dataclass(frozen=True)
class SetTags(_ActionBase):
    kind: ClassVar[ActionKind] = ActionKind.SET_TAGS
    member: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncInterceptRules(_ActionBase):
    """Replace the platform's intercept rule ``name`` with ``words`` (``group`` None: all groups)."""

    kind: ClassVar[ActionKind] = ActionKind.SYNC_INTERCEPT_RULES
    name: str
    words: tuple[str, ...]
    group: str | None = None


Action: TypeAlias = (
    SendGroupMessage
    | SendWelcome
    | SetWelcomeMessage
    | DeleteMessage
    | Mute
    | Unmute
    | Kick
    | CreateGroup
    | CreateInviteLink
    | RevokeInviteLink
    | SetTags
    | SyncInterceptRules
)

ACTION_CLASSES: Mapping[ActionKind, type[_ActionBase]] = {
    cls.kind: cls
    for cls in (
        SendGroupMessage,
        SendWelcome,
        SetWelcomeMessage,
        DeleteMessage,
        Mute,
        Unmute,
        Kick,
        CreateGroup,
        CreateInviteLink,
        RevokeInviteLink,
        SetTags,
        SyncInterceptRules,
    )
}
# Which targets each kind takes: "required", "optional" or absent (must not be given).
_TARGETS: Mapping[ActionKind, Mapping[str, str]] = {
    ActionKind.SEND_GROUP_MESSAGE: {"group": "required"},
    ActionKind.SEND_WELCOME: {"group": "required", "member": "required"},
    ActionKind.SET_WELCOME_MESSAGE: {"group": "optional"},
    ActionKind.DELETE_MESSAGE: {"group": "required"},
    ActionKind.MUTE: {"group": "required", "member": "required"},
    ActionKind.UNMUTE: {"group": "required", "member": "required"},
    ActionKind.KICK: {"group": "required", "member": "required"},
    ActionKind.CREATE_GROUP: {},
    ActionKind.CREATE_INVITE_LINK: {"group": "required"},
    ActionKind.REVOKE_INVITE_LINK: {"group": "required"},
    ActionKind.SET_TAGS: {"member": "required"},
    ActionKind.SYNC_INTERCEPT_RULES: {"group": "optional"},
}


_TARGET_NAMES = {"group": Msg("err.target.group"), "member": Msg("err.target.member")}


def action_targets(kind: ActionKind) -> Mapping[str, str]:
    """``{"group": "required"|"optional", "member": …}`` for the targets ``kind`` takes."""
    return _TARGETS[kind]


class _Fields:
    """Reads typed fields from a payload, naming the field (``payload.text``) on bad input."""

    def __init__(self, payload: Mapping[str, Any]) -> None:
        if not isinstance(payload, Mapping):
            raise InvalidInput(Msg("err.action.payload_object"), field="payload")
        self.payload = payload

    def _bad(self, name: str, message: Msg) -> InvalidInput:
        field = f"payload.{name}"
        return InvalidInput(Msg("err.action.field", field=field, reason=message), field=field)

    def text(self, name: str, *, required: bool = True, max_len: int = MAX_TEXT) -> str | None:
        value = self.payload.get(name)
        if value is None or value == "":
            if required:
                raise self._bad(name, Msg("err.event.required"))
            return None
        if not isinstance(value, str):
            raise self._bad(name, Msg("err.event.string"))
        if len(value) > max_len:
            raise self._bad(name, Msg("err.event.too_long", limit=max_len))
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
            raise self._bad(name, Msg("err.action.integer"))
        if value < minimum or (maximum is not None and value > maximum):
            raise self._bad(
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
            raise self._bad(name, Msg("err.action.words"))
        if required and not value:
            raise self._bad(name, Msg("err.action.not_empty"))
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
    try:
        kind = ActionKind(kind)
    except ValueError as exc:
        raise InvalidInput(Msg("err.outbound.unknown_action", action=repr(kind)), field="action") from exc
    targets = _TARGETS[kind]
    for name, value in (("group", group), ("member", member)):
        need = targets.get(name)
        if need == "required" and value is None:
            raise InvalidInput(
                Msg("err.action.needs_target", action=kind.value, target=_TARGET_NAMES[name]), field=f"{name}_id"
            )
        if need is None and value is not None:
            raise InvalidInput(
                Msg("err.action.no_target", action=kind.value, target=_TARGET_NAMES[name]), field=f"{name}_id"
            )
    f = _Fields(payload)
    known = {fld.name for fld in fields(ACTION_CLASSES[kind])} - {"group", "member"}
    for name in payload:
        if name not in known and name not in RESERVED_PAYLOAD_KEYS:
            raise InvalidInput(
                Msg(
                    "err.action.field",
                    field=f"payload.{name}",
                    reason=Msg("err.action.unknown_field", action=kind.value),
                ),
                field=f"payload.{name}",
            )
    match kind:
        case ActionKind.SEND_GROUP_MESSAGE:
            msg_type = f.text("msg_type", required=False) or "text"
            if msg_type not in MSG_TYPES:
                raise InvalidInput(
                    Msg(
                        "err.action.field",
                        field="payload.msg_type",
                        reason=Msg("err.action.unknown_msg_type", value=repr(msg_type)),
                    ),
                    field="payload.msg_type",
                )
            material = f.text("material", required=False)
            text = f.text("text", required=msg_type == "text" or material is None) or ""
            assert group is not None
            return SendGroupMessage(group=group, text=text, msg_type=msg_type, material=material)
        case ActionKind.SEND_WELCOME:
            assert group is not None and member is not None
            return SendWelcome(group=group, member=member, text=f.required_text("text"))
        case ActionKind.SET_WELCOME_MESSAGE:
            return SetWelcomeMessage(group=group, text=f.required_text("text"))
        case ActionKind.DELETE_MESSAGE:
            assert group is not None
            return DeleteMessage(group=group, message=f.required_text("message", max_len=200))
        case ActionKind.MUTE:
            assert group is not None and member is not None
            return Mute(group=group, member=member, seconds=f.integer("seconds"))
        case ActionKind.UNMUTE:
            assert group is not None and member is not None
            return Unmute(group=group, member=member)
        case ActionKind.KICK:
            assert group is not None and member is not None
            return Kick(group=group, member=member, reason=f.text("reason", required=False, max_len=200) or "")
        case ActionKind.CREATE_GROUP:
            return CreateGroup(
                name=f.required_text("name", max_len=200),
                capacity=f.integer("capacity"),
                owner=f.text("owner", required=False, max_len=128),
            )
        case ActionKind.CREATE_INVITE_LINK:
            assert group is not None
            return CreateInviteLink(
                group=group,
                name=f.text("name", required=False, max_len=64) or "",
                member_limit=f.integer("member_limit"),
                expire_at=f.instant("expire_at"),
                channel=f.text("channel", required=False, max_len=64),
            )
        case ActionKind.REVOKE_INVITE_LINK:
            assert group is not None
            return RevokeInviteLink(group=group, link=f.required_text("link", max_len=500))
        case ActionKind.SET_TAGS:
            assert member is not None
            add, remove = f.words("add"), f.words("remove")
            if not add and not remove:
                raise InvalidInput(Msg("err.action.no_tags"), field="payload.add")
            return SetTags(member=member, add=add, remove=remove)
        case ActionKind.SYNC_INTERCEPT_RULES:
            return SyncInterceptRules(
                name=f.required_text("name", max_len=64), words=f.words("words", required=True), group=group
            )
    raise AssertionError(kind)  # pragma: no cover - the match is exhaustive
