"""The shared vocabulary of moderation: word entries, hits, rule and action kinds, the context a
rule judges and the decision it returns.

The matcher (``matcher.py``), the policy and its rules (``policy.py``, ``rules.py``), the engine
that runs them on live events (``engine.py``) and the command line (``cli.py``) all speak these
types; nothing here touches the database.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# The categories a word list knows by name; any other non-empty name is a custom category.
KNOWN_CATEGORIES: tuple[str, ...] = ("politics", "porn", "gambling", "ads", "competitor", "custom")
# What people write for them (Chinese names as the seeds and lexicons use them).
CATEGORY_ALIASES: dict[str, str] = {
    "政治": "politics",
    "色情": "porn",
    "赌博": "gambling",
    "广告": "ads",
    "竞品": "competitor",
    "自定义": "custom",
}


@dataclass(frozen=True, slots=True)
class WordEntry:
    """One listed word. ``pinyin``: also match the word written in pinyin (``falungong``)."""

    word: str
    category: str = "custom"
    pinyin: bool = False


@dataclass(frozen=True, slots=True)
class Hit:
    """A listed word found in a text: ``word`` as the list writes it, ``[start, end)`` the span
    of the original text (code points) that matched it, whatever evasion was normalized away."""

    word: str
    category: str
    start: int
    end: int


class Matcher(Protocol):
    def find(self, text: str) -> list[Hit]:
        """Every hit in ``text``, in order of ``start`` (overlapping hits allowed)."""
        ...


class RuleKind(enum.StrEnum):
    WORDS = "words"  # sensitive words (the policy's word lists)
    LINKS = "links"  # URLs and domains outside the allowed domains
    MINIPROGRAM = "miniprogram"  # mini-program cards
    NAME_CARD = "name_card"  # listed words in a member's name card (display name)
    MEDIA = "media"  # files, videos, images: listed words in their names or captions
    CONTACT = "contact"  # phone numbers, WeChat ids, "加我微信"
    FLOOD = "flood"  # N messages in T seconds; N identical messages
    NEW_MEMBER = "new_member"  # first X hours: no links (nor mini-programs)
    OTHER_CORP = "other_corp"  # members of another WeCom corp


class Action(enum.StrEnum):
    """What a decision does, from mildest to strongest (``SEVERITY``). ``LADDER`` is a rule's
    action meaning "the next step of the policy's escalation ladder for this member"; decisions
    never carry it."""

    ALLOW = "allow"
    WARN = "warn"
    DELETE = "delete"
    MUTE = "mute"
    KICK = "kick"
    BLACKLIST = "blacklist"
    LADDER = "ladder"


SEVERITY: dict[Action, int] = {
    Action.ALLOW: 0,
    Action.WARN: 1,
    Action.DELETE: 2,
    Action.MUTE: 3,
    Action.KICK: 4,
    Action.BLACKLIST: 5,
}


@dataclass(frozen=True, slots=True)
class Recent:
    """One of the member's earlier messages in the same group: when (UTC epoch microseconds)
    and its text when it is kept (None otherwise)."""

    ts: int
    text: str | None


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What the rules judge. For a ``message.posted``: its text, type and the sender; for a
    ``member.joined`` (``msg_type`` None): only the member (name card, corp)."""

    id: str
    ts: int  # UTC epoch microseconds
    msg_type: str | None  # interchange msg_type; None for a join
    text: str | None = None
    member_name: str = ""
    # When the member last joined this group (None: unknown) — the new-member rule's clock.
    joined_ts: int | None = None
    # The member's WeCom corp ("" unknown or none); the connection's own corps are ``own_corps``.
    member_corp: str = ""
    own_corps: frozenset[str] = frozenset()
    # The member's earlier messages in this group within the policy's history window, oldest first.
    recent: Sequence[Recent] = ()


@dataclass(frozen=True)
class Decision:
    """The verdict on one message or join. ``action`` is never LADDER; ``rule`` is the firing
    rule's name (None when nothing fired), ``matches`` the hits that made it fire."""

    id: str
    action: Action
    rule: str | None = None
    rule_kind: RuleKind | None = None
    category: str | None = None
    matches: tuple[Hit, ...] = ()
    # Rule-specific evidence for people (e.g. {"count": 6, "seconds": 10} for a flood).
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The command-line contract's shape (PRODUCT.md, ``qunyun moderation check``)."""
        return {
            "id": self.id,
            "action": str(self.action),
            "rule": self.rule,
            "category": self.category,
            "matches": [{"word": h.word, "start": h.start, "end": h.end} for h in self.matches],
        }
