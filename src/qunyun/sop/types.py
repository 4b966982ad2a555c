"""The shared vocabulary of SOP plans: phases, categories, executors, materials and a step as the
SOP table, the console and the API describe it. Nothing here touches the database; the table
reader/writer (``table.py``) and the service (``service.py``) both speak :class:`StepSpec`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, time


class PlanKind(enum.StrEnum):
    DAILY = "daily"  # time-of-day slots repeated every day
    CAMPAIGN = "campaign"  # steps at day offsets from a start day (D-7 … D+21)


class Phase(enum.StrEnum):
    """A campaign's phases (002: 营前一周 / 营中两周 / 营后一周)."""

    BEFORE = "before"  # 营前
    DURING = "during"  # 营中
    AFTER = "after"  # 营后


PHASE_LABELS: dict[Phase, str] = {Phase.BEFORE: "营前", Phase.DURING: "营中", Phase.AFTER: "营后"}

# The seeds' daily rhythm (000 §二.三); a step's category may also be any other short text.
DAILY_CATEGORIES: tuple[str, ...] = ("早安语", "内容推送", "商品推送", "品牌宣传", "活跃活动", "新品预告", "晚安语")


class Executor(enum.StrEnum):
    """Who carries a step out: the bot (automatic, through the connector) or a staff role
    (assisted: a task in that person's inbox)."""

    BOT = "bot"  # 机器人
    OWNER = "owner"  # 群主
    ADMIN = "admin"  # 管理员
    OPERATOR = "operator"  # 运营


EXECUTOR_LABELS: dict[Executor, str] = {
    Executor.BOT: "机器人",
    Executor.OWNER: "群主",
    Executor.ADMIN: "管理员",
    Executor.OPERATOR: "运营",
}


class MaterialKind(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"
    LINK = "link"
    MINIPROGRAM = "miniprogram"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Material:
    kind: MaterialKind
    value: str  # the text, or the URL / media reference
    title: str = ""


# The variables a script may name (rendered with qunyun.texttemplate).
SCRIPT_VARIABLES: tuple[str, ...] = (
    "group_name",
    "member_count",
    "date",
    "weekday",
    "owner_name",
    "next_activity",
    "plan_name",
    "day",
)


class RunState(enum.StrEnum):
    PLANNED = "planned"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    CONFIRMED = "confirmed"
    ASSIGNED = "assigned"  # an assisted run: a staff task is open
    DONE = "done"  # an assisted run completed by its person
    FAILED = "failed"
    EXPIRED = "expired"
    SKIPPED = "skipped"
    PAUSED = "paused"


@dataclass(frozen=True)
class StepSpec:
    """One step as a plan holds it. A daily plan's steps have ``day`` None; a campaign's have
    ``day`` (offset from the start day, D-7 = -7) or an absolute ``on`` date (the table's 日期)."""

    at: time
    category: str
    title: str = ""
    detail: str = ""
    script: str = ""
    materials: tuple[Material, ...] = ()
    prompt: str = ""  # the interaction prompt (互动话题)
    executor: Executor = Executor.BOT
    evidence_required: bool = False
    phase: Phase | None = None
    day: int | None = None
    on: date | None = None
    extra: dict[str, str] = field(default_factory=dict)
