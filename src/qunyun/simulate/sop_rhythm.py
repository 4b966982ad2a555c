"""The demo's SOP: the seeds' daily rhythm (000 §二.三: 08:00-20:00, 早安语 … 晚安语) in every
regional group, and a 28-day campaign (002: 营前一周 / 营中两周 / 营后一周) in owner1's groups,
carried out by the real SOP engine on the simulation's clock.

The simulation runs the past in virtual time, while the engine's periodic jobs would take runs
at the wall clock's (and expire them all as hours late). So :class:`SopReplay` plays the
engine's part as time passes: it takes the runs due by the virtual hour through
``sop.execute.fire_runs`` with the virtual time as ``now`` — the bot's become sends that the
simulated platform performs, the rest tasks in the owners' inboxes — and plays the people:
most tasks completed with a screenshot within the hour, some late, some left open. A few runs are
taken too late (expired) and one group's SOP is paused for a day (skipped), so that the
calendar and the reports show every kind of outcome. Deterministic for a seed.
"""

from __future__ import annotations

import struct
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from qunyun.auth.scope import Scope
from qunyun.db.session import unit_of_work
from qunyun.models import Group, Job, JobStatus, Role, SopRun, Staff, StaffTask, StaffTaskEvent, TaskEventKind
from qunyun.sop import runs, service
from qunyun.sop.execute import fire_runs
from qunyun.sop.types import Executor, Material, MaterialKind, Phase, RunState, StepSpec
from qunyun.tasks.service import complete
from qunyun.timeutil import day_key

DAILY_PLAN = "骑迹每日节奏"
CAMPAIGN_PLAN = "骑迹 28 天骑行训练营"
DAILY_HISTORY_DAYS = 7  # the daily rhythm ran this many days before the demo's end
CAMPAIGN_STARTED_DAYS_AGO = 10  # D0 of the campaign: its 营前 week and the start of 营中 are past
LATE_EVERY = 29  # one run in this many (by id) is taken hours late: expired
PAUSED_DAYS_AGO = 3  # one group's SOP was paused on this day (its runs skipped)


def _daily(at: str, category: str, title: str, script: str, **extra: Any) -> StepSpec:
    hh, mm = (int(x) for x in at.split(":"))
    return StepSpec(at=time(hh, mm), category=category, title=title, script=script, **extra)


DAILY_STEPS: tuple[StepSpec, ...] = (
    _daily(
        "08:00",
        "早安语",
        "早安",
        "{group_name}的骑友们早上好！\n今天是{date}{weekday}\n出门前捏一下刹车、看一眼胎压\n祝大家一路顺风",
        prompt="回复「早」接龙，说说今天骑多远",
    ),
    _daily(
        "09:30",
        "内容推送",
        "骑行小课堂",
        "【骑行小课堂】\n爬坡时别急着换最轻的档\n先稳住踏频，再慢慢降档\n更多技巧看下面的文章",
        materials=(Material(MaterialKind.LINK, "https://qiji.example.com/guide/climb", "爬坡技巧"),),
    ),
    _daily(
        "11:00",
        "商品推送",
        "今日好物",
        "【骑迹好物】\n夜骑尾灯，充一次电亮 12 小时\n群友专享价，今天下单包邮",
        materials=(Material(MaterialKind.MINIPROGRAM, "wxqiji0000000001/pages/item?id=taillight", "骑迹商城"),),
    ),
    _daily(
        "13:00",
        "品牌宣传",
        "品牌故事",
        "骑迹的第一台车，是在一间车库里拼出来的\n十年后，我们还在为骑行的人做车\n欢迎把你和爱车的故事讲给我们听",
    ),
    _daily(
        "15:00",
        "活跃活动",
        "下午茶竞猜",
        "下午茶时间到！\n猜猜这张图里是哪条骑行路线？\n前三位答对的骑友送骑行袜一双",
        prompt="直接回复路线名",
        executor=Executor.OWNER,
        evidence_required=True,
        detail="群主在群里发起竞猜，活动结束后截图群聊上传",
    ),
    _daily(
        "17:00",
        "新品预告",
        "新品剧透",
        "下周有一款新头盔要和大家见面\n更轻、更透气，还能装尾灯\n想第一时间试戴的骑友，回复「想试」",
        prompt="回复「想试」报名",
    ),
    _daily(
        "19:00",
        "内容推送",
        "骑友晒图",
        "今晚的骑友晒图时间\n把你今天骑过的风景发到群里\n群主会挑三张送积分",
        executor=Executor.OWNER,
        detail="群主挑选三张晒图，在群里公布并登记积分",
    ),
    _daily(
        "20:00",
        "晚安语",
        "晚安",
        "今天辛苦啦，{group_name}的骑友们\n记得拉伸放松，早点休息\n晚安，明天见",
    ),
)


def _step(day: int, at: str, category: str, title: str, script: str, **extra: Any) -> StepSpec:
    hh, mm = (int(x) for x in at.split(":"))
    phase = Phase.BEFORE if day < 0 else Phase.DURING if day < 14 else Phase.AFTER
    return StepSpec(at=time(hh, mm), category=category, title=title, script=script, phase=phase, day=day, **extra)


CAMPAIGN_STEPS: tuple[StepSpec, ...] = (
    _step(
        -7,
        "10:00",
        "新品预告",
        "训练营预告",
        "【{plan_name}】下周开营\n四周时间，从 30 公里骑到 60 公里\n报名请回复「报名」",
    ),
    _step(
        -5,
        "12:00",
        "活跃活动",
        "报名接龙",
        "训练营报名接龙开始啦\n复制下面的格式接龙：城市-昵称-车型",
        prompt="接龙报名",
    ),
    _step(-3, "18:00", "商品推送", "开营装备", "开营前把装备备齐\n训练营学员装备包限时 8 折\n{day}，还有三天开营"),
    _step(
        -1,
        "20:00",
        "活跃活动",
        "开营提醒",
        "明天开营！\n请大家把群名片改成「城市-昵称-车型」\n明早 8 点第一次打卡",
        executor=Executor.OWNER,
        evidence_required=True,
        detail="群主发开营提醒并置顶群公告，截图上传",
    ),
    _step(
        0,
        "08:30",
        "活跃活动",
        "开营仪式",
        "训练营正式开营！\n今天的任务：骑行 30 公里并在群里打卡",
        prompt="回复「打卡」+ 公里数",
    ),
    _step(2, "19:00", "内容推送", "踏频课", "第一课：踏频\n保持 80-90 转，膝盖更轻松\n今晚 8 点直播讲解"),
    _step(
        4,
        "20:00",
        "活跃活动",
        "第一周直播",
        "今晚 8 点直播：如何安排一周的骑行训练\n直播间有抽奖",
        executor=Executor.OWNER,
        evidence_required=True,
        detail="群主开直播并截图直播间上传",
    ),
    _step(
        7,
        "09:00",
        "活跃活动",
        "中期复盘",
        "第一周完成啦！\n大家累计骑了多少公里？在群里晒一晒",
        executor=Executor.ADMIN,
    ),
    _step(10, "12:00", "商品推送", "复购福利", "学员专享：能量胶、骑行服第二件半价\n只到本周日"),
    _step(13, "20:00", "活跃活动", "结营挑战", "结营挑战：一次骑完 60 公里\n完成的骑友获得训练营证书"),
    _step(
        14,
        "10:00",
        "内容推送",
        "结营总结",
        "{plan_name}结营！\n感谢每一位坚持打卡的骑友\n优秀学员名单见群公告",
        executor=Executor.OWNER,
        evidence_required=True,
        detail="群主发结营总结和优秀学员名单，截图上传",
    ),
    _step(16, "12:00", "商品推送", "老学员福利", "老学员专享券已发到账户\n下单任意骑行装备立减 50 元"),
    _step(
        18,
        "19:00",
        "活跃活动",
        "问卷",
        "填一份三分钟问卷，帮我们把下一期办得更好\n填完送 100 积分",
        executor=Executor.ADMIN,
    ),
    _step(20, "20:00", "内容推送", "下期预告", "下一期训练营开始报名\n老学员带一位新朋友，两人都送骑行袜"),
)


def screenshot_png(width: int = 24, height: int = 40) -> bytes:
    """A small, valid PNG standing for a phone screenshot (a chat bubble on a grey screen)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            bubble = 4 <= x < width - 4 and 10 <= y < 22
            row += bytes((149, 236, 105) if bubble else (237, 237, 237))
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


@dataclass
class SopReplay:
    """The SOP engine and the people carrying out its tasks, on the simulation's clock."""

    factory: sessionmaker[Session]
    org_id: int
    end: datetime
    paused_group: int | None = None
    # Tasks to complete: (when, task id), taken as the clock passes them.
    pending: list[tuple[datetime, int]] = field(default_factory=list)
    image: bytes = field(default_factory=screenshot_png)

    def tick(self, until: datetime) -> None:
        """Take every run due by ``until`` (each at its own moment), then complete the tasks
        whose person has done them by then."""
        with unit_of_work(self.factory) as session:
            due = list(
                session.execute(
                    select(SopRun.id, SopRun.fire_at, SopRun.group_id, SopRun.day).where(
                        SopRun.org_id == self.org_id,
                        SopRun.state == RunState.PLANNED.value,
                        SopRun.fire_at <= until,
                    )
                )
            )
            batches: dict[datetime, list[tuple[int, int, int]]] = defaultdict(list)
            for run_id, fire_at, group_id, day in due:
                # Most runs are taken a minute or two after they are due; one in LATE_EVERY
                # hours late (a worker that was down): it expires instead of going out.
                late = run_id % LATE_EVERY == 0
                at = fire_at + (timedelta(hours=2, minutes=30) if late else timedelta(seconds=40 + run_id % 90))
                if at <= until:
                    batches[at].append((run_id, group_id, day))
            for at in sorted(batches):
                self._fire(session, at, batches[at])
        self._complete(until)

    def _fire(self, session: Session, at: datetime, batch: list[tuple[int, int, int]]) -> None:
        ids = [run_id for run_id, _, _ in batch]
        pause_day = day_key((self.end - timedelta(days=PAUSED_DAYS_AGO)).date()) if self.paused_group else None
        paused = self.paused_group is not None and any(g == self.paused_group and d == pause_day for _, g, d in batch)
        lead = self._lead(session)
        if paused and self.paused_group is not None:
            service.pause_group(session, lead, self.paused_group, True)
        session.execute(update(SopRun).where(SopRun.id.in_(ids)).values(state=RunState.QUEUED.value))
        fired = fire_runs(session, ids, at)
        if paused and self.paused_group is not None:
            service.pause_group(session, lead, self.paused_group, False)
        if not fired.assigned:
            return
        # The tasks opened now (in virtual time): dated then, and some of them done later.
        opened = list(
            session.execute(select(SopRun.id, SopRun.task_id, SopRun.due_at).where(SopRun.id.in_(fired.assigned)))
        )
        task_ids = [task_id for _, task_id, _ in opened if task_id is not None]
        session.execute(update(StaffTask).where(StaffTask.id.in_(task_ids)).values(created_at=at))
        session.execute(
            update(StaffTaskEvent)
            .where(StaffTaskEvent.task_id.in_(task_ids), StaffTaskEvent.kind == TaskEventKind.CREATED.value)
            .values(at=at)
        )
        for run_id, task_id, due_at in opened:
            if task_id is None:
                continue
            roll = run_id % 20
            if roll < 14:  # done within the hour: on time
                self.pending.append((due_at + timedelta(minutes=8 + run_id % 45), task_id))
            elif roll < 16:  # done, but hours late
                self.pending.append((due_at + timedelta(hours=3, minutes=run_id % 50), task_id))
            # else: left open — the inbox shows it overdue

    def _complete(self, until: datetime) -> None:
        ready = sorted(p for p in self.pending if p[0] <= until)
        if not ready:
            return
        self.pending = [p for p in self.pending if p[0] > until]
        with unit_of_work(self.factory) as session:
            tasks = {
                t.id: t
                for t in session.scalars(select(StaffTask).where(StaffTask.id.in_([task_id for _, task_id in ready])))
            }
            roles = dict(session.execute(select(Staff.id, Staff.role).where(Staff.org_id == self.org_id)).all())
            for at, task_id in ready:
                task = tasks.get(task_id)
                if task is None or task.assignee_id is None or task.status != "open":
                    continue
                scope = Scope(staff_id=task.assignee_id, org_id=self.org_id, role=Role(roles[task.assignee_id]))
                needs_image = bool((task.detail or {}).get("evidence_required"))
                complete(
                    session,
                    scope,
                    task_id,
                    evidence_text="已在群里发出",
                    evidence_image=self.image if needs_image else None,
                    now=at,
                )

    def _lead(self, session: Session) -> Scope:
        lead = session.scalar(
            select(Staff.id).where(Staff.org_id == self.org_id, Staff.role == Role.LEAD.value).order_by(Staff.id)
        )
        assert lead is not None
        return Scope(staff_id=lead, org_id=self.org_id, role=Role.LEAD)


def setup_sop(
    session: Session, org_id: int, *, start: datetime, end: datetime, factory: sessionmaker[Session]
) -> SopReplay:
    """The plans, made as a lead would (validated by the SOP service), and applied: the daily
    rhythm in every regional group from DAILY_HISTORY_DAYS before ``end``, the campaign in
    owner1's groups with D0 CAMPAIGN_STARTED_DAYS_AGO before it. ``start`` is the simulation's
    first instant (runs are made from then on)."""
    lead_id = session.scalar(
        select(Staff.id).where(Staff.org_id == org_id, Staff.role == Role.LEAD.value).order_by(Staff.id)
    )
    assert lead_id is not None
    lead = Scope(staff_id=lead_id, org_id=org_id, role=Role.LEAD)
    zone = runs.zone_of(session, org_id)
    local_end = end.astimezone(zone).date()
    daily = service.create_plan(session, lead, name=DAILY_PLAN, kind="daily", steps=list(DAILY_STEPS))
    campaign = service.create_plan(session, lead, name=CAMPAIGN_PLAN, kind="campaign", steps=list(CAMPAIGN_STEPS))
    regional = list(
        session.scalars(select(Group.id).where(Group.org_id == org_id, Group.tier == "normal").order_by(Group.id))
    )
    owner1 = session.scalar(select(Staff.id).where(Staff.org_id == org_id, Staff.username == "owner1"))
    theirs = list(
        session.scalars(select(Group.id).where(Group.org_id == org_id, Group.owner_id == owner1).order_by(Group.id))
    )
    runs.apply_many(session, lead, daily.id, regional, local_end - timedelta(days=DAILY_HISTORY_DAYS), now=start)
    runs.apply_many(
        session, lead, campaign.id, theirs, local_end - timedelta(days=CAMPAIGN_STARTED_DAYS_AGO), now=start
    )
    paused = regional[len(regional) // 2] if regional else None
    return SopReplay(factory=factory, org_id=org_id, end=end, paused_group=paused)


def finish(factory: sessionmaker[Session], org_id: int, start: datetime, now: datetime) -> int:
    """After the simulation: the daily rhythm's runs made up to the horizon from ``now`` (the
    hourly ``sop.extend`` would do it at its next pass). Returns the runs made.

    Making runs also queues a ``sop.fire_due`` job at each minute one is due, so that it goes
    out on the dot. The replay took the past ones, and the periodic ``sop.fire_due`` of every
    minute takes the rest: the demo leaves none of those jobs behind (a loaded demo has no job
    waiting, whenever its clock ended)."""
    with unit_of_work(factory) as session:
        made = runs.extend_all(session, now, org_id=org_id)
        session.execute(
            delete(Job).where(
                Job.kind == runs.FIRE_DUE_JOB,
                Job.status == JobStatus.QUEUED.value,
                Job.org_id.is_(None),
                Job.run_at >= start,
            )
        )
        return made
