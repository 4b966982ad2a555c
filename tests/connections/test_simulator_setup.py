"""A simulator connection's settings are the ones its connector is built from (seed, reconcile
mode, record_to, groups): the console's add form offers them, the API and the command line take
them, and a bad value is refused naming the field, on the form and in the API."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from qunyun.config import get_settings
from qunyun.connectors import registry
from qunyun.connectors.simulator import SimulatorConnector
from qunyun.models import Connection
from tests.api.conftest import World, console_login, csrf_from


def simulator_form(html_text: str) -> str:
    match = re.search(r'<details class="card" id="add-simulator".*?</details>', html_text, re.S)
    assert match
    return match.group(0)


def test_the_form_offers_what_the_simulator_is_built_from(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    form = simulator_form(client.get("/connections").text)
    assert re.search(r'<input type="text"[^>]*name="settings.seed"', form)
    assert re.search(r'<input type="checkbox"[^>]*name="settings.reconcile" value="true"', form)
    assert re.search(r'<input type="text"[^>]*name="settings.record_to"', form)
    assert re.search(r'<textarea[^>]*name="settings.groups"', form)
    for label in ("随机种子", "对账模式", "调用记录文件", "初始群"):
        assert label in form
    english = simulator_form(client.get("/connections?lang=en").text)
    for label in ("Reconcile mode", "Record calls to", "Groups it starts with"):
        assert label in english


def test_a_simulator_added_from_the_form_is_built_with_its_settings(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    token = csrf_from(client.get("/connections").text)
    form = {
        "csrf_token": token,
        "platform": "simulator",
        "name": "对账模拟器",
        "settings.seed": "7",
        "settings.reconcile": "true",
        "settings.record_to": "calls.jsonl",
        "settings.groups": "g1, g2\ng3\n",
    }
    added = client.post("/connections", data=form, follow_redirects=False)
    assert added.status_code == 303, added.text
    record_to = get_settings().var_dir.resolve() / "simulator" / "calls.jsonl"
    with world.db() as s:
        row = s.query(Connection).filter_by(name="对账模拟器").one()
        assert row.settings == {"seed": 7, "reconcile": True, "record_to": str(record_to), "groups": ["g1", "g2", "g3"]}
        assert row.status == "active"
        connector = registry.connector_for(s, row.id)
    assert isinstance(connector, SimulatorConnector)
    assert connector.reconciles and connector.key_idempotent
    assert sorted(connector.sim.state.groups) == ["g1", "g2", "g3"]
    # Unticked, the checkbox sends nothing: not reconciling.
    plain = {"csrf_token": token, "platform": "simulator", "name": "普通模拟器", "settings.seed": ""}
    assert client.post("/connections", data=plain, follow_redirects=False).status_code == 303
    with world.db() as s:
        row = s.query(Connection).filter_by(name="普通模拟器").one()
        assert row.settings == {}
        assert not registry.connector_for(s, row.id).reconciles


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("settings.record_to", "../../../etc/cron.d/evil"),
        ("settings.record_to", "/etc/passwd"),
        ("settings.record_to", "subdir/"),
        ("settings.groups", "g1, has space"),
        ("settings.seed", "seven"),
    ],
)
def test_a_bad_value_on_the_form_names_its_field(client: TestClient, world: World, field: str, value: str) -> None:
    console_login(client, "lead")
    token = csrf_from(client.get("/connections").text)
    form = {"csrf_token": token, "platform": "simulator", "name": "坏设置", field: value}
    response = client.post("/connections", data=form, follow_redirects=False)
    assert response.status_code == 422
    error = re.search(r'<p class="alert" role="alert" id="connection-error">(.*?)</p>', response.text, re.S)
    assert error and field in html.unescape(error.group(1))
    form_html = simulator_form(response.text)
    assert re.search(rf'<div class="field invalid">\s*<label for="f-simulator-{field.split(".")[1]}"', form_html)
    assert html.escape(value.split("\n")[0], quote=True) in form_html  # what was typed is kept
    with world.db() as s:
        assert s.query(Connection).filter_by(name="坏设置").count() == 0


def _add(client: TestClient, world: World, settings: dict[str, Any]) -> Any:
    body = {"platform": "simulator", "name": "api 模拟器", "settings": settings}
    return client.post("/api/v1/connections", json=body, headers=world.headers("lead"))


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"reconcile": "maybe"}, "settings.reconcile"),
        ({"reconcile": 1}, "settings.reconcile"),
        ({"groups": "g1 g2"}, "settings.groups"),
        ({"groups": [1, 2]}, "settings.groups"),
        ({"groups": [f"g{i}" for i in range(501)]}, "settings.groups"),
        ({"record_to": "/tmp/outside.jsonl"}, "settings.record_to"),
        ({"record_to": 3}, "settings.record_to"),
    ],
)
def test_the_api_names_a_bad_simulator_setting(
    client: TestClient, world: World, settings: dict[str, Any], field: str
) -> None:
    response = _add(client, world, settings)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_the_api_takes_the_simulator_settings(client: TestClient, world: World) -> None:
    inside = get_settings().var_dir.resolve() / "records" / "calls.jsonl"
    response = _add(client, world, {"reconcile": True, "groups": ["g1", "g1", " g2 "], "record_to": str(inside)})
    assert response.status_code == 201, response.text
    assert response.json()["settings"] == {"reconcile": True, "groups": ["g1", "g2"], "record_to": str(inside)}
