"""Who the scan page refuses: members on the organisation's blacklist.

A visitor is anonymous until a join is attributed to their scan (the funnel sets
``live_code_visitors.member_id``); from then on their scans of any of the organisation's codes
are checked against the blacklist. Until moderation (M5) keeps a blacklist of its own, a member
is blacklisted when they carry a tag named in :data:`BLACKLIST_TAGS`. Moderation adds its own
check with :func:`register_check`; any check that says yes refuses the visitor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.models import Member, Tag, Tagging

BLACKLIST_TAGS = ("黑名单", "blacklist")

Check = Callable[[Session, int, Sequence[int]], bool]
_checks: list[Check] = []


def register_check(check: Check) -> Check:
    """Add ``check(session, org_id, member_ids) -> bool`` (True: one of them is blacklisted)."""
    if check not in _checks:
        _checks.append(check)
    return check


def unregister_check(check: Check) -> None:
    if check in _checks:
        _checks.remove(check)


def tagged_blacklisted(session: Session, org_id: int, member_ids: Sequence[int]) -> bool:
    """Whether one of the members carries a blacklist tag."""
    found = session.scalar(
        select(Tagging.member_id)
        .join(Tag, Tag.id == Tagging.tag_id)
        .join(Member, Member.id == Tagging.member_id)
        .where(
            Tagging.member_id.in_(list(member_ids)),
            Member.org_id == org_id,
            Tag.org_id == org_id,
            Tag.name.in_(BLACKLIST_TAGS),
        )
        .limit(1)
    )
    return found is not None


def is_blacklisted(session: Session, org_id: int, member_ids: Sequence[int]) -> bool:
    """Whether the scan page refuses a visitor known to be one of ``member_ids``."""
    if not member_ids:
        return False
    return tagged_blacklisted(session, org_id, member_ids) or any(c(session, org_id, member_ids) for c in _checks)
