"""The live-code pages of the console over HTTP: a lead creates a code with its pool, uploads group
QR images with their expiry, pauses it and downloads its QR and poster; what owners, analysts and
another organisation see and may do; bad input named in the reader's language, nothing written."""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime

import pytest
import zxingcpp
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from qunyun.ingestion.service import ingest
from qunyun.livecodes import posters
from qunyun.models import GroupQrImage, LiveCode, LiveCodeGroup
from qunyun.worker.runner import Worker
from tests.api.conftest import World, console_login, csrf_from

# A group QR image as staff upload it: a PNG of a WeChat group invitation.
GROUP_QR = posters.qr_png("https://weixin.qq.com/g/AbCdEfGh", scale=4)


def _form(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return csrf_from(page.text)


def _create(client: TestClient, world: World, *, groups: dict[str, str], **fields: str) -> int:
    """Create a live code through the console form; its id."""
    data: dict[str, object] = {
        "csrf_token": _form(client, "/livecodes/new"),
        "name": "短信·春季",
        "policy": "fill",
        **fields,
        "group": [str(world.groups[g]) for g in groups],
    }
    for key, limit in groups.items():
        data[f"limit.{world.groups[key]}"] = limit
    response = client.post("/livecodes/new", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/livecodes/([0-9]+)\?done=created", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


def _decode(png: bytes) -> list[str]:
    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)).convert("L"))]


@pytest.mark.parametrize("path", ["/livecodes", "/livecodes/new", "/livecodes/1", "/livecodes/1/qr.png"])
def test_live_code_pages_need_a_login(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_lead_creates_a_live_code_and_sees_it_in_chinese_and_english(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    assert "还没有活码" in client.get("/livecodes").text
    live_code_id = _create(
        client,
        world,
        groups={"g1": "50", "g2": ""},
        channel_id=str(world.channels["sms"]),
        hook_text="入群领 20 元骑行券",
        fallback_url="https://example.com/staff",
        threshold_question="你骑车多久了？",
        threshold_choices="不到一年\n一到三年\n三年以上",
        threshold_accept="一到三年\n三年以上",
        qr_alert_hours="48",
    )
    with world.db() as s:
        row = s.get(LiveCode, live_code_id)
        assert row is not None and row.org_id == world.org_a and row.channel_id == world.channels["sms"]
        assert row.qr_alert_minutes == 48 * 60
        assert row.threshold == {
            "questions": [
                {
                    "key": "q1",
                    "text": "你骑车多久了？",
                    "choices": ["不到一年", "一到三年", "三年以上"],
                    "accept": ["一到三年", "三年以上"],
                }
            ]
        }
        pool = s.scalars(select(LiveCodeGroup).where(LiveCodeGroup.live_code_id == row.id)).all()
        limits = {e.group_id: e.scan_limit for e in pool}
        code = row.code
    # g1 as typed; g2 by default: its room (capacity 500 minus members), at most 200 for QR images.
    assert limits == {world.groups["g1"]: 50, world.groups["g2"]: 200}

    page = client.get(f"/livecodes/{live_code_id}?done=created")
    assert page.status_code == 200
    html = page.text
    assert "活码已创建" in html and 'id="livecode-name">短信·春季<' in html
    assert f'value="http://testserver/c/{code}"' in html
    assert "按顺序填满" in html and "你骑车多久了？" in html and "提前 48 小时" in html
    # No group has a QR image yet: visitors cannot be sent anywhere, and the page says so.
    assert html.count('data-warning="no-way-in"') == 2
    assert 'data-metric="limit">50<' in html

    listing = client.get("/livecodes").text
    row_html = listing.split(f'data-livecode="{code}"', 1)[1].split("</tr>", 1)[0]
    assert "短信" in row_html and 'data-metric="groups">2<' in row_html and "运行中" in row_html
    assert 'href="/livecodes"' in listing  # the navigation's entry

    english = client.get(f"/livecodes/{live_code_id}?lang=en").text
    assert "Group pool" in english and "Fill in order" in english and "No group QR" in english


def test_bad_input_is_named_and_nothing_is_written(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    token = _form(client, "/livecodes/new")
    cases = [
        ({"name": ""}, "name", "name"),
        ({"name": "x", "default_limit": "abc"}, "default_limit", "default_limit"),
        ({"name": "x", "default_limit": "0"}, "default_limit", "default_limit"),
        ({"name": "x", "fallback_url": "javascript:alert(1)"}, "fallback_url", "fallback_url"),
        (
            {"name": "x", "threshold_question": "Q", "threshold_choices": "A\nB", "threshold_accept": "C"},
            "threshold",
            "选项",
        ),
        ({"name": "x", "policy": "random"}, "policy", "policy"),
        ({"name": "x", "default_limit": "²"}, "default_limit", "default_limit"),
        ({"name": "x", "channel_id": "9" * 30}, "channel_id", "channel_id"),
        ({"name": "x", "channel_id": "999999"}, "channel_id", "渠道 999999"),
    ]
    for fields, field, mentioned in cases:
        response = client.post(
            "/livecodes/new", data={"csrf_token": token, "group": [str(world.groups["g1"])], **fields}
        )
        assert response.status_code == 422, (fields, response.status_code)
        error = re.search(r'id="livecode-error" data-field="([^"]*)">([^<]*)<', response.text)
        assert error, fields
        assert error.group(1).startswith(field), (fields, error.group(1))
        assert mentioned in error.group(2), (fields, error.group(2))
        assert re.search("[\u4e00-\u9fff]", error.group(2)), error.group(2)  # in Chinese, the default
    # A limit that is not a number, for one group of the pool.
    response = client.post(
        "/livecodes/new",
        data={
            "csrf_token": token,
            "name": "x",
            "group": [str(world.groups["g1"])],
            f"limit.{world.groups['g1']}": "-3",
        },
    )
    assert response.status_code == 422 and 'data-field="scan_limit"' in response.text
    # A group id past any id's range names no group.
    response = client.post("/livecodes/new", data={"csrf_token": token, "name": "x", "group": ["9" * 30]})
    assert response.status_code == 404 and 'data-field="group_id"' in response.text
    with world.db() as s:
        assert s.scalars(select(LiveCode)).all() == []


def test_group_qr_upload_expiry_warning_pause_and_pool_edits(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    live_code_id = _create(client, world, groups={"g1": "", "g2": ""})
    token = _form(client, f"/livecodes/{live_code_id}")
    g1, g2 = world.groups["g1"], world.groups["g2"]

    # A 7-day image for g1 (the default) and a 1-day one for g2, inside the 24-hour alert.
    for group_id, days in ((g1, "7"), (g2, "1")):
        response = client.post(
            f"/livecodes/{live_code_id}/groups/{group_id}/qr",
            data={"csrf_token": token, "expires_in_days": days},
            files={"image": ("qr.png", GROUP_QR, "image/png")},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        assert response.headers["location"] == f"/livecodes/{live_code_id}?done=qr_uploaded#pool-{group_id}"
    html = client.get(f"/livecodes/{live_code_id}").text
    row1 = html.split(f'id="pool-{g1}"', 1)[1].split("</tr>", 1)[0]
    row2 = html.split(f'id="pool-{g2}"', 1)[1].split("</tr>", 1)[0]
    assert "过期" in row1 and 'data-warning="expires-soon"' not in row1
    assert 'data-warning="expires-soon"' in row2 and "即将过期" in row2
    assert 'data-warning="no-way-in"' not in html
    # The thumbnail is the uploaded image, for staff who see the group.
    thumb = re.search(rf'src="(/livecodes/groups/{g1}/qr-images/[0-9]+)"', row1)
    assert thumb
    image = client.get(thumb.group(1))
    assert image.status_code == 200 and image.content == GROUP_QR and image.headers["content-type"] == "image/png"

    # Not an image: the page again, the message next to the group's form; nothing stored.
    with world.db() as s:
        before = len(s.scalars(select(GroupQrImage)).all())
    response = client.post(
        f"/livecodes/{live_code_id}/groups/{g1}/qr",
        data={"csrf_token": token},
        files={"image": ("notes.txt", b"hello", "image/png")},
    )
    assert response.status_code == 422
    row1 = response.text.split(f'id="pool-{g1}"', 1)[1].split("</tr>", 1)[0]
    assert 'class="alert"' in row1
    response = client.post(f"/livecodes/{live_code_id}/groups/{g1}/qr", data={"csrf_token": token})
    assert response.status_code == 422 and "请选择一张图片" in response.text
    with world.db() as s:
        assert len(s.scalars(select(GroupQrImage)).all()) == before

    # Pause and resume.
    response = client.post(f"/livecodes/{live_code_id}/pause", data={"csrf_token": token, "paused": "1"})
    assert response.status_code == 200 and 'data-status="paused"' in response.text and "活码已暂停" in response.text
    assert 'data-status="paused"' in client.get("/livecodes").text
    response = client.post(f"/livecodes/{live_code_id}/pause", data={"csrf_token": token, "paused": "0"})
    assert 'data-status="on"' in response.text

    # Change g2's limit, then take it out of the pool and put g3 in.
    response = client.post(
        f"/livecodes/{live_code_id}/groups/{g2}", data={"csrf_token": token, "scan_limit": "80", "region": "华东"}
    )
    assert response.status_code == 200 and "群池已更新" in response.text
    response = client.post(f"/livecodes/{live_code_id}/groups/{g2}", data={"csrf_token": token, "scan_limit": "x"})
    assert response.status_code == 422
    client.post(f"/livecodes/{live_code_id}/groups/{g2}/remove", data={"csrf_token": token})
    response = client.post(
        f"/livecodes/{live_code_id}/groups", data={"csrf_token": token, "group_id": str(world.groups["g3"])}
    )
    assert response.status_code == 200 and "群已加入群池" in response.text
    with world.db() as s:
        pool = {
            e.group_id: (e.active, e.scan_limit, e.region)
            for e in s.scalars(select(LiveCodeGroup).where(LiveCodeGroup.live_code_id == live_code_id))
        }
    assert pool[g2] == (False, 80, "华东") and pool[world.groups["g3"]][0] is True

    # Edit the settings; the form shows what is stored.
    edit = client.get(f"/livecodes/{live_code_id}/edit")
    assert edit.status_code == 200 and 'value="短信·春季"' in edit.text
    response = client.post(
        f"/livecodes/{live_code_id}/edit",
        data={"csrf_token": token, "name": "短信·夏季", "policy": "round_robin", "qr_alert_hours": "12"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    with world.db() as s:
        row = s.get(LiveCode, live_code_id)
        assert row is not None and (row.name, row.policy, row.qr_alert_minutes) == ("短信·夏季", "round_robin", 720)


def test_downloads_encode_the_scan_url(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    live_code_id = _create(client, world, groups={"g1": ""}, hook_text="入群领券")
    with world.db() as s:
        row = s.get(LiveCode, live_code_id)
        assert row is not None
        code = row.code

    png = client.get(f"/livecodes/{live_code_id}/qr.png")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert f'filename="livecode-{code}.png"' in png.headers["content-disposition"]
    assert _decode(png.content) == [f"http://testserver/c/{code}"]

    svg = client.get(f"/livecodes/{live_code_id}/qr.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert f"<title>http://testserver/c/{code}</title>" in svg.text

    poster = client.get(f"/livecodes/{live_code_id}/poster.png", params={"title": "骑行福利群", "r": "华东"})
    assert poster.status_code == 200
    image = Image.open(io.BytesIO(poster.content))
    assert image.size == posters.POSTER_SIZE
    assert _decode(poster.content) == [f"http://testserver/c/{code}?r=%E5%8D%8E%E4%B8%9C"]
    assert "filename*=UTF-8''poster-" in poster.headers["content-disposition"]

    too_long = client.get(f"/livecodes/{live_code_id}/poster.png", params={"title": "长" * 61})
    assert too_long.status_code == 422 and "title 最多 60 个字" in too_long.text
    assert client.get(f"/livecodes/{live_code_id}/qr.png", params={"scale": "0"}).status_code == 422
    assert client.get("/livecodes/999999/qr.png").status_code == 404


def test_who_sees_and_changes_which_code(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    mine = _create(client, world, groups={"g1": ""}, name="Owner's")  # the owner's group only
    mixed = _create(client, world, groups={"g1": "", "g3": ""}, name="Mixed")  # g3 is not the owner's
    hidden = _create(client, world, groups={"g3": ""}, name="Hidden")  # nothing of the owner's

    client.cookies.clear()
    console_login(client, "owner")
    listing = client.get("/livecodes").text
    assert "Owner&#39;s" in listing and "Mixed" in listing and "Hidden" not in listing
    for path in (f"/livecodes/{hidden}", f"/livecodes/{hidden}/qr.png", f"/livecodes/{hidden}/poster.png"):
        assert client.get(path).status_code == 404, path
    # The mixed code: only the owner's group of its pool is shown; its settings are the lead's.
    mixed_page = client.get(f"/livecodes/{mixed}").text
    assert f'id="pool-{world.groups["g1"]}"' in mixed_page and f'id="pool-{world.groups["g3"]}"' not in mixed_page
    assert 'id="edit-livecode"' not in mixed_page
    assert client.get(f"/livecodes/{mixed}/edit").status_code == 403
    token = _form(client, f"/livecodes/{mine}")
    assert client.post(f"/livecodes/{mixed}/pause", data={"csrf_token": token, "paused": "1"}).status_code == 403
    # The owner uploads the QR image of their group, in either code's page.
    response = client.post(
        f"/livecodes/{mixed}/groups/{world.groups['g1']}/qr",
        data={"csrf_token": token},
        files={"image": ("qr.png", GROUP_QR, "image/png")},
        follow_redirects=False,
    )
    assert response.status_code == 303
    # …but not of a group outside their scope.
    response = client.post(
        f"/livecodes/{mixed}/groups/{world.groups['g3']}/qr",
        data={"csrf_token": token},
        files={"image": ("qr.png", GROUP_QR, "image/png")},
    )
    assert response.status_code == 404
    # Their own code they manage.
    assert 'id="edit-livecode"' in client.get(f"/livecodes/{mine}").text
    assert client.post(f"/livecodes/{mine}/pause", data={"csrf_token": token, "paused": "1"}).status_code == 200

    client.cookies.clear()
    console_login(client, "analyst")
    listing = client.get("/livecodes").text
    assert "Hidden" in listing and 'id="new-livecode"' not in listing
    page = client.get(f"/livecodes/{mixed}").text
    assert "只读" in page and 'id="edit-livecode"' not in page and '/qr" enctype' not in page
    token = csrf_from(page)
    assert client.get("/livecodes/new").status_code == 403
    assert client.post("/livecodes/new", data={"csrf_token": token, "name": "x"}).status_code == 403
    assert client.post(f"/livecodes/{mixed}/pause", data={"csrf_token": token, "paused": "1"}).status_code == 403
    response = client.post(
        f"/livecodes/{mixed}/groups/{world.groups['g1']}/qr",
        data={"csrf_token": token},
        files={"image": ("qr.png", GROUP_QR, "image/png")},
    )
    assert response.status_code == 403
    assert client.get(f"/livecodes/{mixed}/qr.png").status_code == 200  # reading is fine

    client.cookies.clear()
    console_login(client, "lead_b")
    assert "Mixed" not in client.get("/livecodes").text
    for path in (f"/livecodes/{mixed}", f"/livecodes/{mixed}/qr.svg", f"/livecodes/{mixed}/edit"):
        assert client.get(path).status_code == 404, path


def test_forms_need_the_csrf_token(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    live_code_id = _create(client, world, groups={"g1": ""})
    assert client.post(f"/livecodes/{live_code_id}/pause", data={"paused": "1"}).status_code == 403
    assert client.post("/livecodes/new", data={"name": "x", "csrf_token": "forged"}).status_code == 403
    with world.db() as s:
        row = s.get(LiveCode, live_code_id)
        assert row is not None and not row.paused


def test_a_large_screenshot_uploads_and_one_over_the_limit_is_named(client: TestClient, world: World) -> None:
    # A phone's screenshot of a group QR is often over the 1 MiB the edge allows most forms.
    console_login(client, "lead")
    live_code_id = _create(client, world, groups={"g1": ""})
    token = _form(client, f"/livecodes/{live_code_id}")
    url = f"/livecodes/{live_code_id}/groups/{world.groups['g1']}/qr"
    screenshot = GROUP_QR + b"\0" * (2 * 1024 * 1024)
    response = client.post(
        url, data={"csrf_token": token}, files={"image": ("shot.png", screenshot, "image/png")}, follow_redirects=False
    )
    assert response.status_code == 303
    too_big = GROUP_QR + b"\0" * (6 * 1024 * 1024)
    response = client.post(url, data={"csrf_token": token}, files={"image": ("big.png", too_big, "image/png")})
    assert response.status_code == 413 and "5 MiB" in response.text
    with world.db() as s:
        assert [i.size for i in s.scalars(select(GroupQrImage))] == [len(screenshot)]


def test_a_scan_and_the_join_it_brought_show_in_the_funnel(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    live_code_id = _create(client, world, groups={"g1": ""}, channel_id=str(world.channels["sms"]))
    token = _form(client, f"/livecodes/{live_code_id}")
    client.post(
        f"/livecodes/{live_code_id}/groups/{world.groups['g1']}/qr",
        data={"csrf_token": token},
        files={"image": ("qr.png", GROUP_QR, "image/png")},
    )
    with world.db() as s:
        row = s.get(LiveCode, live_code_id)
        assert row is not None
        code = row.code
    # A visitor scans the code (a phone has its own cookies) and joins the group minutes later.
    visitor = TestClient(client.app)
    scan = visitor.get(f"/c/{code}")
    assert scan.status_code == 200 and "Alpha 福利群" in scan.text
    now = datetime.now(UTC)
    with world.db() as s:
        event = {"id": "lc-join-1", "ts": now.isoformat(), "kind": "member.joined", "group": "ext-g1", "member": "v1"}
        ingest(s, world.org_a, [event], platform="api", source="test", live=True)
        s.commit()
    # The attribution runs as a follow-up of the live join (inline or as a job).
    worker = Worker("livecodes-console-test", factory=world.db)
    while worker.run_next():
        pass

    html = client.get(f"/livecodes/{live_code_id}").text
    stages = dict(re.findall(r'data-stage="([a-z]+)">.*?<strong class="count">([0-9,]+)</strong>', html, re.DOTALL))
    assert stages == {"scanned": "1", "joined": "1", "active": "0", "converted": "0"}
    totals = html.split('id="livecode-totals"', 1)[1].split("</section>", 1)[0]
    for metric, value in (("scans", "1"), ("visitors", "1"), ("routed", "1"), ("joined", "1"), ("fallback", "0")):
        assert re.search(rf'data-metric="{metric}"><div class="label">[^<]*</div><div class="value">{value}<', totals)
    listing = client.get("/livecodes").text.split(f'data-livecode="{code}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-metric="joined">1<' in listing and 'data-metric="scans">1<' in listing


def test_editing_keeps_what_the_form_does_not_show(client: TestClient, world: World) -> None:
    # Codes made through the API: a threshold question with its own key, a reminder of 90 minutes;
    # and a two-question threshold routing by region, which the form shows as JSON.
    simple = {
        "questions": [{"key": "age", "text": "宝宝几岁？", "choices": ["0-1 岁", "1-3 岁"], "accept": ["1-3 岁"]}]
    }
    regional = {
        "questions": [
            {"key": "age", "text": "宝宝几岁？", "choices": ["0-1 岁", "1-3 岁"]},
            {"key": "city", "text": "你在哪个城市？", "choices": ["上海", "北京"], "region": True},
        ]
    }
    ids = []
    for threshold in (simple, regional):
        made = client.post(
            "/api/v1/livecodes",
            json={"name": "API", "group_ids": [world.groups["g1"]], "threshold": threshold, "qr_alert_minutes": 90},
            headers=world.headers("lead"),
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    console_login(client, "lead")
    for live_code_id, threshold in zip(ids, (simple, regional), strict=True):
        form = client.get(f"/livecodes/{live_code_id}/edit").text
        fields = dict(re.findall(r'<input type="(?:text|hidden)"[^>]* name="([a-z_]+)"[^>]* value="([^"]*)"', form))
        areas = dict(re.findall(r'<textarea[^>]* name="([a-z_]+)"[^>]*>([^<]*)</textarea>', form))
        selects = {"policy": "fill"}
        data = {**fields, **{k: html.unescape(v) for k, v in areas.items()}, **selects, "name": "改过名"}
        response = client.post(f"/livecodes/{live_code_id}/edit", data=data, follow_redirects=False)
        assert response.status_code == 303, response.text
        with world.db() as s:
            row = s.get(LiveCode, live_code_id)
            assert row is not None
            assert (row.name, row.threshold, row.qr_alert_minutes) == ("改过名", threshold, 90)
