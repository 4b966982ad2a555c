"""GET /c/{code}: the page a visitor sees, the cookie that makes a second scan the same, the
signed QR image, the threshold form, the fallback and the refusals."""

from __future__ import annotations

import base64
import re

from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.auth.scope import Scope
from qunyun.livecodes import service
from qunyun.models import LiveCodeScan
from tests.api.conftest import World
from tests.livecodes.helpers import PNG

WECHAT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) MicroMessenger/8.0.47 NetType/WIFI"


def _code(client: TestClient, world: World, **body: object) -> dict:
    lead = world.headers("lead")
    for key in ("g1", "g2"):
        client.post(
            f"/api/v1/livecodes/groups/{world.groups[key]}/qr-images",
            json={"image_base64": base64.b64encode(PNG).decode()},
            headers=lead,
        )
    payload = {"name": "包裹卡", "group_ids": [world.groups["g1"], world.groups["g2"]], **body}
    made = client.post("/api/v1/livecodes", json=payload, headers=lead)
    assert made.status_code == 201, made.text
    return made.json()


def test_a_scan_shows_the_group_qr_and_a_second_scan_is_the_same_group(client: TestClient, world: World) -> None:
    made = _code(client, world, default_limit=1, hook_text="入群领取新人礼包")
    client.cookies.clear()
    page = client.get(f"/c/{made['code']}", headers={"User-Agent": WECHAT})
    assert page.status_code == 200
    assert "Alpha 福利群" in page.text and "入群领取新人礼包" in page.text and "长按识别二维码" in page.text
    assert "<script" not in page.text and page.headers["cache-control"] == "no-store"
    assert 'lang="zh-CN"' in page.text
    visitor = client.cookies.get("qy_v")
    assert visitor
    image_url = re.search(r'<img class="qr" src="([^"]+)"', page.text)
    assert image_url
    image = client.get(image_url.group(1))
    assert image.status_code == 200 and image.content == PNG
    assert client.get(image_url.group(1).replace("/qr/", "/qr/9").rsplit("/", 1)[0] + "/x").status_code == 404
    again = client.get(f"/c/{made['code']}", headers={"User-Agent": WECHAT})
    assert "Alpha 福利群" in again.text
    client.cookies.clear()
    other = client.get(f"/c/{made['code']}")
    assert "Beta 学习群" in other.text
    with world.db() as s:
        scans = s.scalars(select(LiveCodeScan).order_by(LiveCodeScan.id)).all()
        # The test client has no IP address to keep ("testclient"): nothing is stored for it.
        assert [(x.first, x.ua_class, x.ip_prefix) for x in scans] == [
            (True, "wechat", None),
            (False, "wechat", None),
            (True, "other", None),
        ]
        summary = service.summary(s, Scope.organisation(world.org_a), made["id"])
    assert (summary["scans"], summary["visitors"]) == (3, 2)


def test_unknown_code_is_a_404_page(client: TestClient, world: World) -> None:
    page = client.get("/c/zzzzzzzz")
    assert page.status_code == 404 and "二维码已失效" in page.text


def test_every_group_full_redirects_to_the_fallback_url(client: TestClient, world: World) -> None:
    made = _code(client, world, default_limit=1, fallback_url="https://example.com/staff-qr")
    for _ in range(2):
        client.cookies.clear()
        assert client.get(f"/c/{made['code']}").status_code == 200
    client.cookies.clear()
    last = client.get(f"/c/{made['code']}", follow_redirects=False)
    assert last.status_code == 302 and last.headers["location"] == "https://example.com/staff-qr"


def test_a_paused_code_routes_nobody(client: TestClient, world: World) -> None:
    made = _code(client, world, paused=True)
    page = client.get(f"/c/{made['code']}")
    assert page.status_code == 200 and "暂停" in page.text and "Alpha" not in page.text


def test_the_threshold_form_then_the_group_or_a_polite_refusal(client: TestClient, world: World) -> None:
    threshold = {
        "questions": [{"key": "age", "text": "宝宝几岁？", "choices": ["0-1 岁", "1-3 岁"], "accept": ["1-3 岁"]}],
        "refusal": "抱歉，本群只面向 1-3 岁宝宝的家长。",
    }
    made = _code(client, world, threshold=threshold)
    form_page = client.get(f"/c/{made['code']}")
    assert "宝宝几岁？" in form_page.text and 'type="radio"' in form_page.text
    hidden = dict(re.findall(r'name="(_[a-z]+)" value="([^"]*)"', form_page.text))
    wrong = client.post(f"/c/{made['code']}", data={**hidden, "age": "0-1 岁"})
    assert wrong.status_code == 200 and "只面向 1-3 岁" in wrong.text
    missing = client.post(f"/c/{made['code']}", data=hidden)
    assert "请回答这个问题" in missing.text
    right = client.post(f"/c/{made['code']}", data={**hidden, "age": "1-3 岁"})
    assert "Alpha 福利群" in right.text
    forged = client.post(
        f"/c/{made['code']}", data={**hidden, "_sig": "0" * 24, "age": "1-3 岁"}, follow_redirects=False
    )
    assert forged.status_code == 303
    with world.db() as s:
        scans = s.scalars(select(LiveCodeScan).order_by(LiveCodeScan.id)).all()
        assert [(x.outcome, x.first, x.answers) for x in scans] == [("routed", True, {"age": "1-3 岁"})]


def test_scan_answers_carry_security_headers_and_nothing_else_is_served_under_c(
    client: TestClient, world: World
) -> None:
    made = _code(client, world)
    page = client.get(f"/c/{made['code']}")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert client.put(f"/c/{made['code']}").status_code == 405
    assert client.get(f"/c/{made['code']}/whatever").status_code == 404
    assert client.head(f"/c/{made['code']}").status_code == 200
    css = client.get("/c/scan.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    with world.db() as s:  # neither the HEAD nor the stylesheet is a scan
        assert len(s.scalars(select(LiveCodeScan)).all()) == 1
