"""Hypothesis strategies for SOP steps as a table can hold them: text already as the table
reads it (no surrounding space, no control characters), scripts that are valid templates."""

from __future__ import annotations

from datetime import date, time

from hypothesis import strategies as st

from qunyun.sop.table import DAY_RANGE
from qunyun.sop.types import SCRIPT_VARIABLES, Executor, Material, MaterialKind, Phase, PlanKind, StepSpec

_chars = st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"))


def _stripped(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return base.map(str.strip)


def texts(max_size: int = 20, *, lines: bool = True) -> st.SearchStrategy[str]:
    line = st.text(_chars, max_size=max_size)
    if not lines:
        return _stripped(line)
    return _stripped(st.lists(line, max_size=3).map("\n".join))


def non_empty(max_size: int = 20, *, lines: bool = True) -> st.SearchStrategy[str]:
    return texts(max_size, lines=lines).filter(bool)


_no_braces = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"), exclude_characters="{}"))
scripts = _stripped(
    st.lists(
        st.one_of(
            _no_braces,
            st.just("\n"),
            st.sampled_from([f"{{{name}}}" for name in SCRIPT_VARIABLES] + ["{{", "}}"]),
        ),
        max_size=6,
    ).map("".join)
)

_reference = st.text(st.characters(codec="utf-8", categories=("L", "N"), include_characters="/:.?=&-_%|\\"), min_size=1)


@st.composite
def materials(draw: st.DrawFn) -> Material:
    kind = draw(st.sampled_from(list(MaterialKind)))
    title = draw(texts(10))
    if kind is MaterialKind.TEXT:
        value = draw(non_empty(20))
    elif kind is MaterialKind.LINK:
        value = draw(st.sampled_from(["http://", "https://", "HTTPS://"])) + "x" + draw(_reference)
    else:
        value = draw(_reference)
    return Material(kind, value, title)


EXTRA_COLUMNS = ("负责人", "完成情况", "备注")


@st.composite
def steps(draw: st.DrawFn, kind: PlanKind) -> StepSpec:
    executor = draw(st.sampled_from(list(Executor)))
    script = draw(scripts)
    items = tuple(draw(st.lists(materials(), max_size=3)))
    if executor is Executor.BOT and not script and not items:
        script = "早安"
    day = on = None
    phase = None
    if kind is PlanKind.CAMPAIGN:
        phase = draw(st.none() | st.sampled_from(list(Phase)))
        if draw(st.booleans()):
            day = draw(st.integers(*DAY_RANGE))
        else:
            on = draw(st.dates(date(2000, 1, 1), date(2100, 12, 31)))
    extra = draw(st.dictionaries(st.sampled_from(EXTRA_COLUMNS), non_empty(10), max_size=2))
    return StepSpec(
        at=time(draw(st.integers(0, 23)), draw(st.integers(0, 59))),
        category=draw(non_empty(12, lines=False)),
        title=draw(texts(12, lines=False)),
        detail=draw(texts()),
        script=script,
        materials=items,
        prompt=draw(scripts),
        executor=executor,
        evidence_required=draw(st.booleans()),
        phase=phase,
        day=day,
        on=on,
        extra=extra,
    )


@st.composite
def plans(draw: st.DrawFn) -> tuple[PlanKind, list[StepSpec]]:
    kind = draw(st.sampled_from(list(PlanKind)))
    return kind, draw(st.lists(steps(kind), min_size=1, max_size=6))
