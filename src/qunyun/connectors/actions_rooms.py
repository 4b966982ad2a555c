"""Action kinds: Room administration: inviting a member and other actions a Matrix room needs (platform-neutral).

Imported at the end of ``qunyun.connectors.actions`` so the registry holds every kind."""

from __future__ import annotations

from dataclasses import dataclass

from qunyun.connectors.actions import GROUP_MEMBER, ActionBase
from qunyun.connectors.base import Capability


@dataclass(frozen=True)
class InviteMember(
    ActionBase,
    kind="invite_member",
    # Bringing a member into a group is what an invite link does too; no capability of its own.
    capability=Capability.CREATE_INVITE_LINK,
    targets=GROUP_MEMBER,
    title_key="task.title.invite_member",
):
    """Invite a member (their platform account) into the group: Matrix's /invite."""

    group: str
    member: str
