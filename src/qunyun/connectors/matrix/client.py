"""The Matrix connector: one bot account (or one application service) on one homeserver.

``perform`` carries out an action with the client-server API; ``normalize`` turns room events
into interchange events (:mod:`~qunyun.connectors.matrix.normalize`).

Idempotency (``key_idempotent``): every call is safe to repeat with the same key.

- Sends and redactions use a transaction id derived from the key (SHA-256); the homeserver
  answers a repeated ``PUT …/send/…/{txnId}`` of the same access token with the first event id.
- Rooms (``create_group``, the direct room of a private message) are created with an alias
  derived from the key: a repeat finds the alias taken and answers with the room it points to.
- Invite links are aliases derived from the key (taken by the same room: done).
- Kick, ban, invite and power levels are states: a repeat finds the state reached and is done.

The homeserver forgets transaction ids after a while (Synapse: at least 30 minutes, per device):
a send repeated later than that may be sent twice. There is no way to ask what became of a
transaction id, so the connector does not ``reconcile``; an attempt that may have reached the
homeserver (its worker died, the connection broke) is settled by repeating it with the same
transaction id within ``key_memory`` of the first attempt, and handed to a person after that.
"""

from __future__ import annotations

import hashlib
import html
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote, unquote

from nio import Api
from nio.api import RoomPreset, RoomVisibility

from qunyun.connectors.actions import (
    Action,
    CreateGroup,
    CreateInviteLink,
    DeleteMessage,
    Kick,
    Mute,
    RemindNameCard,
    RevokeInviteLink,
    SendGroupMessage,
    SendPrivateMessage,
    SendWelcome,
    Unmute,
    WelcomeMembers,
)
from qunyun.connectors.actions_entry import Ban, SetGroupDescription, Unban
from qunyun.connectors.actions_rooms import InviteMember
from qunyun.connectors.base import ActionResult, Connector, PlatformProfile, UnsupportedAction
from qunyun.connectors.matrix.api import MatrixApi, MatrixError
from qunyun.connectors.matrix.capabilities import PROFILE
from qunyun.connectors.matrix.normalize import normalize_events

log = logging.getLogger(__name__)

MATRIX_TO = "https://matrix.to/#/"
ALIAS_PREFIX = "qy-"


def txn_id(idempotency_key: str, step: str = "") -> str:
    """The transaction id of the call made for ``idempotency_key`` (and a step of it)."""
    return hashlib.sha256(f"{idempotency_key}\x00{step}".encode()).hexdigest()[:32]


def alias_localpart(user_id: str, idempotency_key: str, kind: str) -> str:
    """The alias made for ``idempotency_key`` by ``user_id``: keys repeat across organisations
    and installations sharing a homeserver, so the account is part of it."""
    digest = hashlib.sha256(f"{user_id}\x00{idempotency_key}".encode()).hexdigest()[:16]
    return f"{ALIAS_PREFIX}{kind}-{digest}"


def matrix_to(target: str) -> str:
    """A matrix.to link to a room alias, room id or user id."""
    return MATRIX_TO + quote(target, safe="@:!$")


def alias_of_link(link: str) -> str | None:
    """The room alias a matrix.to link points to (``#name:server``); None for anything else."""
    if not link.startswith(MATRIX_TO):
        return None
    target = unquote(link[len(MATRIX_TO) :]).split("?", 1)[0]
    return target if target.startswith("#") and ":" in target else None


def pill(user_id: str) -> str:
    return f'<a href="{html.escape(matrix_to(user_id))}">{html.escape(user_id)}</a>'


class MatrixConnector(Connector):
    """A connector acting as ``user_id`` on ``homeserver`` with ``access_token`` (a bot's token,
    or an application service's ``as_token``)."""

    key_idempotent = True
    key_memory = timedelta(minutes=30)  # Synapse's transaction cache, counted from before the first PUT
    reconciles = False

    def __init__(
        self,
        homeserver: str,
        access_token: str,
        *,
        user_id: str | None = None,
        profile: PlatformProfile = PROFILE,
        api: MatrixApi | None = None,
    ) -> None:
        self.profile = profile
        self.api = api or MatrixApi(homeserver, access_token)
        self._user_id = user_id

    def __repr__(self) -> str:
        return f"MatrixConnector({self.api.homeserver!r}, user_id={self._user_id!r})"

    # -- who we are ------------------------------------------------------------------------------

    @property
    def user_id(self) -> str:
        """The account's user id (asked of the homeserver once when not configured)."""
        if self._user_id is None:
            self._user_id = str(self.api.call(Api.whoami(self.api.token))["user_id"])
        return self._user_id

    @property
    def server_name(self) -> str:
        return self.user_id.split(":", 1)[1]

    # -- inbound ---------------------------------------------------------------------------------

    def normalize(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        events = raw.get("events")
        if not isinstance(events, list):
            return []
        return normalize_events(events, own_user=self._user_id)

    # -- outbound --------------------------------------------------------------------------------

    def perform(self, action: Action, idempotency_key: str) -> ActionResult:
        try:
            return self._perform(action, idempotency_key)
        except MatrixError as exc:  # the homeserver refused: the same call would be refused again
            return ActionResult.failed(f"{exc.status} {exc.errcode}".strip())

    def _perform(self, action: Action, idempotency_key: str) -> ActionResult:
        token = self.api.token
        match action:
            case SendGroupMessage(group=room, text=text, material=material):
                body = text if not material else (f"{text}\n{material}" if text else material)
                return self._send(room, {"msgtype": "m.text", "body": body}, idempotency_key)
            case SendWelcome(group=room, member=member, text=text):
                return self._send(room, _mentioning(text, (member,)), idempotency_key)
            case (
                WelcomeMembers(group=room, text=text, mentions=mentions)
                | RemindNameCard(group=room, text=text, mentions=mentions)
            ):
                return self._send(room, _mentioning(text, mentions), idempotency_key)
            case SendPrivateMessage(member=member, text=text):
                room = self._room_once(
                    idempotency_key, "dm", invite=[member], is_direct=True, preset=RoomPreset.trusted_private_chat
                )
                return self._send(room, {"msgtype": "m.text", "body": text}, idempotency_key)
            case DeleteMessage(group=room, message=event_id):
                answer = self.api.call(Api.room_redact(token, room, event_id, txn_id(idempotency_key)))
                return ActionResult.done(str(answer.get("event_id") or event_id))
            case Kick(group=room, member=member, reason=reason):
                return self._membership(Api.room_kick(token, room, member, reason or None), room, member, "kick")
            case Mute(group=room, member=member, seconds=seconds):
                if seconds is not None:
                    raise UnsupportedAction("Matrix has no timed mute: a person mutes and unmutes")
                return self._power(room, member, mute=True)
            case Unmute(group=room, member=member):
                return self._power(room, member, mute=False)
            case InviteMember(group=room, member=member):
                return self._membership(Api.room_invite(token, room, member), room, member, "invite")
            case CreateGroup(name=name, owner=owner):
                room = self._room_once(
                    idempotency_key, "room", name=name, invite=[owner] if owner else [], preset=RoomPreset.public_chat
                )
                return ActionResult.done(room)
            case CreateInviteLink(group=room):
                return self._alias_link(room, idempotency_key)
            case RevokeInviteLink(group=room, link=link):
                return self._revoke(room, link)
            case Ban(group=room, member=member, until=until, reason=reason):
                if until is not None:
                    raise UnsupportedAction("Matrix bans do not expire: a person bans and unbans")
                return self._membership(Api.room_ban(token, room, member, reason or None), room, member, "ban")
            case Unban(group=room, member=member):
                return self._membership(Api.room_unban(token, room, member), room, member, "unban")
            case SetGroupDescription(group=room, text=text):
                self.api.call(Api.room_put_state(token, room, "m.room.topic", {"topic": text}))
                return ActionResult.done(room)
        raise UnsupportedAction(f"Matrix does not perform {action.kind.value}")

    def _send(self, room: str, content: dict[str, Any], key: str) -> ActionResult:
        answer = self.api.call(Api.room_send(self.api.token, room, "m.room.message", content, txn_id(key)))
        return ActionResult.done(str(answer["event_id"]))

    def _room_once(
        self,
        key: str,
        kind: str,
        *,
        name: str | None = None,
        invite: Sequence[str] = (),
        is_direct: bool = False,
        preset: RoomPreset = RoomPreset.private_chat,
    ) -> str:
        """Create a room for ``key`` once: its alias is derived from the key, so a repeat finds
        the alias taken and answers with the room it names."""
        localpart = alias_localpart(self.user_id, key, kind)
        request = Api.room_create(
            self.api.token,
            visibility=RoomVisibility.private,
            alias=localpart,
            name=name,
            is_direct=is_direct,
            preset=preset,
            invite=list(invite),
        )
        try:
            return str(self.api.call(request)["room_id"])
        except MatrixError as exc:
            if exc.errcode != "M_ROOM_IN_USE":
                raise
        resolved = self.api.call(Api.room_resolve_alias(f"#{localpart}:{self.server_name}"))
        return str(resolved["room_id"])

    def _membership(self, request: tuple[str, str, str], room: str, member: str, what: str) -> ActionResult:
        try:
            self.api.call(request)
        except MatrixError as exc:
            if exc.status != 403:
                raise
            # Done already (a repeat), or refused: the member's state in the room tells which.
            state = self._member_state(room, member)
            reached = {
                "kick": ("leave", "ban", None),
                "ban": ("ban",),
                "unban": ("leave", "join", "invite", None),
                "invite": ("invite", "join"),
            }[what]
            if state not in reached:
                raise
        return ActionResult.done(member)

    def _member_state(self, room: str, member: str) -> str | None:
        try:
            content = self.api.call(Api.room_get_state_event(self.api.token, room, "m.room.member", member))
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise
        membership = content.get("membership")
        return membership if isinstance(membership, str) else None

    def _power(self, room: str, member: str, *, mute: bool) -> ActionResult:
        """Mute: the member's power level one below ``events_default`` (they may not send
        messages); unmute: their own level removed (back to ``users_default``)."""
        levels = self.api.call(Api.room_get_state_event(self.api.token, room, "m.room.power_levels"))
        users = dict(levels.get("users") or {})
        events_default = levels.get("events_default", 0)
        if mute:
            target = (events_default if isinstance(events_default, int) else 0) - 1
            if users.get(member) == target:
                return ActionResult.done(member)
            users[member] = target
        else:
            if member not in users:
                return ActionResult.done(member)
            users.pop(member)
        levels["users"] = users
        self.api.call(Api.room_put_state(self.api.token, room, "m.room.power_levels", levels))
        return ActionResult.done(member)

    def _alias_link(self, room: str, key: str) -> ActionResult:
        """A matrix.to link to a new alias of the room (anyone may join the room through it)."""
        alias = f"#{alias_localpart(self.user_id, key, 'link')}:{self.server_name}"
        try:
            self.api.call(Api.room_put_alias(self.api.token, alias, room))
        except MatrixError as exc:
            if exc.status != 409:
                raise
            if self.api.call(Api.room_resolve_alias(alias)).get("room_id") != room:
                raise
        rules = {"join_rule": "public"}
        self.api.call(Api.room_put_state(self.api.token, room, "m.room.join_rules", rules))
        return ActionResult.done(matrix_to(alias), detail=alias)

    def _revoke(self, room: str, link: str) -> ActionResult:
        alias = alias_of_link(link)
        if alias is None:
            return ActionResult.failed("not a matrix.to link to a room alias")
        try:
            self.api.call(Api.room_delete_alias(self.api.token, alias))
        except MatrixError as exc:
            if exc.status != 404:
                raise
        return ActionResult.done(link)


def _mentioning(text: str, mentions: Sequence[str]) -> dict[str, Any]:
    """An m.text message that mentions ``mentions`` (m.mentions, and pills in the HTML body)."""
    content: dict[str, Any] = {"msgtype": "m.text", "m.mentions": {"user_ids": list(mentions)}}
    if not mentions:
        content["body"] = text
        return content
    content["body"] = " ".join(mentions) + " " + text
    content["format"] = "org.matrix.custom.html"
    content["formatted_body"] = " ".join(pill(m) for m in mentions) + " " + html.escape(text)
    return content
