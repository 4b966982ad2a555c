"""`qunyun connections add matrix …` against Synapse: the contract's JSON, the token checked with
the homeserver on add (a refused one leaves the connection in error, with the reason and no
secret), in both modes."""

from __future__ import annotations

import json
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from qunyun.cli import app
from qunyun.connections.secrets import decrypt
from qunyun.models import Connection
from tests.connectors.matrix.homeserver import Homeserver, User

runner = CliRunner()


def test_add_matrix_connections(
    db: sessionmaker[Session], synapse: Homeserver, new_user: Callable[[str], User]
) -> None:
    from qunyun.team.service import create_organisation

    with db() as s:
        create_organisation(s, name="acme", slug="acme")
        s.commit()
    bot = new_user("bot")
    common = ["connections", "add", "matrix", "--org", "acme", "--homeserver", synapse.url, "--format", "json"]
    added = runner.invoke(app, [*common, "--name", "bot", "--access-token", bot.token, "--user-id", bot.user_id])
    assert added.exit_code == 0, added.output
    out = json.loads(added.stdout)
    assert out == {"id": out["id"], "platform": "matrix", "callback_path": f"/hooks/matrix/{out['id']}"}
    assert bot.token not in added.output
    appservice = runner.invoke(
        app,
        [*common, "--name", "as", "--as-token", synapse.as_token, "--hs-token", synapse.hs_token,
         "--user-id", synapse.as_user],
    )  # fmt: skip
    assert appservice.exit_code == 0, appservice.output
    as_id = json.loads(appservice.stdout)["id"]
    wrong = runner.invoke(app, [*common, "--name", "wrong", "--access-token", "not-a-valid-token-1"])
    assert wrong.exit_code == 0, wrong.output
    wrong_id = json.loads(wrong.stdout)["id"]
    with db() as s:
        row = s.get_one(Connection, out["id"])
        assert row.status == "active" and row.settings["mode"] == "bot", row.last_error
        assert decrypt(row.secrets) == {"access_token": bot.token}
        as_row = s.get_one(Connection, as_id)
        assert as_row.status == "active" and as_row.settings["mode"] == "appservice", as_row.last_error
        refused = s.get_one(Connection, wrong_id)
        assert refused.status == "error" and "refused the token" in (refused.last_error or "")
        assert "not-a-valid-token-1" not in (refused.last_error or "")
