"""Entry thresholds (门槛): a question or a short survey a visitor answers before the group QR.

Stored on the live code as JSON::

    {"questions": [
        {"key": "q1", "text": "你的宝宝几岁？", "choices": ["0-1 岁", "1-3 岁", "3 岁以上"]},
        {"key": "code", "text": "请输入邀请码", "accept": ["HELLO2026"]},
        {"key": "city", "text": "你在哪个城市？", "choices": ["上海", "北京"], "region": true}
     ],
     "refusal": "抱歉，本群仅面向 1-3 岁宝宝的家长。"}

- ``choices``: the visitor picks one (a radio list); without choices, a short text box.
- ``accept``: the answers that let a visitor in (choices by their text, free text compared without
  case or surrounding spaces); without it, any non-empty answer passes (a survey question).
- ``region``: this answer is the visitor's region (routing policy ``region``).
- ``refusal``: the text of the polite refusal page (a default one otherwise).

:func:`parse_threshold` validates what staff enter (``InvalidInput`` naming the field);
:func:`check_answers` judges what a visitor sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from qunyun.errors import InvalidInput
from qunyun.locale import Msg

MAX_QUESTIONS = 10
MAX_TEXT = 500
MAX_CHOICES = 20
MAX_ANSWER = 200
_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


@dataclass(frozen=True)
class Question:
    key: str
    text: str
    choices: tuple[str, ...] = ()
    accept: tuple[str, ...] = ()
    region: bool = False

    def passes(self, answer: str) -> bool:
        if not answer:
            return False
        if self.choices and answer not in self.choices:
            return False
        if not self.accept:
            return True
        wanted = answer.strip().casefold()
        return any(wanted == a.strip().casefold() for a in self.accept)


@dataclass(frozen=True)
class Threshold:
    questions: tuple[Question, ...]
    refusal: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"questions": []}
        for q in self.questions:
            item: dict[str, Any] = {"key": q.key, "text": q.text}
            if q.choices:
                item["choices"] = list(q.choices)
            if q.accept:
                item["accept"] = list(q.accept)
            if q.region:
                item["region"] = True
            out["questions"].append(item)
        if self.refusal:
            out["refusal"] = self.refusal
        return out


@dataclass(frozen=True)
class Verdict:
    passed: bool
    answers: dict[str, str]
    region: str = ""
    # The first question left unanswered (the form is shown again, saying which).
    missing: str | None = None


def _bad(field: str, reason: Msg) -> InvalidInput:
    return InvalidInput(Msg("err.livecode.threshold_field", field=field, reason=reason), field=field)


def _text(value: Any, field: str, *, limit: int = MAX_TEXT, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise _bad(field, Msg("err.event.required"))
        return ""
    if not isinstance(value, str):
        raise _bad(field, Msg("err.event.string"))
    value = value.strip()
    if required and not value:
        raise _bad(field, Msg("err.event.required"))
    if len(value) > limit:
        raise _bad(field, Msg("err.event.too_long", limit=limit))
    return value


def _texts(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > MAX_CHOICES:
        raise _bad(field, Msg("err.livecode.threshold_list", limit=MAX_CHOICES))
    items = tuple(_text(v, f"{field}[{i}]", limit=MAX_ANSWER) for i, v in enumerate(value))
    if len(set(items)) != len(items):
        raise _bad(field, Msg("err.livecode.threshold_duplicate"))
    return items


def parse_threshold(value: Any, field: str = "threshold") -> Threshold | None:
    """A threshold from JSON (None or an empty question list: none); ``InvalidInput`` naming the
    bad field (``threshold.questions[1].accept``)."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _bad(field, Msg("err.livecode.threshold_object"))
    unknown = set(value) - {"questions", "refusal"}
    if unknown:
        raise _bad(f"{field}.{sorted(unknown)[0]}", Msg("err.livecode.threshold_unknown"))
    raw = value.get("questions") or []
    if not isinstance(raw, list) or len(raw) > MAX_QUESTIONS:
        raise _bad(f"{field}.questions", Msg("err.livecode.threshold_list", limit=MAX_QUESTIONS))
    questions: list[Question] = []
    for i, item in enumerate(raw):
        where = f"{field}.questions[{i}]"
        if not isinstance(item, Mapping):
            raise _bad(where, Msg("err.livecode.threshold_object"))
        extra = set(item) - {"key", "text", "choices", "accept", "region"}
        if extra:
            raise _bad(f"{where}.{sorted(extra)[0]}", Msg("err.livecode.threshold_unknown"))
        key = _text(item.get("key"), f"{where}.key", limit=32, required=False) or f"q{i + 1}"
        if not set(key) <= _KEY_CHARS or any(q.key == key for q in questions):
            raise _bad(f"{where}.key", Msg("err.livecode.threshold_key"))
        choices = _texts(item.get("choices"), f"{where}.choices")
        accept = _texts(item.get("accept"), f"{where}.accept")
        if choices and any(a not in choices for a in accept):
            raise _bad(f"{where}.accept", Msg("err.livecode.threshold_accept"))
        region = item.get("region", False)
        if not isinstance(region, bool):
            raise _bad(f"{where}.region", Msg("err.livecode.threshold_bool"))
        questions.append(Question(key, _text(item.get("text"), f"{where}.text"), choices, accept, region))
    if not questions:
        return None
    if sum(q.region for q in questions) > 1:
        raise _bad(f"{field}.questions", Msg("err.livecode.threshold_regions"))
    return Threshold(tuple(questions), _text(value.get("refusal"), f"{field}.refusal", required=False))


def check_answers(threshold: Threshold, form: Mapping[str, str]) -> Verdict:
    """Judge a visitor's answers (``form``: the question keys, as posted)."""
    answers: dict[str, str] = {}
    region = ""
    for q in threshold.questions:
        answer = (form.get(q.key) or "").strip()[:MAX_ANSWER]
        if not answer:
            return Verdict(False, answers, missing=q.key)
        answers[q.key] = answer
        if q.region:
            region = answer
    passed = all(q.passes(answers[q.key]) for q in threshold.questions)
    return Verdict(passed, answers, region)
