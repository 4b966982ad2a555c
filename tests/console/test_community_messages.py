"""Service errors on the community pages are shown in the page's language (Chinese by default,
English with ?lang=en), state the real length limits, and naming templates take only plain
placeholders (issue 8, points 6 and 11)."""

from __future__ import annotations

import html

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from qunyun.community.service import clean, group_name
from qunyun.errors import InvalidInput
from qunyun.models import Community, Playbook
from tests.api.conftest import World, console_login, csrf_from


def _start(client: TestClient, token: str, lang: str = "", **fields: str) -> tuple[int, str]:
    path = "/communities/setup/start" + (f"?lang={lang}" if lang else "")
    response = client.post(path, data={"csrf_token": token, "community_type": "local", **fields})
    return response.status_code, html.unescape(response.text)


def _alert(text: str) -> str:
    return text.split('role="alert">', 1)[1].split("</p>", 1)[0]


def _new_community(client: TestClient, token: str, name: str = "骑友地方群") -> str:
    created = client.post(
        "/communities/setup/start",
        data={"csrf_token": token, "name": name, "community_type": "local"},
        follow_redirects=False,
    )
    assert created.status_code == 303
    return str(created.headers["location"]).rsplit("/", 1)[0]


def test_setup_errors_are_in_chinese_by_default(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    token = csrf_from(client.get("/communities/setup/start").text)
    status, text = _start(client, token, name=" ")
    assert status == 422 and _alert(text) == "请填写社群名称"
    assert 'class="field invalid" id="field-name"' in text
    status, text = _start(client, token, name="骑友群", community_type="party")
    assert status == 422 and _alert(text) == "未知的社群类型：'party'"
    status, text = _start(client, token, name="骑友群", purpose="长" * 4001)
    assert status == 422 and _alert(text) == "「建群目的」最多 4000 个字"
    base = _new_community(client, token)
    status, text = _start(client, token, name="骑友地方群")
    assert status == 409 and _alert(text) == "已有名为「骑友地方群」的社群"
    bad = client.post(f"{base}/naming", data={"csrf_token": token, "naming_template": "{brand}{city}"})
    alert = _alert(html.unescape(bad.text))
    assert bad.status_code == 422 and alert.startswith("命名模板不支持占位符 {city}，可用的有：{brand}")


def test_setup_errors_are_in_english_with_lang_en(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    token = csrf_from(client.get("/communities/setup/start").text)
    status, text = _start(client, token, lang="en", name=" ")
    assert status == 422 and _alert(text) == "name: a community needs a name"
    status, text = _start(client, token, lang="en", name="骑友群", purpose="x" * 4001)
    assert status == 422 and _alert(text) == "Purpose: at most 4000 characters"
    base = _new_community(client, token)
    bad = client.post(f"{base}/naming?lang=en", data={"csrf_token": token, "naming_template": "{brand}{city}"})
    alert = _alert(html.unescape(bad.text))
    assert bad.status_code == 422 and alert.startswith("naming_template: unknown placeholder {city}; use {brand}")


def test_stated_length_limits_are_the_real_ones(client: TestClient, world: World) -> None:
    """Community.name and Playbook.naming_template are String(200): the form's maxlength, the
    message and the check agree, and 200 characters are stored."""
    console_login(client, "lead")
    token = csrf_from(client.get("/communities/setup/start").text)
    status, text = _start(client, token, name="名" * 201)
    assert status == 422 and _alert(text) == "「社群名称」最多 200 个字"
    assert 'name="name" value="' in text and 'maxlength="200"' in text
    base = _new_community(client, token, name="名" * 200)
    long_template = "{brand}" + "群" * 194  # 201 characters
    bad = client.post(f"{base}/naming", data={"csrf_token": token, "naming_template": long_template})
    assert bad.status_code == 422 and _alert(html.unescape(bad.text)) == "「群命名模板」最多 200 个字"
    good = client.post(
        f"{base}/naming", data={"csrf_token": token, "naming_template": long_template[:-1]}, follow_redirects=False
    )
    assert good.status_code == 303
    with world.db() as s:
        assert len(s.scalars(select(Community.name).where(Community.name.startswith("名"))).one()) == 200
        assert len(s.scalars(select(Playbook.naming_template).where(Playbook.naming_template != "")).one()) == 200


@pytest.mark.parametrize(
    "template",
    ["{brand:>20000000}", "{brand:d}", "{brand!r}", "{seq:,}", "{brand.upper}", "{brand[0]}", "{0}", "{}", "{brand"],
)
def test_naming_template_takes_only_plain_placeholders(client: TestClient, world: World, template: str) -> None:
    console_login(client, "lead")
    token = csrf_from(client.get("/communities/setup/start").text)
    base = _new_community(client, token)
    bad = client.post(f"{base}/naming", data={"csrf_token": token, "naming_template": template})
    assert bad.status_code == 422
    assert 'class="field invalid" id="field-naming_template"' in bad.text
    assert "命名模板" in _alert(html.unescape(bad.text))
    assert len(bad.content) < 100_000
    with world.db() as s:
        assert s.scalars(select(Playbook.naming_template)).all() == [""]
    with pytest.raises(InvalidInput) as caught:
        clean({"naming_template": template}, ("naming_template",))
    assert caught.value.field == "naming_template"


def test_naming_template_placeholders_and_braces(client: TestClient, world: World) -> None:
    assert group_name("{brand}·{region}骑友{seq}群", brand="骑迹", region="上海", seq=3) == "骑迹·上海骑友3群"
    assert group_name("{brand}{n}群", brand="骑迹", seq=12) == "骑迹12群"
    assert group_name("{{{type}}}·{brand}", brand="骑迹", type_="福利") == "{福利}·骑迹"
    console_login(client, "lead")
    token = csrf_from(client.get("/communities/setup/start").text)
    base = _new_community(client, token)
    saved = client.post(
        f"{base}/naming",
        data={"csrf_token": token, "naming_template": "{brand}·{region}骑友{n}群"},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert "Acme 社群·华东骑友1群" in client.get(f"{base}/naming").text


def test_a_stored_template_with_a_format_spec_does_not_blow_up_the_community_page(
    client: TestClient, world: World
) -> None:
    """Templates saved before placeholders were checked are shown as typed, without a preview."""
    console_login(client, "lead")
    token = csrf_from(client.get("/communities/setup/start").text)
    base = _new_community(client, token)
    with world.db() as s:
        playbook = s.scalars(select(Playbook)).one()
        playbook.naming_template = "{brand:>20000000}"
        s.commit()
    page = client.get(base.removesuffix("/setup"))
    assert page.status_code == 200 and len(page.content) < 200_000
    assert "{brand:&gt;20000000}" in page.text or "{brand:>20000000}" in page.text
