"""Moderation (群规审核) in the console: the policies (attached to the organisation, a community,
a playbook or a group) with their rules, ladder, exempt roles, blacklist reach, dry-run and word
lists; the "test a message" box; word-list import (text or .xlsx) and export; the moderation log
with appeals (reversals).

Who may do what is the service's to decide (moderation/service.py): leads edit every policy,
admins the policies of their groups; leads and admins reverse decisions; analysts read; owners
and other scoped roles see their groups' decisions. The pages only hide the forms a reader could
not use, and every form goes through the same service functions as the API.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

import yaml
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from qunyun.api.pagination import BigId, Id
from qunyun.console.web import ConsolePage, Page, check_form, int_param
from qunyun.errors import Conflict, Forbidden, InvalidInput, NotFound, QunyunError
from qunyun.locale import FALLBACK, Msg, Translator, catalogue
from qunyun.models import ModerationPolicy, PolicyTarget, Role
from qunyun.moderation import console_queries, service, wordfiles
from qunyun.moderation.policy import BLACKLIST_SCOPES, STEP_ACTIONS, policy_from_dict
from qunyun.moderation.service import DecisionView
from qunyun.moderation.types import KNOWN_CATEGORIES, Action, Decision, Hit, RuleKind, WordEntry

router = APIRouter()

PAGE_SIZE = 50
LADDER_STEPS = 5  # steps the form offers (blank ones are dropped)
EXEMPT_ROLES = ("owner", "admin", "kol")
TEST_TYPES = ("text", "image", "link", "miniprogram", "file", "video", "card", "join")
MAX_UPLOAD = 1024 * 1024  # the edge's body cap; a bigger list is refused there first
MAX_MUTE_MINUTES = 30 * 24 * 60
# A longer word list (a downloaded lexicon: tens of thousands) is not put in the page's text
# box; it is imported and exported as a file.
MAX_INLINE_WORDS = 3000
EXCERPT = 60  # characters of a message the log shows
NOTICES = frozenset({"created", "saved", "words", "imported", "deleted", "reversed"})
XLSX_MAGIC = b"PK\x03\x04"


async def form_data(request: Request) -> AsyncIterator[FormData]:
    form = await request.form(max_files=1, max_fields=50)
    try:
        yield form
    finally:
        await form.close()


Form = Annotated[FormData, Depends(form_data)]


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def _raw(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


def _whole(form: FormData, key: str, maximum: int) -> int | None:
    """A whole number typed into ``key`` (blank: None); anything else is 422 naming the field."""
    text = _text(form, key)
    if not text:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)) or int(text) > maximum:
        raise InvalidInput(Msg("modp.err.whole_number", max=maximum), field=key)
    return int(text)


def _error_context(page: Page, error: QunyunError | None) -> dict[str, Any]:
    return {
        "error": error.localized(page.t.lang) if error is not None else "",
        "error_field": _form_field(error.field or "") if error is not None else "",
    }


def _form_field(path: str) -> str:
    """The form field a service error's path belongs to: ``rules[2].seconds`` → ``rules``."""
    return path.split("[", 1)[0].split(".", 1)[0]


def _notice(page: Page) -> str:
    done = page.request.query_params.get("done", "")
    return done if done in NOTICES else ""


# --- labels ------------------------------------------------------------------------------------


def _labeller(t: Translator) -> Callable[[str, str | None], str]:
    """``label("cat", "ads")`` → 广告: the catalogue's name of a code, else the code itself (a
    custom category, a rule kind someone added)."""

    def label(prefix: str, code: str | None) -> str:
        if not code:
            return "—"
        key = f"modp.{prefix}.{code}"
        if key in catalogue(t.lang) or key in catalogue(FALLBACK):
            return t(key)
        if prefix == "cat":  # a decision's category is a rule kind for rules without words
            return label("kind", code) if f"modp.kind.{code}" in catalogue(FALLBACK) else code
        return code

    return label


# --- who may do what (the service checks again) --------------------------------------------------


def _may_create(page: Page) -> bool:
    return page.scope.can_write and page.scope.role in (Role.LEAD, Role.ADMIN)


def _may_edit(page: Page, row: ModerationPolicy) -> bool:
    """Leads edit every policy; admins those of groups (the row is visible: the group is theirs)."""
    scope = page.scope
    if not scope.can_write:
        return False
    return scope.is_lead or (scope.role is Role.ADMIN and row.target_type == PolicyTarget.GROUP)


def _may_judge(page: Page) -> bool:
    return page.scope.can_write and page.scope.role in (Role.LEAD, Role.ADMIN)


# --- the policies list ---------------------------------------------------------------------------


@router.get("/moderation")
def policy_list(page: ConsolePage) -> Response:
    db, scope = page.db, page.scope
    policies = service.list_policies(db, scope)
    targets = console_queries.policy_targets(db, scope)
    return page.render(
        "moderation.html",
        "moderation",
        {
            "policies": policies,
            "target_names": {p.id: targets.name(p.target_type, _target_id(p)) for p in policies},
            "may_create": _may_create(page),
            "notice": _notice(page),
        },
    )


def _target_id(row: ModerationPolicy) -> int | None:
    return {
        "community": row.community_id,
        "playbook": row.playbook_id,
        "group": row.group_id,
    }.get(row.target_type)


# --- the settings form (shared by create and edit) ------------------------------------------------


def _settings_values(settings: dict[str, Any], row: ModerationPolicy | None) -> dict[str, Any]:
    """What the settings fields show for stored ``settings``."""
    ladder = [str(a) for a in settings.get("ladder", ["warn", "warn", "kick"])]
    rules = settings.get("rules") or []
    return {
        "name": row.name if row is not None else "",
        "enabled": row.enabled if row is not None else True,
        "dry_run": bool(settings.get("dry_run", False)),
        "ladder": ladder + [""] * (LADDER_STEPS - len(ladder)),
        "mute_minutes": str(settings.get("mute_minutes", 60)),
        "exempt_roles": list(settings.get("exempt_roles", EXEMPT_ROLES)),
        "blacklist_scope": settings.get("blacklist_scope", "group"),
        "strike_window_days": str(row.strike_window_days if row is not None else 30),
        "rules_yaml": _rules_yaml(rules),
    }


def _rules_yaml(rules: list[Any]) -> str:
    if not rules:
        return ""
    return str(yaml.safe_dump(rules, allow_unicode=True, sort_keys=False, default_flow_style=None, width=100))


def _submitted_values(form: FormData) -> dict[str, Any]:
    """The settings fields as submitted, to show the form again after an error."""
    ladder = [_text(form, f"ladder_{i}") for i in range(1, LADDER_STEPS + 1)]
    return {
        "name": _text(form, "name"),
        "enabled": _text(form, "enabled") == "1",
        "dry_run": _text(form, "dry_run") == "1",
        "ladder": ladder,
        "mute_minutes": _text(form, "mute_minutes"),
        "exempt_roles": [v for v in form.getlist("exempt_roles") if isinstance(v, str)],
        "blacklist_scope": _text(form, "blacklist_scope"),
        "strike_window_days": _text(form, "strike_window_days"),
        "rules_yaml": _raw(form, "rules_yaml"),
        "target": _text(form, "target"),
        "default_words": _text(form, "default_words") == "1",
    }


def _parse_rules(text: str) -> list[Any] | None:
    """The rules typed as YAML (a list of rules; blank: None, the one sensitive-word rule)."""
    if not text.strip():
        return None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInput(Msg("err.moderation.yaml", line=line, problem=problem), field="rules") from None
    if isinstance(data, dict) and set(data) == {"rules"}:
        data = data["rules"]
    if data is None:
        return None
    if not isinstance(data, list):
        raise InvalidInput(Msg("err.moderation.field", field="rules", reason=Msg("err.moderation.list")), field="rules")
    return data


def _settings_from_form(form: FormData) -> tuple[dict[str, Any], int]:
    """(the policy dict without word lists, the strike window) as submitted; validated by the
    service (errors name ``rules[1].seconds``, ``ladder[0]``, …)."""
    settings: dict[str, Any] = {
        "ladder": [s for i in range(1, LADDER_STEPS + 1) if (s := _text(form, f"ladder_{i}"))],
        "exempt_roles": [v for v in form.getlist("exempt_roles") if isinstance(v, str) and v],
        "blacklist_scope": _text(form, "blacklist_scope") or "group",
        "dry_run": _text(form, "dry_run") == "1",
    }
    if not settings["ladder"]:
        raise InvalidInput(
            Msg("err.moderation.field", field="ladder", reason=Msg("err.moderation.empty")), field="ladder"
        )
    mute = _whole(form, "mute_minutes", MAX_MUTE_MINUTES)
    if mute is not None:
        settings["mute_minutes"] = mute
    rules = _parse_rules(_raw(form, "rules_yaml"))
    if rules is not None:
        settings["rules"] = rules
    window = _whole(form, "strike_window_days", 3650)
    return settings, window if window is not None else 30


def _choices(page: Page) -> dict[str, Any]:
    t = page.t
    return {
        "step_actions": [str(a) for a in STEP_ACTIONS],
        "exempt_choices": EXEMPT_ROLES,
        "blacklist_scopes": BLACKLIST_SCOPES,
        "ladder_steps": LADDER_STEPS,
        "label": _labeller(t),
    }


# --- create ---------------------------------------------------------------------------------------


def _new_page(page: Page, values: dict[str, Any], error: QunyunError | None = None) -> Response:
    targets = console_queries.policy_targets(page.db, page.scope)
    return page.render(
        "moderation_new.html",
        "moderation",
        {
            "values": values,
            "targets": targets,
            "is_lead": page.scope.is_lead,
            **_choices(page),
            **_error_context(page, error),
        },
        status_code=error.status_code if error is not None else 200,
    )


@router.get("/moderation/policies/new")
def policy_new(page: ConsolePage) -> Response:
    if not _may_create(page):
        raise Forbidden(Msg("moderation.engine.err.editors"))
    values = _settings_values(dict(service.DEFAULT_SETTINGS), None)
    values.update(name=page.t("modp.default_name"), default_words=True)
    return _new_page(page, values)


def _target(value: str) -> tuple[str, int | None]:
    """``organisation`` or ``group:7`` as the target select submits it."""
    kind, _, number = value.partition(":")
    if kind not in {t.value for t in PolicyTarget}:
        raise InvalidInput(Msg("modp.err.target"), field="target")
    if kind == PolicyTarget.ORGANISATION:
        return kind, None
    target_id = int_param(number)
    if target_id is None:
        raise InvalidInput(Msg("modp.err.target"), field="target")
    return kind, target_id


@router.post("/moderation/policies/new")
def policy_create(page: ConsolePage, form: Form) -> Response:
    check_form(page, form)
    if not _may_create(page):
        raise Forbidden(Msg("moderation.engine.err.editors"))
    try:
        kind, target_id = _target(_text(form, "target"))
        settings, window = _settings_from_form(form)
        row = service.create_policy(
            page.db,
            page.scope,
            name=_text(form, "name"),
            target_type=kind,
            target_id=target_id,
            settings=settings,
            words=service.default_words() if _text(form, "default_words") == "1" else (),
            enabled=_text(form, "enabled") == "1",
            strike_window_days=window,
            request=page.request,
        )
    except (InvalidInput, Conflict, NotFound) as exc:
        page.db.rollback()
        error = _as_field(exc, "target") if isinstance(exc, NotFound) or exc.field == "target_id" else exc
        return _new_page(page, _submitted_values(form), error)
    return RedirectResponse(f"/moderation/policies/{row.id}?done=created", status_code=303)


def _as_field(error: QunyunError, field: str) -> QunyunError:
    error.field = field
    return error


# --- a policy's page --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A piece of the tested text: ``word`` is the listed word it matched (None: not a hit)."""

    text: str
    word: str | None = None


def highlight(text: str, hits: tuple[Hit, ...]) -> list[Segment]:
    """``text`` cut at the hits' spans (overlapping hits merged, the first one's word named)."""
    spans: list[tuple[int, int, str]] = []
    for hit in sorted(hits, key=lambda h: (h.start, -h.end)):
        start, end = max(0, hit.start), min(len(text), hit.end)
        if start >= end:
            continue
        if spans and start < spans[-1][1]:
            first = spans[-1]
            spans[-1] = (first[0], max(first[1], end), first[2])
        else:
            spans.append((start, end, hit.word))
    out: list[Segment] = []
    at = 0
    for start, end, word in spans:
        if start > at:
            out.append(Segment(text[at:start]))
        out.append(Segment(text[start:end], word))
        at = end
    if at < len(text):
        out.append(Segment(text[at:]))
    return out


@dataclass(frozen=True)
class TestResult:
    values: dict[str, str]
    decision: Decision
    subject: str  # the text the matches' spans are in (the message, or the name card of a join)
    segments: list[Segment]


def _rule_rows(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The rules as the page lists them: name, kind, action and their other keys."""
    rows = []
    for rule in settings.get("rules") or []:
        extra = {k: v for k, v in rule.items() if k not in {"name", "kind", "action"}}
        rows.append({"name": rule.get("name"), "kind": rule.get("kind"), "action": rule.get("action"), "extra": extra})
    return rows


def _word_entries(row: ModerationPolicy) -> list[WordEntry]:
    return list(policy_from_dict({"words": row.words}).words)


def _policy_page(
    page: Page,
    policy_id: int,
    *,
    values: dict[str, Any] | None = None,
    words_text: str | None = None,
    allow_text: str | None = None,
    test: TestResult | None = None,
    test_values: dict[str, str] | None = None,
    error: QunyunError | None = None,
    error_form: str = "",
) -> Response:
    db, scope = page.db, page.scope
    row = service.get_policy(db, scope, policy_id)
    targets = console_queries.policy_targets(db, scope)
    entries = _word_entries(row)
    categories: dict[str, int] = {}
    for entry in entries:
        categories[entry.category] = categories.get(entry.category, 0) + 1
    return page.render(
        "moderation_policy.html",
        "moderation",
        {
            "policy": row,
            "target_name": targets.name(row.target_type, _target_id(row)),
            "values": values if values is not None else _settings_values(row.settings, row),
            "rules": _rule_rows(row.settings),
            "words_text": words_text if words_text is not None else wordfiles.write_text(entries[:MAX_INLINE_WORDS]),
            "words_inline": len(entries) <= MAX_INLINE_WORDS,
            "max_inline_words": MAX_INLINE_WORDS,
            "allow_text": allow_text if allow_text is not None else "".join(a + "\n" for a in row.allow),
            "word_count": len(entries),
            "categories": sorted(categories.items(), key=lambda c: (-c[1], c[0])),
            "category_choices": KNOWN_CATEGORIES,
            "test": test,
            "test_values": test_values or (test.values if test else {"msg_type": "text", "strikes": "0"}),
            "test_types": TEST_TYPES,
            "may_edit": _may_edit(page, row),
            "notice": _notice(page),
            "error_form": error_form if error is not None else "",
            **_choices(page),
            **_error_context(page, error),
        },
        status_code=error.status_code if error is not None else 200,
    )


@router.get("/moderation/policies/{policy_id}")
def policy_detail(page: ConsolePage, policy_id: Id) -> Response:
    return _policy_page(page, policy_id)


@router.post("/moderation/policies/{policy_id}/edit")
def policy_edit(page: ConsolePage, policy_id: Id, form: Form) -> Response:
    check_form(page, form)
    try:
        settings, window = _settings_from_form(form)
        changes = {
            "name": _text(form, "name"),
            "enabled": _text(form, "enabled") == "1",
            "settings": settings,
            "strike_window_days": window,
        }
        service.update_policy(page.db, page.scope, policy_id, changes, request=page.request)
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        return _policy_page(page, policy_id, values=_submitted_values(form), error=exc, error_form="settings")
    return RedirectResponse(f"/moderation/policies/{policy_id}?done=saved", status_code=303)


@router.post("/moderation/policies/{policy_id}/words")
def policy_words(page: ConsolePage, policy_id: Id, form: Form) -> Response:
    """The word list (``word<TAB>category`` a line; a line without a category takes the one
    chosen) and the allow list (a term a line), replaced together. A list too long to edit here
    is not in the form (import and export it): then only the allow list changes."""
    check_form(page, form)
    words_text, allow_text = _raw(form, "words"), _raw(form, "allow")
    try:
        category = _category(form)
        words = wordfiles.read_text(words_text, default_category=category).entries if "words" in form else None
        allow = list(dict.fromkeys(line.strip() for line in allow_text.splitlines() if line.strip()))
        service.set_word_lists(page.db, page.scope, policy_id, words=words, allow=allow, request=page.request)
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        if exc.field == "file":
            exc.field = "words"
        return _policy_page(
            page, policy_id, words_text=words_text, allow_text=allow_text, error=exc, error_form="words"
        )
    return RedirectResponse(f"/moderation/policies/{policy_id}?done=words#words", status_code=303)


def _category(form: FormData) -> str:
    from qunyun.moderation.policy import category_id

    try:
        return category_id(_text(form, "category") or "custom")
    except ValueError:
        raise InvalidInput(Msg("modp.err.category"), field="category") from None


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str


async def upload_file(form: Form) -> Upload:
    """The file chosen in the form's ``file`` field (empty when none was), at most one byte more
    than the limit: the page refuses a larger one naming the field."""
    upload = form.get("file")
    # A form submitted without choosing a file still sends an empty, nameless part.
    if not isinstance(upload, UploadFile) or not (upload.filename or upload.size):
        return Upload(b"", "")
    return Upload(await upload.read(MAX_UPLOAD + 1), upload.filename or "")


@router.post("/moderation/policies/{policy_id}/import")
def policy_import(
    page: ConsolePage, policy_id: Id, form: Form, upload: Annotated[Upload, Depends(upload_file)]
) -> Response:
    """A word file (text, or .xlsx) added to the list or replacing it; a bad line or row refuses
    the whole file, naming it, and nothing is imported."""
    check_form(page, form)
    data, filename = upload.data, upload.filename
    try:
        if not data:
            raise InvalidInput(Msg("modp.err.choose_file"), field="file")
        if len(data) > MAX_UPLOAD:
            raise InvalidInput(Msg("modp.err.file_large", limit="1 MiB"), field="file")
        category = _category(form)
        excel = data.startswith(XLSX_MAGIC) or filename.lower().endswith(".xlsx")
        read = wordfiles.read_excel if excel else wordfiles.read_text
        imported = read(data, default_category=category).entries
        row = service.get_policy(page.db, page.scope, policy_id)
        if _text(form, "mode") == "replace":
            words: list[Any] = list(imported)
        else:
            known = {w["word"] if isinstance(w, dict) else w for w in row.words}
            words = [*row.words, *(e for e in imported if e.word not in known)]
        service.set_word_lists(page.db, page.scope, policy_id, words=words, request=page.request)
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        if exc.field not in ("category",):
            exc.field = "file"
        return _policy_page(page, policy_id, error=exc, error_form="import")
    return RedirectResponse(f"/moderation/policies/{policy_id}?done=imported#words", status_code=303)


@router.get("/moderation/policies/{policy_id}/words.txt")
def words_text_download(page: ConsolePage, policy_id: Id) -> Response:
    row = service.get_policy(page.db, page.scope, policy_id)
    body = wordfiles.write_text(_word_entries(row)).encode("utf-8")
    return _download(body, "text/plain; charset=utf-8", f"moderation-words-{row.id}.txt")


@router.get("/moderation/policies/{policy_id}/words.xlsx")
def words_excel_download(page: ConsolePage, policy_id: Id) -> Response:
    row = service.get_policy(page.db, page.scope, policy_id)
    body = wordfiles.write_excel(_word_entries(row))
    mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    return _download(body, mime, f"moderation-words-{row.id}.xlsx")


def _download(body: bytes, media_type: str, filename: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return Response(body, media_type=media_type, headers=headers)


@router.post("/moderation/policies/{policy_id}/test")
def policy_test(page: ConsolePage, policy_id: Id, form: Form) -> Response:
    """What the policy decides on a message (nothing is recorded or sent)."""
    check_form(page, form)
    values = {
        "text": _raw(form, "text"),
        "msg_type": _text(form, "msg_type") or "text",
        "member_name": _text(form, "member_name"),
        "strikes": _text(form, "strikes") or "0",
    }
    try:
        strikes = _whole(form, "strikes", 100) or 0
        decision = service.test_message(
            page.db,
            page.scope,
            policy_id,
            text=values["text"],
            msg_type=values["msg_type"],
            member_name=values["member_name"],
            strikes=strikes,
        )
    except InvalidInput as exc:
        return _policy_page(page, policy_id, test_values=values, error=exc, error_form="test")
    join = values["msg_type"] == "join" or decision.rule_kind in (RuleKind.NAME_CARD, RuleKind.OTHER_CORP)
    subject = values["member_name"] if join else values["text"]
    result = TestResult(values, decision, subject, highlight(subject, decision.matches))
    return _policy_page(page, policy_id, test=result)


@router.post("/moderation/policies/{policy_id}/delete")
def policy_delete(page: ConsolePage, policy_id: Id, form: Form) -> Response:
    check_form(page, form)
    service.delete_policy(page.db, page.scope, policy_id, request=page.request)
    return RedirectResponse("/moderation?done=deleted", status_code=303)


# --- the moderation log ------------------------------------------------------------------------------


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value.strip()) if value else None
    except ValueError:
        return None  # a hand-edited URL: no filter, as for other query values


def _log_filters(page: Page) -> tuple[dict[str, Any], dict[str, Any]]:
    """(list_decisions' keyword filters, what the filter form shows)."""
    params = page.request.query_params
    shown: dict[str, Any] = {}
    group_id = int_param(params.get("group"))
    member_id = int_param(params.get("member"))
    action = params.get("action", "").strip()
    action = action if action in {str(a) for a in Action if a is not Action.LADDER} else ""
    rule = params.get("rule", "").strip()[:100]
    since, until = _day(params.get("from")), _day(params.get("to"))
    real = params.get("real") == "1"
    zone = page.zone
    filters: dict[str, Any] = {
        "group_id": group_id,
        "member_id": member_id,
        "action": action or None,
        "rule": rule or None,
        "since": datetime.combine(since, time(), zone) if since else None,
        "until": datetime.combine(until, time(), zone) + timedelta(days=1) if until else None,
        "include_dry_run": not real,
    }
    for key, value in (("group", group_id), ("member", member_id), ("action", action), ("rule", rule)):
        if value:
            shown[key] = value
    if since:
        shown["from"] = since.isoformat()
    if until:
        shown["to"] = until.isoformat()
    if real:
        shown["real"] = "1"
    return filters, shown


@dataclass(frozen=True)
class LogRow:
    view: DecisionView
    group: str | None
    member: str | None
    words: list[str]
    decided_by: str | None  # None: the engine
    reversed_by: str | None

    @property
    def decision(self) -> Any:
        return self.view.decision


def log_rows(page: Page, views: list[DecisionView]) -> list[LogRow]:
    """Decisions with the names the log and the member's record show beside them."""
    from qunyun.groups.service import group_names

    db, scope = page.db, page.scope
    groups = group_names(db, scope, {v.decision.group_id for v in views if v.decision.group_id is not None})
    members = console_queries.member_names(db, scope, {v.decision.member_id for v in views if v.decision.member_id})
    staff_ids = {v.decision.decided_by_id for v in views if v.decision.decided_by_id}
    staff_ids |= {v.reversal.staff_id for v in views if v.reversal is not None and v.reversal.staff_id}
    staff = console_queries.staff_names(db, scope, staff_ids)
    rows = []
    for view in views:
        d = view.decision
        rows.append(
            LogRow(
                view=view,
                group=groups.get(d.group_id) if d.group_id is not None else None,
                member=members.get(d.member_id) if d.member_id is not None else None,
                words=list(dict.fromkeys(m.get("word", "") for m in d.matches or [] if m.get("word"))),
                decided_by=staff.get(d.decided_by_id) if d.decided_by_id else None,
                reversed_by=staff.get(view.reversal.staff_id)
                if view.reversal is not None and view.reversal.staff_id
                else None,
            )
        )
    return rows


def _log_page(
    page: Page, *, error: QunyunError | None = None, error_decision: int | None = None, reason: str = ""
) -> Response:
    from qunyun.groups.service import group_choices

    db, scope = page.db, page.scope
    filters, shown = _log_filters(page)
    _, total = service.list_decisions(db, scope, **filters, limit=0)
    paging = page.paging(total, PAGE_SIZE)
    views, total = service.list_decisions(db, scope, **filters, limit=paging.size, offset=paging.offset)
    member_name = None
    if filters["member_id"] is not None:
        member_name = console_queries.member_names(db, scope, [filters["member_id"]]).get(filters["member_id"])
    return page.render(
        "moderation_log.html",
        "moderation",
        {
            "rows": log_rows(page, views),
            "total": total,
            "paging": paging,
            "filters": shown,
            "member_name": member_name,
            "group_options": group_choices(db, scope),
            "action_options": [str(a) for a in Action if a not in (Action.ALLOW, Action.LADDER)],
            "may_judge": _may_judge(page),
            "back": urlencode(list(page.request.query_params.multi_items())),
            "notice": _notice(page),
            "error_decision": error_decision if error is not None else None,
            "reason": reason,
            "excerpt_length": EXCERPT,
            "label": _labeller(page.t),
            **_error_context(page, error),
        },
        status_code=error.status_code if error is not None else 200,
    )


@router.get("/moderation/log")
def decision_log(page: ConsolePage) -> Response:
    return _log_page(page)


def _back_query(form: FormData) -> str:
    """The log's query string the form came from, rebuilt from its pairs (never a URL)."""
    keys = {"group", "member", "action", "rule", "from", "to", "real", "page"}
    return urlencode([(k, v) for k, v in parse_qsl(_text(form, "back")) if k in keys])


@router.post("/moderation/decisions/{decision_id}/reverse")
def decision_reverse(page: ConsolePage, decision_id: BigId, form: Form) -> Response:
    """An appeal granted: the decision stops counting; a reason is required."""
    check_form(page, form)
    reason = _text(form, "reason")
    back = _back_query(form)
    try:
        service.reverse_decision(page.db, page.scope, decision_id, reason, request=page.request)
    except (InvalidInput, Conflict) as exc:
        page.db.rollback()
        # Shown again as the reader left it (filters and page), the message beside the row: the
        # log's own URL, so that its filter form and page links lead back to the log.
        log_scope = {
            **page.request.scope,
            "method": "GET",
            "path": "/moderation/log",
            "raw_path": b"/moderation/log",
            "query_string": back.encode(),
        }
        log_page = replace(page, request=Request(log_scope))
        return _log_page(log_page, error=exc, error_decision=decision_id, reason=reason)
    query = f"{back}&done=reversed" if back else "done=reversed"
    return RedirectResponse(f"/moderation/log?{query}#decision-{decision_id}", status_code=303)


# --- the member's record (a section of the member's page) ------------------------------------------


def member_section(page: Page, member_id: int) -> dict[str, Any]:
    """What the member page's moderation section shows: strikes in the window, mutes running,
    blacklist entries in force, and the decisions with their reversals."""
    record = service.member_record(page.db, page.scope, member_id)
    listed = {v.decision.id for v in record.decisions}
    # Entries in force older than the decisions listed (the record lists the latest 200).
    extra = [DecisionView(d) for d in (*record.mutes, *record.blacklist) if d.id not in listed]
    rows = log_rows(page, [*record.decisions, *extra])
    by_id = {r.decision.id: r for r in rows}
    return {
        "record": record,
        "rows": rows[: len(record.decisions)],
        "mutes": [by_id[d.id] for d in record.mutes],
        "mute_until": {
            d.id: page.local(d.at + timedelta(seconds=d.mute_seconds)) for d in record.mutes if d.mute_seconds
        },
        "blacklist": [by_id[d.id] for d in record.blacklist],
        "may_judge": _may_judge(page),
        "label": _labeller(page.t),
    }
