"""Moderation's service layer: policies and their word lists, testing a message, the moderation
log, appeals, members' records, manual blacklist entries, members' roles in groups, and the
privacy export and erasure of a member's evidence.

Every function takes the caller's ``Scope`` and narrows by it (console pages and API endpoints
are thin callers); writes are audited in the caller's transaction and only flushed.

Who may do what: leads edit every policy; admins (管理员) edit the policies of the groups they
see; other roles read. Appeals (reversals) and blacklist entries are for leads and admins (an
admin's reach is their groups). Owners and other scoped roles see the decisions of their groups
only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from qunyun.audit.service import record as audit
from qunyun.audit.service import record_by
from qunyun.auth.scope import Scope, member_visible, require_group, require_member, require_write, visible_group_ids
from qunyun.errors import Conflict, Forbidden, InvalidInput, NotFound
from qunyun.locale import Msg
from qunyun.models import (
    BlacklistScope,
    Community,
    DecisionSource,
    Group,
    Member,
    MemberGroupRole,
    MemberRole,
    MembershipSpan,
    ModerationDecision,
    ModerationPolicy,
    ModerationRecentMessage,
    ModerationReversal,
    Playbook,
    PolicyTarget,
    Role,
)
from qunyun.moderation import cache, state
from qunyun.moderation.policy import Policy, policy_from_dict
from qunyun.moderation.types import Action, Decision, MessageContext
from qunyun.timeutil import utcnow

MAX_REASON = 500
MAX_TEST_TEXT = 4000
# The most specific target wins: a group's own policy, its playbook's, its community's, the
# organisation's.
SPECIFICITY = (PolicyTarget.GROUP, PolicyTarget.PLAYBOOK, PolicyTarget.COMMUNITY, PolicyTarget.ORGANISATION)


def target_key(target_type: PolicyTarget, target_id: int | None) -> str:
    """The unique key of a policy's target: ``organisation`` or ``<type>:<id>``."""
    return str(target_type) if target_type is PolicyTarget.ORGANISATION else f"{target_type}:{target_id}"


# --- permissions -------------------------------------------------------------------------------


def _require_editor(scope: Scope, target_type: PolicyTarget) -> None:
    """Leads edit every policy, admins those of groups (which group: checked by the caller)."""
    require_write(scope)
    if scope.is_lead:
        return
    if scope.role is Role.ADMIN and target_type is PolicyTarget.GROUP:
        return
    raise Forbidden(Msg("moderation.engine.err.editors"))


def _require_judge(scope: Scope) -> None:
    """Appeals and blacklist entries: leads and admins."""
    require_write(scope)
    if scope.role not in (Role.LEAD, Role.ADMIN):
        raise Forbidden(Msg("moderation.engine.err.judges"))


# --- policies ----------------------------------------------------------------------------------


def _policy_visible(scope: Scope) -> Any:
    P = ModerationPolicy
    if scope.whole_org:
        return P.org_id == scope.org_id
    return (P.org_id == scope.org_id) & or_(P.group_id.is_(None), P.group_id.in_(visible_group_ids(scope)))


def list_policies(session: Session, scope: Scope) -> list[ModerationPolicy]:
    """The policies the caller sees (scoped roles: all but other groups' own), least specific
    target first."""
    rows = list(session.scalars(select(ModerationPolicy).where(_policy_visible(scope)).order_by(ModerationPolicy.id)))
    order = {t: i for i, t in enumerate(reversed(SPECIFICITY))}
    return sorted(rows, key=lambda p: (order[PolicyTarget(p.target_type)], p.id))


def get_policy(session: Session, scope: Scope, policy_id: int) -> ModerationPolicy:
    """One policy the caller sees (NotFound otherwise)."""
    row = session.scalar(select(ModerationPolicy).where(ModerationPolicy.id == policy_id, _policy_visible(scope)))
    if row is None:
        raise NotFound(Msg("moderation.engine.err.no_policy", id=policy_id), field="policy_id")
    return row


def _validated(settings: Mapping[str, Any], words: Any, allow: Any) -> Policy:
    return policy_from_dict({**settings, "words": words, "allow": allow})


def _split(policy: Policy) -> tuple[dict[str, Any], list[Any], list[str]]:
    """(settings without word lists, words, allow) of a validated policy, as stored."""
    data = policy.to_dict()
    words = data.pop("words")
    allow = data.pop("allow")
    if not data.get("name"):
        data.pop("name", None)  # the row has the name; an empty one does not load back
    return data, words, allow


def _resolve_target(
    session: Session, scope: Scope, target_type: PolicyTarget, target_id: int | None
) -> dict[str, int | None]:
    """The target's column values, checking it exists in the organisation and the caller sees it."""
    if target_type is PolicyTarget.ORGANISATION:
        if target_id is not None:
            raise InvalidInput(Msg("moderation.engine.err.no_target_id"), field="target_id")
        return {}
    if target_id is None:
        raise InvalidInput(Msg("moderation.engine.err.target_id_needed"), field="target_id")
    if target_type is PolicyTarget.GROUP:
        require_group(session, scope, target_id, write=True)
        return {"group_id": target_id}
    model: type[Community] | type[Playbook] = Community if target_type is PolicyTarget.COMMUNITY else Playbook
    if session.scalar(select(model.id).where(model.id == target_id, model.org_id == scope.org_id)) is None:
        raise NotFound(Msg("moderation.engine.err.no_target", target=str(target_type), id=target_id), field="target_id")
    return {f"{target_type}_id": target_id}


def create_policy(
    session: Session,
    scope: Scope,
    *,
    name: str,
    target_type: PolicyTarget | str,
    target_id: int | None = None,
    settings: Mapping[str, Any] | None = None,
    words: Sequence[Any] = (),
    allow: Sequence[str] = (),
    enabled: bool = True,
    strike_window_days: int = state.DEFAULT_STRIKE_WINDOW_DAYS,
    request: HTTPConnection | None = None,
) -> ModerationPolicy:
    """Attach a new policy to the organisation, a community, a playbook or a group (one per
    target: Conflict otherwise). ``settings`` is a policy dict (``policy_from_dict``) without
    word lists; ``words`` entries are strings or ``{word, category, pinyin}``."""
    try:
        kind = PolicyTarget(target_type)
    except ValueError:
        raise InvalidInput(
            Msg("moderation.engine.err.target_type", choices=", ".join(t.value for t in PolicyTarget)),
            field="target_type",
        ) from None
    _require_editor(scope, kind)
    columns = _resolve_target(session, scope, kind, target_id)
    name = _name(name)
    _check_window(strike_window_days)
    if settings is not None and ("words" in settings or "allow" in settings):
        raise InvalidInput(Msg("moderation.engine.err.words_apart"), field="settings.words")
    stored, stored_words, stored_allow = _split(_validated(dict(settings or {}), list(words), list(allow)))
    key = target_key(kind, target_id)
    if session.scalar(
        select(ModerationPolicy.id).where(ModerationPolicy.org_id == scope.org_id, ModerationPolicy.target_key == key)
    ):
        raise Conflict(Msg("moderation.engine.err.target_taken"), field="target_id")
    now = utcnow()
    row = ModerationPolicy(
        org_id=scope.org_id,
        name=name,
        target_type=kind.value,
        target_key=key,
        enabled=enabled,
        settings=stored,
        words=stored_words,
        allow=stored_allow,
        version=1,
        strike_window_days=strike_window_days,
        created_by_id=scope.staff_id or None,
        created_at=now,
        updated_at=now,
        **columns,
    )
    session.add(row)
    session.flush()
    record_by(
        session,
        scope,
        action="moderation.policy.create",
        target_type="moderation_policy",
        target_id=row.id,
        detail={"target": key, "words": len(stored_words), "allow": len(stored_allow)},
        request=request,
    )
    return row


def _name(name: str) -> str:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise InvalidInput(Msg("moderation.engine.err.name"), field="name")
    return name


def _check_window(days: int) -> None:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
        raise InvalidInput(Msg("moderation.engine.err.window"), field="strike_window_days")


def _editable(session: Session, scope: Scope, policy_id: int) -> ModerationPolicy:
    row = get_policy(session, scope, policy_id)
    _require_editor(scope, PolicyTarget(row.target_type))
    if row.group_id is not None:
        require_group(session, scope, row.group_id, write=True)
    return row


def _bump(row: ModerationPolicy) -> None:
    row.version += 1
    row.updated_at = utcnow()


def update_policy(
    session: Session,
    scope: Scope,
    policy_id: int,
    changes: Mapping[str, Any],
    *,
    request: HTTPConnection | None = None,
) -> ModerationPolicy:
    """Change a policy's ``name``, ``enabled``, ``settings`` (the whole policy dict without word
    lists) or ``strike_window_days``; the version moves on, so every process recompiles it."""
    row = _editable(session, scope, policy_id)
    unknown = set(changes) - {"name", "enabled", "settings", "strike_window_days"}
    if unknown:
        raise InvalidInput(
            Msg("moderation.engine.err.unknown_change", field=sorted(unknown)[0]), field=sorted(unknown)[0]
        )
    if "name" in changes:
        row.name = _name(changes["name"])
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise InvalidInput(Msg("moderation.engine.err.enabled"), field="enabled")
        row.enabled = changes["enabled"]
    if "strike_window_days" in changes:
        _check_window(changes["strike_window_days"])
        row.strike_window_days = changes["strike_window_days"]
    if "settings" in changes:
        settings = changes["settings"]
        if not isinstance(settings, Mapping):
            raise InvalidInput(Msg("moderation.engine.err.settings"), field="settings")
        if "words" in settings or "allow" in settings:
            raise InvalidInput(Msg("moderation.engine.err.words_apart"), field="settings.words")
        row.settings, _, _ = _split(_validated(settings, row.words, row.allow))
    _bump(row)
    session.flush()
    record_by(
        session,
        scope,
        action="moderation.policy.update",
        target_type="moderation_policy",
        target_id=row.id,
        detail={"fields": sorted(changes), "version": row.version},
        request=request,
    )
    return row


def set_word_lists(
    session: Session,
    scope: Scope,
    policy_id: int,
    *,
    words: Sequence[Any] | None = None,
    allow: Sequence[str] | None = None,
    request: HTTPConnection | None = None,
) -> ModerationPolicy:
    """Replace a policy's word list and/or allow list (None: keep it). Entries are strings or
    ``{word, category, pinyin}`` (``qunyun.moderation.types.WordEntry`` too); bad ones are
    refused naming ``words[i]``. Takes effect at the next event in every process."""
    row = _editable(session, scope, policy_id)
    new_words = [_word_json(w) for w in words] if words is not None else list(row.words)
    new_allow = list(allow) if allow is not None else list(row.allow)
    _, row.words, row.allow = _split(_validated(row.settings, new_words, new_allow))
    _bump(row)
    session.flush()
    record_by(
        session,
        scope,
        action="moderation.policy.words",
        target_type="moderation_policy",
        target_id=row.id,
        detail={"words": len(row.words), "allow": len(row.allow), "version": row.version},
        request=request,
    )
    return row


def _word_json(entry: Any) -> Any:
    from qunyun.moderation.types import WordEntry

    if isinstance(entry, WordEntry):
        out: dict[str, Any] = {"word": entry.word, "category": entry.category}
        if entry.pinyin:
            out["pinyin"] = True
        return out
    return entry


def delete_policy(session: Session, scope: Scope, policy_id: int, *, request: HTTPConnection | None = None) -> None:
    """Remove a policy; its decisions stay (their policy reads as deleted)."""
    row = _editable(session, scope, policy_id)
    record_by(
        session,
        scope,
        action="moderation.policy.delete",
        target_type="moderation_policy",
        target_id=row.id,
        detail={"target": row.target_key},
        request=request,
    )
    session.delete(row)
    session.flush()
    cache.forget(policy_id)


def effective_policy(session: Session, scope: Scope, group_id: int) -> ModerationPolicy | None:
    """The enabled policy that judges ``group_id``: the most specific one attached to it."""
    group = require_group(session, scope, group_id)
    return effective_policies(session, scope.org_id, [group]).get(group.id)


def effective_policies(session: Session, org_id: int, groups: Iterable[Any]) -> dict[int, ModerationPolicy]:
    """For groups (anything with ``id``, ``community_id``, ``playbook_id``): their effective
    enabled policy, by group id (groups without one are left out). One query."""
    groups = list(groups)
    keys: dict[int, list[str]] = {}
    for g in groups:
        chain = [target_key(PolicyTarget.GROUP, g.id)]
        if g.playbook_id is not None:
            chain.append(target_key(PolicyTarget.PLAYBOOK, g.playbook_id))
        if g.community_id is not None:
            chain.append(target_key(PolicyTarget.COMMUNITY, g.community_id))
        chain.append(str(PolicyTarget.ORGANISATION))
        keys[g.id] = chain
    wanted = {k for chain in keys.values() for k in chain}
    if not wanted:
        return {}
    rows = {
        p.target_key: p
        for p in session.scalars(
            select(ModerationPolicy).where(
                ModerationPolicy.org_id == org_id,
                ModerationPolicy.target_key.in_(sorted(wanted)),
                ModerationPolicy.enabled.is_(True),
            )
        )
    }
    out: dict[int, ModerationPolicy] = {}
    for group_id, chain in keys.items():
        for key in chain:
            if key in rows:
                out[group_id] = rows[key]
                break
    return out


def test_message(
    session: Session,
    scope: Scope,
    policy_id: int,
    *,
    text: str = "",
    msg_type: str = "text",
    member_name: str = "",
    strikes: int = 0,
) -> Decision:
    """What ``policy_id`` decides on one message (nothing is recorded or sent): the firing
    rule, its action for a member with ``strikes`` strikes, and the matches with their spans.
    An empty ``text`` with a ``member_name`` tests a join (name card rules)."""
    from qunyun.moderation.rules import evaluate

    row = get_policy(session, scope, policy_id)
    if len(text) > MAX_TEST_TEXT:
        raise InvalidInput(Msg("moderation.engine.err.text_long", limit=MAX_TEST_TEXT), field="text")
    if msg_type not in {"text", "image", "link", "miniprogram", "file", "video", "card", "voice", "other", "join"}:
        raise InvalidInput(Msg("moderation.engine.err.msg_type"), field="msg_type")
    compiled = cache.compiled_for(row)  # the stored version, compiled once per process
    if compiled is None:
        cache.load_policy(row)  # raises InvalidInput naming what no longer validates
        raise InvalidInput(Msg("moderation.engine.err.settings"), field="settings")
    now = int(utcnow().timestamp() * 1_000_000)
    ctx = MessageContext(
        id="test",
        ts=now,
        msg_type=None if msg_type == "join" else msg_type,
        text=text or None,
        member_name=member_name,
    )
    return evaluate(compiled, ctx, strikes=max(0, int(strikes)))


# --- the moderation log -------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionView:
    """A decision with its reversal (None: in force)."""

    decision: ModerationDecision
    reversal: ModerationReversal | None = None

    @property
    def reversed(self) -> bool:
        return self.reversal is not None


def _decision_visible(scope: Scope) -> Any:
    D = ModerationDecision
    if scope.whole_org:
        return D.org_id == scope.org_id
    # Scoped roles: decisions in their groups; one without a group (an organisation-wide
    # blacklist entry) when they see its member.
    return (D.org_id == scope.org_id) & or_(
        D.group_id.in_(visible_group_ids(scope)),
        D.group_id.is_(None) & D.member_id.in_(select(Member.id).where(member_visible(scope))),
    )


def _with_reversals(session: Session, rows: Sequence[ModerationDecision]) -> list[DecisionView]:
    ids = [r.id for r in rows]
    reversals = (
        {
            r.decision_id: r
            for r in session.scalars(select(ModerationReversal).where(ModerationReversal.decision_id.in_(ids)))
        }
        if ids
        else {}
    )
    return [DecisionView(r, reversals.get(r.id)) for r in rows]


def list_decisions(
    session: Session,
    scope: Scope,
    *,
    group_id: int | None = None,
    member_id: int | None = None,
    rule: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    include_dry_run: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[DecisionView], int]:
    """The moderation log, newest first: (a page of decisions with their reversals, total).
    Filters: group, member, rule name, action, ``since <= at < until``."""
    D = ModerationDecision
    query = select(D).where(_decision_visible(scope))
    if group_id is not None:
        require_group(session, scope, group_id)
        query = query.where(D.group_id == group_id)
    if member_id is not None:
        require_member(session, scope, member_id)
        query = query.where(D.member_id == member_id)
    if rule:
        query = query.where(D.rule == rule)
    if action:
        try:
            Action(action)
        except ValueError:
            raise InvalidInput(Msg("moderation.engine.err.action"), field="action") from None
        query = query.where(D.action == action)
    if since is not None:
        query = query.where(D.at >= since)
    if until is not None:
        query = query.where(D.at < until)
    if not include_dry_run:
        query = query.where(D.dry_run.is_(False))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(session.scalars(query.order_by(D.at.desc(), D.id.desc()).limit(limit).offset(offset)))
    return _with_reversals(session, rows), int(total)


def get_decision(session: Session, scope: Scope, decision_id: int) -> DecisionView:
    """One decision the caller sees, with its reversal."""
    row = session.scalar(
        select(ModerationDecision).where(ModerationDecision.id == decision_id, _decision_visible(scope))
    )
    if row is None:
        raise NotFound(Msg("moderation.engine.err.no_decision", id=decision_id), field="decision_id")
    return _with_reversals(session, [row])[0]


def reverse_decision(
    session: Session,
    scope: Scope,
    decision_id: int,
    reason: str,
    *,
    request: HTTPConnection | None = None,
) -> DecisionView:
    """Grant an appeal: the decision stops counting (no strike, no blacklist entry) and the
    member's record shows the reversal with its reason. A mute still running is lifted
    (an unmute is requested). Conflict if it was reversed already."""
    _require_judge(scope)
    view = get_decision(session, scope, decision_id)
    decision = view.decision
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidInput(Msg("moderation.engine.err.reason", limit=MAX_REASON), field="reason")
    if view.reversal is not None:
        raise Conflict(Msg("moderation.engine.err.reversed"), field="decision_id")
    reversal = ModerationReversal(
        org_id=scope.org_id, decision_id=decision.id, staff_id=scope.staff_id or None, reason=reason, at=utcnow()
    )
    session.add(reversal)
    session.flush()
    if decision.action == Action.MUTE and not decision.dry_run and _still_muted(session, decision):
        from qunyun.moderation.actions import request_unmute

        request_unmute(session, decision)
    record_by(
        session,
        scope,
        action="moderation.decision.reverse",
        target_type="moderation_decision",
        target_id=decision.id,
        detail={"action": decision.action, "rule": decision.rule, "member_id": decision.member_id},
        request=request,
    )
    return DecisionView(decision, reversal)


def _still_muted(session: Session, decision: ModerationDecision) -> bool:
    """Whether lifting this mute is the thing to do: it has a group and member, and no later mute
    of theirs in that group is in force (that one decides when they may speak). Its own end is
    not checked: the platform's clock, not ours, says when it ran out, and an unmute of a member
    who may speak already changes nothing."""
    if decision.group_id is None or decision.member_id is None:
        return False
    D = ModerationDecision
    later = session.scalar(
        select(D.id)
        .where(
            D.member_id == decision.member_id,
            D.group_id == decision.group_id,
            D.action == str(Action.MUTE),
            D.id > decision.id,
            state.in_force(),
        )
        .limit(1)
    )
    return later is None


# --- a member's record -------------------------------------------------------------------------


@dataclass(frozen=True)
class MemberRecord:
    """What moderation holds about a member: strikes in the window, mutes running, blacklist
    entries in force, and every decision (newest first) with its reversal."""

    member: Member
    strikes: int
    strike_window_days: int
    mutes: list[ModerationDecision] = field(default_factory=list)
    blacklist: list[ModerationDecision] = field(default_factory=list)
    decisions: list[DecisionView] = field(default_factory=list)


def org_strike_window(session: Session, org_id: int) -> int:
    """The organisation policy's strike window (days), else the default."""
    days = session.scalar(
        select(ModerationPolicy.strike_window_days).where(
            ModerationPolicy.org_id == org_id, ModerationPolicy.target_key == str(PolicyTarget.ORGANISATION)
        )
    )
    return int(days) if days else state.DEFAULT_STRIKE_WINDOW_DAYS


def member_record(
    session: Session, scope: Scope, member_id: int, *, now: datetime | None = None, limit: int = 200
) -> MemberRecord:
    """The moderation record of a member the caller sees (decisions limited to their groups),
    strikes and mutes as of ``now`` (default: now)."""
    member = require_member(session, scope, member_id)
    now = now or utcnow()
    window = org_strike_window(session, scope.org_id)
    strikes = state.strikes(session, scope.org_id, [member.id], state.strike_since(now, window)).get(member.id, 0)
    rows = list(
        session.scalars(
            select(ModerationDecision)
            .where(ModerationDecision.member_id == member.id, _decision_visible(scope))
            .order_by(ModerationDecision.at.desc(), ModerationDecision.id.desc())
            .limit(limit)
        )
    )
    return MemberRecord(
        member=member,
        strikes=strikes,
        strike_window_days=window,
        mutes=state.active_mutes(session, scope.org_id, member.id, now),
        blacklist=_visible_entries(session, scope, state.blacklist_entries(session, scope.org_id, [member.id])),
        decisions=_with_reversals(session, rows),
    )


def _visible_entries(session: Session, scope: Scope, entries: list[ModerationDecision]) -> list[ModerationDecision]:
    """The blacklist entries a scoped reader may see: those reaching the community or the whole
    organisation (they keep the member out of the reader's groups too), and group entries of the
    reader's own groups."""
    grouped = [e for e in entries if e.blacklist_scope == BlacklistScope.GROUP and e.group_id is not None]
    if scope.whole_org or not grouped:
        return entries
    ids = {e.group_id for e in grouped}
    mine = set(session.scalars(visible_group_ids(scope).where(Group.id.in_(ids))))
    return [e for e in entries if e not in grouped or e.group_id in mine]


# --- manual blacklist ----------------------------------------------------------------------------


def blacklist_member(
    session: Session,
    scope: Scope,
    member_id: int,
    *,
    reach: BlacklistScope | str = BlacklistScope.ORGANISATION,
    group_id: int | None = None,
    community_id: int | None = None,
    reason: str,
    request: HTTPConnection | None = None,
) -> ModerationDecision:
    """Put a member on the blacklist by hand (a manual decision): a group's (admins, for their
    groups), a community's or the organisation's (leads). They are removed from the groups it
    covers that they are in now, their joins there are kicked, and live codes refuse them
    (community or organisation reach)."""
    _require_judge(scope)
    member = require_member(session, scope, member_id, write=True)
    try:
        reach = BlacklistScope(reach)
    except ValueError:
        raise InvalidInput(
            Msg("moderation.engine.err.reach", choices=", ".join(s.value for s in BlacklistScope)), field="scope"
        ) from None
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise InvalidInput(Msg("moderation.engine.err.reason", limit=MAX_REASON), field="reason")
    if reach is BlacklistScope.GROUP:
        if group_id is None:
            raise InvalidInput(Msg("moderation.engine.err.group_needed"), field="group_id")
        require_group(session, scope, group_id, write=True)
        community_id = None
    else:
        if not scope.is_lead:
            raise Forbidden(Msg("moderation.engine.err.reach_lead"))
        group_id = None
        if reach is BlacklistScope.COMMUNITY:
            if (
                community_id is None
                or session.scalar(
                    select(Community.id).where(Community.id == community_id, Community.org_id == scope.org_id)
                )
                is None
            ):
                raise NotFound(
                    Msg("moderation.engine.err.no_target", target="community", id=community_id), field="community_id"
                )
        else:
            community_id = None
    decision = ModerationDecision(
        org_id=scope.org_id,
        group_id=group_id,
        member_id=member.id,
        rule=None,
        action=str(Action.BLACKLIST),
        matches=[],
        detail={"reason": reason},
        excerpt="",
        dry_run=False,
        source=DecisionSource.MANUAL.value,
        decided_by_id=scope.staff_id or None,
        blacklist_scope=reach.value,
        community_id=community_id,
        action_ids=[],
        at=utcnow(),
    )
    session.add(decision)
    session.flush()
    from qunyun.moderation.actions import kick_from_covered_groups

    decision.action_ids = kick_from_covered_groups(session, decision, reason)
    record_by(
        session,
        scope,
        action="moderation.blacklist.add",
        target_type="member",
        target_id=member.id,
        detail={"decision_id": decision.id, "scope": reach.value, "group_id": group_id, "community_id": community_id},
        request=request,
    )
    return decision


def unblacklist_member(
    session: Session,
    scope: Scope,
    member_id: int,
    *,
    reason: str,
    request: HTTPConnection | None = None,
) -> list[DecisionView]:
    """Take a member off the blacklist: every entry in force the caller may judge is reversed
    with ``reason`` (NotFound naming ``member_id`` when there is none)."""
    _require_judge(scope)
    member = require_member(session, scope, member_id, write=True)
    entries = [
        e
        for e in state.blacklist_entries(session, scope.org_id, [member.id])
        if scope.is_lead or (e.group_id is not None and e.blacklist_scope == BlacklistScope.GROUP)
    ]
    visible = {v.decision.id for v in _visible_views(session, scope, entries)}
    entries = [e for e in entries if e.id in visible]
    if not entries:
        raise NotFound(Msg("moderation.engine.err.not_blacklisted", id=member.id), field="member_id")
    return [reverse_decision(session, scope, e.id, reason, request=request) for e in entries]


def _visible_views(session: Session, scope: Scope, rows: Sequence[ModerationDecision]) -> list[DecisionView]:
    ids = [r.id for r in rows]
    if not ids:
        return []
    seen = set(
        session.scalars(select(ModerationDecision.id).where(ModerationDecision.id.in_(ids), _decision_visible(scope)))
    )
    return [DecisionView(r) for r in rows if r.id in seen]


# --- members' roles in groups -------------------------------------------------------------------


def list_member_roles(session: Session, scope: Scope, group_id: int) -> list[MemberGroupRole]:
    """Who holds a role (owner, admin, KOL) in a group the caller sees."""
    require_group(session, scope, group_id)
    return list(
        session.scalars(
            select(MemberGroupRole).where(MemberGroupRole.group_id == group_id).order_by(MemberGroupRole.member_id)
        )
    )


def set_member_role(
    session: Session,
    scope: Scope,
    group_id: int,
    member_id: int,
    role: MemberRole | str | None,
    *,
    request: HTTPConnection | None = None,
) -> MemberGroupRole | None:
    """Give a member a role in a group (owner, admin, kol), or take it away (None). Exempt roles
    of a policy name these."""
    group = require_group(session, scope, group_id, write=True)
    member = require_member(session, scope, member_id, write=True)
    if role is not None:
        try:
            role = MemberRole(role)
        except ValueError:
            raise InvalidInput(
                Msg("moderation.engine.err.role", choices=", ".join(r.value for r in MemberRole)), field="role"
            ) from None
    row = session.get(MemberGroupRole, (group.id, member.id))
    if role is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        row = MemberGroupRole(
            group_id=group.id,
            member_id=member.id,
            org_id=scope.org_id,
            role=role.value,
            set_by_id=scope.staff_id or None,
            updated_at=utcnow(),
        )
        session.add(row)
    else:
        row.role = role.value
        row.set_by_id = scope.staff_id or None
        row.updated_at = utcnow()
    session.flush()
    record_by(
        session,
        scope,
        action="moderation.role.set",
        target_type="member",
        target_id=member.id,
        detail={"group_id": group.id, "role": role.value if role is not None else None},
        request=request,
    )
    return row if role is not None else None


# --- privacy ------------------------------------------------------------------------------------


def export_member_evidence(session: Session, org_id: int, member_id: int) -> list[dict[str, Any]]:
    """Everything moderation holds about a member, as JSON-able rows (a PIPL access request)."""
    rows = list(
        session.scalars(
            select(ModerationDecision)
            .where(ModerationDecision.org_id == org_id, ModerationDecision.member_id == member_id)
            .order_by(ModerationDecision.id)
        )
    )
    out = []
    for view in _with_reversals(session, rows):
        d = view.decision
        out.append(
            {
                "id": d.id,
                "at": d.at.isoformat(),
                "group_id": d.group_id,
                "event": d.event_external_id,
                "rule": d.rule,
                "category": d.category,
                "action": d.action,
                "matches": d.matches,
                "excerpt": d.excerpt,
                "dry_run": d.dry_run,
                "blacklist_scope": d.blacklist_scope,
                "reversed": view.reversal is not None,
                "reversal_reason": view.reversal.reason if view.reversal is not None else None,
            }
        )
    roles = session.scalars(select(MemberGroupRole).where(MemberGroupRole.member_id == member_id))
    out.extend({"group_id": r.group_id, "role": r.role} for r in roles)
    return out


def erase_member_evidence(session: Session, org_id: int, member_id: int, *, staff_id: int | None = None) -> int:
    """Erase the message evidence moderation holds about a member (excerpts, matched words and
    spans, rule details) and their recent-message rows; the decisions stay as facts (rule,
    action, time), so strikes and blacklist entries still hold. Returns the decisions erased."""
    rows = list(
        session.scalars(
            select(ModerationDecision).where(
                ModerationDecision.org_id == org_id,
                ModerationDecision.member_id == member_id,
                ModerationDecision.erased_at.is_(None),
            )
        )
    )
    now = utcnow()
    for d in rows:
        d.excerpt = ""
        d.matches = []
        d.detail = {k: v for k, v in (d.detail or {}).items() if k == "reason" and d.source == DecisionSource.MANUAL}
        d.erased_at = now
    session.execute(
        delete(ModerationRecentMessage).where(
            ModerationRecentMessage.org_id == org_id, ModerationRecentMessage.member_id == member_id
        )
    )
    session.flush()
    audit(
        session,
        org_id=org_id,
        staff_id=staff_id,
        action="moderation.evidence.erase",
        target_type="member",
        target_id=member_id,
        detail={"decisions": len(rows)},
    )
    return len(rows)


# --- the demo's and a new organisation's default ---------------------------------------------------


def default_words() -> list[Any]:
    """The product's own small default word list (``moderation/default_words.txt``)."""
    from qunyun.moderation.wordfiles import default_words as shipped

    return [_word_json(w) for w in shipped()]


def create_default_policy(
    session: Session,
    org_id: int,
    *,
    words: Sequence[Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    name: str = "默认群规",
) -> ModerationPolicy:
    """The organisation's policy with the default word list (or ``words``), the default rules
    (sensitive words, contact solicitation, links, flood) acting by the ladder warn, warn, kick;
    the organisation-wide policy if one exists already. For the demo and new organisations."""
    existing = session.scalar(
        select(ModerationPolicy).where(
            ModerationPolicy.org_id == org_id, ModerationPolicy.target_key == str(PolicyTarget.ORGANISATION)
        )
    )
    if existing is not None:
        return existing
    lead = Scope(staff_id=0, org_id=org_id, role=Role.LEAD)
    return create_policy(
        session,
        lead,
        name=name,
        target_type=PolicyTarget.ORGANISATION,
        settings=dict(settings) if settings is not None else DEFAULT_SETTINGS,
        words=list(words) if words is not None else default_words(),
    )


DEFAULT_SETTINGS: dict[str, Any] = {
    "rules": [
        {"name": "敏感词", "kind": "words"},
        {"name": "广告联系方式", "kind": "contact"},
        {"name": "外部链接", "kind": "links"},
        {"name": "刷屏", "kind": "flood", "count": 6, "seconds": 10, "identical": 3, "identical_seconds": 600},
    ],
    "ladder": ["warn", "warn", "kick"],
    "blacklist_scope": "organisation",
}


def open_spans(session: Session, member_id: int) -> list[tuple[int, int | None]]:
    """(group id, community id) of the groups the member is in now."""
    return [
        (int(g), c)
        for g, c in session.execute(
            select(MembershipSpan.group_id, Group.community_id)
            .join(Group, Group.id == MembershipSpan.group_id)
            .where(MembershipSpan.member_id == member_id, MembershipSpan.left_at.is_(None))
        )
    ]
