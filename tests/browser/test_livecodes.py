"""Live codes in a real browser: a lead creates a code over a demo group with room, uploads the
group's QR image, downloads the poster (its QR reads back to the scan URL), and a phone without
JavaScript (as in WeChat's in-app browser) scanning it is shown that group."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import zxingcpp
from PIL import Image
from sqlalchemy import select

from qunyun.db.session import unit_of_work
from qunyun.livecodes import posters
from qunyun.models import Group
from tests.browser.conftest import login, shot

PHONE = {"width": 375, "height": 667}
WECHAT_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN"
)


def _group_with_room(demo: Any) -> tuple[int, str]:
    with unit_of_work(write=False) as s:
        row = s.execute(
            select(Group.id, Group.name)
            .where(Group.org_id == demo.org_id, Group.status == "active", Group.member_count < Group.capacity - 10)
            .order_by(Group.id)
            .limit(1)
        ).first()
    assert row is not None, "the demo has a group with room"
    return int(row[0]), str(row[1])


def test_lead_creates_a_live_code_and_a_phone_scan_shows_a_group_with_room(
    context: Any, browser: Any, server: str, demo: Any, tmp_path: Path
) -> None:
    group_id, group_name = _group_with_room(demo)
    page = context.new_page()
    login(page, demo.lead_username, demo.lead_password)

    page.click('nav.sections a[href="/livecodes"]')
    page.wait_for_url("**/livecodes")
    page.click("#new-livecode")
    page.wait_for_url("**/livecodes/new")
    page.fill("#f-name", "包裹卡·浏览器")
    page.select_option("#f-channel", index=1)
    page.fill("#f-hook", "入群领新人券")
    page.check(f'#pool-groups input[name=group][value="{group_id}"]')
    shot(page, "livecode-new")
    page.click("#save-livecode")
    page.wait_for_url("**/livecodes/*?done=created")
    assert page.locator("#livecode-name").inner_text() == "包裹卡·浏览器"
    scan_url = page.input_value("#scan-url")
    assert scan_url.startswith(f"{server}/c/")
    code = scan_url.rsplit("/", 1)[1]

    # The group's QR image, as its owner would upload it (valid for 7 days by default).
    row = page.locator(f"#pool-{group_id}")
    row.locator("summary", has_text="上传群二维码").click()
    qr = tmp_path / "group-qr.png"
    qr.write_bytes(posters.qr_png("https://weixin.qq.com/g/BrowserTest", scale=6))
    row.locator(f"#qr-{group_id}").set_input_files(str(qr))
    row.locator("form.qr-upload button[type=submit]").click()
    page.wait_for_url("**done=qr_uploaded*")
    assert "群二维码已上传" in page.locator("#livecode-notice").inner_text()
    assert page.locator(f"#pool-{group_id} img.qr-thumb").count() == 1
    shot(page, "livecode-detail")

    # The poster: a 1080 × 1920 PNG whose QR opens the scan URL.
    with page.expect_download() as info:
        page.click("#download-poster")
    poster = Path(info.value.path()).read_bytes()
    image = Image.open(io.BytesIO(poster))
    assert image.size == (1080, 1920)
    assert [r.text for r in zxingcpp.read_barcodes(image.convert("L"))] == [scan_url]

    # A phone scans the code, in WeChat, with no JavaScript.
    phone = browser.new_context(
        base_url=server, viewport=PHONE, user_agent=WECHAT_UA, locale="zh-CN", java_script_enabled=False
    )
    try:
        visitor = phone.new_page()
        response = visitor.goto(f"/c/{code}")
        assert response is not None and response.status == 200
        assert visitor.locator("h1").inner_text() == f"加入「{group_name}」"
        assert "入群领新人券" in visitor.locator("body").inner_text()
        assert visitor.locator("img.qr").evaluate("img => img.complete && img.naturalWidth > 0")
        # Nothing wider than the phone's screen.
        assert visitor.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        shot(visitor, "livecode-scan-phone")
    finally:
        phone.close()

    # The scan counts on the code's page: one scan, one visitor, routed to the group.
    page.reload()
    assert page.locator('#livecode-totals [data-metric="scans"] .value').inner_text() == "1"
    assert page.locator(f'#pool-{group_id} [data-metric="routed"]').inner_text() == "1"
    # The code's page on a phone: nothing wider than the screen (tables scroll inside their card).
    page.set_viewport_size(PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "livecode-detail-phone")
    page.click('a[href="/livecodes"]')
    row = page.locator(f'#livecodes-table tr[data-livecode="{code}"]')
    assert row.locator('[data-metric="scans"]').inner_text() == "1"
    shot(page, "livecode-list")
