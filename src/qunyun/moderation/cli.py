"""``qunyun moderation``: judge messages against a policy from the shell, no database needed.

- ``check (--policy FILE | --words FILE) [--text TEXT]`` prints one JSON decision a line,
  ``{"id", "action", "rule", "category", "matches": [{"word", "start", "end"}]}`` (PRODUCT.md).
  With ``--text`` it judges that one text as a text message with id ``"text"``; otherwise it reads
  interchange lines on standard input: each ``message.posted`` gets a decision, and so does each
  ``member.joined`` (judged by the name-card and other-corp rules; it also starts the member's
  new-member clock). The earlier messages of the same member in the same group are the flood
  rules' history. Blank lines are skipped, as ``events import`` does; any other line (malformed,
  another kind) refuses the whole input with its line number, before anything is printed.
- ``intercept (--policy FILE | --words FILE) [--max-rules N]`` prints the policy's words as WeCom
  intercept rules, ``{"rules": [{"name", "category", "words"}], "overflow": [{"word", "category",
  "reason"}]}``.

A policy file is YAML (``docs/moderation.md``); it may name word files to add to its words,
``word_files: [{path, category?, format?}]`` (paths relative to the policy file; format ``text``,
``excel`` or ``lexicon``, by default from the extension: .xlsx is Excel, anything else text). A
``--words`` file is a word list (text, or Excel when it ends in .xlsx), judged by one
sensitive-word rule whose action is delete.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from qunyun.cli_support import CliFailure
from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.moderation.intercept import MAX_RULES, plan_intercept_rules
from qunyun.moderation.policy import CompiledPolicy, Policy, category_id, policy_from_dict, policy_from_words
from qunyun.moderation.rules import evaluate
from qunyun.moderation.types import MessageContext, Recent, WordEntry
from qunyun.moderation.wordfiles import read_excel, read_lexicon, read_text

app = typer.Typer(help="Moderation: check messages against a policy, WeCom intercept rules", no_args_is_help=True)

PolicyOption = Annotated[Path | None, typer.Option("--policy", help="A YAML policy file")]
WordsOption = Annotated[
    Path | None,
    typer.Option("--words", help="A word list: one word a line, optional <TAB>category (or an .xlsx)"),
]
TEXT_ID = "text"


def read_word_file(path: Path, fmt: str | None = None, category: str = "custom") -> list[WordEntry]:
    """The entries of a word file; a bad line is an ``InvalidInput`` naming the file and line."""
    data = path.read_bytes()
    fmt = fmt or ("excel" if path.suffix.lower() == ".xlsx" else "text")
    try:
        if fmt == "excel":
            return read_excel(data, category).entries
        if fmt == "lexicon":
            return read_lexicon(data, category, source=path.name).entries
        return read_text(data, category).entries
    except InvalidInput as exc:
        raise InvalidInput(Msg("err.moderation.in_file", file=str(path), reason=exc.msg or exc.message)) from None


def load_policy_file(path: Path) -> Policy:
    """A YAML policy file, its ``word_files`` read and added to its words."""
    import yaml

    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise InvalidInput(Msg("err.moderation.in_file", file=str(path), reason=Msg("err.moderation.utf8"))) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = Msg(
            "err.moderation.yaml",
            line=mark.line + 1 if mark is not None else 0,
            problem=getattr(exc, "problem", None) or str(exc).splitlines()[0],
        )
        raise InvalidInput(Msg("err.moderation.in_file", file=str(path), reason=reason)) from None
    if data is None:
        data = {}
    if isinstance(data, dict) and "word_files" in data:
        data = dict(data)
        extra = _word_files(data.pop("word_files"), path.parent)
        data["words"] = [*(data.get("words") or []), *extra]
    try:
        return policy_from_dict(data)
    except InvalidInput as exc:
        raise InvalidInput(
            Msg("err.moderation.in_file", file=str(path), reason=exc.msg or exc.message), field=exc.field
        ) from None


def _word_files(value: Any, base: Path) -> list[dict[str, Any]]:
    def bad(where: str, reason: Msg) -> InvalidInput:
        return InvalidInput(Msg("err.moderation.field", field=where, reason=reason), field=where)

    if not isinstance(value, list):
        raise bad("word_files", Msg("err.moderation.list"))
    words: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"word_files[{i}]"
        spec = {"path": item} if isinstance(item, str) else item
        if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
            raise bad(f"{where}.path", Msg("err.moderation.required"))
        unknown = set(spec) - {"path", "category", "format"}
        if unknown:
            raise bad(
                f"{where}.{sorted(unknown)[0]}", Msg("err.moderation.unknown_key", allowed="path, category, format")
            )
        fmt = spec.get("format")
        if fmt is not None and fmt not in ("text", "excel", "lexicon"):
            raise bad(f"{where}.format", Msg("err.moderation.one_of", choices="text, excel, lexicon"))
        category = spec.get("category", "custom")
        if not isinstance(category, str) or not category.strip():
            raise bad(f"{where}.category", Msg("err.moderation.empty"))
        target = (base / spec["path"]).expanduser()
        for entry in read_word_file(target, fmt, category_id(category)):
            words.append({"word": entry.word, "category": entry.category, "pinyin": entry.pinyin})
    return words


def _policy(policy: Path | None, words: Path | None) -> Policy:
    if (policy is None) == (words is None):
        raise CliFailure(Msg("err.moderation.cli_one_source"))
    if policy is not None:
        return load_policy_file(policy)
    assert words is not None
    return policy_from_words(read_word_file(words))


def _json(out: Any) -> str:
    return orjson.dumps(out).decode()


@app.command("check")
def check(
    policy: PolicyOption = None,
    words: WordsOption = None,
    text: Annotated[str | None, typer.Option("--text", help='Check this one text (id "text")')] = None,
) -> None:
    """One JSON decision per message (standard input: interchange message.posted lines)."""
    compiled = _policy(policy, words).compile()
    if text is not None:
        from qunyun.db.base import to_micros
        from qunyun.timeutil import utcnow

        ctx = MessageContext(id=TEXT_ID, ts=to_micros(utcnow()), msg_type="text", text=text)
        print(_json(evaluate(compiled, ctx).to_json()))
        return
    lines = check_lines(compiled, sys.stdin.buffer)
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def check_lines(compiled: CompiledPolicy, stream: Any) -> list[str]:
    """The decisions on a stream of interchange lines, as JSON lines; a bad line raises
    ``InvalidInput`` naming it (nothing is returned then)."""
    from qunyun.ingestion.parse import EventError, parse_line
    from qunyun.models.event import KIND_BY_NAME, EventKind, MsgType

    names = {t.value: t.name.lower() for t in MsgType}
    kind_names = {kind: name for name, kind in KIND_BY_NAME.items()}
    window = compiled.history_seconds * 1_000_000
    history: dict[tuple[str, str], deque[Recent]] = {}
    joined: dict[tuple[str, str], int] = {}
    out: list[str] = []
    for number, line in enumerate(stream, start=1):
        if line.isspace() or not line:
            continue
        try:
            event = parse_line(line)
        except EventError as exc:
            raise InvalidInput(Msg("err.moderation.cli_line", line=number, reason=exc.reason()), line=number) from None
        key = (event.group or "", event.member or "")
        if event.kind is EventKind.MEMBER_JOINED:
            joined[key] = event.ts
            ctx = MessageContext(id=event.external_id, ts=event.ts, msg_type=None, member_name=event.member_name or "")
            out.append(_json(evaluate(compiled, ctx).to_json()))
            continue
        if event.kind is not EventKind.MESSAGE_POSTED:
            raise InvalidInput(
                Msg("err.moderation.cli_kind", line=number, kind=kind_names[event.kind]),
                line=number,
            )
        recent: deque[Recent] | None = None
        if window:
            recent = history.get(key)
            if recent is None:
                recent = history[key] = deque()
            while recent and recent[0].ts <= event.ts - window:
                recent.popleft()
        assert event.msg_type is not None
        ctx = MessageContext(
            id=event.external_id,
            ts=event.ts,
            msg_type=names[event.msg_type],
            text=event.text,
            member_name=event.member_name or "",
            joined_ts=joined.get(key),
            recent=tuple(recent) if recent else (),
        )
        out.append(_json(evaluate(compiled, ctx).to_json()))
        if recent is not None:
            recent.append(Recent(event.ts, event.text))
    return out


@app.command("intercept")
def intercept(
    policy: PolicyOption = None,
    words: WordsOption = None,
    max_rules: Annotated[
        int, typer.Option("--max-rules", min=0, max=MAX_RULES, help="Intercept rules the company has free")
    ] = MAX_RULES,
) -> None:
    """The policy's words as WeCom intercept rules (≤300 words each), and what does not fit."""
    plan = plan_intercept_rules(_policy(policy, words).words, max_rules=max_rules)
    print(
        _json(
            {
                "rules": [{"name": r.name, "category": r.category, "words": list(r.words)} for r in plan.rules],
                "overflow": [{"word": o.word, "category": o.category, "reason": o.reason} for o in plan.overflow],
            }
        )
    )
