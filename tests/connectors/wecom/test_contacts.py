"""Customer contacts (issue 13): change_external_contact callbacks recorded per connection with
the State's live code or channel, the new contact's welcome through send_welcome_msg within WeCom's
20 s (never retried: expired, refused and interrupted codes are recorded), names from
externalcontact/get, removals and failed transfers; change_external_tag re-syncing the corp tag
library; the contacts in member export and erasure. Against the fake WeCom server on loopback."""

from __future__ import annotations

import time
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.auth.scope import Scope
from qunyun.connectors import registry
from qunyun.connectors.actions import SetTags
from qunyun.connectors.wecom import contacts
from qunyun.connectors.wecom.crypto import WeComCrypto
from qunyun.connectors.wecom.fake import FakeWeCom, callback_request
from qunyun.connectors.wecom.sync import callbacks_job
from qunyun.db.session import unit_of_work
from qunyun.models import Channel, Connection, LiveCode, Member, Role
from qunyun.models.community import Playbook
from qunyun.models.wecom_state import WeComContact, WeComCorpTag
from qunyun.modules import load_domain_modules
from qunyun.privacy.service import erase_member, export_member
from qunyun.timeutil import utcnow
from qunyun.worker.scheduler import PeriodicPayload
from tests.api.conftest import World
from tests.connectors.wecom.conftest import add_wecom
from tests.hooks.conftest import run_jobs

STAFF = "zhangsan"


def _post(client: TestClient, cid: int, crypto: WeComCrypto, xml: str) -> None:
    query, body = callback_request(crypto, xml)
    response = client.post(f"/hooks/wecom/{cid}", params=query, content=body.encode())
    assert response.status_code == 200, response.text


def _contact(world: World, external: str, userid: str = STAFF) -> WeComContact:
    with world.db() as s:
        row = s.scalar(
            select(WeComContact).where(WeComContact.external_userid == external, WeComContact.userid == userid)
        )
        assert row is not None
        return row


def _live_code(world: World, code: str, *, hook: str = "", welcome: str = "", channel_id: int | None = None) -> int:
    with world.db() as s:
        playbook_id = None
        if welcome:
            playbook = Playbook(org_id=world.org_a, name=f"pb-{code}", welcome_text=welcome, created_at=utcnow())
            playbook.rules_url = "https://example.test/rules"
            s.add(playbook)
            s.flush()
            playbook_id = playbook.id
        row = LiveCode(
            org_id=world.org_a,
            code=code,
            name=f"活码 {code}",
            hook_text=hook,
            playbook_id=playbook_id,
            channel_id=channel_id,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        s.add(row)
        s.commit()
        return row.id


def test_a_new_contact_is_recorded_and_welcomed_within_20_seconds_with_the_live_codes_text(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    load_domain_modules()
    server, base = fake
    cid = add_wecom(world, base, welcome_text="您好，我是客服小张")
    code_id = _live_code(world, "lcvip01", welcome="欢迎！群规见 {rules_url}")

    _post(client, cid, crypto, server.add_contact(STAFF, "wmcontact0001", name="老王", state="lcvip01"))
    run_jobs(world.db)

    contact = _contact(world, "wmcontact0001")
    assert (contact.status, contact.state, contact.live_code_id, contact.name) == ("added", "lcvip01", code_id, "老王")
    assert contact.welcome_status == "sent" and contact.welcome_code is None
    assert len(server.welcomes_sent) == 1
    sent = server.welcomes_sent[0]
    assert sent["text"] == {"content": "欢迎！群规见 https://example.test/rules"}
    assert sent["after"] < 20  # WeCom's limit, from the callback to the call

    # A State naming no live code: the connection's own welcome; its channel when one has the code.
    with world.db() as s:
        channel = Channel(org_id=world.org_a, code="sms-dec", name="短信 12 月", created_at=utcnow())
        s.add(channel)
        s.commit()
        channel_id = channel.id
    _post(client, cid, crypto, server.add_contact(STAFF, "wmcontact0002", state="sms-dec"))
    run_jobs(world.db)
    second = _contact(world, "wmcontact0002")
    assert (second.channel_id, second.live_code_id, second.welcome_status) == (channel_id, None, "sent")
    assert server.welcomes_sent[1]["text"] == {"content": "您好，我是客服小张"}


def test_a_live_codes_hook_text_is_its_welcome_without_a_playbook_and_nothing_goes_without_any_text(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    load_domain_modules()
    server, base = fake
    cid = add_wecom(world, base)  # no welcome_text of its own
    _live_code(world, "lchook1", hook="回复 1 领取骑行路线图")
    _post(client, cid, crypto, server.add_contact(STAFF, "wmhook000001", state="lchook1"))
    _post(client, cid, crypto, server.add_contact(STAFF, "wmnotext0001", state="unknown-state"))
    run_jobs(world.db)
    assert [w["text"]["content"] for w in server.welcomes_sent] == ["回复 1 领取骑行路线图"]
    skipped = _contact(world, "wmnotext0001")
    assert skipped.welcome_status == "skipped" and skipped.welcome_code is None
    assert len([1 for api, _ in server.calls if api == "externalcontact/send_welcome_msg"]) == 1


def test_an_expired_code_is_not_called_and_a_refused_one_is_recorded_never_retried(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    server, base = fake
    cid = add_wecom(world, base, welcome_text="欢迎")
    with unit_of_work(world.db) as s:
        connection = s.get(Connection, cid)
        assert connection is not None
        xml = server.add_contact(STAFF, "wmlate000001")
        from qunyun.connectors.wecom.crypto import parse_xml

        late = contacts.apply_contact_callback(s, connection, parse_xml(xml), received_at=utcnow(), key="late")
        assert late is not None
        late_id = late.id
    # Its job's turn comes 25 s after the callback: the code is dead, WeCom is not called.
    with unit_of_work(world.db) as s:
        prepared = contacts.prepare_contact(s, late_id, now=utcnow() + timedelta(seconds=25))
    assert prepared is not None and prepared.code is None  # only the name is still read
    row = _contact(world, "wmlate000001")
    assert row.welcome_status == "expired" and "limit 20 s" in (row.welcome_error or "")
    assert not any(api == "externalcontact/send_welcome_msg" for api, _ in server.calls)

    # A code WeCom refuses (the customer already started chatting): failed with 41051, once.
    _post(client, cid, crypto, server.add_contact(STAFF, "wmchatty0001"))
    for code in server.welcome_codes.values():
        if code["external_userid"] == "wmchatty0001":
            code["used"] = True
    run_jobs(world.db)
    refused = _contact(world, "wmchatty0001")
    assert refused.welcome_status == "failed" and (refused.welcome_error or "").startswith("41051")
    run_jobs(world.db)
    calls = [b for api, b in server.calls if api == "externalcontact/send_welcome_msg"]
    assert len(calls) == 1 and server.welcomes_sent == []


def test_a_welcome_interrupted_mid_call_is_unknown_and_not_sent_again(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    server, base = fake
    cid = add_wecom(world, base, welcome_text="欢迎")
    _post(client, cid, crypto, server.add_contact(STAFF, "wmcrash00001"))
    from qunyun.hooks.service import process_delivery
    from qunyun.models import WebhookDelivery

    with unit_of_work(world.db) as s:
        delivery_id = s.scalar(select(WebhookDelivery.id))
        assert delivery_id is not None
        process_delivery(s, delivery_id, now=utcnow(), retention_days=7)
    contact_id = _contact(world, "wmcrash00001").id
    # The job commits "sending", calls WeCom, and its worker dies before recording.
    with unit_of_work(world.db) as s:
        prepared = contacts.prepare_contact(s, contact_id)
    assert prepared is not None and prepared.code is not None
    contacts.call_contact(prepared)
    assert len(server.welcomes_sent) == 1
    # Meanwhile another job of the contact (its name after an edit; another welcome job on its
    # first attempt) leaves the mark alone: it is not its own.
    with unit_of_work(world.db) as s:
        other = contacts.prepare_contact(s, contact_id, welcome=False)
        assert other is not None and other.code is None
        first_try = contacts.prepare_contact(s, contact_id, rerun=False)
        assert first_try is not None and first_try.code is None
    assert _contact(world, "wmcrash00001").welcome_status == "sending"
    # The job runs again: it finds its own "sending" mark and does not call again.
    with unit_of_work(world.db) as s:
        again = contacts.prepare_contact(s, contact_id)
    assert again is None or again.code is None
    row = _contact(world, "wmcrash00001")
    assert row.welcome_status == "unknown" and row.welcome_code is None
    assert len([1 for api, _ in server.calls if api == "externalcontact/send_welcome_msg"]) == 1


def test_removals_half_adds_edits_and_failed_transfers_are_recorded(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    load_domain_modules()
    server, base = fake
    cid = add_wecom(world, base)
    _post(client, cid, crypto, server.add_contact(STAFF, "wmhalf000001", half=True, welcome=False))
    _post(client, cid, crypto, server.add_contact("lisi", "wmhalf000001", name="小周", welcome=False))
    run_jobs(world.db)
    assert _contact(world, "wmhalf000001").status == "half"
    assert _contact(world, "wmhalf000001", "lisi").status == "added"
    assert _contact(world, "wmhalf000001", "lisi").welcome_status == "none"

    _post(client, cid, crypto, server.edit_contact("lisi", "wmhalf000001", name="小周（骑友）"))
    _post(client, cid, crypto, server.delete_contact(STAFF, "wmhalf000001", source="DELETE_BY_TRANSFER"))
    _post(client, cid, crypto, server.transfer_fail("lisi", "wmhalf000001", "customer_limit_exceed"))
    run_jobs(world.db)
    deleted = _contact(world, "wmhalf000001")
    assert (deleted.status, deleted.removed_source) == ("deleted", "DELETE_BY_TRANSFER")
    assert deleted.removed_at is not None
    kept = _contact(world, "wmhalf000001", "lisi")
    assert (kept.name, kept.transfer_failure, kept.status) == ("小周（骑友）", "customer_limit_exceed", "added")

    _post(client, cid, crypto, server.lose_contact("lisi", "wmhalf000001"))
    run_jobs(world.db)
    assert _contact(world, "wmhalf000001", "lisi").status == "lost"
    # Added again later (a minute on: the same XML again would be a redelivery): a contact once more.
    later = int(time.time()) + 60
    _post(client, cid, crypto, server.add_contact("lisi", "wmhalf000001", welcome=False, at=later))
    run_jobs(world.db)
    back = _contact(world, "wmhalf000001", "lisi")
    assert back.status == "added" and back.removed_at is None


def test_a_callback_without_ids_changes_nothing(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    server, base = fake
    cid = add_wecom(world, base)
    xml = server.contact_change_xml("add_external_contact", "", "wmnobody0001")
    _post(client, cid, crypto, xml)
    _post(client, cid, crypto, server.contact_change_xml("some_future_change", STAFF, "wmnobody0001"))
    run_jobs(world.db)
    with world.db() as s:
        assert s.scalar(select(WeComContact)) is None


def test_tag_callbacks_resync_the_corp_tag_library_and_set_tags_names_stored_tags(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    load_domain_modules()
    server, base = fake
    cid = add_wecom(world, base)

    def sync() -> None:
        with unit_of_work(world.db) as s:
            callbacks_job(s, PeriodicPayload())

    def tags() -> dict[str, str]:
        with world.db() as s:
            return {t.name: t.group_name for t in contacts.corp_tags(s, cid)}

    sync()  # the first sync reads the (empty) library
    _post(client, cid, crypto, server.add_tag_group("骑行偏好", ["公路车", "山地车"]))
    run_jobs(world.db)
    sync()
    assert tags() == {"公路车": "骑行偏好", "山地车": "骑行偏好"}
    with world.db() as s:
        road = s.scalar(select(WeComCorpTag.tag_id).where(WeComCorpTag.name == "公路车"))
        mtb = s.scalar(select(WeComCorpTag.tag_id).where(WeComCorpTag.name == "山地车"))
    assert road and mtb

    _post(client, cid, crypto, server.rename_tag(str(road), "公路"))
    _post(client, cid, crypto, server.delete_tag(str(mtb)))
    run_jobs(world.db)
    sync()
    assert tags() == {"公路": "骑行偏好"}

    # SetTags names the stored tag: no get_corp_tag_list, no new tag, mark_tag with its id.
    server.contacts["wmtagged0001"] = {"name": "老李", "follow_user": [{"userid": STAFF}]}
    with world.db() as s:
        connection = s.get(Connection, cid)
        assert connection is not None
        connector = registry.connector_of(connection)
    before = len([1 for api, _ in server.calls if api == "externalcontact/get_corp_tag_list"])
    result = connector.perform(SetTags(member="wmtagged0001", add=("公路",)), "tags:1")
    assert result.status == "done"
    assert server.marks[-1]["add_tag"] == [road]
    assert len([1 for api, _ in server.calls if api == "externalcontact/get_corp_tag_list"]) == before
    assert not any(api == "externalcontact/add_corp_tag" for api, _ in server.calls)


def test_contacts_are_in_the_members_export_and_erased_with_them(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    load_domain_modules()
    server, base = fake
    cid = add_wecom(world, base, welcome_text="欢迎")
    _post(client, cid, crypto, server.add_contact(STAFF, "wmprivacy001", name="王小明", state="lcnone"))
    run_jobs(world.db)
    with world.db() as s:
        member = Member(org_id=world.org_a, platform="wecom", external_id="wmprivacy001", first_seen_at=utcnow())
        member.display_name = "王小明"
        s.add(member)
        s.commit()
        member_id = member.id
    lead = Scope(staff_id=world.staff["lead"], org_id=world.org_a, role=Role.LEAD)
    with unit_of_work(world.db) as s:
        exported = export_member(s, lead, member_id)
    [record] = exported["wecom_contacts"]
    assert (record["staff_userid"], record["name"], record["welcome"]) == (STAFF, "王小明", "sent")

    with unit_of_work(world.db) as s:
        counts = erase_member(s, lead, member_id)
    assert counts["wecom_contacts"] == 1
    with world.db() as s:
        rows = list(s.scalars(select(WeComContact)))
    assert len(rows) == 1
    assert rows[0].external_userid.startswith("erased:") and rows[0].name == "" and rows[0].welcome_text == ""
    assert rows[0].status == "added" and rows[0].userid == STAFF  # the fact stays, pseudonymous


def test_with_a_running_worker_the_welcome_goes_out_well_within_20_seconds(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    from qunyun.worker.runner import InProcessWorker

    server, base = fake
    cid = add_wecom(world, base, welcome_text="欢迎")
    with unit_of_work(world.db) as s:  # the first sync, so the worker's periodic pass has little to do
        callbacks_job(s, PeriodicPayload())
    pool = InProcessWorker(1, factory=world.db, name="wecom-welcome")
    pool.start()
    try:
        started = time.monotonic()
        _post(client, cid, crypto, server.add_contact(STAFF, "wmlive000001"))
        while not server.welcomes_sent and time.monotonic() - started < 20:
            time.sleep(0.05)
        elapsed = time.monotonic() - started
    finally:
        pool.stop(timeout=10)
    assert server.welcomes_sent, "no welcome within 20 s"
    assert server.welcomes_sent[0]["after"] < 20 and elapsed < 10, elapsed
    assert pool.failures == []


def test_a_new_contacts_callback_and_its_welcome_go_ahead_of_a_backlog(
    client: TestClient, world: World, fake: tuple[FakeWeCom, str], crypto: WeComCrypto
) -> None:
    from qunyun.models import Job
    from qunyun.worker.queue import enqueue

    server, base = fake
    cid = add_wecom(world, base, welcome_text="欢迎")
    with unit_of_work(world.db) as s:  # a backlog of ordinary jobs, due before the callback
        for i in range(20):
            enqueue(s, "wecom.test.backlog", {"i": i}, key=f"backlog:{i}")
    _post(client, cid, crypto, server.add_contact(STAFF, "wmurgent0001"))
    _post(client, cid, crypto, server.add_tag_group("其他", ["甲"]))  # no welcome code: no hurry
    with world.db() as s:
        jobs = list(s.scalars(select(Job).where(Job.kind == "hooks.process").order_by(Job.id)))
    assert [j.priority for j in jobs] == [contacts.WELCOME_PRIORITY, 0]
    from qunyun.worker.runner import Worker

    worker = Worker("urgent-first", factory=world.db, batch=1)  # one job at a time: the order shows
    assert worker.run_next()  # the contact's callback first, then its welcome: before any backlog job
    assert worker.run_next()
    assert len(server.welcomes_sent) == 1
    with world.db() as s:
        assert s.scalar(select(Job).where(Job.kind == "wecom.test.backlog", Job.status != "queued")) is None
