"""The simulated chat platform: groups, members, messages, mutes, invite links and orders on a
virtual clock, reporting what happens as interchange-format v1 events to a sink.

Two kinds of callers change it: the people in it (``create_group``, ``join``, ``leave``, ``post``,
``pay``, ``refund``, ``confirm_send``), driven by tests or by the agent-based community simulator,
and qunyun's bot through the connector's ``perform`` (``send_message``, ``kick``, ``mute``,
``create_invite_link``…). Everything is deterministic for a given seed and sequence of calls.

Bot sends are recorded but not reported as ``message.posted``: a platform does not echo a bot's
own messages, and they are not member activity.
"""

from __future__ import annotations

import functools
import random
import string
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Concatenate, ParamSpec, TypeVar

from qunyun.connectors.base import Capability, PlatformProfile, TransientError
from qunyun.connectors.simulator import events as ev
from qunyun.connectors.simulator.capabilities import PROFILE as SIMULATOR_PROFILE
from qunyun.connectors.simulator.clock import VirtualClock
from qunyun.connectors.simulator.state import (
    Interception,
    InterceptRule,
    PendingSend,
    SimDirectMessage,
    SimGroup,
    SimInviteLink,
    SimMember,
    SimMembership,
    SimMessage,
    SimOrder,
    SimulatorState,
)

EventSink = Callable[[list[dict[str, Any]]], None]
P = ParamSpec("P")
R = TypeVar("R")
_CENT = Decimal("0.01")


class SimulatorError(Exception):
    """The platform refused an operation; ``code`` says why (``muted``, ``link_expired``…)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _locked(fn: Callable[Concatenate[SimulatedPlatform, P], R]) -> Callable[Concatenate[SimulatedPlatform, P], R]:
    @functools.wraps(fn)
    def wrapper(self: SimulatedPlatform, *args: P.args, **kwargs: P.kwargs) -> R:
        with self.lock:
            return fn(self, *args, **kwargs)

    return wrapper


class SimulatedPlatform:
    """In-process platform state. ``sink`` receives each operation's events as one list; without
    a sink they collect in ``pending_events`` (see ``drain_events``)."""

    def __init__(
        self,
        *,
        seed: int = 0,
        clock: VirtualClock | None = None,
        sink: EventSink | None = None,
        profile: PlatformProfile = SIMULATOR_PROFILE,
        namespace: str = "sim",
        transient_failure_rate: float = 0.0,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = clock or VirtualClock()
        self.sink = sink
        self.profile = profile
        self.namespace = namespace
        self.bot = f"{namespace}-bot"
        self.transient_failure_rate = transient_failure_rate
        self.state = SimulatorState()
        self.pending_events: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self._failures_due = 0

    # --- plumbing -------------------------------------------------------------------------

    def now(self) -> datetime:
        return self.clock.now()

    def _next_id(self, prefix: str) -> str:
        n = self.state.counters.get(prefix, 0) + 1
        self.state.counters[prefix] = n
        return f"{self.namespace}-{prefix}{n}"

    def _reported(self, event: dict[str, Any]) -> bool:
        """Whether the emulated platform would tell qunyun about ``event``."""
        kind = event["kind"]
        if kind in ("member.joined", "member.left"):
            return self.profile.has(Capability.MEMBERSHIP_EVENTS)
        if kind in ("message.posted", "message.deleted"):
            return self.profile.has(Capability.READ_MESSAGES)
        return True

    def _report(self, *events: dict[str, Any]) -> None:
        batch = []
        for event in events:
            if not self._reported(event):
                continue
            if event["kind"] == "member.joined" and not self.profile.has(Capability.INVITE_LINK_ATTRIBUTION):
                event.pop("channel", None)
                event.pop("link", None)
                if event.get("scene") == "link":
                    event.pop("scene")
            batch.append({"id": self._next_id("ev"), **event})
        if not batch:
            return
        if self.sink is None:
            self.pending_events.extend(batch)
        else:
            self.sink(batch)

    @_locked
    def drain_events(self) -> list[dict[str, Any]]:
        """The events collected so far (when there is no sink), oldest first; clears them."""
        out, self.pending_events = self.pending_events, []
        return out

    @_locked
    def fail_next_api_calls(self, count: int = 1) -> None:
        """Make the next ``count`` bot API calls fail transiently (before changing anything)."""
        self._failures_due += count

    def api_gate(self) -> None:
        """Called before every bot API call: raises TransientError for injected failures."""
        if self._failures_due > 0:
            self._failures_due -= 1
            raise TransientError("simulated outage (injected)")
        if self.transient_failure_rate and self.rng.random() < self.transient_failure_rate:
            raise TransientError("simulated outage (random)")

    # --- lookups ----------------------------------------------------------------------------

    def group(self, group_id: str) -> SimGroup:
        group = self.state.groups.get(group_id)
        if group is None:
            raise SimulatorError("unknown_group", f"no group {group_id!r}")
        return group

    def link(self, url: str) -> SimInviteLink:
        link = self.state.links.get(url)
        if link is None:
            raise SimulatorError("unknown_link", f"no invite link {url!r}")
        return link

    def members_of(self, group_id: str) -> list[str]:
        return list(self.group(group_id).members)

    def is_member(self, member: str, group_id: str) -> bool:
        return member in self.group(group_id).members

    def muted_until(self, group_id: str, member: str) -> datetime | None:
        """The end of the member's mute; raises ``SimulatorError("not_muted")`` if not muted."""
        group = self.group(group_id)
        if member not in group.mutes:
            raise SimulatorError("not_muted", f"{member} is not muted in {group_id}")
        return group.mutes[member]

    def is_muted(self, group_id: str, member: str) -> bool:
        group = self.group(group_id)
        if member not in group.mutes:
            return False
        until = group.mutes[member]
        return until is None or until > self.now()

    def link_member_count(self, url: str) -> int:
        """Members in the group now who joined through ``url`` (what Telegram's limit counts)."""
        link = self.link(url)
        return sum(1 for m in self.group(link.group).members.values() if m.via_link == url)

    def messages_in(self, group_id: str, *, include_deleted: bool = False) -> list[SimMessage]:
        return [
            m for m in self.state.messages.values() if m.group == group_id and (include_deleted or m.deleted_at is None)
        ]

    # --- what people do ---------------------------------------------------------------------

    @_locked
    def add_member(
        self,
        member_id: str | None = None,
        *,
        display_name: str = "",
        gender: str = "",
        birth_year: int | None = None,
        occupation: str = "",
        region: str = "",
        interests: tuple[str, ...] = (),
    ) -> SimMember:
        """A person on the platform (not yet in any group), with the persona a profile lookup
        returns. Known ids are returned as they are."""
        member_id = member_id or self._next_id("m")
        member = self.state.members.get(member_id)
        if member is None:
            member = SimMember(
                id=member_id,
                display_name=display_name or member_id,
                gender=gender,
                birth_year=birth_year,
                occupation=occupation,
                region=region,
                interests=tuple(interests),
            )
            self.state.members[member_id] = member
        return member

    @_locked
    def take_bot_posts(self) -> list[tuple[str, datetime, bool]]:
        """``(group, sent at, mentions someone)`` of the bot messages delivered since the last call; clears them."""
        out, self.state.bot_posts = self.state.bot_posts, []
        return out

    @_locked
    def forget_messages_before(self, when: datetime) -> int:
        """Drop stored messages sent before ``when`` (long simulations would hold every one);
        they can no longer be deleted. Returns how many were dropped."""
        old = [key for key, m in self.state.messages.items() if m.sent_at < when]
        for key in old:
            del self.state.messages[key]
        return len(old)

    @_locked
    def create_group(
        self,
        name: str,
        *,
        owner: str | None = None,
        capacity: int | None = None,
        region: str = "",
        tier: str = "",
        group_id: str | None = None,
    ) -> SimGroup:
        """A new group; reported as ``group.created``."""
        if not name:
            raise SimulatorError("invalid", "a group needs a name")
        group_id = group_id or self._next_id("g")
        if group_id in self.state.groups:
            raise SimulatorError("group_exists", f"group {group_id!r} exists")
        capacity = capacity or self.profile.limits.get("group_capacity", 500)
        group = SimGroup(
            id=group_id,
            name=name,
            created_at=self.now(),
            capacity=capacity,
            owner=owner,
            region=region,
            tier=tier,
        )
        self.state.groups[group_id] = group
        self._report(
            ev.event(
                "group.created",
                self.now(),
                group=group_id,
                name=name,
                capacity=capacity,
                region=region or None,
                tier=tier or None,
                owner=owner,
            )
        )
        return group

    @_locked
    def join(
        self,
        member: str,
        group: str | None = None,
        *,
        via_link: str | None = None,
        inviter: str | None = None,
        scene: str | None = None,
    ) -> SimMembership:
        """``member`` joins ``group`` (or the group of ``via_link``); reported as ``member.joined``
        with scene ``link``, the link (its URL) and the link's channel, ``invite`` with an
        inviter, else ``scene``."""
        link = None
        if via_link is not None:
            link = self.link(via_link)
            if group is not None and group != link.group:
                raise SimulatorError("wrong_group", f"{via_link} leads to {link.group}, not {group}")
            group = link.group
            self._check_link(link)
        if group is None:
            raise SimulatorError("invalid", "join needs a group or an invite link")
        target = self.group(group)
        if member in target.members:
            raise SimulatorError("already_member", f"{member} is already in {group}")
        if len(target.members) >= target.capacity:
            raise SimulatorError("group_full", f"{group} is full ({target.capacity})")
        if inviter is not None and inviter not in target.members:
            raise SimulatorError("not_a_member", f"inviter {inviter} is not in {group}")
        self.add_member(member)
        membership = SimMembership(member=member, joined_at=self.now(), via_link=via_link, inviter=inviter)
        target.members[member] = membership
        if link is not None:
            link.uses += 1
            scene = "link"
        elif inviter is not None:
            scene = scene or "invite"
        self._report(
            ev.event(
                "member.joined",
                self.now(),
                group=group,
                member=member,
                scene=scene,
                channel=link.channel if link is not None else None,
                link=link.url if link is not None else None,
                inviter=inviter,
                member_name=self._name_of(member),
            )
        )
        self._welcome(target, member)
        return membership

    def _check_link(self, link: SimInviteLink) -> None:
        if link.revoked:
            raise SimulatorError("link_revoked", f"{link.url} was revoked")
        if link.expire_at is not None and self.now() >= link.expire_at:
            raise SimulatorError("link_expired", f"{link.url} expired at {link.expire_at.isoformat()}")
        if link.member_limit is not None and self.link_member_count(link.url) >= link.member_limit:
            raise SimulatorError("link_full", f"{link.url} reached its member limit ({link.member_limit})")

    def _welcome(self, group: SimGroup, member: str) -> None:
        text = group.welcome_message or self.state.default_welcome
        if text and self.profile.has(Capability.WELCOME_ON_JOIN):
            self._record_message(group.id, self.bot, "text", f"@{member} {text}", by_bot=True)

    @_locked
    def leave(self, member: str, group: str) -> None:
        """``member`` leaves ``group``; reported as ``member.left`` with reason ``left``."""
        self._remove(member, group, "left")

    def _remove(self, member: str, group_id: str, reason: str) -> None:
        group = self.group(group_id)
        if member not in group.members:
            raise SimulatorError("not_a_member", f"{member} is not in {group_id}")
        del group.members[member]
        group.mutes.pop(member, None)
        self._report(
            ev.event(
                "member.left",
                self.now(),
                group=group_id,
                member=member,
                reason=reason,
                member_name=self._name_of(member),
            )
        )

    @_locked
    def post(self, member: str, group: str, text: str = "", msg_type: str = "text") -> SimMessage:
        """``member`` posts in ``group``; reported as ``message.posted``. Muted members and
        messages matching an intercept rule are refused."""
        target = self.group(group)
        if member not in target.members:
            raise SimulatorError("not_a_member", f"{member} is not in {group}")
        if self.is_muted(group, member):
            raise SimulatorError("muted", f"{member} is muted in {group}")
        rule = self._intercepting_rule(group, text)
        if rule is not None:
            self.state.interceptions.append(Interception(group, member, text, rule, self.now()))
            raise SimulatorError("intercepted", f"blocked by intercept rule {rule!r}")
        message = self._record_message(group, member, msg_type, text)
        self._report(
            ev.event(
                "message.posted",
                self.now(),
                group=group,
                member=member,
                msg_type=msg_type,
                text=text or None,
                message=message.id,
                member_name=self._name_of(member),
            )
        )
        return message

    def _name_of(self, member: str) -> str | None:
        """The member's display name as the platform reports it (none when it has only an id)."""
        person = self.state.members.get(member)
        if person is None or not person.display_name or person.display_name == member:
            return None
        return person.display_name

    def _intercepting_rule(self, group: str, text: str) -> str | None:
        if not text or not self.profile.has(Capability.INTERCEPT_RULES):
            return None
        folded = text.casefold()
        for rule in self.state.intercept_rules.values():
            if rule.group in (None, group) and any(word.casefold() in folded for word in rule.words):
                return rule.name
        return None

    def _record_message(
        self,
        group: str,
        sender: str,
        msg_type: str,
        text: str,
        *,
        by_bot: bool = False,
        material: str | None = None,
    ) -> SimMessage:
        message = SimMessage(
            id=self._next_id("msg"),
            group=group,
            sender=sender,
            msg_type=msg_type,
            text=text,
            sent_at=self.now(),
            by_bot=by_bot,
            material=material,
        )
        self.state.messages[message.id] = message
        if by_bot:
            self.state.bot_posts.append((group, message.sent_at, text.startswith("@")))
        return message

    @_locked
    def pay(
        self,
        member: str,
        amount: Decimal | str | int,
        *,
        product: str | None = None,
        group: str | None = None,
        order_id: str | None = None,
    ) -> SimOrder:
        """A paid order (the shop's webhook); reported as ``order.paid``."""
        value = _money(amount)
        if value <= 0:
            raise SimulatorError("invalid", "an order amount must be positive")
        if group is not None:
            self.group(group)
        order_id = order_id or self._next_id("o")
        if order_id in self.state.orders:
            raise SimulatorError("order_exists", f"order {order_id!r} exists")
        self.add_member(member)
        order = SimOrder(id=order_id, member=member, amount=value, paid_at=self.now(), product=product, group=group)
        self.state.orders[order_id] = order
        self._report(
            ev.event(
                "order.paid",
                self.now(),
                order=order_id,
                member=member,
                amount=str(value),
                product=product,
                group=group,
            )
        )
        return order

    @_locked
    def refund(self, order_id: str, amount: Decimal | str | int | None = None) -> Decimal:
        """Refund (part of) an order, by default what is left of it; reported as ``order.refunded``."""
        order = self.state.orders.get(order_id)
        if order is None:
            raise SimulatorError("unknown_order", f"no order {order_id!r}")
        left = order.amount - order.refunded
        value = left if amount is None else _money(amount)
        if value <= 0 or value > left:
            raise SimulatorError("invalid", f"refund must be between 0.01 and {left}")
        order.refunded += value
        self._report(ev.event("order.refunded", self.now(), order=order_id, amount=str(value)))
        return value

    @_locked
    def confirm_send(self, ref: str) -> SimMessage:
        """The owner presses send on a held group send: it is delivered now."""
        pending = self.state.pending_sends.get(ref)
        if pending is None:
            raise SimulatorError("unknown_send", f"no held send {ref!r}")
        if pending.message is not None:
            return self.state.messages[pending.message]
        text = _with_mentions(pending.text, pending.mention, pending.mentions)
        message = self._record_message(
            pending.group, self.bot, pending.msg_type, text, by_bot=True, material=pending.material
        )
        pending.confirmed_at = self.now()
        pending.message = message.id
        return message

    # --- what qunyun's bot does (through SimulatorConnector.perform) --------------------------

    def _require_member(self, group: SimGroup, member: str) -> None:
        if member not in group.members:
            raise SimulatorError("not_a_member", f"{member} is not in {group.id}")

    @_locked
    def send_message(
        self,
        group: str,
        text: str,
        *,
        msg_type: str = "text",
        material: str | None = None,
        mention: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> SimMessage:
        """A bot message; ``mention`` must be in the group, ``mentions`` may have left since
        (a welcome for several members still names the ones who left meanwhile)."""
        target = self.group(group)
        if mention is not None:
            self._require_member(target, mention)
        text = _with_mentions(text, mention, mentions)
        return self._record_message(group, self.bot, msg_type, text, by_bot=True, material=material)

    @_locked
    def send_direct_message(self, member: str, text: str) -> SimDirectMessage:
        """A private message from the bot to a member the platform knows."""
        if member not in self.state.members:
            raise SimulatorError("unknown_member", f"no member {member!r}")
        if not text:
            raise SimulatorError("invalid", "a message needs a text")
        message = SimDirectMessage(id=self._next_id("dm"), member=member, text=text, sent_at=self.now())
        self.state.direct_messages.append(message)
        return message

    def direct_messages_to(self, member: str) -> list[SimDirectMessage]:
        return [m for m in self.state.direct_messages if m.member == member]

    @_locked
    def hold_send(
        self,
        group: str,
        text: str,
        *,
        msg_type: str = "text",
        material: str | None = None,
        mention: str | None = None,
        mentions: tuple[str, ...] = (),
    ) -> PendingSend:
        """Queue a send that waits for the owner's confirmation (``confirm_send``)."""
        target = self.group(group)
        if mention is not None:
            self._require_member(target, mention)
        pending = PendingSend(
            ref=self._next_id("send"),
            group=group,
            text=text,
            msg_type=msg_type,
            created_at=self.now(),
            material=material,
            mention=mention,
            mentions=tuple(mentions),
        )
        self.state.pending_sends[pending.ref] = pending
        return pending

    @_locked
    def delete_message(self, group: str, message_id: str) -> SimMessage:
        message = self.state.messages.get(message_id)
        if message is None or message.group != group:
            raise SimulatorError("unknown_message", f"no message {message_id!r} in {group}")
        if message.deleted_at is not None:
            raise SimulatorError("already_deleted", f"message {message_id!r} is already deleted")
        message.deleted_at = self.now()
        self._report(ev.event("message.deleted", self.now(), group=group, message=message_id))
        return message

    @_locked
    def mute(self, group: str, member: str, seconds: int | None = None) -> datetime | None:
        target = self.group(group)
        self._require_member(target, member)
        until = None if seconds is None else self.now() + timedelta(seconds=seconds)
        target.mutes[member] = until
        return until

    @_locked
    def unmute(self, group: str, member: str) -> None:
        target = self.group(group)
        self._require_member(target, member)
        target.mutes.pop(member, None)

    @_locked
    def kick(self, group: str, member: str) -> None:
        """Remove ``member``; reported as ``member.left`` with reason ``removed``."""
        self._remove(member, group, "removed")

    @_locked
    def create_invite_link(
        self,
        group: str,
        *,
        name: str = "",
        member_limit: int | None = None,
        expire_at: datetime | None = None,
        channel: str | None = None,
    ) -> SimInviteLink:
        self.group(group)
        if member_limit is not None and member_limit < 1:
            raise SimulatorError("invalid", "member_limit must be at least 1")
        if expire_at is not None and expire_at <= self.now():
            raise SimulatorError("invalid", "expire_at must be in the future")
        token = "".join(self.rng.choices(string.ascii_letters + string.digits, k=12))
        link = SimInviteLink(
            url=f"sim://{self.namespace}/join/{token}",
            group=group,
            created_at=self.now(),
            name=name,
            member_limit=member_limit,
            expire_at=expire_at,
            channel=channel,
        )
        self.state.links[link.url] = link
        return link

    @_locked
    def revoke_invite_link(self, group: str, url: str) -> SimInviteLink:
        link = self.link(url)
        if link.group != group:
            raise SimulatorError("unknown_link", f"{url} does not belong to {group}")
        link.revoked = True
        return link

    @_locked
    def set_tags(self, member: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> set[str]:
        target = self.state.members.get(member)
        if target is None:
            raise SimulatorError("unknown_member", f"no member {member!r}")
        target.tags.difference_update(remove)
        target.tags.update(add)
        return target.tags

    @_locked
    def set_intercept_rule(self, name: str, words: tuple[str, ...], group: str | None = None) -> InterceptRule:
        if group is not None:
            self.group(group)
        rule = InterceptRule(name=name, words=tuple(words), group=group)
        self.state.intercept_rules[name] = rule
        return rule

    @_locked
    def set_welcome_message(self, group: str | None, text: str) -> None:
        if group is None:
            self.state.default_welcome = text
        else:
            self.group(group).welcome_message = text


def _with_mentions(text: str, mention: str | None, mentions: tuple[str, ...]) -> str:
    """The text as delivered: each mentioned member as ``@id`` in front of it."""
    names = ([mention] if mention is not None else []) + [m for m in mentions if m != mention]
    return " ".join([*(f"@{m}" for m in names), text]) if names else text


def _money(amount: Decimal | str | int) -> Decimal:
    try:
        value = Decimal(amount)
    except (InvalidOperation, TypeError) as exc:
        raise SimulatorError("invalid", f"not an amount: {amount!r}") from exc
    if value != value.quantize(_CENT):
        raise SimulatorError("invalid", f"amounts have at most 2 decimals: {amount!r}")
    return value.quantize(_CENT)
