"""The moderation pages of the console over HTTP: a lead attaches a policy, edits its rules and
word lists, tests a message and sees the words highlighted, imports and exports word lists, and
reverses a decision in the log; the member's record shows it. Bad input is named next to its field
with nothing written; owners, admins, analysts and another organisation see and do only their
part."""

from __future__ import annotations

import html
import io
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from qunyun.models import AuditLog, ModerationDecision, ModerationPolicy, ModerationReversal
from qunyun.moderation import wordfiles
from qunyun.moderation.types import WordEntry
from qunyun.timeutil import utcnow
from tests.api.conftest import World, console_login, csrf_from
from tests.shared_data import LEXICON

RULES = """\
- name: 广告
  kind: words
  action: delete
- name: 联系方式
  kind: contact
"""


def _token(client: TestClient, path: str = "/moderation") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def _settings_form(**changes: Any) -> dict[str, Any]:
    form: dict[str, Any] = {
        "name": "群规",
        "enabled": "1",
        "rules_yaml": RULES,
        "ladder_1": "warn",
        "ladder_2": "warn",
        "ladder_3": "kick",
        "mute_minutes": "60",
        "exempt_roles": ["owner", "admin"],
        "blacklist_scope": "group",
        "strike_window_days": "30",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def _create(client: TestClient, target: str = "organisation", **changes: Any) -> int:
    data = {"csrf_token": _token(client, "/moderation/policies/new"), "target": target, **_settings_form(**changes)}
    response = client.post("/moderation/policies/new", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/moderation/policies/([0-9]+)\?done=created", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


def _words(client: TestClient, policy_id: int, words: str, allow: str = "", category: str = "ads") -> Any:
    data = {"csrf_token": _token(client), "words": words, "allow": allow, "category": category}
    return client.post(f"/moderation/policies/{policy_id}/words", data=data, follow_redirects=False)


def _decision(world: World, group: str, member: str, *, action: str = "warn", rule: str = "广告", **extra: Any) -> int:
    with world.db() as s:
        row = ModerationDecision(
            **extra,
            org_id=world.org_a,
            group_id=world.groups[group],
            member_id=world.members[member],
            rule=rule,
            rule_kind="words",
            category="ads",
            action=action,
            matches=[{"word": "加我微信", "category": "ads", "start": 1, "end": 5}],
            detail={},
            excerpt=f"快加我微信 {group}",
            dry_run=False,
            source="engine",
            action_ids=[],
            at=utcnow(),
        )
        s.add(row)
        s.commit()
        return row.id


def _count(world: World, model: Any) -> int:
    with world.db() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def _policy(world: World, policy_id: int) -> ModerationPolicy:
    with world.db() as s:
        row = s.get(ModerationPolicy, policy_id)
        assert row is not None
        s.expunge(row)
        return row


@pytest.mark.parametrize("path", ["/moderation", "/moderation/log", "/moderation/policies/1"])
def test_moderation_pages_need_a_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_lead_attaches_a_policy_and_edits_it(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    listing = client.get("/moderation").text
    assert 'href="/moderation" aria-current="page"' in listing and "还没有群规" in listing
    policy_id = _create(client, default_words="1", dry_run="1")
    row = _policy(world, policy_id)
    assert row.target_key == "organisation" and row.enabled and row.settings["dry_run"] is True
    assert [r["name"] for r in row.settings["rules"]] == ["广告", "联系方式"]
    assert row.settings["exempt_roles"] == ["owner", "admin"] and len(row.words) > 100  # the default list

    page = client.get(f"/moderation/policies/{policy_id}?done=created").text
    assert "群规已创建" in page and 'data-status="dry-run"' in page
    assert 'data-rule="广告"' in page and "撤回" in page and "警告 → 警告 → 踢出" in page
    assert f'data-policy="{policy_id}"' in client.get("/moderation").text
    assert "Test a message" in client.get(f"/moderation/policies/{policy_id}?lang=en").text
    client.get("/moderation?lang=zh")

    form = {"csrf_token": _token(client), **_settings_form(name="新群规", ladder_3="mute", mute_minutes="15")}
    form.pop("enabled")  # unchecked: disabled
    saved = client.post(f"/moderation/policies/{policy_id}/edit", data=form, follow_redirects=False)
    assert saved.status_code == 303 and saved.headers["location"].endswith("?done=saved")
    row = _policy(world, policy_id)
    assert (row.name, row.enabled, row.version) == ("新群规", False, 2)
    assert row.settings["ladder"] == ["warn", "warn", "mute"] and row.settings["mute_minutes"] == 15
    assert row.settings["dry_run"] is False

    # A group's own policy; the target is taken once only.
    group_policy = _create(client, target=f"group:{world.groups['g2']}")
    assert _policy(world, group_policy).group_id == world.groups["g2"]
    again = {"csrf_token": _token(client), "target": "organisation", **_settings_form()}
    taken = client.post("/moderation/policies/new", data=again)
    assert taken.status_code == 409 and "已经有一套群规" in taken.text

    deleted = client.post(
        f"/moderation/policies/{group_policy}/delete", data={"csrf_token": _token(client)}, follow_redirects=False
    )
    assert deleted.status_code == 303 and client.get(f"/moderation/policies/{group_policy}").status_code == 404


# The input of each settings field in the form.
INPUTS = {
    "name": "f-name",
    "rules": "f-rules",
    "ladder": "f-ladder-1",
    "mute_minutes": "f-mute",
    "strike_window_days": "f-window",
    "target": "f-target",
}


def _marked_invalid(page: str, input_id: str) -> bool:
    """Whether the field holding input ``input_id`` is marked invalid (its box is red)."""
    at = page.index(f'id="{input_id}"')
    return page.startswith('class="field invalid"', page.rindex('class="field', 0, at))


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"rules_yaml": "- kind: telepathy\n"}, "rules", "rules[0].kind"),
        ({"rules_yaml": "- kind: flood\n  seconds: ten\n"}, "rules", "rules[0].seconds"),
        ({"rules_yaml": "- name: [\n"}, "rules", "YAML"),
        ({"ladder_1": "", "ladder_2": "", "ladder_3": ""}, "ladder", "ladder"),
        ({"ladder_1": "shout"}, "ladder", "ladder[0]"),
        ({"mute_minutes": "abc"}, "mute_minutes", "整数"),
        ({"strike_window_days": "0"}, "strike_window_days", "3650"),
        ({"name": ""}, "name", "名称"),
        ({"target": "galaxy:1"}, "target", "范围"),
        ({"target": "group:99999"}, "target", ""),
    ],
)
def test_bad_settings_are_named_next_to_the_field_and_nothing_is_written(
    client: TestClient, world: World, changes: dict[str, str], field: str, says: str
) -> None:
    console_login(client, "lead")
    before = _count(world, AuditLog)
    data = {"csrf_token": _token(client), "target": "organisation", **_settings_form()}
    data.update(changes)
    response = client.post("/moderation/policies/new", data=data)
    assert response.status_code in (404, 422), response.text
    text = html.unescape(response.text)
    assert f'data-field="{field}"' in text and says in text
    assert _marked_invalid(response.text, INPUTS[field])
    # What was typed is shown again.
    if "rules_yaml" in changes:
        assert html.escape(changes["rules_yaml"].strip(), quote=False) in response.text
    assert _count(world, ModerationPolicy) == 0 and _count(world, AuditLog) == before


def test_an_edit_with_a_bad_rule_keeps_the_policy_as_it_was(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    policy_id = _create(client)
    form = {
        "csrf_token": _token(client),
        **_settings_form(name="改名", rules_yaml="- kind: links\n  allowed_domains: [not a domain]\n"),
    }
    response = client.post(f"/moderation/policies/{policy_id}/edit", data=form)
    assert response.status_code == 422
    assert 'id="settings-error" data-field="rules"' in response.text and "allowed_domains" in response.text
    assert '<details id="edit-settings" open>' in response.text
    row = _policy(world, policy_id)
    assert (row.name, row.version) == ("群规", 1)


def test_testing_a_message_highlights_the_words_at_their_spans(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    policy_id = _create(client)
    assert _words(client, policy_id, "加我微信\n代购\t竞品\n", allow="代购须知").status_code == 303
    data = {
        "csrf_token": _token(client),
        "text": "亲，快 加-我-微 信，代购须知看公告",
        "msg_type": "text",
        "strikes": "0",
    }
    response = client.post(f"/moderation/policies/{policy_id}/test", data=data)
    assert response.status_code == 200, response.text
    page = response.text
    assert 'id="test-result" data-action="delete"' in page
    assert '<mark data-word="加我微信" title="加我微信">加-我-微 信</mark>' in page
    assert 'id="test-rule">广告' in page and 'id="test-category">广告' in page
    assert "代购须知" in page and 'data-word="代购"' not in page  # the allow list
    # Other rules that fired are named; a clean text is allowed.
    data["text"] = "加我微信 13812345678"
    both = client.post(f"/moderation/policies/{policy_id}/test", data=data).text
    assert 'id="test-also">联系方式' in both
    data["text"] = "今天骑行路线在群公告"
    assert 'data-outcome="allow"' in client.post(f"/moderation/policies/{policy_id}/test", data=data).text
    # A join is judged by its name card (a ladder rule: strikes pick the step).
    data.update(text="", msg_type="join", member_name="加我微信领红包")
    joined = client.post(f"/moderation/policies/{policy_id}/test", data=data)
    assert joined.status_code == 200 and 'data-outcome="allow"' in joined.text  # no name-card rule
    # Bad input is named and nothing is written.
    data.update(text="x" * 4001, msg_type="text")
    long = client.post(f"/moderation/policies/{policy_id}/test", data=data)
    assert long.status_code == 422 and 'id="test-error" data-field="text"' in long.text
    data.update(text="hi", strikes="many")
    assert 'data-field="strikes"' in client.post(f"/moderation/policies/{policy_id}/test", data=data).text
    english = client.post(
        f"/moderation/policies/{policy_id}/test?lang=en", data={**data, "strikes": "0", "text": "加我微信"}
    )
    assert "Delete" in english.text and "Where it matched" in english.text


def test_word_lists_save_import_and_export(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    policy_id = _create(client)
    saved = _words(client, policy_id, "加我微信\t广告\n刷单\n", allow="刷单须知\n", category="gambling")
    assert saved.status_code == 303
    row = _policy(world, policy_id)
    assert row.words == [{"word": "加我微信", "category": "ads"}, {"word": "刷单", "category": "gambling"}]
    assert row.allow == ["刷单须知"]

    # A bad line: named, and the lists stay as they were.
    bad = _words(client, policy_id, "好词\n坏词\t\t\t\n")
    assert bad.status_code == 422 and "第 2 行" in bad.text and 'id="words-error" data-field="words"' in bad.text
    assert "坏词" in bad.text  # the textarea keeps what was typed
    assert _policy(world, policy_id).version == row.version

    # Import a text file (added), then an Excel one (replacing).
    def upload(name: str, body: bytes, mode: str = "add", category: str = "custom") -> Any:
        data = {"csrf_token": _token(client), "mode": mode, "category": category}
        files = {"file": (name, io.BytesIO(body), "application/octet-stream")}
        return client.post(f"/moderation/policies/{policy_id}/import", data=data, files=files, follow_redirects=False)

    added = upload("words.txt", "刷单\n兼职日结\t广告\n".encode())
    assert added.status_code == 303 and added.headers["location"].endswith("done=imported#words")
    assert [w["word"] for w in _policy(world, policy_id).words] == ["加我微信", "刷单", "兼职日结"]
    excel = wordfiles.write_excel([WordEntry("赌球", "gambling"), WordEntry("falungong", "politics", True)])
    assert upload("list.xlsx", excel, mode="replace").status_code == 303
    row = _policy(world, policy_id)
    assert row.words == [
        {"word": "赌球", "category": "gambling"},
        {"word": "falungong", "category": "politics", "pinyin": True},
    ]

    # Bad files: the line or row is named, nothing is imported.
    version = row.version
    bad_text = upload("words.txt", b"ok\n\xff\xfe\n")
    assert bad_text.status_code == 422 and "第 2 行" in bad_text.text and 'id="import-error"' in bad_text.text
    bad_excel_book = wordfiles.write_excel([WordEntry("好", "ads"), WordEntry("x" * 80, "ads")])
    bad_excel = upload("list.xlsx", bad_excel_book)
    assert bad_excel.status_code == 422 and "第 3 行" in bad_excel.text
    nothing = upload("", b"")
    assert nothing.status_code == 422 and "请选择要导入的文件" in nothing.text
    assert _policy(world, policy_id).version == version

    # Exports read back to the same list.
    text = client.get(f"/moderation/policies/{policy_id}/words.txt")
    assert text.status_code == 200 and "attachment" in text.headers["content-disposition"]
    assert [e.word for e in wordfiles.read_text(text.content).entries] == ["赌球", "falungong"]
    book = client.get(f"/moderation/policies/{policy_id}/words.xlsx")
    assert wordfiles.read_excel(book.content).entries == [
        WordEntry("赌球", "gambling"),
        WordEntry("falungong", "politics", True),
    ]


def test_the_log_filters_pages_and_reverses_with_a_reason(client: TestClient, world: World) -> None:
    mine = _decision(world, "g1", "m1")
    other = _decision(world, "g3", "m3", action="kick", rule="刷屏")
    console_login(client, "lead")
    log = client.get("/moderation/log").text
    assert f'id="decision-{mine}"' in log and f'id="decision-{other}"' in log
    assert "Member m1" in log and "加我微信" in log and "自动" in log
    kicks = client.get("/moderation/log?action=kick").text
    assert f'id="decision-{other}"' in kicks and f'id="decision-{mine}"' not in kicks
    assert f'id="decision-{mine}"' in client.get(f"/moderation/log?group={world.groups['g1']}").text
    assert "没有符合筛选条件的记录" in client.get("/moderation/log?rule=nothing").text

    # A reason is required: the form is shown again beside the row, nothing written.
    token = csrf_from(log)
    back = f"action=warn&group={world.groups['g1']}"
    empty = client.post(
        f"/moderation/decisions/{mine}/reverse", data={"csrf_token": token, "reason": " ", "back": back}
    )
    assert empty.status_code == 422 and 'id="reverse-error" data-field="reason"' in empty.text
    assert f'name="back" value="{html.escape(back)}"' in empty.text  # the filters, kept
    assert f'<option value="{world.groups["g1"]}" selected>' in empty.text
    assert _count(world, ModerationReversal) == 0

    done = client.post(
        f"/moderation/decisions/{mine}/reverse",
        data={"csrf_token": token, "reason": "误判：在讨论防骗", "back": back + "&next=https://evil.example"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/moderation/log?{back}&done=reversed#decision-{mine}"
    shown = client.get(f"/moderation/log?{back}&done=reversed").text
    row = shown.split(f'id="decision-{mine}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-status="reversed"' in row and "误判：在讨论防骗" in row and "Lead" in row
    again = client.post(f"/moderation/decisions/{mine}/reverse", data={"csrf_token": token, "reason": "again"})
    assert again.status_code == 409 and 'id="log-error"' in again.text
    assert _count(world, ModerationReversal) == 1

    # The member's record shows it.
    record = client.get(f"/members/{world.members['m1']}").text
    section = record.split('id="moderation"', 1)[1]
    assert 'data-strikes="0"' in section and "误判：在讨论防骗" in section and 'data-status="reversed"' in section


def test_the_log_pages(client: TestClient, world: World) -> None:
    ids = [_decision(world, "g1", "m1") for _ in range(51)]
    console_login(client, "lead")
    first = client.get("/moderation/log").text
    assert f'id="decision-{ids[-1]}"' in first and f'id="decision-{ids[0]}"' not in first
    assert 'rel="next" href="/moderation/log?page=2"' in first
    assert f'id="decision-{ids[0]}"' in client.get("/moderation/log?page=2").text


def test_the_members_record_counts_strikes_and_blacklist_entries(client: TestClient, world: World) -> None:
    _decision(world, "g1", "m1")
    _decision(world, "g1", "m1", action="mute", mute_seconds=3600)
    _decision(world, "g1", "m1", action="blacklist", blacklist_scope="group")
    console_login(client, "lead")
    section = client.get(f"/members/{world.members['m1']}").text.split('id="moderation"', 1)[1]
    assert 'data-strikes="3"' in section and "近 30 天内 3 次" in section
    mutes = section.split('id="member-mutes">', 1)[1].split("</dd>", 1)[0]
    assert "Alpha 福利群" in mutes and "至 " in mutes
    blacklist = section.split('id="member-blacklist">', 1)[1].split("</dd>", 1)[0]
    assert 'data-reach="group"' in blacklist and "本群 · Alpha 福利群" in blacklist
    assert section.count("<tr data-decision=") == 3
    assert f'href="/moderation/log?member={world.members["m1"]}"' in section
    log = client.get(f"/moderation/log?member={world.members['m1']}").text
    assert "只看成员「Member m1」的记录" in log


def test_an_owner_reads_but_edits_no_policy_and_sees_only_their_groups(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    policy_id = _create(client)
    mine = _decision(world, "g1", "m1")
    other = _decision(world, "g3", "m3")
    client.cookies.clear()
    console_login(client, "owner")
    assert client.get("/moderation/policies/new").status_code == 403
    page = client.get(f"/moderation/policies/{policy_id}").text
    assert 'id="settings-form"' not in page and 'id="words-form"' not in page and 'id="delete-policy"' not in page
    assert 'id="test-form"' in page
    token = csrf_from(page)
    before = _policy(world, policy_id).version
    for path, data in [
        ("/moderation/policies/new", {"target": f"group:{world.groups['g1']}", **_settings_form()}),
        (f"/moderation/policies/{policy_id}/edit", _settings_form(name="mine")),
        (f"/moderation/policies/{policy_id}/words", {"words": "x"}),
        (f"/moderation/policies/{policy_id}/delete", {}),
        (f"/moderation/decisions/{mine}/reverse", {"reason": "mine"}),
    ]:
        response = client.post(path, data={"csrf_token": token, **data})
        assert response.status_code == 403, (path, response.text)
    assert _policy(world, policy_id).version == before and _count(world, ModerationReversal) == 0

    log = client.get("/moderation/log").text
    assert f'id="decision-{mine}"' in log and f'id="decision-{other}"' not in log
    assert "reverse-form" not in log
    assert client.get(f"/moderation/log?group={world.groups['g3']}").status_code == 404
    response = client.post(f"/moderation/decisions/{other}/reverse", data={"csrf_token": token, "reason": "x"})
    assert response.status_code in (403, 404)


def test_an_analyst_cannot_reverse_and_an_admin_judges_their_groups(client: TestClient, world: World) -> None:
    mine = _decision(world, "g1", "m1")
    other = _decision(world, "g3", "m3")
    console_login(client, "analyst")
    log = client.get("/moderation/log").text
    assert f'id="decision-{other}"' in log and "reverse-form" not in log
    refused = client.post(f"/moderation/decisions/{mine}/reverse", data={"csrf_token": csrf_from(log), "reason": "x"})
    assert refused.status_code == 403 and _count(world, ModerationReversal) == 0

    client.cookies.clear()
    console_login(client, "admin")
    log = client.get("/moderation/log").text
    assert "reverse-form" in log and f'id="decision-{other}"' not in log
    token = csrf_from(log)
    assert (
        client.post(f"/moderation/decisions/{other}/reverse", data={"csrf_token": token, "reason": "x"}).status_code
        == 404
    )
    ok = client.post(f"/moderation/decisions/{mine}/reverse", data={"csrf_token": token, "reason": "申诉通过"})
    assert ok.status_code == 200 and _count(world, ModerationReversal) == 1  # followed to the log
    # An admin attaches a policy to their group, not to the organisation.
    targets = client.get("/moderation/policies/new").text.split('id="f-target"', 1)[1].split("</select>", 1)[0]
    assert 'value="organisation"' not in targets and f'value="group:{world.groups["g1"]}"' in targets
    group_policy = _create(client, target=f"group:{world.groups['g1']}")
    assert _policy(world, group_policy).group_id == world.groups["g1"]
    data = {"csrf_token": token, "target": "organisation", **_settings_form()}
    assert client.post("/moderation/policies/new", data=data).status_code == 403


def test_another_organisation_sees_nothing(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    policy_id = _create(client)
    decision_id = _decision(world, "g1", "m1")
    client.cookies.clear()
    console_login(client, "lead_b")
    assert client.get(f"/moderation/policies/{policy_id}").status_code == 404
    assert client.get(f"/moderation/policies/{policy_id}/words.txt").status_code == 404
    assert f"decision-{decision_id}" not in client.get("/moderation/log").text
    token = _token(client)
    for path in (f"/moderation/policies/{policy_id}/edit", f"/moderation/policies/{policy_id}/test"):
        assert client.post(path, data={"csrf_token": token, **_settings_form()}).status_code == 404
    reverse = client.post(f"/moderation/decisions/{decision_id}/reverse", data={"csrf_token": token, "reason": "x"})
    assert reverse.status_code == 404


def test_forms_need_the_csrf_token(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    policy_id = _create(client)
    decision_id = _decision(world, "g1", "m1")
    for path, data in [
        ("/moderation/policies/new", {"target": "organisation", **_settings_form()}),
        (f"/moderation/policies/{policy_id}/words", {"words": "x"}),
        (f"/moderation/policies/{policy_id}/test", {"text": "x"}),
        (f"/moderation/decisions/{decision_id}/reverse", {"reason": "x"}),
    ]:
        assert client.post(path, data=data).status_code == 403, path
    assert _count(world, ModerationReversal) == 0


def test_the_real_lexicon_imports_as_a_text_file_and_is_edited_as_a_file(client: TestClient, world: World) -> None:
    """The shared lexicon (50,000 words, about 1 MB as text) goes in through the import form,
    is too long for the page's text box (its allow list is still edited there), and its words are
    found by the test box and come back whole in the export."""
    entries = wordfiles.read_lexicon_dir(LEXICON).entries
    body = wordfiles.write_text(entries).encode("utf-8")
    console_login(client, "lead")
    policy_id = _create(client)
    data = {"csrf_token": _token(client), "mode": "replace", "category": "custom"}
    files = {"file": ("lexicon.txt", io.BytesIO(body), "text/plain")}
    imported = client.post(f"/moderation/policies/{policy_id}/import", data=data, files=files, follow_redirects=False)
    assert imported.status_code == 303, imported.text
    assert len(_policy(world, policy_id).words) == len(entries) > 40_000

    page = client.get(f"/moderation/policies/{policy_id}").text
    assert 'id="words-too-many"' in page and 'name="words"' not in page
    assert len(page) < 200_000  # not the whole list in the page
    word = next(e.word for e in entries if e.category == "porn" and len(e.word) >= 3 and not e.word.isascii())
    test = {"csrf_token": _token(client), "text": f"今天{word}呢", "msg_type": "text", "strikes": "0"}
    tested = client.post(f"/moderation/policies/{policy_id}/test", data=test).text
    assert f'<mark data-word="{html.escape(word)}"' in tested

    saved = client.post(
        f"/moderation/policies/{policy_id}/words",
        data={"csrf_token": _token(client), "allow": "研究报告", "category": "custom"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    row = _policy(world, policy_id)
    assert row.allow == ["研究报告"] and len(row.words) == len(entries)
    exported = client.get(f"/moderation/policies/{policy_id}/words.txt").content
    assert wordfiles.read_text(exported).entries == entries
