"""Judge one message or join against a compiled policy: :func:`evaluate` returns the decision,
:func:`firings` every rule that fired (the console's "test a message" box shows them all).

Pure: the caller supplies the context (the member's recent messages, when they joined, their
corp) and, when it knows it, the member's strike count for the escalation ladder. Exempt roles
are the caller's business (``policy.exempt_roles``): an exempt member is not judged at all.

Which rules look at what:

- a message (``ctx.msg_type`` set): words, links, miniprogram, media, contact, flood,
  new_member, and name_card / other_corp when their ``on_messages`` is set;
- a join (``ctx.msg_type`` None): name_card and other_corp.

Several rules may fire; the decision takes the most severe action (``types.SEVERITY``), the
earlier rule in the policy on a tie. A ladder rule's action is the ladder's step for the
member's strikes (its first step when they are unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from qunyun.moderation.detect import (
    Folded,
    Found,
    find_accounts,
    find_links,
    find_phones,
    find_solicitation,
    fold,
    host_allowed,
)
from qunyun.moderation.policy import CompiledPolicy, CompiledRule
from qunyun.moderation.types import SEVERITY, Action, Decision, Hit, MessageContext, RuleKind

_SECOND = 1_000_000  # microseconds


@dataclass(frozen=True)
class Firing:
    """One rule that fired: its resolved action (never LADDER), the category (a word's category
    for word rules, the rule kind otherwise), the evidence."""

    rule: str
    kind: RuleKind
    action: Action
    category: str
    matches: tuple[Hit, ...] = ()
    detail: dict[str, Any] = field(default_factory=dict)


class _Text:
    """A text's folded form and detector results, each computed once whatever the rules ask."""

    __slots__ = ("_accounts", "_folded", "_links", "_phones", "_solicit", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._folded: Folded | None = None
        self._links: list[Found] | None = None
        self._phones: list[Found] | None = None
        self._accounts: list[Found] | None = None
        self._solicit: list[Found] | None = None

    @property
    def folded(self) -> Folded:
        if self._folded is None:
            self._folded = fold(self.text)
        return self._folded

    def links(self) -> list[Found]:
        if self._links is None:
            self._links = find_links(self.folded)
        return self._links

    def contact(self, detectors: tuple[str, ...]) -> list[Found]:
        found: list[Found] = []
        if "phone" in detectors:
            if self._phones is None:
                self._phones = find_phones(self.folded)
            found += self._phones
        if "account" in detectors:
            if self._accounts is None:
                self._accounts = find_accounts(self.folded)
            found += self._accounts
        if "solicit" in detectors:
            if self._solicit is None:
                self._solicit = find_solicitation(self.folded)
            found += self._solicit
        found.sort(key=lambda x: (x.start, x.end))
        return found


def _hits(text: str, found: list[Found]) -> tuple[Hit, ...]:
    return tuple(Hit(text[x.start : x.end], x.kind, x.start, x.end) for x in found)


@lru_cache(maxsize=4096)
def _squeeze(text: str) -> str:
    """A text as the identical-message check compares it: folded, noise and spaces removed."""
    folded = fold(text).text
    squeezed = "".join(ch for ch in folded if ch.isalnum())
    return squeezed or folded.strip()


CONTACT_ALL = ("phone", "account", "solicit")


def _check(
    policy: CompiledPolicy, compiled: CompiledRule, ctx: MessageContext, text: _Text | None, name: _Text | None
) -> tuple[str, tuple[Hit, ...], dict[str, Any]] | None:
    """(category, matches, detail) when the rule fires on ``ctx``, else None."""
    rule = compiled.rule
    kind = rule.kind
    is_message = ctx.msg_type is not None
    if kind is RuleKind.WORDS:
        if text is None or compiled.matcher is None:
            return None
        hits = compiled.matcher.find(text.text)
        return (hits[0].category, tuple(hits), {}) if hits else None
    if kind is RuleKind.CONTACT:
        if text is None:
            return None
        found = text.contact(rule.detectors)
        return (str(kind), _hits(text.text, found), {"detectors": sorted({x.kind for x in found})}) if found else None
    if kind is RuleKind.LINKS:
        if not is_message:
            return None
        bad = [x for x in text.links() if not host_allowed(x.host or "", rule.allowed_domains)] if text else []
        if bad:
            assert text is not None
            return str(kind), _hits(text.text, bad), {"hosts": [x.host for x in bad]}
        if ctx.msg_type == "link" and not (text and text.links()):
            # A link card whose target we cannot see: not known to be an allowed one.
            return str(kind), (), {"msg_type": "link"}
        return None
    if kind is RuleKind.MINIPROGRAM:
        if ctx.msg_type != "miniprogram":
            return None
        body = text.folded.text if text else ""
        if any(fold(a).text in body for a in rule.allowed):
            return None
        return str(kind), (), {"msg_type": "miniprogram"}
    if kind is RuleKind.MEDIA:
        if ctx.msg_type not in rule.msg_types:
            return None
        if rule.any:
            return str(kind), (), {"msg_type": ctx.msg_type}
        if text is None or compiled.matcher is None:
            return None
        hits = compiled.matcher.find(text.text)
        return (hits[0].category, tuple(hits), {"msg_type": ctx.msg_type}) if hits else None
    if kind is RuleKind.FLOOD:
        return _flood(rule, ctx) if is_message else None
    if kind is RuleKind.NEW_MEMBER:
        return _new_member(rule, ctx, text) if is_message else None
    if kind is RuleKind.NAME_CARD:
        if (is_message and not rule.on_messages) or name is None:
            return None
        named = tuple(compiled.matcher.find(name.text)) if compiled.matcher is not None else ()
        if named:
            return named[0].category, named, {"member_name": name.text}
        found = name.contact(CONTACT_ALL) if rule.contact else []
        return (str(kind), _hits(name.text, found), {"member_name": name.text}) if found else None
    if kind is RuleKind.OTHER_CORP:
        if (is_message and not rule.on_messages) or not ctx.member_corp or not ctx.own_corps:
            return None
        if ctx.member_corp in ctx.own_corps or ctx.member_corp in rule.allowed_corps:
            return None
        return str(kind), (), {"member_corp": ctx.member_corp}
    raise AssertionError(f"rule kind without a check: {kind}")  # pragma: no cover


def _flood(rule: Any, ctx: MessageContext) -> tuple[str, tuple[Hit, ...], dict[str, Any]] | None:
    if rule.count is not None and rule.seconds is not None:
        since = ctx.ts - rule.seconds * _SECOND
        count = 1 + sum(1 for r in ctx.recent if since < r.ts <= ctx.ts)
        if count >= rule.count:
            return str(RuleKind.FLOOD), (), {"count": count, "seconds": rule.seconds}
    if rule.identical is not None and rule.identical_seconds is not None and ctx.text and ctx.text.strip():
        since = ctx.ts - rule.identical_seconds * _SECOND
        mine = _squeeze(ctx.text)
        same = 1 + sum(1 for r in ctx.recent if since < r.ts <= ctx.ts and r.text and _squeeze(r.text) == mine)
        if same >= rule.identical:
            return str(RuleKind.FLOOD), (), {"identical": same, "seconds": rule.identical_seconds}
    return None


def _new_member(
    rule: Any, ctx: MessageContext, text: _Text | None
) -> tuple[str, tuple[Hit, ...], dict[str, Any]] | None:
    if ctx.joined_ts is None or not 0 <= ctx.ts - ctx.joined_ts < rule.hours * 3600 * _SECOND:
        return None
    detail: dict[str, Any] = {"hours": rule.hours}
    forbid = rule.forbid
    if ctx.msg_type in forbid or (ctx.msg_type == "link" and "links" in forbid):
        return str(RuleKind.NEW_MEMBER), (), {**detail, "msg_type": ctx.msg_type}
    if text is None:
        return None
    found: list[Found] = []
    if "links" in forbid:
        found += [x for x in text.links() if not host_allowed(x.host or "", rule.allowed_domains)]
    if "contact" in forbid:
        found += text.contact(CONTACT_ALL)
    if found:
        found.sort(key=lambda x: (x.start, x.end))
        return str(RuleKind.NEW_MEMBER), _hits(text.text, found), {**detail, "found": sorted({x.kind for x in found})}
    return None


def firings(policy: CompiledPolicy, ctx: MessageContext, strikes: int | None = None) -> list[Firing]:
    """Every rule of ``policy`` that fires on ``ctx``, in policy order, actions resolved."""
    text = _Text(ctx.text) if ctx.msg_type is not None and ctx.text else None
    name = _Text(ctx.member_name) if ctx.member_name else None
    out: list[Firing] = []
    for compiled in policy.rules:
        fired = _check(policy, compiled, ctx, text, name)
        if fired is None:
            continue
        category, matches, detail = fired
        rule = compiled.rule
        action, step = policy.resolve(rule.action, strikes)
        if step is not None:
            detail = {**detail, "ladder_step": step + 1}
        if action is Action.MUTE:
            detail = {**detail, "mute_seconds": policy.mute_seconds(rule)}
        out.append(Firing(rule.name, rule.kind, action, category, matches, detail))
    return out


def decide(ctx_id: str, fired: list[Firing]) -> Decision:
    """The decision among ``fired``: the most severe action, the earlier rule on a tie."""
    if not fired:
        return Decision(ctx_id, Action.ALLOW)
    best = fired[0]
    for firing in fired[1:]:
        if SEVERITY[firing.action] > SEVERITY[best.action]:
            best = firing
    detail = dict(best.detail)
    others = [f.rule for f in fired if f is not best]
    if others:
        detail["also"] = others
    return Decision(ctx_id, best.action, best.rule, best.kind, best.category, best.matches, detail)


def evaluate(policy: CompiledPolicy, ctx: MessageContext, strikes: int | None = None) -> Decision:
    """The decision on one message or join (``ctx.msg_type`` None). ``strikes``: the member's
    earlier strikes, which pick a ladder rule's step (None: the ladder's first step)."""
    return decide(ctx.id, firings(policy, ctx, strikes))
