"""A real Synapse homeserver for the Matrix tests and bench: installed by ``.ci/synapse.sh`` when
missing, started with a generated configuration (SQLite, loopback, a free port, a registration
shared secret, rate limits raised, one application-service registration), and a small client
for the test's members (registered with the shared secret through the admin API).

The application service's URL is a relay on loopback (:class:`Relay`): the homeserver starts
once per session, before any connection exists, so the relay forwards each call to
``/hooks/matrix/{connection id}/…`` of the app the current test points it at, unchanged (method,
path, query, headers, body). With no target it answers ``200 {}``, so the homeserver never backs
off from the application service between tests.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

REPO = Path(__file__).resolve().parents[3]
SERVER_NAME = "qunyun.test"
AS_SENDER = "qunyun_as"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def synapse_python() -> str:
    """The python of Synapse's own environment (installed by .ci/synapse.sh when missing)."""
    out = subprocess.run(
        [str(REPO / ".ci" / "synapse.sh")], check=True, capture_output=True, text=True, timeout=1800
    ).stdout
    return out.strip().splitlines()[-1]


# The forwarder of application-service calls: (method, path after /as, query, headers, body) →
# (status, body). Set by the test that owns an appservice connection.
Forward = Callable[[str, str, str, dict[str, str], bytes], tuple[int, bytes]]


class Relay:
    """Loopback HTTP server the registration's ``url`` points at (see the module's doc)."""

    def __init__(self) -> None:
        self.forward: Forward | None = None
        self.calls = 0
        self.bodies: list[bytes] = []  # what was answered 200, in order (tests wait on it)
        self.errors: list[str] = []  # what forwarding raised
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path, _, query = self.path.partition("?")
                if path.startswith("/as"):
                    path = path[3:]
                relay.calls += 1
                forward = relay.forward
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    status, answer = (
                        (200, b"{}") if forward is None else forward(self.command, path, query, headers, body)
                    )
                except Exception as exc:  # kept for the test to report; the homeserver will retry
                    relay.errors.append(repr(exc))
                    status, answer = 500, b"{}"
                if status != 200:  # the homeserver retries it later
                    relay.errors.append(f"{self.command} {path}: {status} {answer[:300]!r}")
                else:
                    relay.bodies.append(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_PUT = do_POST = do_GET = _any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class User:
    user_id: str
    token: str
    http: httpx.Client = field(repr=False)

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        response = self.http.request(method, path, json=body, params=params or None)
        if response.status_code >= 300:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.text}")
        data = response.json()
        assert isinstance(data, dict)
        return data

    def join(self, room_or_alias: str) -> str:
        return str(self.call("POST", f"/_matrix/client/v3/join/{quote(room_or_alias, safe='')}", {})["room_id"])

    def leave(self, room: str) -> None:
        self.call("POST", f"/_matrix/client/v3/rooms/{quote(room, safe='')}/leave", {})

    def send(self, room: str, text: str) -> str:
        txn = secrets.token_hex(8)
        path = f"/_matrix/client/v3/rooms/{quote(room, safe='')}/send/m.room.message/{txn}"
        return str(self.call("PUT", path, {"msgtype": "m.text", "body": text})["event_id"])

    def state(self, room: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        path = f"/_matrix/client/v3/rooms/{quote(room, safe='')}/state/{event_type}/{quote(state_key, safe='')}"
        return self.call("GET", path)

    def event(self, room: str, event_id: str) -> dict[str, Any]:
        return self.call("GET", f"/_matrix/client/v3/rooms/{quote(room, safe='')}/event/{quote(event_id, safe='')}")

    def messages(self, room: str, limit: int = 50) -> list[dict[str, Any]]:
        page = self.call("GET", f"/_matrix/client/v3/rooms/{quote(room, safe='')}/messages", dir="b", limit=limit)
        return list(page["chunk"])


class Homeserver:
    """A Synapse process in ``directory`` (see the module's doc)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.shared_secret = secrets.token_hex(16)
        self.as_token = "as-" + secrets.token_hex(16)
        self.hs_token = "hs-" + secrets.token_hex(16)
        self.relay = Relay()
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds = 0.0
        self._stderr: Any = None
        self._clients: list[httpx.Client] = []

    @property
    def as_user(self) -> str:
        return f"@{AS_SENDER}:{SERVER_NAME}"

    def _config(self) -> dict[str, Any]:
        d = self.dir
        lots = {"per_second": 10000, "burst_count": 10000}
        return {
            "server_name": SERVER_NAME,
            "pid_file": str(d / "homeserver.pid"),
            "listeners": [
                {
                    "port": self.port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": [{"names": ["client"], "compress": False}],
                }
            ],
            "database": {"name": "sqlite3", "args": {"database": str(d / "homeserver.db")}},
            "log_config": str(d / "log.yaml"),
            "media_store_path": str(d / "media"),
            "signing_key_path": str(d / "signing.key"),
            "registration_shared_secret": self.shared_secret,
            "macaroon_secret_key": secrets.token_hex(16),
            "form_secret": secrets.token_hex(16),
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "enable_metrics": False,
            "federation_domain_whitelist": [],
            "presence": {"enabled": False},
            "app_service_config_files": [str(d / "appservice.yaml")],
            "rc_message": lots,
            "rc_registration": lots,
            "rc_admin_redaction": lots,
            "rc_joins": {"local": lots, "remote": lots},
            "rc_joins_per_room": lots,
            "rc_invites": {"per_room": lots, "per_user": lots, "per_issuer": lots},
            "rc_login": {"address": lots, "account": lots, "failed_attempts": lots},
            "rc_room_creation": lots,
        }

    def start(self) -> None:
        python = synapse_python()
        d = self.dir
        d.mkdir(parents=True, exist_ok=True)
        (d / "media").mkdir(exist_ok=True)
        (d / "homeserver.yaml").write_text(json.dumps(self._config()), encoding="utf-8")
        (d / "log.yaml").write_text(
            json.dumps(
                {
                    "version": 1,
                    "formatters": {"f": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
                    "handlers": {
                        "file": {
                            "class": "logging.FileHandler",
                            "filename": str(d / "homeserver.log"),
                            "formatter": "f",
                        }
                    },
                    "root": {"level": "WARNING", "handlers": ["file"]},
                    "disable_existing_loggers": False,
                }
            ),
            encoding="utf-8",
        )
        registration = {
            "id": "qunyun",
            "url": f"http://127.0.0.1:{self.relay.port}/as",
            "as_token": self.as_token,
            "hs_token": self.hs_token,
            "sender_localpart": AS_SENDER,
            "rate_limited": False,
            "namespaces": {
                "users": [{"exclusive": True, "regex": f"@{AS_SENDER}_.*:{SERVER_NAME}"}],
                "aliases": [{"exclusive": False, "regex": f"#qy-.*:{SERVER_NAME}"}],
                "rooms": [],
            },
        }
        (d / "appservice.yaml").write_text(json.dumps(registration), encoding="utf-8")
        config = ["-c", str(d / "homeserver.yaml")]
        subprocess.run(
            [python, "-m", "synapse.app.homeserver", *config, "--generate-keys"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        started = time.monotonic()
        env = {**os.environ, "SYNAPSE_ASYNC_IO_REACTOR": "0"}
        self._stderr = open(d / "stderr.log", "wb")  # noqa: SIM115  (closed in stop())
        self.process = subprocess.Popen(
            [python, "-m", "synapse.app.homeserver", *config],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
        )
        deadline = started + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"synapse exited: {(d / 'stderr.log').read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(f"{self.url}/_matrix/client/versions", timeout=1).status_code == 200:
                    self.startup_seconds = time.monotonic() - started
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("synapse did not answer within 120 s")

    def stop(self) -> None:
        for client in self._clients:
            client.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.relay.close()
        if self._stderr is not None:
            self._stderr.close()

    def register(self, localpart: str, *, admin: bool = False) -> User:
        """A new account registered with the shared secret (admin API, HMAC-SHA1)."""
        endpoint = f"{self.url}/_synapse/admin/v1/register"
        nonce = httpx.get(endpoint, timeout=10).json()["nonce"]
        password = secrets.token_hex(12)
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password, "admin" if admin else "notadmin"):
            mac.update(part.encode())
            if part != ("admin" if admin else "notadmin"):
                mac.update(b"\x00")
        body = {"nonce": nonce, "username": localpart, "password": password, "admin": admin, "mac": mac.hexdigest()}
        answer = httpx.post(endpoint, json=body, timeout=30)
        answer.raise_for_status()
        data = answer.json()
        return self.user(str(data["user_id"]), str(data["access_token"]))

    def user(self, user_id: str, token: str) -> User:
        client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self._clients.append(client)
        return User(user_id, token, client)
