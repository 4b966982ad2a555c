"""Task titles as catalogue messages: stored as a key and JSON values, rendered in the reader's
language. A value may itself be a message (the platform's name, the inner title of a prefix)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qunyun.locale import FALLBACK, Msg, catalogue
from qunyun.models import StaffTask, TaskKind

_MSG = "$msg"
# The prefix that says how a task about an outbound action is done, per task kind.
PREFIX_KINDS = (TaskKind.PLATFORM_ACTION, TaskKind.CONFIRM_SEND, TaskKind.UNCERTAIN_SEND)


def to_json(value: Any) -> Any:
    """A title value as JSON: a Msg becomes ``{"$msg": key, "values": {...}}``."""
    if isinstance(value, Msg):
        return {_MSG: value.key, "values": {k: to_json(v) for k, v in value.values.items()}}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def from_json(value: Any) -> Any:
    if isinstance(value, dict) and isinstance(value.get(_MSG), str):
        values = value.get("values")
        return Msg(value[_MSG], **{k: from_json(v) for k, v in (values if isinstance(values, dict) else {}).items()})
    return value


def title_msg(task: StaffTask) -> Msg | None:
    """The task's title as a Msg, or None for a task stored with a plain title only."""
    if not task.title_key:
        return None
    return Msg(task.title_key, **{k: from_json(v) for k, v in (task.title_values or {}).items()})


def render_title(task: StaffTask, lang: str) -> str:
    """The title in ``lang``; a plain title (rows from before titles were messages) as it is."""
    return render_stored(task.title_key, task.title_values, task.title, lang)


def message_values(msg: Msg) -> dict[str, Any]:
    """A message's values as JSON, to store next to its key."""
    return {k: to_json(v) for k, v in msg.values.items()}


def render_stored(key: str | None, values: Mapping[str, Any] | None, text: str, lang: str) -> str:
    """A message stored as its key and JSON values, in ``lang``; without a key (rows from before
    it was stored as a message) the stored ``text`` as it is."""
    if not key:
        return text
    try:
        return Msg(key, **{k: from_json(v) for k, v in (values or {}).items()}).render(lang)
    except (KeyError, IndexError, ValueError):
        # A value the message no longer names (a catalogue edit): the stored English text.
        return text


def task_reason(task: StaffTask, lang: str) -> str:
    """Why a task about an outbound action was opened (``detail.reason``), in ``lang``: stored as a
    message (``detail.reason_msg``), or as English text by rows from before."""
    detail = task.detail or {}
    reason = detail.get("reason")
    text = reason if isinstance(reason, str) else ""
    stored = from_json(detail.get("reason_msg"))
    if not isinstance(stored, Msg):
        return text
    try:
        return stored.render(lang)
    except (KeyError, IndexError, ValueError):
        return text


def platform_label(platform: str) -> Msg | str:
    """The platform's display name as a message (企业微信 / WeCom), or its code if it has none."""
    key = f"display.platform.{platform}"
    return Msg(key) if key in catalogue(FALLBACK) else platform


def action_task_title(
    action: str,
    task_kind: TaskKind | str,
    platform: str,
    *,
    group: str = "",
    member: str = "",
    name: str = "",
) -> Msg:
    """The title of a task about an outbound ``action`` (an ``ActionKind`` value): the action's
    title (``task.title.<action>``) inside the prefix of ``task_kind`` (``task.prefix.<kind>``),
    e.g. "Remove 张三 from 读书会 1 群 (by hand on WeCom)"."""
    inner = Msg(f"task.title.{action}", group=group, member=member, name=name)
    kind = TaskKind(task_kind)
    if kind not in PREFIX_KINDS:
        return inner
    return Msg(f"task.prefix.{kind.value}", title=inner, platform=platform_label(platform))
