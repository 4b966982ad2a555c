"""The Telegram connector: normalize updates, perform actions through the Bot API.

Migrated groups: qunyun keeps one group under the chat id it was first seen with. A migration
is ingested as a ``group.created`` event of the group whose id names the new chat id
(``updates.MIGRATION_PREFIX``); the connector learns the pair from the update itself and, in a
process that did not see it, from that event (one indexed read, remembered). Actions on the
group go to the new chat id; a 400 with ``migrate_to_chat_id`` teaches it too.

Limits: Telegram allows about 20 messages a minute in one group and 30 a second overall. Sends
over a group's budget are refused here with :class:`RateLimited` (a ``TransientError``: the
dispatcher tries again later) before calling; the overall rate is kept by waiting. A 429 from
Telegram is waited out in place when ``retry_after`` is short, else raised with the wait, and
every call of the bot is held back until it has passed. The budgets are the process's own, or
shared by all worker processes through Redis when ``QUNYUN_REDIS_URL`` is set
(:mod:`qunyun.connectors.pace`).
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from qunyun.connectors.actions import (
    Action,
    CreateInviteLink,
    DeleteMessage,
    Kick,
    Mute,
    RemindNameCard,
    RevokeInviteLink,
    SendGroupMessage,
    SendWelcome,
    SetWelcomeMessage,
    Unmute,
    WelcomeMembers,
)
from qunyun.connectors.actions_entry import (
    ApproveJoinRequest,
    Ban,
    DeclineJoinRequest,
    EditInviteLink,
    SetGroupDescription,
    Unban,
)
from qunyun.connectors.base import ActionResult, Connector, TransientError, UnsupportedAction, missing_capabilities
from qunyun.connectors.pace import LocalWindows, Windows
from qunyun.connectors.telegram.botapi import BotApi, BotApiError, ChatMigrated, RateLimited
from qunyun.connectors.telegram.capabilities import PROFILE
from qunyun.connectors.telegram.updates import MIGRATION_PREFIX, join_requests, migration_of, parse_update, to_events
from qunyun.models import Connection

GROUP_PER_MINUTE = 20
OVERALL_PER_SECOND = 30
WAIT_IN_PLACE = 5.0  # a 429 asking for at most this many seconds is waited out, then retried once
# After waiting out a 429, what may still be left of its block (clocks, the trip to Redis) for it
# to be lifted: a block with more left was set since, by another call of the bot.
UNBLOCK_SLACK = 0.5
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendDocument", "sendVideo"})
_MEDIA = {"image": ("sendPhoto", "photo"), "file": ("sendDocument", "document"), "video": ("sendVideo", "video")}
MUTED = {
    "can_send_messages": False,
    "can_send_audios": False,
    "can_send_documents": False,
    "can_send_photos": False,
    "can_send_videos": False,
    "can_send_video_notes": False,
    "can_send_voice_notes": False,
    "can_send_polls": False,
    "can_send_other_messages": False,
    "can_add_web_page_previews": False,
}
UNMUTED = {key: True for key in MUTED}
# until_date closer than 30 s or further than 366 days means "for ever" to Telegram.
MIN_UNTIL, MAX_UNTIL = 30, 366 * 86400


class Limiter:
    """A bot's budgets: a sliding minute window of sends per group, a per-second pace of all its
    calls, and a block after a 429. Kept in :mod:`~qunyun.connectors.pace` windows: this
    process's own by default, Redis's (shared by every worker process) with ``QUNYUN_REDIS_URL``;
    ``prefix`` names the bot there."""

    def __init__(
        self,
        per_group: int = GROUP_PER_MINUTE,
        per_second: int = OVERALL_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
        *,
        windows: Windows | None = None,
        prefix: str = "telegram:",
    ) -> None:
        self.per_group, self.per_second = per_group, per_second
        self.windows = windows or LocalWindows(clock)
        self.prefix = prefix

    def before_call(self, group: str | None, send: bool) -> None:
        """Refuse a send over its group's minute budget (:class:`RateLimited`, nothing taken) or
        any call while the bot is blocked; wait for the per-second pace."""
        blocked = self.windows.blocked(self.prefix + "blocked")
        if blocked > 0:
            raise RateLimited(round(blocked, 3))
        if send and group is not None:
            wait = self.windows.take(f"{self.prefix}group:{group}", self.per_group, 60)
            if wait > 0:
                raise RateLimited(round(wait, 3))
        while (wait := self.windows.take(self.prefix + "calls", self.per_second, 1)) > 0:
            time.sleep(wait)

    def block(self, seconds: float) -> None:
        self.windows.block(self.prefix + "blocked", seconds)

    def unblock(self, within: float | None = None) -> None:
        """Lift the bot's block (with ``within``: only if no more than that is left of it)."""
        self.windows.unblock(self.prefix + "blocked", within)


class TelegramConnector(Connector):
    profile = PROFILE
    key_idempotent = False
    reconciles = False

    def __init__(
        self,
        api: BotApi,
        *,
        org_id: int | None = None,
        engine: Engine | Callable[[], Engine] | None = None,
        limiter: Limiter | None = None,
        wait_in_place: float = WAIT_IN_PLACE,
    ) -> None:
        self.api = api
        self.org_id = org_id
        self._engine = engine
        self.limiter = limiter or Limiter()
        self.wait_in_place = wait_in_place
        self._lock = threading.Lock()
        self._to_group: dict[str, str] = {}  # new chat id → group external id (the first chat id)
        self._to_chat: dict[str, str] = {}  # group external id → the chat id in use now
        self._looked_up: dict[str, float] = {}

    @property
    def bot_id(self) -> str:
        return self.api.bot_id

    # --- migrations ---------------------------------------------------------------------------

    def learn_migration(self, old_chat: str, new_chat: str) -> None:
        with self._lock:
            group = self._to_group.get(old_chat, old_chat)
            self._to_group[new_chat] = group
            self._to_chat[group] = new_chat

    def group_of(self, chat: str) -> str:
        """The group external id of ``chat``: itself, or the first id of a migrated group."""
        known = self._to_group.get(chat)
        if known is not None:
            return known
        if chat.startswith("-100"):
            self._look_up(chat)
        return self._to_group.get(chat, chat)

    def chat_of(self, group: str) -> str:
        return self._to_chat.get(group, group)

    def _look_up(self, chat: str) -> None:
        """Find the migration event naming ``chat`` as the new id (at most once a minute per chat)."""
        engine = self._engine() if callable(self._engine) else self._engine
        if engine is None or self.org_id is None:
            return
        now = time.monotonic()
        if now - self._looked_up.get(chat, -1e9) < 60:
            return
        self._looked_up[chat] = now
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT g.external_id FROM events e JOIN groups g ON g.id = e.group_id"
                    " WHERE e.org_id = :org AND e.external_id = :id"
                ),
                {"org": self.org_id, "id": f"{MIGRATION_PREFIX}{self.bot_id}:{chat}"},
            ).scalar()
        if found is not None:
            self.learn_migration(str(found), chat)

    # --- inbound ------------------------------------------------------------------------------

    def normalize(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        update = parse_update(raw)
        migration = migration_of(update)
        if migration is not None:
            self.learn_migration(migration.old_chat, migration.new_chat)
        return to_events(update, bot=self.bot_id, resolve=self.group_of)

    def record_extras(self, session: Session, connection: Connection, raw: Mapping[str, Any]) -> None:
        """Store the join request an update carries and decide it (``livecodes.join_requests``)."""
        if "chat_join_request" not in raw:
            return
        from qunyun.livecodes.join_requests import Requested, record_requests

        requests = [
            Requested(
                chat=r.chat,
                group=self.group_of(r.chat),
                user=r.user,
                name=r.name,
                at=r.at,
                link=r.link,
                username=r.username,
                bio=r.bio,
            )
            for r in join_requests(parse_update(raw))
        ]
        if requests:
            record_requests(session, connection, requests)

    # --- outbound -----------------------------------------------------------------------------

    def perform(self, action: Action, idempotency_key: str) -> ActionResult:
        missing = missing_capabilities(action, self.capabilities)
        if missing:
            raise UnsupportedAction(f"Telegram cannot {action.kind}: needs {', '.join(sorted(missing))}")
        group = getattr(action, "group", None)
        try:
            return self._perform(action, group)
        except BotApiError as exc:
            return ActionResult.failed(f"telegram {exc.code}: {exc.description}")

    def _call(self, method: str, params: dict[str, Any], group: str | None = None) -> Any:
        """Call ``method`` for ``group`` (its chat id is filled in as ``chat_id``), following a
        migration once and waiting out a short 429 once."""
        for attempt in range(3):
            if group is not None:
                params["chat_id"] = int(self.chat_of(group))
            self.limiter.before_call(group, method in SEND_METHODS and attempt == 0)
            try:
                return self.api.call(method, params)
            except ChatMigrated as exc:
                if group is None or attempt == 2:
                    raise
                self.learn_migration(str(params["chat_id"]), str(exc.new_chat_id))
            except RateLimited as exc:
                self.limiter.block(exc.retry_after)
                if exc.retry_after > self.wait_in_place or attempt == 2:
                    raise
                time.sleep(exc.retry_after)
                # Lift what is left of the block just waited out, not a longer one another
                # process (sharing the bot's budget) has set since: that one holds this call too.
                self.limiter.unblock(within=UNBLOCK_SLACK)
        raise TransientError(f"{method}: gave up")  # pragma: no cover - the loop returns or raises

    def _perform(self, action: Action, group: str | None) -> ActionResult:
        match action:
            case SendGroupMessage():
                return self._send(action)
            case SendWelcome():
                return self._sent(self._call("sendMessage", _html(action.text, (action.member,)), action.group))
            case WelcomeMembers() | RemindNameCard():
                return self._sent(self._call("sendMessage", _html(action.text, action.mentions), action.group))
            case SetWelcomeMessage():
                # Nothing to configure on Telegram: qunyun's onboarding posts the welcome on each join.
                return ActionResult.done(detail="qunyun posts the welcome itself")
            case DeleteMessage():
                self._call("deleteMessage", {"message_id": int(action.message)}, action.group)
                return ActionResult.done(action.message)
            case Mute():
                until = _until(self.now(), action.seconds)
                self._call(
                    "restrictChatMember",
                    {"user_id": int(action.member), "permissions": MUTED, "until_date": until},
                    action.group,
                )
                return ActionResult.done()
            case Unmute():
                self._call("restrictChatMember", {"user_id": int(action.member), "permissions": UNMUTED}, action.group)
                return ActionResult.done()
            case Kick():
                # Removed, free to come back: banned, then the ban lifted.
                self._call("banChatMember", {"user_id": int(action.member)}, action.group)
                self._call("unbanChatMember", {"user_id": int(action.member), "only_if_banned": True}, action.group)
                return ActionResult.done()
            case Ban():
                until = None if action.until is None else int(action.until.timestamp())
                self._call("banChatMember", {"user_id": int(action.member), "until_date": until}, action.group)
                return ActionResult.done()
            case Unban():
                self._call("unbanChatMember", {"user_id": int(action.member), "only_if_banned": True}, action.group)
                return ActionResult.done()
            case CreateInviteLink():
                result = self._call(
                    "createChatInviteLink",
                    _link_params(action.name, action.member_limit, action.expire_at, action.join_request),
                    action.group,
                )
                return ActionResult.done(str(result["invite_link"]))
            case EditInviteLink():
                params = _link_params(action.name, action.member_limit, action.expire_at)
                params["invite_link"] = action.link
                result = self._call("editChatInviteLink", params, action.group)
                return ActionResult.done(str(result["invite_link"]))
            case RevokeInviteLink():
                result = self._call("revokeChatInviteLink", {"invite_link": action.link}, action.group)
                return ActionResult.done(str(result["invite_link"]))
            case ApproveJoinRequest():
                self._call("approveChatJoinRequest", {"user_id": int(action.member)}, action.group)
                return ActionResult.done()
            case DeclineJoinRequest():
                self._call("declineChatJoinRequest", {"user_id": int(action.member)}, action.group)
                return ActionResult.done()
            case SetGroupDescription():
                self._call("setChatDescription", {"description": action.text}, action.group)
                return ActionResult.done()
        raise UnsupportedAction(f"Telegram connector does not perform {action.kind}")

    def _send(self, action: SendGroupMessage) -> ActionResult:
        media = _MEDIA.get(action.msg_type)
        if action.material and media is not None:
            method, field = media
            params: dict[str, Any] = {field: action.material}
            if action.text:
                params["caption"] = action.text[:1024]
            return self._sent(self._call(method, params, action.group))
        body = action.text if not action.material else f"{action.text}\n{action.material}".strip()
        return self._sent(self._call("sendMessage", {"text": body}, action.group))

    @staticmethod
    def _sent(result: Any) -> ActionResult:
        return ActionResult.done(str(result["message_id"]))


def _html(body: str, mentions: tuple[str, ...]) -> dict[str, Any]:
    """An HTML message: the text escaped, then one mention link per member (a ``tg://user`` link
    notifies the member without needing their username)."""
    links = " ".join(f'<a href="tg://user?id={int(member)}">@{i + 1}</a>' for i, member in enumerate(mentions))
    escaped = html.escape(body, quote=False)
    return {"text": f"{links} {escaped}".strip() if links else escaped, "parse_mode": "HTML"}


def _until(now: datetime, seconds: int | None) -> int | None:
    if seconds is None:
        return None  # until unmuted
    seconds = min(max(seconds, MIN_UNTIL), MAX_UNTIL)
    return int(now.timestamp()) + seconds


def _link_params(
    name: str, member_limit: int | None, expire_at: datetime | None, join_request: bool = False
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if join_request:
        params["creates_join_request"] = True  # Telegram refuses it together with a member limit
    if name:
        params["name"] = name[:32]
    if member_limit is not None:
        params["member_limit"] = min(member_limit, 99_999)
    if expire_at is not None:
        params["expire_date"] = int(expire_at.timestamp())
    return params
