"""The WeCom connector: callbacks in, customer-group actions out (docs/connectors/wecom.md).

``normalize`` turns a decrypted callback into the events it carries (``events.normalize``) and,
for joins, asks groupchat/get for the members' names, inviters and the join way's ``state``,
whose QR code becomes the join's ``link`` (live-code attribution). That call is best effort: if
WeCom cannot answer, the callback's own events go through as they are.

``perform``:

- a group message (SendGroupMessage, SendWelcome, WelcomeMembers, RemindNameCard) becomes a mass
  send to the group (add_msg_template, chat_type group, sent by the group's owner) →
  ``awaiting_confirmation`` with the msgid; the callback sync job confirms it once
  get_groupmsg_task / get_groupmsg_send_result say the owner sent it. add_msg_template without
  an answer (a timeout) raises :class:`OutcomeUnknown`: the mass send may exist, so it is
  reconciled, not retried;
- CreateInviteLink → a 「加入群聊」 join way for the group (add_join_way, its ``state`` derived
  from the idempotency key) → ``done`` with its QR code URL; RevokeInviteLink → del_join_way;
- SetWelcomeMessage → group_welcome_template/add; SyncInterceptRules → add or update the rule
  of that name (≤300 words); SetTags → corp tags (created when missing) and mark_tag through the
  member's first follow user;
- anything else (kick, mute, delete, create a group, private messages) is refused: the
  dispatcher makes it a staff task (``capabilities.PROFILE`` says why).

``record_extras`` applies ``change_external_contact`` callbacks in the inbox's transaction and
enqueues the new contact's welcome (``contacts``: send_welcome_msg within 20 s, never retried).

``reconcile`` (``reconciles = True``): an attempt found ``sending`` (its worker died after the
call, before recording it) is looked up on WeCom instead of being sent again or handed to a
person. A mass send: get_groupmsg_list_v2 (chat_type group, enterprise-created) over the
action's attempts, with the exact text, whose task (get_groupmsg_task) and chats
(get_groupmsg_send_result) include the target group and whose msgid no other action holds →
that msgid is adopted and the action waits for the owner's confirmation as usual. Not found once
the last send attempt is over :data:`SETTLE` old (no call of it can still arrive) → it never
reached WeCom and is sent now. Too early, or WeCom cannot answer → the dispatcher checks again
later, and hands it to a person once its checks are used up. Intercept rules and tags are set
again (idempotent: by rule name, by tag name); an invite link is found by its join way's state
when it was recorded; anything else cannot be told (None: a person checks).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from qunyun.connectors.actions import (
    Action,
    CreateInviteLink,
    RemindNameCard,
    RevokeInviteLink,
    SendGroupMessage,
    SendWelcome,
    SetTags,
    SetWelcomeMessage,
    SyncInterceptRules,
    WelcomeMembers,
)
from qunyun.connectors.base import ActionResult, Connector, MemberProfile, TransientError, UnsupportedAction
from qunyun.connectors.wecom import events as wx_events
from qunyun.connectors.wecom.capabilities import PROFILE
from qunyun.connectors.wecom.client import WeComApiError, WeComBusy, WeComClient
from qunyun.models.wecom_state import WeComCorpTag, WeComJoinWay
from qunyun.timeutil import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from qunyun.models import Connection

log = logging.getLogger(__name__)

# A send attempt this old can no longer reach WeCom: its worker's calls (groupchat/get and
# add_msg_template, 10 s timeout each, retried for under 2 s) have ended by then.
SETTLE = timedelta(minutes=2)
# Slack around an attempt's window for the difference between WeCom's clock and ours.
CLOCK_SLACK = timedelta(minutes=5)
LIST_WINDOW = timedelta(days=30)  # get_groupmsg_list_v2: start and end at most a month apart

TAG_GROUP = "qunyun"
MAX_RULE_WORDS = 300


class OutcomeUnknown(Exception):
    """The call was sent but its answer was lost (a timeout, a dropped connection): WeCom may have
    done it. Not a TransientError, so the dispatcher reconciles instead of sending it again."""


def join_way_state(idempotency_key: str) -> str:
    """The ``state`` of the join way made for a key (≤30 characters, WeCom's limit)."""
    return "qy" + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:24]


class WeComConnector(Connector):
    profile = PROFILE
    key_idempotent = False
    reconciles = True

    def __init__(self, connection_id: int, client: WeComClient, *, enrich: bool = True) -> None:
        self.connection_id = connection_id
        self.client = client
        self.enrich = enrich

    # -- inbound ---------------------------------------------------------------------------------

    def normalize(self, raw: Mapping[str, Any]) -> list[dict[str, Any]]:
        events = wx_events.normalize(raw)
        joins = [e for e in events if e["kind"] == "member.joined"]
        if joins and self.enrich:
            try:
                self._enrich(str(raw.get("ChatId")), joins)
            except (WeComApiError, WeComBusy) as exc:
                log.info(
                    "wecom connection %s: groupchat/get failed (%s); joins kept as called back",
                    self.connection_id,
                    type(exc).__name__,
                )
        return events

    def _enrich(self, chat_id: str, joins: list[dict[str, Any]]) -> None:
        group = self.client.get_group_chat(chat_id)
        members = {str(m.get("userid")): m for m in group.get("member_list") or [] if isinstance(m, dict)}
        states = {str(m["state"]) for j in joins if (m := members.get(j["member"])) and m.get("state")}
        links = self.links_for_states(states) if states else {}
        for join in joins:
            member = members.get(join["member"])
            if member is None:
                continue
            name = member.get("name") or member.get("group_nickname")
            if isinstance(name, str) and name.strip():
                join["member_name"] = name.strip()[:200]
            invitor = (member.get("invitor") or {}).get("userid") if isinstance(member.get("invitor"), dict) else None
            if invitor:
                join["inviter"] = str(invitor)[:128]
            link = links.get(str(member.get("state") or ""))
            if link:
                join["link"] = link

    def links_for_states(self, states: set[str]) -> dict[str, str]:
        """The QR code URL of each join way state of this connection we created."""
        from qunyun.db.session import get_sessionmaker

        with get_sessionmaker()() as session:
            rows = session.execute(
                select(WeComJoinWay.state, WeComJoinWay.qr_code).where(
                    WeComJoinWay.connection_id == self.connection_id, WeComJoinWay.state.in_(sorted(states))
                )
            )
            return {state: qr for state, qr in rows if qr}

    def record_extras(self, session: Session, connection: Connection, raw: Mapping[str, Any]) -> None:
        """A ``change_external_contact`` callback: the contact recorded and its welcome enqueued
        (``contacts.apply_contact_callback``), in the inbox's transaction."""
        from qunyun.connectors.wecom import contacts

        if not contacts.is_contact_change(raw):
            return
        now = utcnow()
        sent = wx_events.instant(raw.get("CreateTime"))
        # The earlier of WeCom's CreateTime and now: the 20 s of the welcome code run from it.
        received_at = min(now, datetime.fromisoformat(sent).astimezone(UTC))
        key = wx_events.event_id(
            *(str(raw.get(k) or "") for k in ("ChangeType", "UserID", "ExternalUserID", "CreateTime", "WelcomeCode"))
        )
        contacts.apply_contact_callback(session, connection, raw, received_at=received_at, key=key)

    # -- outbound --------------------------------------------------------------------------------

    def perform(self, action: Action, idempotency_key: str) -> ActionResult:
        try:
            return self._perform(action, idempotency_key)
        except WeComApiError as exc:
            return ActionResult.failed(f"{exc.errcode}: {exc.localized('en')}")

    def _perform(self, action: Action, key: str) -> ActionResult:
        match action:
            case SendGroupMessage() | SendWelcome() | WelcomeMembers() | RemindNameCard():
                return self._mass_send(action.group, action.text)
            case CreateInviteLink():
                return self._join_way(action, key)
            case RevokeInviteLink():
                return self._revoke(action)
            case SetWelcomeMessage():
                return ActionResult.done(self.client.add_group_welcome_template(action.text))
            case SyncInterceptRules():
                return self._intercept_rule(action)
            case SetTags():
                return self._tags(action)
        raise UnsupportedAction(f"{self.profile.title} cannot {action.kind}")

    def _mass_send(self, chat_id: str, text: str) -> ActionResult:
        owner = str(self.client.get_group_chat(chat_id).get("owner") or "")
        if not owner:
            return ActionResult.failed("groupchat/get named no owner")
        try:
            data = self.client.add_group_msg_template(owner, [chat_id], text)
        except WeComBusy as exc:
            if exc.errcode is None:  # no answer: the mass send may exist all the same
                raise OutcomeUnknown(f"add_msg_template: {exc}") from None
            raise  # WeCom answered busy: nothing was made, retried later
        msgid = str(data.get("msgid") or "")
        if not msgid:
            return ActionResult.failed(f"add_msg_template: no msgid (fail_list {data.get('fail_list')})")
        return ActionResult.awaiting_confirmation(msgid, f"mass send for {owner} to confirm")

    def _join_way(self, action: CreateInviteLink, key: str) -> ActionResult:
        from qunyun.db.session import unit_of_work

        state = join_way_state(key)
        with unit_of_work() as session:
            known = session.scalar(
                select(WeComJoinWay).where(
                    WeComJoinWay.connection_id == self.connection_id, WeComJoinWay.state == state
                )
            )
            if known is not None and known.qr_code:
                return ActionResult.done(known.qr_code)
        config_id = self.client.add_join_way([action.group], state=state, remark=action.name or "qunyun")
        qr_code = str(self.client.get_join_way(config_id).get("qr_code") or "")
        with unit_of_work() as session:
            session.add(
                WeComJoinWay(
                    connection_id=self.connection_id,
                    config_id=config_id,
                    state=state,
                    qr_code=qr_code,
                    chat_ids=[action.group],
                    created_at=utcnow(),
                )
            )
        return ActionResult.done(qr_code or config_id, f"join way {config_id}")

    def _revoke(self, action: RevokeInviteLink) -> ActionResult:
        from qunyun.db.session import unit_of_work

        with unit_of_work() as session:
            way = session.scalar(
                select(WeComJoinWay).where(
                    WeComJoinWay.connection_id == self.connection_id, WeComJoinWay.qr_code == action.link
                )
            )
            if way is None:
                return ActionResult.done(None, "no join way of ours has that QR code")
            config_id = way.config_id
        self.client.del_join_way(config_id)
        with unit_of_work() as session:
            for row in session.scalars(select(WeComJoinWay).where(WeComJoinWay.config_id == config_id)):
                session.delete(row)
        return ActionResult.done(config_id)

    def _intercept_rule(self, action: SyncInterceptRules) -> ActionResult:
        words = list(dict.fromkeys(action.words))
        if len(words) > MAX_RULE_WORDS:
            return ActionResult.failed(
                f"a WeCom intercept rule holds at most {MAX_RULE_WORDS} words ({len(words)} given)"
            )
        name = action.name[:20]
        existing = next((r for r in self.client.get_intercept_rule_list() if r.get("rule_name") == name), None)
        if existing is not None:
            rule_id = str(existing["rule_id"])
            self.client.update_intercept_rule(rule_id, name, words)
            return ActionResult.done(rule_id, "updated")
        return ActionResult.done(self.client.add_intercept_rule(name, words), "added")

    def _stored_tags(self) -> dict[str, str]:
        """The corp tag library as last synced (``wecom_corp_tags``): name → tag id."""
        from qunyun.db.session import get_sessionmaker

        with get_sessionmaker()() as session:
            rows = session.execute(
                select(WeComCorpTag.name, WeComCorpTag.tag_id).where(WeComCorpTag.connection_id == self.connection_id)
            )
            return {name: tag_id for name, tag_id in rows}

    def _tags(self, action: SetTags) -> ActionResult:
        ids = self._stored_tags()
        if any(n not in ids for n in (*action.add, *action.remove)):
            # Not synced yet (or created since): WeCom's own list names them.
            ids = {str(t["name"]): str(t["id"]) for g in self.client.get_corp_tag_list() for t in g.get("tag") or []}
        missing = [n for n in action.add if n not in ids]
        if missing:
            for tag in self.client.add_corp_tag(TAG_GROUP, missing):
                ids[str(tag["name"])] = str(tag["id"])
        contact = self.client.get_external_contact(action.member)
        follow = contact.get("follow_user") or []
        if not follow:
            return ActionResult.failed("the member follows no staff member: WeCom tags need one")
        userid = str(follow[0].get("userid"))
        self.client.mark_tag(
            userid, action.member, [ids[n] for n in action.add], [ids[n] for n in action.remove if n in ids]
        )
        return ActionResult.done(action.member)

    # -- after a crash ----------------------------------------------------------------------------

    def reconcile(self, action: Action, idempotency_key: str) -> ActionResult | None:
        """What became of an attempt found ``sending`` (see the module's docstring)."""
        match action:
            case SendGroupMessage() | SendWelcome() | WelcomeMembers() | RemindNameCard():
                return self._reconcile_mass_send(action.group, action.text, idempotency_key)
            case SyncInterceptRules() | SetTags():
                return self.perform(action, idempotency_key)  # the same state again: safe
            case CreateInviteLink():
                return self._recorded_join_way(idempotency_key)
        return None

    def _recorded_join_way(self, key: str) -> ActionResult | None:
        from qunyun.db.session import get_sessionmaker

        with get_sessionmaker()() as session:
            qr_code = session.scalar(
                select(WeComJoinWay.qr_code).where(
                    WeComJoinWay.connection_id == self.connection_id, WeComJoinWay.state == join_way_state(key)
                )
            )
        return ActionResult.done(qr_code, "join way recorded before the crash") if qr_code else None

    def _attempt_window(self, key: str) -> tuple[int, datetime, datetime, set[str]] | None:
        """The action's id, its first ``sending`` and its last send attempt, and the msgids other
        actions of the connection hold."""
        from qunyun.db.session import get_sessionmaker
        from qunyun.models import OutboundAction, OutboundActionTransition, OutboundState

        with get_sessionmaker()() as session:
            action_id = session.scalar(
                select(OutboundAction.id).where(
                    OutboundAction.connection_id == self.connection_id, OutboundAction.idempotency_key == key
                )
            )
            if action_id is None:
                return None
            moves = session.execute(
                select(OutboundActionTransition.at, OutboundActionTransition.from_state)
                .where(
                    OutboundActionTransition.action_id == action_id,
                    OutboundActionTransition.to_state == OutboundState.SENDING.value,
                )
                .order_by(OutboundActionTransition.at, OutboundActionTransition.id)
            ).all()
            if not moves:
                return None
            sends = [at for at, before in moves if before != OutboundState.SENDING.value] or [moves[0][0]]
            held = set(
                session.scalars(
                    select(OutboundAction.external_ref).where(
                        OutboundAction.connection_id == self.connection_id,
                        OutboundAction.id != action_id,
                        OutboundAction.external_ref.is_not(None),
                    )
                )
            )
        return action_id, moves[0][0], sends[-1], {str(h) for h in held}

    def _reconcile_mass_send(self, chat_id: str, text: str, key: str) -> ActionResult | None:
        window = self._attempt_window(key)
        if window is None:
            return None
        _action_id, first, last, held = window
        now = utcnow()
        end = now + CLOCK_SLACK
        start = max(first - CLOCK_SLACK, end - LIST_WINDOW)
        try:
            msgid = self._find_mass_send(chat_id, text, int(start.timestamp()), int(end.timestamp()), held)
        except WeComApiError as exc:
            raise TransientError(f"get_groupmsg_list_v2: {exc.errcode} {exc.localized('en')}") from None
        if msgid is not None:
            return ActionResult.awaiting_confirmation(msgid, "mass send found on WeCom after a crash")
        if now - last < SETTLE:
            raise TransientError("no mass send on WeCom yet, but the attempt may still reach it: check later")
        result = self._mass_send(chat_id, text)
        detail = "no mass send of it on WeCom: sent again" + (f" ({result.detail})" if result.detail else "")
        return ActionResult(result.status, result.external_ref, detail)

    def _find_mass_send(self, chat_id: str, text: str, start: int, end: int, held: set[str]) -> str | None:
        """The msgid of an enterprise mass send of exactly ``text`` to ``chat_id`` created between
        ``start`` and ``end`` (Unix seconds) that no other action holds, or None."""
        for item in self.client.get_groupmsg_list_v2(start, end, filter_type=0):
            msgid = str(item.get("msgid") or "")
            content = (item.get("text") or {}).get("content") if isinstance(item.get("text"), dict) else None
            if not msgid or msgid in held or (content or "") != text:
                continue
            if int(item.get("create_type") or 0) != 0:
                continue  # a staff member's own mass send, not one made through the API
            for task in self.client.get_groupmsg_task(msgid):
                userid = str(task.get("userid") or "")
                if userid and any(
                    r.get("chat_id") == chat_id for r in self.client.get_groupmsg_send_result(msgid, userid)
                ):
                    return msgid
        return None

    def fetch_member_profiles(self, external_ids: Sequence[str]) -> dict[str, MemberProfile]:
        out: dict[str, MemberProfile] = {}
        for external_id in external_ids:
            try:
                contact = self.client.get_external_contact(external_id).get("external_contact") or {}
            except WeComApiError:
                continue  # not an external contact (84061) or not visible: unknown
            gender = {1: "male", 2: "female"}.get(int(contact.get("gender") or 0))
            out[external_id] = MemberProfile(display_name=contact.get("name") or None, gender=gender)
        return out
