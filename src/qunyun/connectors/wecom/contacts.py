"""WeCom customer contacts (客户联系): the ``change_external_contact`` callbacks, the new
contact's welcome (``send_welcome_msg``) and the corp tag library (``change_external_tag``).

**Contacts.** Each ``change_external_contact`` callback is applied by the webhook inbox's own job
(``WeComConnector.after_delivery``), in the transaction that marks the delivery processed:

- ``add_external_contact`` / ``add_half_external_contact``: the (staff member, customer) pair is
  recorded as ``added`` / ``half`` with the callback's ``State``, which names the live code (its
  ``code``) or the channel (its ``code``) the customer came through;
- ``edit_external_contact``: the name is read again;
- ``del_external_contact`` (the staff member deleted the customer, ``Source`` kept) → ``deleted``;
  ``del_follow_user`` (the customer deleted the staff member) → ``lost``;
- ``transfer_fail``: the ``FailReason`` (customer_refused, customer_limit_exceed) is kept.

Optional fields are read leniently: a callback without a UserID or an ExternalUserID changes
nothing; an unknown ChangeType is ignored.

**The welcome.** A ``WelcomeCode`` can be used once, within 20 s of the callback. The callback's
job enqueues a ``wecom.welcome`` job at high priority in its own transaction, with the text chosen
then: the live code's playbook welcome (its ``{nickname}``… variables filled where known), else
the live code's hook text, else the connection's ``welcome_text`` setting; none of them: nothing
is sent (``skipped``). The job is two-phase (record → call → record): it commits ``sending``,
calls send_welcome_msg outside any transaction, and records ``sent`` or ``failed`` with WeCom's
errcode (41051: the customer is already chatting or welcomed; 41096: another app is sending one).
A code older than 20 s when its turn comes is ``expired`` without a call, and a job that finds its
own ``sending`` mark (the worker died in the call) records ``unknown``: a welcome is never retried.
The same job then reads the customer's name with externalcontact/get (best effort).

**Tags.** ``change_external_tag`` (create, update, delete, shuffle of tags or tag groups) makes the
callback sync job read the whole library again (get_corp_tag_list) into ``wecom_corp_tags``; the
first sync and the nightly one read it too. ``SetTags`` names tags from it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from qunyun.connectors.wecom.client import WeComApiError, WeComBusy, WeComClient
from qunyun.models import Channel, Connection, LiveCode, Member
from qunyun.models.community import Playbook
from qunyun.models.wecom_state import ContactStatus, WeComContact, WeComCorpTag, WelcomeStatus
from qunyun.texttemplate import fill_lenient
from qunyun.timeutil import utcnow
from qunyun.worker.queue import TwoPhaseJob, enqueue, two_phase_handler

log = logging.getLogger(__name__)

WELCOME_JOB = "wecom.welcome"
WELCOME_PRIORITY = 10  # ahead of every ordinary job: the code is good for 20 s
WELCOME_WINDOW = timedelta(seconds=20)  # WeCom: send_welcome_msg within 20 s of the callback
CONTACT_EVENT = "change_external_contact"
TAG_EVENT = "change_external_tag"
ADDS = {"add_external_contact": ContactStatus.ADDED, "add_half_external_contact": ContactStatus.HALF}


def _text(payload: Mapping[str, Any], key: str, limit: int) -> str:
    value = payload.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def is_contact_change(payload: Mapping[str, Any]) -> bool:
    return payload.get("MsgType") == "event" and payload.get("Event") == CONTACT_EVENT


def is_tag_change(payload: Mapping[str, Any]) -> bool:
    return payload.get("MsgType") == "event" and payload.get("Event") == TAG_EVENT


# -- the welcome's text ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Origin:
    """Where a State points: the live code or channel, and the welcome to send."""

    live_code_id: int | None = None
    channel_id: int | None = None
    text: str = ""


def origin_of(session: Session, connection: Connection, state: str) -> Origin:
    """The live code (by its code) or channel (by its code) ``state`` names in the connection's
    organisation, and the welcome text: the live code's playbook welcome, else its hook text, else
    the connection's ``welcome_text`` setting."""
    default = str((connection.settings or {}).get("welcome_text") or "").strip()
    if not state:
        return Origin(text=default)
    code = session.scalar(select(LiveCode).where(LiveCode.org_id == connection.org_id, LiveCode.code == state))
    if code is not None:
        text = ""
        playbook = session.get(Playbook, code.playbook_id) if code.playbook_id is not None else None
        if playbook is not None and playbook.welcome_text.strip():
            values = {"nickname": "", "group_name": "", "owner_name": "", "rules_url": playbook.rules_url}
            text = fill_lenient(playbook.welcome_text, values).strip()
        return Origin(live_code_id=code.id, channel_id=code.channel_id, text=text or code.hook_text.strip() or default)
    channel = session.scalar(select(Channel.id).where(Channel.org_id == connection.org_id, Channel.code == state))
    return Origin(channel_id=channel, text=default)


# -- callbacks ---------------------------------------------------------------------------------------


def apply_contact_callback(
    session: Session, connection: Connection, payload: Mapping[str, Any], *, received_at: datetime, key: str
) -> WeComContact | None:
    """Apply one ``change_external_contact`` callback (see the module's docstring), in the caller's
    transaction; enqueues the welcome / profile job. Returns the contact row it touched."""
    change = _text(payload, "ChangeType", 64)
    userid = _text(payload, "UserID", 128)
    external = _text(payload, "ExternalUserID", 128)
    if not userid or not external or change not in (*ADDS, "edit_external_contact", "del_external_contact",
                                                    "del_follow_user", "transfer_fail"):  # fmt: skip
        return None
    now = utcnow()
    contact = session.scalar(
        select(WeComContact)
        .where(
            WeComContact.connection_id == connection.id,
            WeComContact.userid == userid,
            WeComContact.external_userid == external,
        )
        .with_for_update()
    )
    if contact is None:
        contact = WeComContact(
            connection_id=connection.id,
            userid=userid,
            external_userid=external,
            name="",
            status=ADDS.get(change, ContactStatus.ADDED),
            state="",
            added_at=received_at,
            removed_source="",
            transfer_failure="",
            welcome_status=WelcomeStatus.NONE,
            welcome_text="",
            updated_at=now,
        )
        session.add(contact)
    contact.updated_at = now
    welcome = False
    if change in ADDS:
        if contact.status in (ContactStatus.DELETED, ContactStatus.LOST):
            contact.added_at = received_at  # added again after a removal
        if not (contact.status == ContactStatus.ADDED and ADDS[change] == ContactStatus.HALF):
            contact.status = ADDS[change]  # a half add confirmed; never back from added to half
        contact.removed_at = None
        contact.removed_source = ""
        state = _text(payload, "State", 64)
        if state:
            origin = origin_of(session, connection, state)
            contact.state = state
            contact.live_code_id = origin.live_code_id
            contact.channel_id = origin.channel_id
        code = _text(payload, "WelcomeCode", 200)
        if code and contact.welcome_code != code and contact.welcome_status != WelcomeStatus.SENDING:
            origin = origin_of(session, connection, contact.state)
            contact.welcome_code = code
            contact.welcome_due = received_at + WELCOME_WINDOW
            contact.welcome_text = origin.text
            contact.welcome_status = WelcomeStatus.PENDING
            contact.welcome_error = None
            welcome = True
    elif change == "del_external_contact":
        contact.status = ContactStatus.DELETED
        contact.removed_at = received_at
        contact.removed_source = _text(payload, "Source", 32)
    elif change == "del_follow_user":
        contact.status = ContactStatus.LOST
        contact.removed_at = received_at
    elif change == "transfer_fail":
        contact.transfer_failure = _text(payload, "FailReason", 32) or "unknown"
    session.flush()
    if welcome or change in (*ADDS, "edit_external_contact"):
        enqueue(
            session,
            WELCOME_JOB,
            {"contact_id": contact.id, "welcome": welcome},
            org_id=connection.org_id,
            key=f"{WELCOME_JOB}:{contact.id}:{key}",
            priority=WELCOME_PRIORITY if welcome else 0,
            max_attempts=3,
        )
    return contact


# -- the welcome job -----------------------------------------------------------------------------------


class WelcomePayload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    contact_id: int
    welcome: bool = False  # this job sends the contact's pending welcome (else: only the name)


@dataclass(frozen=True)
class ContactCall:
    contact_id: int
    client: WeComClient
    external_userid: str
    code: str | None  # send this welcome (None: no welcome to send)
    text: str
    profile: bool  # read the name


@dataclass
class ContactOutcome:
    welcome: str | None = None  # sent | failed
    error: str | None = None
    name: str | None = None
    details: list[str] = field(default_factory=list)


def _client(session: Session, connection_id: int) -> WeComClient | None:
    from qunyun.connectors.registry import connector_of
    from qunyun.connectors.wecom.connector import WeComConnector

    connection = session.get(Connection, connection_id)
    if connection is None:
        return None
    connector = connector_of(connection)
    return connector.client if isinstance(connector, WeComConnector) else None


def _finish_welcome(contact: WeComContact, status: str, error: str | None, now: datetime) -> None:
    contact.welcome_status = status
    contact.welcome_error = error[:500] if error else None
    contact.welcome_code = None  # single-use: never kept past its one call
    contact.welcome_at = now
    contact.updated_at = now


def prepare_contact(
    session: Session, contact_id: int, *, welcome: bool = True, rerun: bool = True, now: datetime | None = None
) -> ContactCall | None:
    """Phase 1: decide what to call for the contact, committing ``sending`` for a welcome.

    Only a ``welcome`` job touches the welcome. One that finds ``sending`` and is a ``rerun`` (its
    own earlier attempt died during the call) records ``unknown``; on its first attempt the mark
    is another welcome job's, still under way, and is left to it."""
    now = now or utcnow()
    contact = session.get(WeComContact, contact_id, with_for_update=True)
    if contact is None:
        return None
    code: str | None = None
    if not welcome:
        pass
    elif contact.welcome_status == WelcomeStatus.SENDING and not rerun:
        pass  # another job's call is under way
    elif contact.welcome_status == WelcomeStatus.SENDING:
        # An earlier attempt died during its call: it may have gone out, and the code is spent.
        _finish_welcome(contact, WelcomeStatus.UNKNOWN, "the worker stopped during send_welcome_msg", now)
        log.warning("wecom contact %s: welcome outcome unknown (worker stopped mid-call)", contact.id)
    elif contact.welcome_status == WelcomeStatus.PENDING:
        if not contact.welcome_code:
            _finish_welcome(contact, WelcomeStatus.FAILED, "no welcome code", now)
        elif contact.welcome_due is not None and now > contact.welcome_due:
            late = (now - contact.welcome_due + WELCOME_WINDOW).total_seconds()
            _finish_welcome(contact, WelcomeStatus.EXPIRED, f"the welcome code was {late:.0f} s old (limit 20 s)", now)
            log.warning("wecom contact %s: welcome code expired before its turn (%.0f s)", contact.id, late)
        elif not contact.welcome_text.strip():
            _finish_welcome(contact, WelcomeStatus.SKIPPED, "no welcome text for this State or connection", now)
        else:
            code = contact.welcome_code
            contact.welcome_status = WelcomeStatus.SENDING
            contact.updated_at = now
    profile = contact.status in (ContactStatus.ADDED, ContactStatus.HALF)  # enqueued for adds and edits
    if code is None and not profile:
        return None
    client = _client(session, contact.connection_id)
    if client is None:
        if code is not None:
            _finish_welcome(contact, WelcomeStatus.FAILED, "the connection is gone", now)
        return None
    return ContactCall(contact.id, client, contact.external_userid, code, contact.welcome_text, profile)


def call_contact(prepared: ContactCall) -> ContactOutcome:
    """Phase 2 (no transaction): the welcome first (its 20 s run), then the name."""
    outcome = ContactOutcome()
    if prepared.code is not None:
        try:
            prepared.client.send_welcome_msg(prepared.code, prepared.text)
            outcome.welcome = WelcomeStatus.SENT
        except WeComApiError as exc:
            outcome.welcome = WelcomeStatus.FAILED
            outcome.error = f"{exc.errcode}: {exc.localized('en')}"
        except WeComBusy as exc:
            outcome.welcome = WelcomeStatus.FAILED
            outcome.error = f"WeCom busy or unreachable: {exc}"
    if prepared.profile:
        try:
            contact = prepared.client.get_external_contact(prepared.external_userid).get("external_contact") or {}
            name = contact.get("name") if isinstance(contact, dict) else None
            if isinstance(name, str) and name.strip():
                outcome.name = name.strip()[:200]
        except (WeComApiError, WeComBusy) as exc:
            outcome.details.append(f"externalcontact/get: {type(exc).__name__}")
    return outcome


def record_contact(
    session: Session, prepared: ContactCall, outcome: ContactOutcome | BaseException, *, now: datetime | None = None
) -> None:
    """Phase 3: what the call came to. A call that broke off leaves the welcome ``unknown``."""
    now = now or utcnow()
    contact = session.get(WeComContact, prepared.contact_id, with_for_update=True)
    if contact is None:
        return
    if isinstance(outcome, BaseException):
        if prepared.code is not None and contact.welcome_status == WelcomeStatus.SENDING:
            _finish_welcome(contact, WelcomeStatus.UNKNOWN, f"{type(outcome).__name__}: {outcome}", now)
        return
    if prepared.code is not None and contact.welcome_status == WelcomeStatus.SENDING:
        _finish_welcome(contact, outcome.welcome or WelcomeStatus.UNKNOWN, outcome.error, now)
        log.info("wecom contact %s: welcome %s %s", contact.id, contact.welcome_status, outcome.error or "")
    if prepared.profile:
        contact.profile_at = now
        if outcome.name:
            contact.name = outcome.name
        contact.updated_at = now


@two_phase_handler(WELCOME_JOB, payload=WelcomePayload)
class ContactJob(TwoPhaseJob[WelcomePayload, ContactCall, ContactOutcome]):
    """A new contact's welcome (send_welcome_msg within 20 s, never retried) and name."""

    def prepare(self, session: Session, payload: WelcomePayload) -> ContactCall | None:
        from qunyun.worker.runner import current_job

        rerun = current_job().attempt > 1
        return prepare_contact(session, payload.contact_id, welcome=payload.welcome, rerun=rerun)

    def call(self, prepared: ContactCall) -> ContactOutcome:
        return call_contact(prepared)

    def record(
        self, session: Session, payload: WelcomePayload, prepared: ContactCall, outcome: ContactOutcome | BaseException
    ) -> None:
        record_contact(session, prepared, outcome)


# -- corp tags -------------------------------------------------------------------------------------------


def sync_corp_tags(session: Session, connection_id: int, client: WeComClient, *, now: datetime | None = None) -> int:
    """Read the corp tag library (get_corp_tag_list) into ``wecom_corp_tags``: new tags added,
    renamed or reordered ones updated, deleted ones removed. Returns how many tags there are."""
    now = now or utcnow()
    listed: dict[str, dict[str, Any]] = {}
    for group in client.get_corp_tag_list():
        if not isinstance(group, dict):
            continue
        for tag in group.get("tag") or []:
            if not isinstance(tag, dict) or not tag.get("id") or tag.get("deleted"):
                continue
            listed[str(tag["id"])[:128]] = {
                "name": str(tag.get("name") or "")[:100],
                "group_id": str(group.get("group_id") or "")[:128],
                "group_name": str(group.get("group_name") or "")[:100],
                "tag_order": _int(tag.get("order")),
                "group_order": _int(group.get("order")),
            }
    held = {
        t.tag_id: t for t in session.scalars(select(WeComCorpTag).where(WeComCorpTag.connection_id == connection_id))
    }
    gone = [tag_id for tag_id in held if tag_id not in listed]
    if gone:
        session.execute(
            delete(WeComCorpTag)
            .where(WeComCorpTag.connection_id == connection_id, WeComCorpTag.tag_id.in_(gone))
            .execution_options(synchronize_session=False)
        )
    for tag_id, values in listed.items():
        row = held.get(tag_id)
        if row is None:
            session.add(WeComCorpTag(connection_id=connection_id, tag_id=tag_id, synced_at=now, **values))
        else:
            for name, value in values.items():
                setattr(row, name, value)
            row.synced_at = now
    session.flush()
    return len(listed)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def corp_tags(session: Session, connection_id: int) -> list[WeComCorpTag]:
    """The connection's corp tags as last synced, by group and WeCom's order (larger first)."""
    return list(
        session.scalars(
            select(WeComCorpTag)
            .where(WeComCorpTag.connection_id == connection_id)
            .order_by(WeComCorpTag.group_order.desc(), WeComCorpTag.group_name, WeComCorpTag.tag_order.desc())
        )
    )


# -- personal data ------------------------------------------------------------------------------------


def _member_contacts(session: Session, org_id: int, member: Member) -> list[WeComContact]:
    if member.platform != "wecom":
        return []
    connections = select(Connection.id).where(Connection.org_id == org_id, Connection.platform == "wecom")
    return list(
        session.scalars(
            select(WeComContact)
            .where(WeComContact.connection_id.in_(connections), WeComContact.external_userid == member.external_id)
            .order_by(WeComContact.id)
        )
    )


def export_member_contacts(session: Session, org_id: int, member: Member) -> list[dict[str, Any]]:
    """The member's WeCom customer-contact records (for the member-data export)."""
    return [
        {
            "connection_id": c.connection_id,
            "staff_userid": c.userid,
            "name": c.name,
            "status": c.status,
            "state": c.state,
            "live_code_id": c.live_code_id,
            "channel_id": c.channel_id,
            "added_at": c.added_at.isoformat(),
            "removed_at": c.removed_at.isoformat() if c.removed_at else None,
            "welcome": c.welcome_status,
            "welcome_text": c.welcome_text,
        }
        for c in _member_contacts(session, org_id, member)
    ]


def erase_member_contacts(session: Session, org_id: int, member: Member, erased_id: str) -> int:
    """Erase what identifies the member in their contact records (before ``member.external_id`` is
    replaced): the external id becomes ``erased_id``, the name, welcome text and code go; the dates,
    status and the live code or channel stay (the acquisition figures). Returns how many."""
    rows = _member_contacts(session, org_id, member)
    for row in rows:
        row.external_userid = f"{erased_id}:{row.id}"[:128]  # unique per row, leads back to nobody
        row.name = ""
        row.welcome_text = ""
        row.welcome_code = None
        row.updated_at = utcnow()
    return len(rows)
