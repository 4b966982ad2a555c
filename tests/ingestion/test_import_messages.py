"""Event and import errors in the reader's language, with the line, index and field kept as
data: the CLI in its configured language, the API in English unless Accept-Language asks for
Chinese (issue 8, point 11)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from qunyun.config import get_settings
from qunyun.errors import InvalidInput
from qunyun.ingestion.importer import import_file
from qunyun.ingestion.service import parse_events
from qunyun.team.service import create_staff, ensure_organisation
from tests.analytics.helpers import cli, flat, jsonl, sh, write_jsonl
from tests.analytics.helpers import join as joined
from tests.api.conftest import World, api_app, client, password_hash, world

__all__ = ["api_app", "client", "password_hash", "world"]

BAD_LINES = [
    joined("e1", sh("03-02", "09:00:00"), "g1", "m1"),
    {"id": "e2", "ts": "2026-03-04T10:00:00", "kind": "member.joined", "group": "g1", "member": "m2"},
    '{"id": "e3", ',
]


def test_the_cli_reports_import_errors_in_chinese_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db: object
) -> None:
    monkeypatch.setenv("QUNYUN_DEFAULT_LANGUAGE", "zh")
    get_settings.cache_clear()
    result = cli("events", "import", str(write_jsonl(tmp_path / "bad.jsonl", BAD_LINES)))
    assert result.exit_code != 0
    err = flat(result.stderr)
    assert "导入已中止，未写入任何数据" in err
    assert "第 2 行：字段 ts：'2026-03-04T10:00:00' 缺少时区偏移" in err
    assert "第 3 行：不是有效的 JSON" in err


def test_import_errors_keep_line_field_and_reason_as_data(db: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        import_file(io.BytesIO(jsonl(BAD_LINES)), org_slug="acme")
    error = caught.value
    assert error.detail["line"] == 2
    assert [e["line"] for e in error.detail["errors"]] == [2, 3]
    assert error.detail["errors"][0]["reason"] == "field 'ts': '2026-03-04T10:00:00' has no UTC offset"
    assert error.localized("zh").startswith("导入已中止，未写入任何数据：第 2 行：字段 ts：")
    assert str(error).startswith("import aborted, nothing was written — line 2: field 'ts':")


def test_a_bad_event_names_index_and_field_in_both_languages() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_events([joined("e1", sh("03-02"), "g1", "m1"), {"id": "e2", "ts": sh("03-02"), "kind": "nope"}])
    assert caught.value.field == "kind" and caught.value.detail == {"index": 1}
    assert caught.value.localized("en").startswith("event 1: field 'kind': unknown kind 'nope'; expected one of")
    assert caught.value.localized("zh").startswith("事件 #1：字段 kind：未知的事件类型 'nope'，可用的有：")


def test_the_api_answers_a_bad_line_in_english_or_in_chinese_when_asked(client: TestClient, world: World) -> None:
    bad = {"id": "a2", "ts": sh("03-02"), "kind": "member.joined", "group": "ext-g1"}
    body = "\n".join(json.dumps(e) for e in [joined("a1", sh("03-02"), "ext-g1", "ext-m9"), bad]).encode()
    headers = {**world.headers("lead"), "Content-Type": "application/x-ndjson"}
    english = client.post("/api/v1/events", content=body, headers=headers)
    assert english.status_code == 422
    assert english.json()["message"] == "line 2: field 'member': is required"
    chinese = client.post("/api/v1/events", content=body, headers={**headers, "Accept-Language": "zh-CN,zh;q=0.9"})
    assert chinese.status_code == 422
    assert chinese.json()["message"] == "第 2 行：字段 member：必填"
    assert chinese.json()["field"] == "member" and chinese.json()["detail"] == {"index": 1, "line": 2}


def test_team_errors_state_the_real_limits(db: object) -> None:
    from qunyun.db.session import unit_of_work

    with unit_of_work() as session:
        org_id = ensure_organisation(session, "acme")
        with pytest.raises(InvalidInput) as caught:
            create_staff(session, org_id, username="u" * 101, password="long enough", role="owner")
        assert caught.value.field == "username" and caught.value.localized("zh") == "用户名须为 1–100 个字符"
        with pytest.raises(InvalidInput) as caught:
            ensure_organisation(session, "Bad Slug")
        assert caught.value.field == "slug" and "2–63" in caught.value.localized("zh")
