"""The new-member benefit through the real pipeline: each join draws a code from its playbook's
pool, the member gets it in a private message (or the owner a task to send it), each code goes
out once, and an empty pool gives the owner one task."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.connectors.base import get_profile
from qunyun.db.session import unit_of_work
from qunyun.errors import Forbidden, InvalidInput
from qunyun.models import Role
from qunyun.models.onboarding import BenefitGrant, CouponCode
from qunyun.onboarding.benefits import import_codes, parse_codes, pool_status
from qunyun.tasks.titles import render_title, task_reason
from tests.onboarding.harness import organisation


def dms(org: object, member: str) -> list[str]:
    return [m.text for m in org.sim.sim.direct_messages_to(member)]  # type: ignore[attr-defined]


def test_each_new_member_gets_a_code_privately_once_and_an_empty_pool_tells_the_owner_once(
    db: sessionmaker[Session],
) -> None:
    with organisation(db, welcome_text="") as org:
        org.import_codes("NEW-0001", "NEW-0002")
        for n in (1, 2, 3, 4):
            org.join(f"m{n}", name=f"骑友{n}")
        org.step()
        assert dms(org, "m1") == ["骑友1 你好，欢迎加入华东1群！送你一份新人福利，券码：NEW-0001"]
        assert dms(org, "m2") == ["骑友2 你好，欢迎加入华东1群！送你一份新人福利，券码：NEW-0002"]
        assert dms(org, "m3") == dms(org, "m4") == []
        [task] = org.tasks()
        assert task.assignee_id == org.owner_id and task.status == "open"
        assert render_title(task, "zh") == "「地方骑友群」的新人福利券码已发完：请导入新的券码"
        assert task_reason(task, "zh").startswith("骑友3 加入「华东1群」时券码池已空")
        # A refill serves the next joiners; the members who joined meanwhile stay recorded as missed.
        org.import_codes("NEW-0003")
        org.join("m5", name="骑友5")
        org.step()
        assert dms(org, "m5")[0].endswith("券码：NEW-0003")
        with db() as s:
            grants = {g.member_id: (g.status, g.code) for g in s.scalars(select(BenefitGrant))}
            expected = [("given", "NEW-0001"), ("given", "NEW-0002"), ("missed", None), ("missed", None)]
            assert sorted(grants.values(), key=str) == sorted([*expected, ("given", "NEW-0003")], key=str)
            status = pool_status(s, Scope(org.lead_id, org.org_id, Role.LEAD), org.playbook_id)
            assert (status.free, status.given, status.missed) == (0, 3, 2)
            assert status.recent[0].code == "NE****03"  # a code is as good as money: masked
        # The lead's import completed the task; empty again, the owner gets a new one, and only one.
        org.join("m6")
        org.join("m7")
        org.step()
        first, second = org.tasks()
        assert (first.status, first.note) == ("done", "已导入 1 个新券码")
        assert second.status == "open" and second.assignee_id == org.owner_id


def test_a_member_gets_the_benefit_of_a_playbook_once(db: sessionmaker[Session]) -> None:
    with organisation(db, welcome_text="") as org:
        org.create_group("G2", "华东2群")
        org.import_codes("A1", "A2", "A3")
        org.join("m1", "G1", name="老王")
        org.step()
        org.join("m1", "G2")  # the same member in a second group of the playbook
        org.sim.sim.leave("m1", "G1")
        org.join("m1", "G1", after=60)  # and back
        org.step()
        assert [t.split("券码：")[1] for t in dms(org, "m1")] == ["A1"]
        with db() as s:
            free = select(CouponCode.code).where(CouponCode.grant_id.is_(None)).order_by(CouponCode.id)
            assert s.scalar(free) == "A2"


def test_where_the_platform_cannot_message_privately_the_owner_gets_a_task_with_the_code(
    db: sessionmaker[Session],
) -> None:
    with organisation(db, profile=get_profile("wecom"), welcome_text="", benefit_text="{nickname}：{code}") as org:
        org.import_codes("WX-42")
        org.join("m1", name="老王")
        org.step()
        [action] = org.actions("send_private_message")
        assert action.state == "delegated" and action.payload["text"] == "老王：WX-42"
        [task] = org.tasks()
        assert task.assignee_id == org.owner_id and task.kind == "platform_action"
        assert render_title(task, "zh") == "私信 老王（在企业微信上手动完成）"
        assert "单聊" in task_reason(task, "zh")


def test_joins_without_a_pool_draw_nothing(db: sessionmaker[Session]) -> None:
    with organisation(db, welcome_text="") as org:
        org.join("m1")
        org.step()
        assert org.actions() == [] and dms(org, "m1") == []


# --- importing codes ------------------------------------------------------------------------------


def test_a_csv_with_a_header_takes_its_code_column_and_leaves_duplicates_out(db: sessionmaker[Session]) -> None:
    with organisation(db, welcome_text="") as org:
        scope = Scope(org.lead_id, org.org_id, Role.LEAD)
        with unit_of_work(db) as s:
            report = import_codes(s, scope, org.playbook_id, "面值,券码\n10元,C-1\n10元,C-2\n\n10元,C-1\n".encode())
        assert (report.added, report.duplicates, report.free) == (2, 1, 2)
        with unit_of_work(db) as s:
            again = import_codes(s, scope, org.playbook_id, "C-2\nC-3\n".encode("gb18030"))
        assert (again.added, again.duplicates, again.free) == (1, 1, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("券码,备注\nOK-1,\n,空的\n".encode(), "第 3 行「券码」列没有券码"),
        (b"GOOD\nBAD CODE\n", "第 2 行「1」列的券码含有空格或不可见字符"),
        (("X" * 101 + "\n").encode(), "第 1 行「1」列的券码超过 100 个字符"),
        (b"\n\n", "文件里没有券码"),
        (b"\xff\xfe\x00\xd8", "无法读取文件"),
    ],
)
def test_a_bad_file_names_the_row_and_column_and_adds_nothing(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_codes(data)
    assert caught.value.field == "file"
    assert message in caught.value.localized("zh")


def test_only_a_lead_imports_codes(db: sessionmaker[Session]) -> None:
    with organisation(db, welcome_text="") as org, unit_of_work(db) as s, pytest.raises(Forbidden):
        import_codes(s, Scope(org.owner_id, org.org_id, Role.OWNER), org.playbook_id, b"X1\n")
