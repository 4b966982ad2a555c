"""WeCom sync: full syncs of customer groups with a reconciliation report, the callbacks' own
follow-up (renames, dismissals, owners, version gaps) and mass-send confirmations.

- :func:`full_sync` lists every customer group (groupchat/list, cursor paging), reads each
  (groupchat/get) and compares it with what qunyun holds: a group it does not know is created,
  a renamed one renamed, members missing on our side get a ``member.joined`` (with their join
  time, scene, inviter, name and the live code's QR link when they came through our join way),
  members we hold that WeCom no longer lists get a ``member.left``; every difference and what was
  done is one line of a :class:`~qunyun.models.wecom_state.WeComSyncReport`. It runs when a
  connection is first seen (``added``), nightly, and for one group on a version gap.
- :func:`process_callbacks` (every 10 s) reads the connection's processed callbacks after its
  cursor: a change whose LastMemVer is not the member_version we hold means a change was missed,
  and that group is synced again in full (``version_gap``); names, owners, notices and
  dismissals are applied; the version we hold becomes CurMemVer.
- corp tags: a ``change_external_tag`` callback, the first sync and the nightly one read the
  tag library again (``contacts.sync_corp_tags``);
- :func:`confirm_mass_sends` asks get_groupmsg_task / get_groupmsg_send_result about every mass
  send waiting for its owner and confirms those the owner sent (the SOP run's action then reads
  ``confirmed``); one its owner has not sent after :data:`REMIND_AFTER` gets WeCom's own reminder
  (remind_groupmsg_send: a push in the owner's WeCom client) every :data:`REMIND_EVERY`, at most
  :data:`REMINDERS_PER_DAY` in 24 hours (WeCom's limit), each recorded in the action's history.

The jobs call WeCom inside their transaction (their writes commit with the job); the token cache
is read and refreshed in that same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qunyun.connectors.registry import config_of
from qunyun.connectors.wecom import contacts  # also registers the wecom.welcome job
from qunyun.connectors.wecom import events as wx_events
from qunyun.connectors.wecom.client import WeComApiError, WeComBusy, WeComClient
from qunyun.connectors.wecom.factory import client_for
from qunyun.ingestion.service import ingest
from qunyun.locale import Msg
from qunyun.models import (
    Connection,
    ConnectionStatus,
    Group,
    Member,
    OutboundAction,
    OutboundActionTransition,
    WebhookDelivery,
)
from qunyun.models.membership import MembershipSpan
from qunyun.models.outbound import OutboundState
from qunyun.models.webhook import DeliveryStatus
from qunyun.models.wecom_state import WeComGroup, WeComJoinWay, WeComSyncReport, WeComToken
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import PeriodicPayload, periodic

log = logging.getLogger(__name__)

# groupchat/get's member join_scene: 1 invited directly, 2 through an invite link, 3 by scanning
# the group's QR code (the callback's JoinScene numbers differently: events.JOIN_SCENES).
SCENES = {1: "invite", 2: "link", 3: "qr"}
CALLBACK_BATCH = 500
MAX_DIFFERENCES = 2000  # lines kept in one report


@dataclass
class Reconciliation:
    groups: int = 0
    members: int = 0
    corrected: int = 0
    differences: list[dict[str, Any]] = field(default_factory=list)

    def note(self, group: str, what: str, **detail: Any) -> None:
        if len(self.differences) < MAX_DIFFERENCES:
            self.differences.append({"group": group, "what": what, **detail})


def _iso(ts: Any, default: datetime) -> str:
    try:
        value = int(ts)
    except (TypeError, ValueError):
        return default.isoformat()
    return datetime.fromtimestamp(value, UTC).isoformat() if value > 0 else default.isoformat()


def _our_groups(session: Session, org_id: int, chat_ids: Iterable[str]) -> dict[str, Group]:
    ids = sorted(set(chat_ids))
    if not ids:
        return {}
    rows = session.scalars(
        select(Group).where(Group.org_id == org_id, Group.platform == "wecom", Group.external_id.in_(ids))
    )
    return {g.external_id: g for g in rows}


def _our_members(session: Session, group: Group) -> set[str]:
    """External ids of the group's current members as qunyun holds them (open spans)."""
    rows = session.execute(
        select(Member.external_id)
        .join(MembershipSpan, MembershipSpan.member_id == Member.id)
        .where(MembershipSpan.group_id == group.id, MembershipSpan.left_at.is_(None))
    )
    return {str(r[0]) for r in rows}


def _links(session: Session, connection_id: int, states: set[str]) -> dict[str, str]:
    if not states:
        return {}
    rows = session.execute(
        select(WeComJoinWay.state, WeComJoinWay.qr_code).where(
            WeComJoinWay.connection_id == connection_id, WeComJoinWay.state.in_(sorted(states))
        )
    )
    return {s: q for s, q in rows if q}


def _state_row(session: Session, connection_id: int, chat_id: str) -> WeComGroup:
    row = session.scalar(
        select(WeComGroup).where(WeComGroup.connection_id == connection_id, WeComGroup.chat_id == chat_id)
    )
    if row is None:
        row = WeComGroup(
            connection_id=connection_id,
            chat_id=chat_id,
            name="",
            owner="",
            notice="",
            member_version="",
            dismissed=False,
            updated_at=utcnow(),
        )
        session.add(row)
    return row


def sync_group(
    session: Session,
    connection: Connection,
    client: WeComClient,
    chat_id: str,
    report: Reconciliation,
    *,
    live: bool,
    now: datetime,
) -> None:
    """Read one group from WeCom and correct what qunyun holds (see the module's docstring)."""
    data = client.get_group_chat(chat_id)
    members = [m for m in data.get("member_list") or [] if isinstance(m, dict) and m.get("userid")]
    version = str(data.get("member_version") or "")
    name = str(data.get("name") or "")[:200] or chat_id
    report.groups += 1
    report.members += len(members)
    group = _our_groups(session, connection.org_id, [chat_id]).get(chat_id)
    events: list[dict[str, Any]] = []
    if group is None:
        report.note(chat_id, "new_group", name=name)
        events.append(
            {
                "id": wx_events.event_id(chat_id, "created"),
                "ts": _iso(data.get("create_time"), now),
                "kind": "group.created",
                "group": chat_id,
                "name": name,
            }
        )
        ours: set[str] = set()
    else:
        ours = _our_members(session, group)
        if group.name != name:
            report.note(chat_id, "renamed", before=group.name, after=name)
            group.name = name
            report.corrected += 1
    listed = {str(m["userid"]): m for m in members}
    links = _links(session, connection.id, {str(m.get("state")) for m in members if m.get("state")})
    for userid in sorted(set(listed) - ours):
        m = listed[userid]
        event: dict[str, Any] = {
            "id": wx_events.event_id(chat_id, "sync-join", userid, str(m.get("join_time") or "")),
            "ts": _iso(m.get("join_time"), now),
            "kind": "member.joined",
            "group": chat_id,
            "member": userid,
        }
        scene = SCENES.get(int(m.get("join_scene") or 0)) if str(m.get("join_scene", "")).isdigit() else None
        if scene:
            event["scene"] = scene
        nick = m.get("name") or m.get("group_nickname")
        if isinstance(nick, str) and nick.strip():
            event["member_name"] = nick.strip()[:200]
        invitor = m.get("invitor")
        if isinstance(invitor, dict) and invitor.get("userid"):
            event["inviter"] = str(invitor["userid"])[:128]
        link = links.get(str(m.get("state") or ""))
        if link:
            event["link"] = link
        events.append(event)
        report.note(chat_id, "joined", member=userid)
    for userid in sorted(ours - set(listed)):
        events.append(
            {
                "id": wx_events.event_id(chat_id, "sync-leave", userid, version),
                "ts": now.isoformat(),
                "kind": "member.left",
                "group": chat_id,
                "member": userid,
                "reason": "left",
            }
        )
        report.note(chat_id, "left", member=userid)
    if events:
        result = ingest(
            session,
            connection.org_id,
            events,
            platform="wecom",
            source="sync",
            live=live,
            connection_id=connection.id,
        )
        report.corrected += result.stored
    state = _state_row(session, connection.id, chat_id)
    state.name = name
    state.owner = str(data.get("owner") or "")[:128]
    state.notice = str(data.get("notice") or "")
    state.member_version = version[:64]
    state.dismissed = False
    state.synced_at = now
    state.updated_at = now
    session.flush()


def full_sync(
    session: Session, connection: Connection, client: WeComClient, *, reason: str, now: datetime | None = None
) -> WeComSyncReport:
    """Sync every customer group of the connection; returns the stored report."""
    now = now or utcnow()
    report_row = WeComSyncReport(
        connection_id=connection.id, reason=reason, started_at=now, groups=0, members=0, corrected=0, differences=[]
    )
    session.add(report_row)
    report = Reconciliation()
    live = reason != "added"  # a first sync is history: no welcomes for everyone already there
    try:
        seen: set[str] = set()
        for item in client.list_group_chats():
            chat_id = str(item.get("chat_id") or "")
            if not chat_id or chat_id in seen:
                continue
            seen.add(chat_id)
            sync_group(session, connection, client, chat_id, report, live=live, now=now)
        for state in session.scalars(
            select(WeComGroup).where(WeComGroup.connection_id == connection.id, WeComGroup.dismissed.is_(False))
        ):
            if state.chat_id not in seen:
                _dismiss(session, connection, state.chat_id, report, now)
    except (WeComApiError, WeComBusy) as exc:
        report_row.error = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("wecom full sync of connection %s stopped: %s", connection.id, type(exc).__name__)
    report_row.groups = report.groups
    report_row.members = report.members
    report_row.corrected = report.corrected
    report_row.differences = report.differences
    report_row.finished_at = utcnow()
    session.flush()
    log.info(
        "wecom full sync of connection %s (%s): %d groups, %d differences, %d corrected",
        connection.id,
        reason,
        report.groups,
        len(report.differences),
        report.corrected,
    )
    return report_row


def _dismiss(session: Session, connection: Connection, chat_id: str, report: Reconciliation, now: datetime) -> None:
    state = _state_row(session, connection.id, chat_id)
    state.dismissed = True
    state.updated_at = now
    group = _our_groups(session, connection.org_id, [chat_id]).get(chat_id)
    if group is not None and group.status != "dismissed":
        group.status = "dismissed"
        report.corrected += 1
    report.note(chat_id, "dismissed")


# -- callbacks ----------------------------------------------------------------------------------


def _cursor_row(session: Session, connection_id: int) -> WeComToken:
    row = session.get(WeComToken, connection_id, with_for_update=True)
    if row is None:
        row = WeComToken(connection_id=connection_id, token=None, refreshed=0, callbacks_after=0, updated_at=utcnow())
        session.add(row)
        session.flush()
    return row


def process_callbacks(
    session: Session, connection: Connection, client: WeComClient, *, now: datetime | None = None
) -> int:
    """Apply the connection's processed callbacks after its cursor; returns how many were read."""
    now = now or utcnow()
    cursor = _cursor_row(session, connection.id)
    rows = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.payload)
        .where(
            WebhookDelivery.connection_id == connection.id,
            WebhookDelivery.id > cursor.callbacks_after,
            WebhookDelivery.status.in_([DeliveryStatus.PROCESSED.value, DeliveryStatus.FAILED.value]),
        )
        .order_by(WebhookDelivery.id)
        .limit(CALLBACK_BATCH)
    ).all()
    if not rows:
        return 0
    report = Reconciliation()
    gaps: set[str] = set()
    tags_changed = False
    for delivery_id, payload in rows:
        cursor.callbacks_after = int(delivery_id)
        if payload and contacts.is_tag_change(payload):
            tags_changed = True
            continue
        if not payload or not wx_events.is_chat_change(payload):
            continue
        try:
            _apply_callback(session, connection, client, payload, report, gaps, now)
        except (WeComApiError, WeComBusy) as exc:
            log.info("wecom callback %s of connection %s: %s", delivery_id, connection.id, type(exc).__name__)
    if tags_changed:
        # change_external_tag says what changed, not what it is now: the library is read again.
        try:
            with session.begin_nested():
                contacts.sync_corp_tags(session, connection.id, client, now=now)
        except (WeComApiError, WeComBusy) as exc:
            log.info("wecom corp tags of connection %s: %s", connection.id, type(exc).__name__)
    if gaps:
        row = WeComSyncReport(
            connection_id=connection.id,
            reason="version_gap",
            started_at=now,
            finished_at=utcnow(),
            groups=report.groups,
            members=report.members,
            corrected=report.corrected,
            differences=report.differences,
        )
        session.add(row)
    cursor.updated_at = now
    session.flush()
    return len(rows)


def _apply_callback(
    session: Session,
    connection: Connection,
    client: WeComClient,
    payload: dict[str, Any],
    report: Reconciliation,
    gaps: set[str],
    now: datetime,
) -> None:
    chat_id = str(payload.get("ChatId") or "")
    if not chat_id:
        return
    change = payload.get("ChangeType")
    detail = payload.get("UpdateDetail")
    if change == "dismiss":
        _dismiss(session, connection, chat_id, report, now)
        return
    state = _state_row(session, connection.id, chat_id)
    session.flush()
    if change == "create" or (change == "update" and detail in ("change_name", "change_owner", "change_notice")):
        # Names, owners and notices come from groupchat/get (the callback does not carry them).
        sync_group(session, connection, client, chat_id, Reconciliation(), live=True, now=now)
        return
    if change != "update" or detail not in ("add_member", "del_member"):
        return
    last = str(payload.get("LastMemVer") or "")
    current = str(payload.get("CurMemVer") or "")
    if state.member_version and last and last != state.member_version and chat_id not in gaps:
        gaps.add(chat_id)
        report.note(chat_id, "version_gap", held=state.member_version, last=last)
        sync_group(session, connection, client, chat_id, report, live=True, now=now)
        return
    if current:
        state.member_version = current[:64]
        state.updated_at = now


# -- mass sends -----------------------------------------------------------------------------------


# WeCom's reminder of a mass send its owner has not sent yet: the first after this long waiting,
# then at this interval, never more than WeCom allows (3 per send in 24 hours; errcode 41065).
REMIND_AFTER = timedelta(minutes=30)
REMIND_EVERY = timedelta(hours=2)
REMINDERS_PER_DAY = 3
REMINDED = "sends.history.reminded_wecom"
# A history row as the reminders read it: (from state, to state, detail key, at).
_Row = tuple[str | None, str, str | None, datetime]


def confirm_mass_sends(
    session: Session, connection: Connection, client: WeComClient, *, now: datetime | None = None
) -> list[int]:
    """Confirm the connection's mass sends that their owner sent; returns the action ids. Those
    still unsent are reminded through WeCom when due (:func:`_remind_if_due`)."""
    from qunyun.connectors.dispatch import confirm

    now = now or utcnow()
    waiting = session.execute(
        select(OutboundAction.id, OutboundAction.external_ref).where(
            OutboundAction.connection_id == connection.id,
            OutboundAction.state == OutboundState.AWAITING_CONFIRMATION.value,
            OutboundAction.external_ref.is_not(None),
        )
    ).all()
    histories = _waiting_histories(session, [int(action_id) for action_id, _ in waiting])
    confirmed: list[int] = []
    for action_id, msgid in waiting:
        try:
            tasks = client.get_groupmsg_task(str(msgid))
            sent_by = [str(t["userid"]) for t in tasks if int(t.get("status") or 0) == 2 and t.get("userid")]
            results = [r for userid in sent_by for r in client.get_groupmsg_send_result(str(msgid), userid)]
        except (WeComApiError, WeComBusy) as exc:
            log.info("wecom mass send %s: %s", action_id, type(exc).__name__)
            continue
        if any(int(r.get("status") or 0) == 1 for r in results):
            confirm(session, int(action_id), detail=f"sent by its owner (get_groupmsg_send_result of {msgid})")
            confirmed.append(int(action_id))
        elif not sent_by:
            _remind_if_due(session, int(action_id), str(msgid), client, now, histories.get(int(action_id), []))
    return confirmed


def _waiting_histories(session: Session, action_ids: list[int]) -> dict[int, list[_Row]]:
    """The history rows (from, to, detail key, at) of the actions waiting for their owner, oldest
    first, in one query: what :func:`_remind_if_due` reads."""
    out: dict[int, list[_Row]] = {}
    if not action_ids:
        return out
    rows = session.execute(
        select(
            OutboundActionTransition.action_id,
            OutboundActionTransition.from_state,
            OutboundActionTransition.to_state,
            OutboundActionTransition.detail_key,
            OutboundActionTransition.at,
        )
        .where(OutboundActionTransition.action_id.in_(action_ids))
        .order_by(OutboundActionTransition.id)
    )
    for action_id, was, to, key, at in rows:
        out.setdefault(int(action_id), []).append((was, to, key, at))
    return out


def _remind_if_due(
    session: Session,
    action_id: int,
    msgid: str,
    client: WeComClient,
    now: datetime,
    history: list[_Row],
) -> None:
    """WeCom's reminder to the owner of a mass send waiting since over :data:`REMIND_AFTER`, the
    last reminder over :data:`REMIND_EVERY` ago, fewer than :data:`REMINDERS_PER_DAY` in the last
    24 hours (``history``: the action's rows, oldest first); recorded in the action's history
    (append-only) once WeCom accepted it. A crash between the call and the commit can remind once
    more than recorded: WeCom's own limit still holds."""
    from qunyun.connectors.dispatch import note

    awaiting = OutboundState.AWAITING_CONFIRMATION.value
    since = max((at for was, to, _, at in history if to == awaiting and was != awaiting), default=None)
    reminders = [at for _, _, key, at in history if key == REMINDED]
    if since is None or now - since < REMIND_AFTER:
        return
    if reminders and now - reminders[-1] < REMIND_EVERY:
        return
    if sum(1 for at in reminders if now - at < timedelta(hours=24)) >= REMINDERS_PER_DAY:
        return
    try:
        client.remind_groupmsg_send(msgid)
    except (WeComApiError, WeComBusy) as exc:  # 41065: WeCom counts differently (another tool reminded)
        log.info("wecom mass send %s: reminder not sent (%s)", action_id, type(exc).__name__)
        return
    action = session.get(OutboundAction, action_id)
    if action is not None:
        note(session, action, Msg(REMINDED, count=len(reminders) + 1))


# -- jobs -----------------------------------------------------------------------------------------


def _connections(session: Session) -> list[Connection]:
    return list(
        session.scalars(
            select(Connection)
            .where(Connection.platform == "wecom", Connection.status != ConnectionStatus.DISABLED.value)
            .order_by(Connection.id)
        )
    )


def run_connection(session: Session, connection: Connection, *, now: datetime | None = None) -> None:
    """One pass of the callback job for one connection: first full sync if it never had one,
    the callbacks since last time, then the mass sends waiting for their owner."""
    client = client_for(config_of(connection))
    try:
        with client.tokens.using(session):
            first = session.scalar(
                select(func.count()).select_from(WeComSyncReport).where(WeComSyncReport.connection_id == connection.id)
            )
            if not first:
                full_sync(session, connection, client, reason="added", now=now)
                _sync_tags(session, connection, client)
            process_callbacks(session, connection, client, now=now)
            confirm_mass_sends(session, connection, client)
    finally:
        client.close()


def _sync_tags(session: Session, connection: Connection, client: WeComClient) -> None:
    """The corp tag library, read again; a failure leaves the stored one as it was."""
    try:
        with session.begin_nested():
            contacts.sync_corp_tags(session, connection.id, client)
    except (WeComApiError, WeComBusy) as exc:
        log.info("wecom corp tags of connection %s: %s", connection.id, type(exc).__name__)


@periodic("wecom.callbacks", every=timedelta(seconds=10), payload=PeriodicPayload)
def callbacks_job(session: Session, payload: PeriodicPayload) -> None:
    """Every 10 s: first syncs, callbacks (version gaps, names, dismissals), mass-send confirmations."""
    for connection in _connections(session):
        with session.begin_nested():
            run_connection(session, connection)


@periodic("wecom.nightly_sync", every=timedelta(days=1), payload=PeriodicPayload)
def nightly_job(session: Session, payload: PeriodicPayload) -> None:
    """Daily: a full sync of every WeCom connection, with its reconciliation report."""
    for connection in _connections(session):
        client = client_for(config_of(connection))
        try:
            with client.tokens.using(session), session.begin_nested():
                full_sync(session, connection, client, reason="nightly")
                _sync_tags(session, connection, client)
        finally:
            client.close()
