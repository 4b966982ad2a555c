"""The simulator connector: qunyun's side of the simulated platform."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from qunyun.connectors.actions import (
    Action,
    CreateGroup,
    CreateInviteLink,
    DeleteMessage,
    Kick,
    Mute,
    RemindNameCard,
    RevokeInviteLink,
    SendGroupMessage,
    SendPrivateMessage,
    SendWelcome,
    SetTags,
    SetWelcomeMessage,
    SyncInterceptRules,
    Unmute,
    WelcomeMembers,
)
from qunyun.connectors.base import (
    ActionResult,
    Capability,
    Connector,
    MemberProfile,
    PlatformProfile,
    UnsupportedAction,
    missing_capabilities,
    needs_confirmation,
)
from qunyun.connectors.simulator import events as ev
from qunyun.connectors.simulator.capabilities import PROFILE as SIMULATOR_PROFILE
from qunyun.connectors.simulator.clock import VirtualClock
from qunyun.connectors.simulator.platform import EventSink, SimulatedPlatform, SimulatorError
from qunyun.connectors.simulator.recording import CallRecording, RecordedCall
from qunyun.errors import InvalidInput
from qunyun.locale import Msg


class SimulatorConnector(Connector):
    """A connector over a :class:`SimulatedPlatform` (created here unless one is given).

    With another platform's ``profile`` it emulates that platform: it refuses what the profile
    lacks, and holds sends for confirmation when the profile only has ``send_requires_confirmation``.

    Like most real platforms it does **not** deduplicate by idempotency key: the same call twice
    is two sends. With ``reconcile=True`` it behaves like Matrix's transaction ids: it remembers
    each key and what it answered, a repeated call returns the first answer (``key_idempotent``),
    and :meth:`reconcile` tells what became of a key. ``record_to`` names a file that keeps every
    call it receives for good (see :mod:`~qunyun.connectors.simulator.recording`); a reconciling
    simulator then remembers keys in that file, across processes.
    """

    def __init__(
        self,
        platform: SimulatedPlatform | None = None,
        *,
        seed: int = 0,
        clock: VirtualClock | None = None,
        sink: EventSink | None = None,
        profile: PlatformProfile = SIMULATOR_PROFILE,
        namespace: str = "sim",
        reconcile: bool = False,
        record_to: str | None = None,
    ) -> None:
        self.sim = platform or SimulatedPlatform(
            seed=seed, clock=clock, sink=sink, profile=profile, namespace=namespace
        )
        self.profile = self.sim.profile
        self.reconciles = self.key_idempotent = reconcile
        self.recording = CallRecording(record_to) if record_to else None

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], *, namespace: str = "sim") -> SimulatorConnector:
        """A simulator built from a connection's settings: ``seed`` (int), ``reconcile`` (bool),
        ``record_to`` (a file path), ``groups`` (external ids of groups the platform starts
        with, for a worker process whose simulated world is otherwise empty)."""
        seed = settings.get("seed", 0)
        record_to = settings.get("record_to")
        connector = cls(
            seed=seed if isinstance(seed, int) else 0,
            namespace=namespace,
            reconcile=settings.get("reconcile") is True,
            record_to=record_to if isinstance(record_to, str) and record_to else None,
        )
        groups = settings.get("groups")
        for group in groups if isinstance(groups, list) else []:
            if isinstance(group, str) and group:
                connector.sim.create_group(group, group_id=group)
        connector.sim.drain_events()
        return connector

    @property
    def clock(self) -> VirtualClock:
        return self.sim.clock

    def now(self) -> datetime:
        return self.sim.now()

    def normalize(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The simulator reports v1 events natively: one event, or ``{"events": [...]}``."""
        if "events" in raw and "kind" not in raw:
            batch = raw["events"]
            if not isinstance(batch, list):
                raise InvalidInput(Msg("err.sim.events_list"), field="events")
            return [ev.validate(item, i) for i, item in enumerate(batch)]
        return [ev.validate(raw)]

    def perform(self, action: Action, idempotency_key: str) -> ActionResult:
        """Perform ``action``: every call is a new one, unless reconciling and the key was seen
        (then its first answer). Recorded before it returns when ``record_to`` is set."""
        missing = missing_capabilities(action, self.capabilities)
        if missing:
            raise UnsupportedAction(f"{self.profile.title} cannot {action.kind}: needs {', '.join(sorted(missing))}")
        with self.sim.lock, self._exclusive():
            if self.reconciles:
                first = self._known(idempotency_key)
                if first is not None:
                    return first
            self.sim.api_gate()  # may raise TransientError; nothing changed and nothing is recorded
            try:
                result = self._perform(action)
            except SimulatorError as exc:
                result = ActionResult.failed(f"{exc.code}: {exc}")
            self._remember(idempotency_key, action, result)
            return result

    def reconcile(self, action: Action, idempotency_key: str) -> ActionResult | None:
        """The answer given to the call made with ``idempotency_key``, or None if none was made
        (only with ``reconcile=True``)."""
        if not self.reconciles:
            return super().reconcile(action, idempotency_key)
        with self.sim.lock:
            self.sim.api_gate()
            return self._known(idempotency_key)

    def received(self) -> list[RecordedCall]:
        """Every call recorded so far (with ``record_to``), by any process, in order."""
        return self.recording.calls() if self.recording is not None else []

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        if self.recording is None:
            yield
            return
        with self.recording.exclusive():
            yield

    def _known(self, key: str) -> ActionResult | None:
        if self.recording is not None:
            call = self.recording.find(key)
            return call.result if call is not None else None
        return self.sim.state.performed.get(key)

    def _remember(self, key: str, action: Action, result: ActionResult) -> None:
        if self.reconciles:
            self.sim.state.performed.setdefault(key, result)
        if self.recording is not None:
            group = getattr(action, "group", None)
            text = getattr(action, "text", None)
            self.recording.append(RecordedCall(key, action.kind.value, group, text, result))

    def fetch_member_profiles(self, external_ids: Sequence[str]) -> dict[str, MemberProfile]:
        """The persona of each known member (unknown ids are left out). Emulating a platform
        that has profiles, only what that platform reveals: WeCom gives name and gender."""
        if not self.profile.has(Capability.MEMBER_PROFILES):
            raise UnsupportedAction(f"{self.profile.title} cannot fetch member profiles")
        self.sim.api_gate()
        full = self.profile.platform == "simulator"
        out = {}
        with self.sim.lock:
            members = self.sim.state.members
            for external_id in external_ids:
                m = members.get(external_id)
                if m is None:
                    continue
                out[external_id] = MemberProfile(
                    display_name=m.display_name,
                    gender=m.gender or None,
                    birth_year=m.birth_year if full else None,
                    occupation=(m.occupation or None) if full else None,
                    region=(m.region or None) if full else None,
                    interests=m.interests if full and m.interests else None,
                )
        return out

    def _perform(self, action: Action) -> ActionResult:
        sim = self.sim
        match action:
            case SendGroupMessage() | SendWelcome():
                mention = action.member if isinstance(action, SendWelcome) else None
                msg_type = action.msg_type if isinstance(action, SendGroupMessage) else "text"
                material = action.material if isinstance(action, SendGroupMessage) else None
                if needs_confirmation(action, self.capabilities):
                    pending = sim.hold_send(
                        action.group, action.text, msg_type=msg_type, material=material, mention=mention
                    )
                    return ActionResult.awaiting_confirmation(pending.ref, "held for the group owner to send")
                message = sim.send_message(
                    action.group, action.text, msg_type=msg_type, material=material, mention=mention
                )
                return ActionResult.done(message.id)
            case WelcomeMembers() | RemindNameCard():
                if needs_confirmation(action, self.capabilities):
                    pending = sim.hold_send(action.group, action.text, mentions=action.mentions)
                    return ActionResult.awaiting_confirmation(pending.ref, "held for the group owner to send")
                return ActionResult.done(sim.send_message(action.group, action.text, mentions=action.mentions).id)
            case SendPrivateMessage():
                return ActionResult.done(sim.send_direct_message(action.member, action.text).id)
            case SetWelcomeMessage():
                sim.set_welcome_message(action.group, action.text)
                return ActionResult.done(action.group or "default")
            case DeleteMessage():
                return ActionResult.done(sim.delete_message(action.group, action.message).id)
            case Mute():
                until = sim.mute(action.group, action.member, action.seconds)
                return ActionResult.done(None, f"muted until {until.isoformat()}" if until else "muted")
            case Unmute():
                sim.unmute(action.group, action.member)
                return ActionResult.done()
            case Kick():
                sim.kick(action.group, action.member)
                return ActionResult.done()
            case CreateGroup():
                return ActionResult.done(sim.create_group(action.name, owner=action.owner, capacity=action.capacity).id)
            case CreateInviteLink():
                link = sim.create_invite_link(
                    action.group,
                    name=action.name,
                    member_limit=action.member_limit,
                    expire_at=action.expire_at,
                    channel=action.channel,
                )
                return ActionResult.done(link.url)
            case RevokeInviteLink():
                return ActionResult.done(sim.revoke_invite_link(action.group, action.link).url)
            case SetTags():
                tags = sim.set_tags(action.member, action.add, action.remove)
                return ActionResult.done(action.member, "tags: " + ", ".join(sorted(tags)))
            case SyncInterceptRules():
                return ActionResult.done(sim.set_intercept_rule(action.name, action.words, action.group).name)
        raise UnsupportedAction(f"unknown action {action!r}")  # pragma: no cover
