"""Action kinds for entry and membership administration: join requests, bans, the group
description, editing an invite link (platform-neutral; first used by Telegram).

Imported at the end of ``qunyun.connectors.actions`` so the registry holds every kind. Task
titles (for platforms that cannot do them, and a person does) are ``task.title.<kind>`` in the
``telegram`` locale catalogues."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Self

from qunyun.connectors.actions import GROUP, GROUP_MEMBER, ActionBase, invite_link_capabilities
from qunyun.connectors.base import Capability

if TYPE_CHECKING:
    from qunyun.connectors.actions import PayloadFields

# Telegram's limit on a chat description; other platforms' are longer.
MAX_DESCRIPTION = 255


@dataclass(frozen=True)
class ApproveJoinRequest(
    ActionBase, kind="approve_join_request", capability=Capability.JOIN_REQUESTS, targets=GROUP_MEMBER
):
    """Let in a member who asked to join (an entry threshold was met)."""

    group: str
    member: str


@dataclass(frozen=True)
class DeclineJoinRequest(
    ActionBase, kind="decline_join_request", capability=Capability.JOIN_REQUESTS, targets=GROUP_MEMBER
):
    """Turn down a member's request to join."""

    group: str
    member: str


@dataclass(frozen=True)
class Ban(ActionBase, kind="ban", capability=Capability.KICK, targets=GROUP_MEMBER):
    """Remove a member and keep them out until ``until`` (None: until unbanned)."""

    group: str
    member: str
    until: datetime | None = None
    reason: str = ""

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        assert group is not None and member is not None
        return cls(
            group=group,
            member=member,
            until=f.instant("until"),
            reason=f.text("reason", required=False, max_len=200) or "",
        )


@dataclass(frozen=True)
class Unban(ActionBase, kind="unban", capability=Capability.KICK, targets=GROUP_MEMBER):
    """Let a banned member join again (they are not added back)."""

    group: str
    member: str


@dataclass(frozen=True)
class SetGroupDescription(
    ActionBase, kind="set_group_description", capability=Capability.SET_DESCRIPTION, targets=GROUP
):
    """Replace the group's description (empty: remove it)."""

    group: str
    text: str = ""

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        assert group is not None
        return cls(group=group, text=f.text("text", required=False, max_len=MAX_DESCRIPTION) or "")


@dataclass(frozen=True)
class EditInviteLink(ActionBase, kind="edit_invite_link", capability=Capability.CREATE_INVITE_LINK, targets=GROUP):
    """Change an invite link's name, member limit or expiry (what is left out stays as it is on
    platforms that keep it; Telegram replaces all three)."""

    group: str
    link: str
    name: str = ""
    member_limit: int | None = None
    expire_at: datetime | None = None

    def required_capabilities(self) -> frozenset[Capability]:
        return invite_link_capabilities(self.member_limit, self.expire_at)

    @classmethod
    def parse(cls, f: PayloadFields, *, group: str | None, member: str | None) -> Self:
        assert group is not None
        return cls(
            group=group,
            link=f.required_text("link", max_len=500),
            name=f.text("name", required=False, max_len=64) or "",
            member_limit=f.integer("member_limit"),
            expire_at=f.instant("expire_at"),
        )
