"""The simulated platform's state: plain data, changed only by ``SimulatedPlatform``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from qunyun.connectors.base import ActionResult


@dataclass
class SimMember:
    """A person on the platform; the persona fields are what a profile lookup returns."""

    id: str
    display_name: str = ""
    tags: set[str] = field(default_factory=set)
    gender: str = ""
    birth_year: int | None = None
    occupation: str = ""
    region: str = ""
    interests: tuple[str, ...] = ()


@dataclass
class SimMembership:
    """A member's current stay in a group."""

    member: str
    joined_at: datetime
    via_link: str | None = None
    inviter: str | None = None


@dataclass
class SimGroup:
    id: str
    name: str
    created_at: datetime
    capacity: int
    owner: str | None = None
    region: str = ""
    tier: str = ""
    welcome_message: str | None = None
    members: dict[str, SimMembership] = field(default_factory=dict)
    # member → muted until (None: until unmuted)
    mutes: dict[str, datetime | None] = field(default_factory=dict)


@dataclass
class SimMessage:
    id: str
    group: str
    sender: str  # a member id, or the bot account for what qunyun sent
    msg_type: str
    text: str
    sent_at: datetime
    by_bot: bool = False
    material: str | None = None
    deleted_at: datetime | None = None


@dataclass
class SimInviteLink:
    url: str
    group: str
    created_at: datetime
    name: str = ""
    member_limit: int | None = None
    expire_at: datetime | None = None
    channel: str | None = None
    uses: int = 0  # joins through the link, ever
    revoked: bool = False


@dataclass
class PendingSend:
    """A send held until a person confirms it (WeCom group mass send waiting for the owner)."""

    ref: str
    group: str
    text: str
    msg_type: str
    created_at: datetime
    material: str | None = None
    mention: str | None = None
    mentions: tuple[str, ...] = ()
    confirmed_at: datetime | None = None
    message: str | None = None  # id of the delivered message


@dataclass
class SimDirectMessage:
    """A private message from qunyun's bot to a member."""

    id: str
    member: str
    text: str
    sent_at: datetime


@dataclass
class SimOrder:
    id: str
    member: str
    amount: Decimal
    paid_at: datetime
    product: str | None = None
    group: str | None = None
    refunded: Decimal = Decimal("0")


@dataclass
class InterceptRule:
    name: str
    words: tuple[str, ...]
    group: str | None = None  # None: every group


@dataclass
class Interception:
    group: str
    member: str
    text: str
    rule: str
    at: datetime


@dataclass
class SimulatorState:
    groups: dict[str, SimGroup] = field(default_factory=dict)
    members: dict[str, SimMember] = field(default_factory=dict)
    messages: dict[str, SimMessage] = field(default_factory=dict)
    links: dict[str, SimInviteLink] = field(default_factory=dict)
    pending_sends: dict[str, PendingSend] = field(default_factory=dict)
    orders: dict[str, SimOrder] = field(default_factory=dict)
    intercept_rules: dict[str, InterceptRule] = field(default_factory=dict)
    interceptions: list[Interception] = field(default_factory=list)
    direct_messages: list[SimDirectMessage] = field(default_factory=list)
    default_welcome: str | None = None
    # idempotency key → the first result of the API call made with it (a reconciling simulator's
    # transaction ids; a plain one remembers nothing and sends again)
    performed: dict[str, ActionResult] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    # (group, sent at, mentions a member) of every bot message delivered, for observers that
    # react to pushes (the community simulator); they take and clear it (take_bot_posts).
    bot_posts: list[tuple[str, datetime, bool]] = field(default_factory=list)
