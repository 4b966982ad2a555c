"""A moderation policy: word lists, an allow list, rules with their actions, the escalation
ladder, exempt roles, the blacklist's reach and dry-run; loaded from a dict or YAML with strict
validation (every error is ``InvalidInput`` naming the field path, ``rules[2].seconds``) and
compiled once (:class:`CompiledPolicy`: matchers built once per word set) for :mod:`rules`.

Pure: no database. The engine stores ``Policy.to_dict()`` as JSON and loads it back with
:func:`policy_from_dict`; the command line reads YAML (:func:`policy_from_yaml`). A policy of just
``{"words": ["加微信"]}`` works: without ``rules`` it gets one sensitive-word rule whose action is
the ladder.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.moderation.matcher import build_matcher
from qunyun.moderation.types import CATEGORY_ALIASES, Action, Matcher, RuleKind, WordEntry

MAX_WORD = 64  # code points; longer "words" are sentences, not list entries
MAX_NAME = 64  # a rule's name
MAX_CATEGORY = 32
DEFAULT_LADDER = (Action.WARN, Action.WARN, Action.KICK)
# A member's roles in a group (models.moderation.MemberRole), which exempt_roles name.
MEMBER_ROLES = ("owner", "admin", "kol")
DEFAULT_EXEMPT = MEMBER_ROLES
BLACKLIST_SCOPES = ("group", "community", "organisation")
MSG_MEDIA = ("image", "file", "video")
CONTACT_DETECTORS = ("phone", "account", "solicit")
NEW_MEMBER_FORBIDS = ("links", "miniprogram", "contact", "card", "image", "file", "video")
# Actions a rule or a ladder step may name (ALLOW is no action; LADDER only for rules).
STEP_ACTIONS = tuple(a for a in Action if a not in (Action.ALLOW, Action.LADDER))
RULE_ACTIONS = (*STEP_ACTIONS, Action.LADDER)
_DOMAIN = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$")

# The keys each rule kind accepts besides name, kind, action, mute_minutes.
_KIND_KEYS: dict[RuleKind, frozenset[str]] = {
    RuleKind.WORDS: frozenset({"categories"}),
    RuleKind.LINKS: frozenset({"allowed_domains"}),
    RuleKind.MINIPROGRAM: frozenset({"allowed"}),
    RuleKind.NAME_CARD: frozenset({"categories", "keywords", "use_words", "contact", "on_messages"}),
    RuleKind.MEDIA: frozenset({"categories", "keywords", "use_words", "msg_types", "any"}),
    RuleKind.CONTACT: frozenset({"detectors"}),
    RuleKind.FLOOD: frozenset({"count", "seconds", "identical", "identical_seconds"}),
    RuleKind.NEW_MEMBER: frozenset({"hours", "forbid", "allowed_domains"}),
    RuleKind.OTHER_CORP: frozenset({"allowed_corps", "on_messages"}),
}
_COMMON_KEYS = frozenset({"name", "kind", "action", "mute_minutes"})
_POLICY_KEYS = frozenset(
    {"name", "words", "allow", "rules", "ladder", "mute_minutes", "exempt_roles", "blacklist_scope", "dry_run"}
)
_WORD_KEYS = frozenset({"word", "category", "pinyin"})


def _bad(path: str, reason: Msg) -> InvalidInput:
    return InvalidInput(Msg("err.moderation.field", field=path, reason=reason), field=path)


@dataclass(frozen=True)
class Rule:
    """One rule. Fields beyond name, kind and action matter to some kinds only (see
    ``docs/moderation.md``); ``to_dict`` writes only those of the rule's kind."""

    name: str
    kind: RuleKind
    action: Action = Action.LADDER
    mute_minutes: int | None = None  # a MUTE of this rule; None: the policy's
    # words, media, name_card: which categories of the policy's words count (None: all)
    categories: frozenset[str] | None = None
    # media, name_card: words of their own, and whether the policy's words count too
    keywords: tuple[WordEntry, ...] = ()
    use_words: bool = True
    # links, new_member: domains (and their subdomains) that are fine
    allowed_domains: tuple[str, ...] = ()
    # miniprogram: cards whose text contains one of these are fine (our own mini-program)
    allowed: tuple[str, ...] = ()
    # media: which message types, and whether any such message fires (not only listed words)
    msg_types: tuple[str, ...] = MSG_MEDIA
    any: bool = False
    # contact: which detectors
    detectors: tuple[str, ...] = CONTACT_DETECTORS
    # flood: ``count`` messages within ``seconds``; ``identical`` same texts within ``identical_seconds``
    count: int | None = None
    seconds: int | None = None
    identical: int | None = None
    identical_seconds: int | None = None
    # new_member: the first ``hours`` after joining, what is forbidden
    hours: float = 24.0
    forbid: tuple[str, ...] = ("links", "miniprogram")
    # name_card: also look for contact details in the name; name_card, other_corp: judge messages too
    contact: bool = True
    on_messages: bool = False
    # other_corp: partner corps that are fine besides our own
    allowed_corps: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": str(self.kind), "action": str(self.action)}
        if self.mute_minutes is not None:
            out["mute_minutes"] = self.mute_minutes
        keys = _KIND_KEYS[self.kind]
        for key in sorted(keys):
            value = getattr(self, key)
            if key == "categories":
                if value is not None:
                    out[key] = sorted(value)
            elif key == "keywords":
                out[key] = [_word_dict(w) for w in value]
            elif isinstance(value, tuple):
                out[key] = list(value)
            elif value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class Policy:
    """A moderation policy as the user wrote it (validated, defaults filled in)."""

    name: str = ""
    words: tuple[WordEntry, ...] = ()
    allow: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    ladder: tuple[Action, ...] = DEFAULT_LADDER
    mute_minutes: int = 60
    exempt_roles: tuple[str, ...] = DEFAULT_EXEMPT
    blacklist_scope: str = "group"
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`policy_from_dict` reads back to an equal policy."""
        return {
            "name": self.name,
            "words": [_word_dict(w) for w in self.words],
            "allow": list(self.allow),
            "rules": [r.to_dict() for r in self.rules],
            "ladder": [str(a) for a in self.ladder],
            "mute_minutes": self.mute_minutes,
            "exempt_roles": list(self.exempt_roles),
            "blacklist_scope": self.blacklist_scope,
            "dry_run": self.dry_run,
        }

    def compile(self) -> CompiledPolicy:
        return CompiledPolicy(self)


def _word_dict(w: WordEntry) -> dict[str, Any]:
    out: dict[str, Any] = {"word": w.word, "category": w.category}
    if w.pinyin:
        out["pinyin"] = True
    return out


# --- validation ---------------------------------------------------------------------------


def category_id(name: str) -> str:
    """The category a name means: an English id, a Chinese alias (色情 → porn) or, for any other
    non-empty name, a custom category of that name (trimmed). Raises ValueError when empty."""
    name = name.strip()
    if not name:
        raise ValueError("empty category")
    return CATEGORY_ALIASES.get(name, name.lower() if name.isascii() else name)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(path, Msg("err.moderation.mapping"))
    for key in value:
        if not isinstance(key, str):
            raise _bad(f"{path}.{key}" if path else str(key), Msg("err.moderation.key_type"))
    return value


def _check_keys(obj: Mapping[str, Any], allowed: Iterable[str], path: str) -> None:
    allowed = frozenset(allowed)
    for key in obj:
        if key not in allowed:
            raise _bad(_join(path, key), Msg("err.moderation.unknown_key", allowed=", ".join(sorted(allowed))))


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _list(value: Any, path: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise _bad(path, Msg("err.moderation.list"))
    return value


def _text(value: Any, path: str, limit: int) -> str:
    if not isinstance(value, str):
        raise _bad(path, Msg("err.moderation.text"))
    value = value.strip()
    if not value:
        raise _bad(path, Msg("err.moderation.empty"))
    if len(value) > limit:
        raise _bad(path, Msg("err.moderation.too_long", limit=limit))
    if any(ord(ch) < 32 for ch in value):
        raise _bad(path, Msg("err.moderation.control"))
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(path, Msg("err.moderation.bool"))
    return value


def _int(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(path, Msg("err.moderation.int", low=low, high=high))
    return value


def _number(value: Any, path: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _bad(path, Msg("err.moderation.number", low=low, high=high))
    return float(value)


def _choice(value: Any, path: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise _bad(path, Msg("err.moderation.one_of", choices=", ".join(choices)))
    return value


def _choices(value: Any, path: str, choices: Sequence[str]) -> tuple[str, ...]:
    items = _list(value, path)
    out: list[str] = []
    for i, item in enumerate(items):
        picked = _choice(item, _join(path, i), choices)
        if picked in out:
            raise _bad(_join(path, i), Msg("err.moderation.repeated"))
        out.append(picked)
    if not out:
        raise _bad(path, Msg("err.moderation.empty"))
    return tuple(out)


def _category(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise _bad(path, Msg("err.moderation.text"))
    try:
        cat = category_id(value)
    except ValueError:
        raise _bad(path, Msg("err.moderation.empty")) from None
    if len(cat) > MAX_CATEGORY:
        raise _bad(path, Msg("err.moderation.too_long", limit=MAX_CATEGORY))
    return cat


def word_entry(value: Any, path: str, default_category: str = "custom") -> WordEntry:
    """One word-list entry: a string, or ``{word, category?, pinyin?}``."""
    if isinstance(value, str):
        return WordEntry(_text(value, path, MAX_WORD), default_category)
    obj = _mapping(value, path)
    _check_keys(obj, _WORD_KEYS, path)
    if "word" not in obj:
        raise _bad(_join(path, "word"), Msg("err.moderation.required"))
    word = _text(obj["word"], _join(path, "word"), MAX_WORD)
    category = _category(obj["category"], _join(path, "category")) if "category" in obj else default_category
    pinyin = _bool(obj["pinyin"], _join(path, "pinyin")) if "pinyin" in obj else False
    return WordEntry(word, category, pinyin)


def _words(value: Any, path: str) -> tuple[WordEntry, ...]:
    entries: dict[str, WordEntry] = {}
    for i, item in enumerate(_list(value, path)):
        entry = word_entry(item, _join(path, i))
        # A word listed twice keeps its first entry: the list stays a set, and order is the user's.
        entries.setdefault(entry.word, entry)
    return tuple(entries.values())


def _domains(value: Any, path: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, item in enumerate(_list(value, path)):
        text = _text(item, _join(path, i), 253).lower().removeprefix("*.").removeprefix(".")
        if not _DOMAIN.match(text):
            raise _bad(_join(path, i), Msg("err.moderation.domain", value=item))
        out.append(text)
    return tuple(out)


def _strings(value: Any, path: str, limit: int) -> tuple[str, ...]:
    return tuple(_text(item, _join(path, i), limit) for i, item in enumerate(_list(value, path)))


def _action(value: Any, path: str, choices: Sequence[Action]) -> Action:
    return Action(_choice(value, path, [str(a) for a in choices]))


def _rule(value: Any, path: str) -> Rule:
    obj = _mapping(value, path)
    if "kind" not in obj:
        raise _bad(_join(path, "kind"), Msg("err.moderation.required"))
    kind = RuleKind(_choice(obj["kind"], _join(path, "kind"), [str(k) for k in RuleKind]))
    _check_keys(obj, _COMMON_KEYS | _KIND_KEYS[kind], path)
    p = lambda key: _join(path, key)  # noqa: E731 - a field path, said once
    fields: dict[str, Any] = {
        "name": _text(obj["name"], p("name"), MAX_NAME) if "name" in obj else str(kind),
        "kind": kind,
    }
    if "action" in obj:
        fields["action"] = _action(obj["action"], p("action"), RULE_ACTIONS)
    if "mute_minutes" in obj:
        fields["mute_minutes"] = _int(obj["mute_minutes"], p("mute_minutes"), 1, 30 * 24 * 60)
    if "categories" in obj:
        cats = [
            _category(c, _join(p("categories"), i)) for i, c in enumerate(_list(obj["categories"], p("categories")))
        ]
        if not cats:
            raise _bad(p("categories"), Msg("err.moderation.empty"))
        fields["categories"] = frozenset(cats)
    if "keywords" in obj:
        fields["keywords"] = _words(obj["keywords"], p("keywords"))
    for key in ("use_words", "any", "contact", "on_messages"):
        if key in obj:
            fields[key] = _bool(obj[key], p(key))
    for key in ("allowed_domains",):
        if key in obj:
            fields[key] = _domains(obj[key], p(key))
    if "allowed" in obj:
        fields["allowed"] = _strings(obj["allowed"], p("allowed"), MAX_WORD)
    if "allowed_corps" in obj:
        fields["allowed_corps"] = _strings(obj["allowed_corps"], p("allowed_corps"), 128)
    if "msg_types" in obj:
        fields["msg_types"] = _choices(obj["msg_types"], p("msg_types"), MSG_MEDIA)
    if "detectors" in obj:
        fields["detectors"] = _choices(obj["detectors"], p("detectors"), CONTACT_DETECTORS)
    if "forbid" in obj:
        fields["forbid"] = _choices(obj["forbid"], p("forbid"), NEW_MEMBER_FORBIDS)
    if "hours" in obj:
        fields["hours"] = _number(obj["hours"], p("hours"), 0.01, 24 * 365)
    day = 24 * 3600
    for key in ("count", "identical"):
        if key in obj:
            fields[key] = _int(obj[key], p(key), 2, 1000)
    for key in ("seconds", "identical_seconds"):
        if key in obj:
            fields[key] = _int(obj[key], p(key), 1, day)
    rule = Rule(**fields)
    if kind is RuleKind.FLOOD:
        rule = _flood_defaults(rule, obj, path)
    if kind in (RuleKind.MEDIA, RuleKind.NAME_CARD) and not (rule.use_words or rule.keywords or rule.any):
        raise _bad(p("keywords"), Msg("err.moderation.nothing_to_match"))
    return rule


def _flood_defaults(rule: Rule, obj: Mapping[str, Any], path: str) -> Rule:
    """A flood rule needs ``count`` (with ``seconds``, default 10) or ``identical`` (with
    ``identical_seconds``, default 600), or both."""
    if rule.count is None and rule.identical is None:
        raise _bad(_join(path, "count"), Msg("err.moderation.flood_needs"))
    if rule.seconds is not None and rule.count is None:
        raise _bad(_join(path, "count"), Msg("err.moderation.required"))
    if rule.identical_seconds is not None and rule.identical is None:
        raise _bad(_join(path, "identical"), Msg("err.moderation.required"))
    from dataclasses import replace

    return replace(
        rule,
        seconds=rule.seconds if rule.seconds is not None else (10 if rule.count is not None else None),
        identical_seconds=rule.identical_seconds
        if rule.identical_seconds is not None
        else (600 if rule.identical is not None else None),
    )


def policy_from_dict(data: Any) -> Policy:
    """Validate a policy given as a dict (decoded YAML or the stored JSON)."""
    obj = _mapping(data, "policy")
    _check_keys(obj, _POLICY_KEYS, "")
    fields: dict[str, Any] = {}
    if "name" in obj and obj["name"] != "":
        fields["name"] = _text(obj["name"], "name", 200)
    if "words" in obj:
        fields["words"] = _words(obj["words"], "words")
    if "allow" in obj:
        fields["allow"] = tuple(dict.fromkeys(_strings(obj["allow"], "allow", MAX_WORD)))
    if "ladder" in obj:
        steps = [_action(a, f"ladder[{i}]", STEP_ACTIONS) for i, a in enumerate(_list(obj["ladder"], "ladder"))]
        if not steps:
            raise _bad("ladder", Msg("err.moderation.empty"))
        fields["ladder"] = tuple(steps)
    if "mute_minutes" in obj:
        fields["mute_minutes"] = _int(obj["mute_minutes"], "mute_minutes", 1, 30 * 24 * 60)
    if "exempt_roles" in obj:
        # [] is allowed: nobody is exempt.
        roles = _list(obj["exempt_roles"], "exempt_roles")
        fields["exempt_roles"] = tuple(
            dict.fromkeys(_choice(r, f"exempt_roles[{i}]", MEMBER_ROLES) for i, r in enumerate(roles))
        )
    if "blacklist_scope" in obj:
        fields["blacklist_scope"] = _choice(obj["blacklist_scope"], "blacklist_scope", BLACKLIST_SCOPES)
    if "dry_run" in obj:
        fields["dry_run"] = _bool(obj["dry_run"], "dry_run")
    if "rules" in obj:
        rules = [_rule(r, f"rules[{i}]") for i, r in enumerate(_list(obj["rules"], "rules"))]
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            if rule.name in seen:
                raise _bad(f"rules[{i}].name", Msg("err.moderation.rule_twice", name=rule.name))
            seen.add(rule.name)
        fields["rules"] = tuple(rules)
    else:
        # Just words: one sensitive-word rule, acting by the ladder.
        fields["rules"] = (Rule(name=str(RuleKind.WORDS), kind=RuleKind.WORDS),)
    return Policy(**fields)


def policy_from_yaml(text: str) -> Policy:
    """A policy written in YAML; a YAML syntax error names its line."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(Msg("err.moderation.yaml", line=line, problem=problem), field="policy") from None
    if data is None:
        data = {}
    return policy_from_dict(data)


def policy_from_words(entries: Iterable[WordEntry], allow: Iterable[str] = ()) -> Policy:
    """The command line's ``--words`` policy: the words, one sensitive-word rule, action delete."""
    first: dict[str, WordEntry] = {}
    for entry in entries:
        first.setdefault(entry.word, entry)
    return Policy(
        words=tuple(first.values()),
        allow=tuple(allow),
        rules=(Rule(name=str(RuleKind.WORDS), kind=RuleKind.WORDS, action=Action.DELETE),),
    )


# --- compiled ----------------------------------------------------------------------------


@dataclass
class CompiledRule:
    rule: Rule
    # The words this rule matches (None: the rule matches no words).
    matcher: Matcher | None = None


@dataclass
class CompiledPolicy:
    """A policy ready to judge messages: one matcher per distinct word set, built here once."""

    policy: Policy
    rules: list[CompiledRule] = field(init=False)
    # How far back (seconds) a member's earlier messages matter to the flood rules (0: not at all).
    history_seconds: int = field(init=False)

    def __post_init__(self) -> None:
        cache: dict[tuple[Any, ...], Matcher] = {}
        allow = self.policy.allow
        self.rules = []
        for rule in self.policy.rules:
            entries = self._entries(rule)
            matcher = None
            if entries is not None:
                key = tuple(entries)
                matcher = cache.get(key)
                if matcher is None:
                    matcher = cache[key] = build_matcher(entries, allow)
            self.rules.append(CompiledRule(rule, matcher))
        self.history_seconds = max(
            (max(r.seconds or 0, r.identical_seconds or 0) for r in self.policy.rules if r.kind is RuleKind.FLOOD),
            default=0,
        )

    def _entries(self, rule: Rule) -> list[WordEntry] | None:
        if rule.kind not in (RuleKind.WORDS, RuleKind.MEDIA, RuleKind.NAME_CARD):
            return None
        entries: list[WordEntry] = []
        if rule.kind is RuleKind.WORDS or rule.use_words:
            entries += [w for w in self.policy.words if rule.categories is None or w.category in rule.categories]
        entries += rule.keywords
        return entries or None

    @property
    def exempt_roles(self) -> tuple[str, ...]:
        return self.policy.exempt_roles

    @property
    def ladder(self) -> tuple[Action, ...]:
        return self.policy.ladder

    @property
    def dry_run(self) -> bool:
        return self.policy.dry_run

    def mute_seconds(self, rule: Rule) -> int:
        return 60 * (rule.mute_minutes if rule.mute_minutes is not None else self.policy.mute_minutes)

    def resolve(self, action: Action, strikes: int | None) -> tuple[Action, int | None]:
        """A rule's action for a member with ``strikes`` earlier strikes: LADDER becomes its step
        (the first when strikes are unknown); returns (action, ladder step index or None)."""
        if action is not Action.LADDER:
            return action, None
        step = 0 if strikes is None else min(max(strikes, 0), len(self.policy.ladder) - 1)
        return self.policy.ladder[step], step
