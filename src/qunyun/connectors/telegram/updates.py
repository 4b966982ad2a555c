"""Telegram Bot API updates → interchange-format v1 events (pure: no network, no database).

What becomes what (groups and supergroups only; private chats and channels are ignored):

- ``message`` with text, a caption or media → ``message.posted`` (``message`` = the message id,
  ``member_name`` = the sender's full name); service messages are not posts;
- ``chat_member`` (needs ``chat_member`` in ``allowed_updates`` and the bot an admin): a change
  from outside the chat to inside → ``member.joined`` with ``link`` = the invite link when
  Telegram reports one (only on joins through a link, not on rejoins or public joins); inside to
  outside → ``member.left`` with ``reason`` ``removed`` when banned or removed by someone else,
  ``left`` when the member left;
- ``my_chat_member`` adding the bot, ``group_chat_created`` / ``supergroup_chat_created`` and
  ``new_chat_title`` → ``group.created`` with the title (for a known group: a rename);
- ``migrate_to_chat_id`` / ``migrate_from_chat_id``: the basic group became a supergroup with a
  new chat id. qunyun keeps ONE group under the chat id it was first seen with: the migration is
  recorded as a ``group.created`` event of the group whose id names the new chat id
  (``MIGRATION_PREFIX``), and
  every later update of the new chat id is reported under the old one (see ``client.py``);
- ``chat_join_request`` produces no event (the interchange has no kind for it):
  :func:`join_requests` reads them, and the connector stores them in the ingest's transaction
  (``TelegramConnector.record_extras`` → ``qunyun.livecodes.join_requests``), where they are
  decided as entry thresholds.

``new_chat_members`` / ``left_chat_member`` service messages are ignored: ``chat_member`` reports
the same joins with the invite link, and counting both would count each join twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from telegram import ChatMember, Message, Update, User

from qunyun.errors import InvalidInput
from qunyun.locale import Msg

GROUP_TYPES = frozenset({"group", "supergroup"})
INSIDE = frozenset({ChatMember.OWNER, ChatMember.ADMINISTRATOR, ChatMember.MEMBER})
OUTSIDE = frozenset({ChatMember.LEFT, ChatMember.BANNED})
# Event id of a migration: f"{MIGRATION_PREFIX}{bot}:{new chat id}"; its group is the old one.
MIGRATION_PREFIX = "tgmig:"
ALLOWED_UPDATES = ("message", "chat_member", "my_chat_member", "chat_join_request")
MAX_NAME = 200

Resolve = Callable[[str], str]


@dataclass(frozen=True)
class JoinRequest:
    chat: str
    user: str
    name: str
    at: datetime
    link: str | None
    username: str = ""
    bio: str = ""


@dataclass(frozen=True)
class Migration:
    old_chat: str
    new_chat: str


def parse_update(raw: Mapping[str, Any]) -> Update:
    """The update as python-telegram-bot's types; ``InvalidInput`` when it is not one."""
    try:
        update = Update.de_json(dict(raw), None)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(Msg("err.telegram.update", reason=type(exc).__name__), field="update") from None
    if update is None:
        raise InvalidInput(Msg("err.telegram.update", reason="empty"), field="update")
    return update


def _name(user: User | None) -> str | None:
    if user is None:
        return None
    name = user.full_name.strip()
    return name[:MAX_NAME] if name else None


def _is_member(member: ChatMember) -> bool:
    if member.status in INSIDE:
        return True
    if member.status == ChatMember.RESTRICTED:
        return bool(getattr(member, "is_member", False))
    return False


def _msg_type(message: Message) -> str | None:
    if message.text is not None:
        return "text"
    if message.photo:
        return "image"
    if message.video or message.video_note or message.animation:
        return "video"
    if message.voice or message.audio:
        return "voice"
    if message.document:
        return "file"
    if message.contact:
        return "card"
    if message.sticker or message.poll or message.location or message.venue or message.dice:
        return "other"
    return None  # a service message


def migration_of(update: Update) -> Migration | None:
    """The group → supergroup migration an update reports, if any."""
    message = update.message
    if message is None:
        return None
    if message.migrate_to_chat_id is not None:
        return Migration(str(message.chat.id), str(message.migrate_to_chat_id))
    if message.migrate_from_chat_id is not None:
        return Migration(str(message.migrate_from_chat_id), str(message.chat.id))
    return None


def to_events(update: Update, *, bot: str, resolve: Resolve) -> list[dict[str, Any]]:
    """The interchange events of one update; ``bot`` (the bot's id) keeps event ids of two bots
    apart, ``resolve`` maps a chat id to its group's external id (a migrated chat's first id)."""
    base = f"tg{bot}:{update.update_id}"
    if update.message is not None:
        return _message_events(update.message, base, bot, resolve)
    if update.chat_member is not None:
        return _member_events(update, base, resolve)
    if update.my_chat_member is not None:
        change = update.my_chat_member
        chat = change.chat
        if chat.type in GROUP_TYPES and _is_member(change.new_chat_member) and not _is_member(change.old_chat_member):
            ts = change.date.isoformat()
            return [
                {
                    "id": base,
                    "ts": ts,
                    "kind": "group.created",
                    "group": resolve(str(chat.id)),
                    "name": chat.title or str(chat.id),
                }
            ]
    return []


def _message_events(message: Message, base: str, bot: str, resolve: Resolve) -> list[dict[str, Any]]:
    chat = message.chat
    if chat.type not in GROUP_TYPES:
        return []
    ts = message.date.isoformat()
    migration = (
        Migration(str(chat.id), str(message.migrate_to_chat_id))
        if message.migrate_to_chat_id is not None
        else Migration(str(message.migrate_from_chat_id), str(chat.id))
        if message.migrate_from_chat_id is not None
        else None
    )
    if migration is not None:
        group = resolve(migration.old_chat)
        event_id = f"{MIGRATION_PREFIX}{bot}:{migration.new_chat}"
        return [{"id": event_id, "ts": ts, "kind": "group.created", "group": group, "name": chat.title or group}]
    group = resolve(str(chat.id))
    if message.new_chat_title is not None:
        return [{"id": base, "ts": ts, "kind": "group.created", "group": group, "name": message.new_chat_title}]
    if message.group_chat_created or message.supergroup_chat_created:
        return [{"id": base, "ts": ts, "kind": "group.created", "group": group, "name": chat.title or group}]
    msg_type = _msg_type(message)
    sender = message.from_user
    if msg_type is None or sender is None or message.sender_chat is not None:
        return []  # a service message, or one posted as a channel or the group itself
    event: dict[str, Any] = {
        "id": base,
        "ts": ts,
        "kind": "message.posted",
        "group": group,
        "member": str(sender.id),
        "msg_type": msg_type,
        "message": str(message.message_id),
    }
    text = message.text if message.text is not None else message.caption
    if text:
        event["text"] = text
    name = _name(sender)
    if name:
        event["member_name"] = name
    return [event]


def _member_events(update: Update, base: str, resolve: Resolve) -> list[dict[str, Any]]:
    change = update.chat_member
    assert change is not None
    chat = change.chat
    if chat.type not in GROUP_TYPES:
        return []
    old, new = change.old_chat_member, change.new_chat_member
    was, now = _is_member(old), _is_member(new)
    if was == now:
        return []  # promoted, restricted, …: not a membership change
    user = new.user
    event: dict[str, Any] = {
        "id": base,
        "ts": change.date.isoformat(),
        "group": resolve(str(chat.id)),
        "member": str(user.id),
    }
    name = _name(user)
    if name:
        event["member_name"] = name
    if now:
        event["kind"] = "member.joined"
        if change.invite_link is not None and change.invite_link.invite_link:
            event["link"] = change.invite_link.invite_link[:200]
            event["scene"] = "link"
        if change.from_user is not None and change.from_user.id != user.id and change.invite_link is None:
            event["inviter"] = str(change.from_user.id)  # added by another member or an admin
            event["scene"] = "invite"
    else:
        event["kind"] = "member.left"
        removed = new.status == ChatMember.BANNED or (change.from_user is not None and change.from_user.id != user.id)
        event["reason"] = "removed" if removed else "left"
    return [event]


def join_requests(update: Update) -> list[JoinRequest]:
    """The join request an update carries (a link with ``creates_join_request``), if any."""
    request = update.chat_join_request
    if request is None or request.chat.type not in GROUP_TYPES:
        return []
    link = request.invite_link.invite_link if request.invite_link is not None else None
    user = request.from_user
    return [
        JoinRequest(
            str(request.chat.id),
            str(user.id),
            _name(user) or "",
            request.date,
            link[:500] if link else None,
            username=(user.username or "")[:64],
            bio=(request.bio or "")[:500],
        )
    ]
