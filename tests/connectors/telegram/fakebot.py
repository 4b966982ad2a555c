"""A fake Telegram Bot API on loopback (Starlette in a thread, served by uvicorn).

It implements the methods the connector calls with Telegram's answer shapes: ``{"ok": true,
"result": …}`` or ``{"ok": false, "error_code", "description", "parameters"}``; a chat that was
migrated answers 400 with ``parameters.migrate_to_chat_id``, and ``fail_next(method, 429,
retry_after=N)`` scripts a rate limit. Every call is recorded (method, params).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOKEN = "123456789:AAFakeTokenForTestsOnly_abcdefghijklmn"


@dataclass
class FakeBotApi:
    token: str = TOKEN
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    migrated: dict[int, int] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: list[tuple[int, int]] = field(default_factory=list)
    webhook: dict[str, Any] = field(default_factory=dict)
    _script: dict[str, list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1000))
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def fail_next(self, method: str, code: int, description: str = "", **parameters: Any) -> None:
        self._script.setdefault(method, []).append((code, {"description": description, "parameters": parameters}))

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    def _answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.calls.append((method, params))
            scripted = self._script.get(method)
            if scripted:
                code, extra = scripted.pop(0)
                body: dict[str, Any] = {"ok": False, "error_code": code, "description": extra["description"]}
                if extra["parameters"]:
                    body["parameters"] = extra["parameters"]
                return code, body
            chat = params.get("chat_id")
            if isinstance(chat, int) and chat in self.migrated:
                return 400, {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: group chat was upgraded to a supergroup chat",
                    "parameters": {"migrate_to_chat_id": self.migrated[chat]},
                }
            if params.get("creates_join_request") and params.get("member_limit") is not None:
                return 400, {
                    "ok": False,
                    "error_code": 400,
                    "description": "Bad Request: member limit can't be specified for links requiring approval",
                }
            return 200, {"ok": True, "result": self._result(method, params)}

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        now = int(time.time())
        if method == "getMe":
            return {"id": int(self.token.split(":")[0]), "is_bot": True, "first_name": "qunyun", "username": "qy_bot"}
        if method in {"sendMessage", "sendPhoto", "sendDocument", "sendVideo"}:
            return {
                "message_id": next(self._ids),
                "date": now,
                "chat": {"id": params["chat_id"], "type": "supergroup", "title": "G"},
                "text": params.get("text", ""),
            }
        if method == "deleteMessage":
            self.deleted.append((params["chat_id"], params["message_id"]))
            return True
        if method in {"createChatInviteLink", "editChatInviteLink", "revokeChatInviteLink"}:
            link = params.get("invite_link") or f"https://t.me/+fake{next(self._ids)}"
            entry = self.links.setdefault(link, {"invite_link": link, "chat_id": params["chat_id"]})
            for key in ("name", "member_limit", "expire_date", "creates_join_request"):
                if key in params:
                    entry[key] = params[key]
            entry["is_revoked"] = method == "revokeChatInviteLink"
            return {
                "invite_link": link,
                "creator": {"id": 1, "is_bot": True, "first_name": "qunyun"},
                "creates_join_request": bool(entry.get("creates_join_request")),
                "is_primary": False,
                "is_revoked": entry["is_revoked"],
                **{k: v for k, v in entry.items() if k in ("name", "member_limit", "expire_date")},
            }
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            limit = int(params.get("limit") or 100)
            return [u for u in self.updates if u["update_id"] >= offset][:limit]
        if method == "setWebhook":
            self.webhook = dict(params)
            return True
        if method == "deleteWebhook":
            self.webhook = {}
            return True
        return True  # ban/unban/restrict/approve/decline/setChatDescription

    def app(self) -> Starlette:
        async def endpoint(request: Request) -> JSONResponse:
            token, method = request.path_params["token"], request.path_params["method"]
            if token != self.token:
                return JSONResponse({"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401)
            params = await request.json() if await request.body() else {}
            status, body = self._answer(method, params)
            return JSONResponse(body, status_code=status)

        return Starlette(routes=[Route("/bot{token}/{method}", endpoint, methods=["POST", "GET"])])


class Served:
    """The fake served on a free loopback port until ``stop()``."""

    def __init__(self, fake: FakeBotApi) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the fake Bot API did not start")
            time.sleep(0.02)
        fake.url = f"http://127.0.0.1:{port}"
        self.fake = fake

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
