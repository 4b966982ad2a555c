"""``qunyun connections add telegram`` checks the bot against the (fake) Bot API; ``qunyun
telegram set-webhook`` points the bot at the connection's callback with its secret token."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.connectors.telegram.updates import ALLOWED_UPDATES
from qunyun.models import Connection
from qunyun.team.service import create_organisation
from tests.connectors.telegram.fakebot import TOKEN, FakeBotApi

runner = CliRunner()


def test_add_a_webhook_connection_then_set_its_webhook(db: sessionmaker[Session], fakebot: FakeBotApi) -> None:
    with db() as s:
        create_organisation(s, name="晨跑社", slug="run")
        s.commit()
    added = runner.invoke(
        app,
        ["connections", "add", "telegram", "--org", "run", "--name", "晨跑 bot", "--bot-token", TOKEN,
         "--webhook-secret", "s3cret-Token_1", "--api-base", fakebot.url, "--format", "json"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    out = json.loads(added.stdout)
    assert out == {"id": out["id"], "platform": "telegram", "callback_path": f"/hooks/telegram/{out['id']}"}
    assert TOKEN not in added.output
    with db() as s:
        row = s.get(Connection, out["id"])
        assert row is not None and row.status == "active" and row.settings["mode"] == "webhook"
    assert [m for m, _ in fakebot.calls] == ["getMe"]

    refused = runner.invoke(
        app, ["telegram", "set-webhook", str(out["id"]), "--org", "run", "--url", "http://x.example"]
    )
    assert refused.exit_code != 0 and "https://" in refused.output

    done = runner.invoke(
        app, ["telegram", "set-webhook", str(out["id"]), "--org", "run", "--url", "https://qunyun.example.org/"]
    )
    assert done.exit_code == 0, done.output
    assert fakebot.webhook == {
        "url": f"https://qunyun.example.org/hooks/telegram/{out['id']}",
        "secret_token": "s3cret-Token_1",
        "allowed_updates": list(ALLOWED_UPDATES),
        "max_connections": 40,
    }
    assert runner.invoke(app, ["telegram", "delete-webhook", str(out["id"]), "--org", "run"]).exit_code == 0
    assert fakebot.webhook == {}


def test_a_polling_connection_with_a_bad_token_is_stored_with_the_reason(
    db: sessionmaker[Session], fakebot: FakeBotApi
) -> None:
    with db() as s:
        create_organisation(s, name="晨跑社", slug="run")
        s.commit()
    bad = "999:" + "x" * 35
    added = runner.invoke(
        app,
        ["connections", "add", "telegram", "--org", "run", "--name", "poll", "--bot-token", bad, "--polling",
         "--api-base", fakebot.url, "--format", "json"],
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    assert bad not in added.output
    with db() as s:
        row = s.get(Connection, json.loads(added.stdout)["id"])
        assert row is not None and row.status == "error" and "401" in (row.last_error or "")
        assert row.settings["mode"] == "polling"
