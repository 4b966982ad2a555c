"""What a decision does on the platform, through ``connectors.dispatch.request_action`` (in the
caller's transaction: nothing is sent before it commits).

- warn: a group message @-mentioning the member and naming the rule (the group's language:
  Chinese by default);
- delete: the message is deleted (it needs the platform's message id);
- mute: the message is deleted and the member muted for the policy's duration;
- kick: the message is deleted and the member removed;
- blacklist: as kick, plus the entry (the decision itself).

Idempotency keys are ``moderation:<event id>:<step>`` (``moderation:d<decision id>:…`` for manual
decisions), so a replayed follow-up requests nothing twice; a kick's key is the membership's
(``moderation:g<group>:m<member>:j<join event>:kick``), so however many messages a member posts
before they are removed, they are removed once. What the platform cannot do becomes
a staff task (dispatch); the task carries the evidence: the rule, the words, an excerpt.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from qunyun.config import get_settings
from qunyun.connectors.dispatch import ActionRef, ActionRequest, request_action
from qunyun.errors import QunyunError
from qunyun.locale import Msg
from qunyun.models import (
    BlacklistScope,
    Group,
    MembershipSpan,
    ModerationDecision,
    OutboundAction,
    OutboundState,
    StaffTask,
)
from qunyun.moderation.types import SEVERITY, Action

MAX_REASON = 200  # a Kick's reason (the payload's limit)
EXCERPT_CHARS = 120


def language() -> str:
    """The language warnings are written in (the deployment's default; Chinese unless set)."""
    return get_settings().default_language


def excerpt(text: str | None, matches: list[dict[str, Any]], limit: int = EXCERPT_CHARS) -> str:
    """The part of ``text`` around the first match (or its start), at most ``limit`` characters."""
    if not text:
        return ""
    if len(text) <= limit:
        return text
    start = int(matches[0]["start"]) if matches else 0
    begin = max(0, min(start - limit // 3, len(text) - limit))
    piece = text[begin : begin + limit]
    return ("…" if begin > 0 else "") + piece + ("…" if begin + limit < len(text) else "")


def evidence(decision: ModerationDecision) -> dict[str, Any]:
    """What a person needs to judge the decision: rule, category, words, excerpt."""
    return {
        "decision_id": decision.id,
        "rule": decision.rule,
        "rule_kind": decision.rule_kind,
        "category": decision.category,
        "words": sorted({m["word"] for m in decision.matches or []}),
        "excerpt": decision.excerpt,
        "detail": decision.detail or {},
    }


def rule_label(decision: ModerationDecision) -> str:
    return decision.rule or Msg("moderation.engine.rule.blacklist").render(language())


def evidence_text(decision: ModerationDecision) -> str:
    """One line of evidence for a task (a kick's reason): rule, words, excerpt."""
    words = "、".join(sorted({m["word"] for m in decision.matches or []}))
    msg = Msg(
        "moderation.engine.evidence.line" if words else "moderation.engine.evidence.line_no_words",
        rule=rule_label(decision),
        words=words,
        excerpt=decision.excerpt,
    )
    return msg.render(language())[:MAX_REASON]


def warning_text(decision: ModerationDecision, name: str) -> str:
    return Msg("moderation.engine.warn.text", name=name, rule=rule_label(decision)).render(language())


def _attach_evidence(session: Session, row: OutboundAction | ActionRef, decision: ModerationDecision) -> None:
    """A task dispatch opened for the action gets the decision's evidence in its detail."""
    if row.state != OutboundState.DELEGATED:
        return  # no task (a task opened later, at run time, has the kick's reason)
    for task in session.scalars(select(StaffTask).where(StaffTask.outbound_action_id == row.id)):
        task.detail = {**(task.detail or {}), "moderation": evidence(decision)}


def _request(
    session: Session,
    decision: ModerationDecision,
    kind: str,
    step: str,
    key_base: str,
    payload: dict[str, Any],
    *,
    group_id: int | None,
    member: bool,
) -> int:
    row = request_action(
        session,
        decision.org_id,
        kind,
        group_id=group_id,
        member_id=decision.member_id if member else None,
        payload=payload,
        idempotency_key=f"{key_base}:{step}",
    )
    _attach_evidence(session, row, decision)
    return row.id


def requests_for(decision: ModerationDecision, *, member_name: str, membership: int | None) -> list[ActionRequest]:
    """The outbound actions an engine decision on a message or a join asks for (none for dry
    runs and ``allow``). ``membership``: the join event of the member's open span in the group
    (the kick's key; None when they are not known as a member: the decision's own key).

    The decision need not be written yet (the engine writes it once, with the actions' ids):
    its keys come from its event, which is new, so the actions are inserted without a look-up
    of their keys (``new_key``); a kick's key is the membership's, which an earlier message may
    have used: the insert then finds it, and it is that kick (dispatch looks it up then)."""
    action = Action(decision.action)
    if decision.dry_run or action is Action.ALLOW or decision.group_id is None or decision.member_id is None:
        return []
    key = f"moderation:{decision.event_id}" if decision.event_id is not None else f"moderation:d{decision.id}"
    steps: list[tuple[str, str, dict[str, Any], bool]] = []  # (kind, step, payload, targets the member)
    if action is Action.WARN:
        steps.append(("send_group_message", "warn", {"text": warning_text(decision, member_name)}, False))
    else:
        if decision.message_ref and SEVERITY[action] >= SEVERITY[Action.DELETE]:
            steps.append(("delete_message", "delete", {"message": decision.message_ref}, False))
        if action is Action.MUTE:
            seconds = decision.mute_seconds
            steps.append(("mute", "mute", {"seconds": seconds} if seconds else {}, True))
        elif action in (Action.KICK, Action.BLACKLIST):
            steps.append(("kick", "kick", {"reason": evidence_text(decision)}, True))
    return [
        ActionRequest(
            kind,
            payload,
            f"{membership_key(decision, membership) if kind == 'kick' else key}:{step}",
            group_id=decision.group_id,
            member_id=decision.member_id if member else None,
            new_key=True,
        )
        for kind, step, payload, member in steps
    ]


def settle(decision: ModerationDecision, outcomes: list[ActionRef | QunyunError]) -> tuple[list[int], list[ActionRef]]:
    """The ids of the actions requested for ``decision``, and those handed to a person (their
    tasks get the evidence once the decision has its id: :func:`attach_evidence`). An action
    that could not be requested is noted in the decision's ``detail.action_error``; the
    decision stands rather than failing the ingest."""
    ids: list[int] = []
    delegated: list[ActionRef] = []
    for outcome in outcomes:
        if isinstance(outcome, QunyunError):
            decision.detail = {**(decision.detail or {}), "action_error": str(outcome)}
            continue
        if outcome.state == OutboundState.DELEGATED:
            delegated.append(outcome)
        ids.append(outcome.id)
    return ids, delegated


def attach_evidence(session: Session, decision: ModerationDecision, rows: list[ActionRef]) -> None:
    """The tasks dispatch opened for ``rows`` get the (written) decision's evidence."""
    for row in rows:
        _attach_evidence(session, row, decision)


def membership_key(decision: ModerationDecision, join_event_id: int | None) -> str:
    """The key of a kick: one per membership (the open span's join), so that the messages a
    member posts between the decision to remove them and their removal ask for one kick, not one
    each; after a rejoin, a new membership can be removed again."""
    if join_event_id is None:  # not known as a member: the decision's own key
        return f"moderation:{decision.event_id}" if decision.event_id is not None else f"moderation:d{decision.id}"
    return f"moderation:g{decision.group_id}:m{decision.member_id}:j{join_event_id}"


def request_unmute(session: Session, decision: ModerationDecision) -> int | None:
    """Lift a mute whose decision was reversed."""
    if decision.group_id is None or decision.member_id is None:
        return None
    try:
        key = f"moderation:d{decision.id}"
        return _request(session, decision, "unmute", "unmute", key, {}, group_id=decision.group_id, member=True)
    except QunyunError:
        return None


def kick_from_covered_groups(session: Session, decision: ModerationDecision, reason: str) -> list[int]:
    """A manual blacklist entry removes its member from the groups it covers that they are in."""
    if decision.member_id is None:
        return []
    rows = session.execute(
        select(MembershipSpan.group_id, Group.community_id)
        .join(Group, Group.id == MembershipSpan.group_id)
        .where(
            MembershipSpan.member_id == decision.member_id,
            MembershipSpan.left_at.is_(None),
            Group.org_id == decision.org_id,
        )
        .order_by(MembershipSpan.group_id)
    )
    ids: list[int] = []
    for group_id, community_id in rows:
        scope = decision.blacklist_scope
        covered = (
            scope == BlacklistScope.ORGANISATION
            or (
                scope == BlacklistScope.COMMUNITY and community_id is not None and community_id == decision.community_id
            )
            or (scope == BlacklistScope.GROUP and group_id == decision.group_id)
        )
        if not covered:
            continue
        try:
            ids.append(
                _request(
                    session,
                    decision,
                    "kick",
                    f"kick:{group_id}",
                    f"moderation:d{decision.id}",
                    {"reason": reason[:MAX_REASON]},
                    group_id=int(group_id),
                    member=True,
                )
            )
        except QunyunError as exc:
            # The entry stands (joins are kicked, live codes refuse); this removal needs a person.
            decision.detail = {**(decision.detail or {}), "action_error": str(exc)}
    return ids
