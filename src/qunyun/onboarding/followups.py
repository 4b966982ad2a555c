"""Follow-ups of live membership events, run by ingestion in the event's own transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.connectors.actions import SendWelcome
from qunyun.connectors.base import get_profile
from qunyun.connectors.dispatch import request_action
from qunyun.errors import InvalidInput
from qunyun.ingestion.followups import LiveEvent, follow_up
from qunyun.models import Group, Playbook
from qunyun.models.event import EventKind


def has_profile(platform: str) -> bool:
    try:
        get_profile(platform)
    except InvalidInput:
        return False
    return True


@follow_up(EventKind.MEMBER_JOINED)
def welcome_new_members(session: Session, org_id: int, events: list[LiveEvent]) -> None:
    """Greet each new member of a group whose playbook has a welcome message.

    Inline: one query per ingest call, and the greeting is an outbound action (its own job),
    keyed by the join event, so a redelivered join never greets twice; where the platform
    cannot post it, it becomes a task for the group owner.
    """
    joins = [e for e in events if e.group_id and e.member_id]
    if not joins:
        return
    welcome = {
        group_id: (platform, text)
        for group_id, platform, text in session.execute(
            select(Group.id, Group.platform, Playbook.welcome_text)
            .join(Playbook, Playbook.id == Group.playbook_id)
            .where(Group.id.in_({e.group_id for e in joins}), Playbook.welcome_text != "")
        )
    }
    for e in joins:
        if e.group_id not in welcome:
            continue
        assert e.member_id is not None
        platform, text = welcome[e.group_id]
        if not has_profile(platform):
            continue  # events from a file or an unknown platform: there is no one to greet through
        request_action(
            session,
            org_id,
            SendWelcome.kind,
            group_id=e.group_id,
            member_id=e.member_id,
            payload={"text": text},
            idempotency_key=f"welcome:{e.event_id}",
        )
