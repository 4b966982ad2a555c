"""A fake WeCom server for tests, the bench and the browser test (loopback only).

It implements the endpoints :class:`~qunyun.connectors.wecom.client.WeComClient` calls, with
WeCom's answers and documented errors: gettoken (40013 wrong corp id, 40001 wrong secret),
40014 for an unknown token and 42001 for an expired one, 45009 when a test asks for it
(``fail_next``), 40058 for more than 5 groups in a join way or more than 300 words in an
intercept rule, 41001 without a token. Changes to its customer groups produce the callback XML
WeCom would send (``add_member`` …), and ``confirm`` is the owner pressing send on a mass send.
Customer contacts too: ``add_contact`` (add_external_contact with State and a WelcomeCode that
send_welcome_msg accepts once, within 20 s: 41051 when used again, 40058 when unknown or
expired), ``delete_contact``, ``lose_contact``, ``edit_contact``, ``transfer_fail``; and corp tags
(``add_tag_group``, ``rename_tag``, ``delete_tag``: their change_external_tag callbacks).

Run it in a thread with :func:`serve` (uvicorn on 127.0.0.1, a free port).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qunyun.connectors.wecom.crypto import WeComCrypto, signature

MAX_JOIN_WAY_GROUPS = 5
MAX_RULE_WORDS = 300
MAX_STATE = 30


def _ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def _err(code: int, msg: str) -> dict[str, Any]:
    return {"errcode": code, "errmsg": msg}


@dataclass
class FakeGroup:
    chat_id: str
    name: str
    owner: str
    notice: str = ""
    create_time: int = 0
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: str = ""
    dismissed: bool = False

    def bump(self) -> tuple[str, str]:
        last = self.version
        self.version = hashlib.md5(f"{self.chat_id}:{sorted(self.members)}:{time.time_ns()}".encode()).hexdigest()
        return last, self.version


class FakeWeCom:
    """The fake platform's state and its ASGI app (``self.app``)."""

    def __init__(self, corp_id: str, secret: str, *, token_ttl: int = 7200) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.token_ttl = token_ttl
        self.lock = threading.RLock()
        self.tokens: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.gettoken_calls = 0
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.methods: list[tuple[str, str]] = []  # (HTTP method, api) of each request
        self.fail_next: dict[str, list[int]] = {}  # api -> errcodes to answer next
        self.delay_next: dict[str, float] = {}  # api -> seconds the next answer is held back
        self.groups: dict[str, FakeGroup] = {}
        self.join_ways: dict[str, dict[str, Any]] = {}
        self.msg_templates: dict[str, dict[str, Any]] = {}
        self.welcome_templates: dict[str, str] = {}
        self.welcomes_sent: list[dict[str, Any]] = []
        self.rules: dict[str, dict[str, Any]] = {}
        self.tag_groups: list[dict[str, Any]] = []
        self.marks: list[dict[str, Any]] = []
        self.contacts: dict[str, dict[str, Any]] = {}
        self.welcome_codes: dict[str, dict[str, Any]] = {}  # code -> issued (epoch), used, contact
        self.welcome_ttl = 20.0  # seconds: WeCom's limit for send_welcome_msg
        self._ids = itertools.count(1)
        self.app = Starlette(routes=[Route("/cgi-bin/{api:path}", self._endpoint, methods=["GET", "POST"])])

    # -- the state, as tests drive it ----------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):06d}{secrets.token_hex(4)}"

    def add_group(
        self, chat_id: str, name: str, owner: str, members: dict[str, dict[str, Any]] | None = None
    ) -> FakeGroup:
        with self.lock:
            group = FakeGroup(chat_id, name, owner, create_time=int(time.time()))
            group.members[owner] = {"userid": owner, "type": 1, "join_time": int(time.time()), "join_scene": 0}
            for userid, extra in (members or {}).items():
                group.members[userid] = {
                    "userid": userid,
                    "type": 2,
                    "join_time": int(time.time()),
                    "join_scene": 3,
                    **extra,
                }
            group.bump()
            self.groups[chat_id] = group
            return group

    def add_member(
        self,
        chat_id: str,
        userid: str,
        *,
        scene: int = 3,
        state: str | None = None,
        name: str | None = None,
        invitor: str | None = None,
        at: int | None = None,
    ) -> str:
        """A customer joins; returns the callback XML (update/add_member) WeCom sends."""
        with self.lock:
            group = self.groups[chat_id]
            at = at or int(time.time())
            member: dict[str, Any] = {"userid": userid, "type": 2, "join_time": at, "join_scene": scene}
            if state:
                member["state"] = state
            if name:
                member["name"] = name
                member["group_nickname"] = name
            if invitor:
                member["invitor"] = {"userid": invitor}
            group.members[userid] = member
            last, cur = group.bump()
            return self.chat_change_xml(
                chat_id, "update", "add_member", at=at, join_scene=scene, members=[userid], last=last, cur=cur
            )

    def remove_member(self, chat_id: str, userid: str, *, removed: bool = False, at: int | None = None) -> str:
        with self.lock:
            group = self.groups[chat_id]
            group.members.pop(userid, None)
            last, cur = group.bump()
            return self.chat_change_xml(
                chat_id,
                "update",
                "del_member",
                at=at,
                quit_scene=1 if removed else 0,
                members=[userid],
                last=last,
                cur=cur,
            )

    def rename(self, chat_id: str, name: str) -> str:
        with self.lock:
            self.groups[chat_id].name = name
            return self.chat_change_xml(chat_id, "update", "change_name")

    def chat_change_xml(
        self,
        chat_id: str,
        change_type: str,
        detail: str | None = None,
        *,
        at: int | None = None,
        join_scene: int | None = None,
        quit_scene: int | None = None,
        members: list[str] | None = None,
        last: str | None = None,
        cur: str | None = None,
    ) -> str:
        parts = [
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>",
            "<FromUserName><![CDATA[sys]]></FromUserName>",
            f"<CreateTime>{at or int(time.time())}</CreateTime>",
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event>",
            f"<ChatId><![CDATA[{chat_id}]]></ChatId><ChangeType><![CDATA[{change_type}]]></ChangeType>",
        ]
        if detail:
            parts.append(f"<UpdateDetail><![CDATA[{detail}]]></UpdateDetail>")
        if join_scene is not None:
            parts.append(f"<JoinScene>{join_scene}</JoinScene>")
        if quit_scene is not None:
            parts.append(f"<QuitScene>{quit_scene}</QuitScene>")
        if members is not None:
            parts.append(f"<MemChangeCnt>{len(members)}</MemChangeCnt><MemChangeList>")
            parts.extend(f"<Item><![CDATA[{m}]]></Item>" for m in members)
            parts.append("</MemChangeList>")
        if last is not None:
            parts.append(f"<LastMemVer><![CDATA[{last}]]></LastMemVer>")
        if cur is not None:
            parts.append(f"<CurMemVer><![CDATA[{cur}]]></CurMemVer>")
        parts.append("</xml>")
        return "".join(parts)

    # -- customer contacts -----------------------------------------------------------------------

    def add_contact(
        self,
        userid: str,
        external_userid: str,
        *,
        name: str | None = None,
        state: str | None = None,
        welcome: bool = True,
        half: bool = False,
        at: int | None = None,
    ) -> str:
        """A customer adds staff member ``userid`` (through a contact way with ``state``); returns
        the add_external_contact (or add_half_external_contact) callback, with a fresh WelcomeCode."""
        with self.lock:
            contact = self.contacts.setdefault(
                external_userid, {"name": name or external_userid, "follow_user": [], "gender": 0}
            )
            if name:
                contact["name"] = name
            follow = {"userid": userid, "createtime": at or int(time.time()), "tags": []}
            if state:
                follow["state"] = state
            contact["follow_user"] = [f for f in contact["follow_user"] if f["userid"] != userid] + [follow]
            code = None
            if welcome:
                code = secrets.token_urlsafe(16)
                self.welcome_codes[code] = {"issued": time.time(), "used": False, "external_userid": external_userid}
            change = "add_half_external_contact" if half else "add_external_contact"
            return self.contact_change_xml(change, userid, external_userid, at=at, State=state, WelcomeCode=code)

    def delete_contact(self, userid: str, external_userid: str, *, source: str | None = None) -> str:
        """The staff member deletes the customer (del_external_contact)."""
        with self.lock:
            self._unfollow(userid, external_userid)
            return self.contact_change_xml("del_external_contact", userid, external_userid, Source=source)

    def lose_contact(self, userid: str, external_userid: str) -> str:
        """The customer deletes the staff member (del_follow_user)."""
        with self.lock:
            self._unfollow(userid, external_userid)
            return self.contact_change_xml("del_follow_user", userid, external_userid)

    def edit_contact(self, userid: str, external_userid: str, *, name: str | None = None) -> str:
        with self.lock:
            if name and external_userid in self.contacts:
                self.contacts[external_userid]["name"] = name
            return self.contact_change_xml("edit_external_contact", userid, external_userid)

    def transfer_fail(self, userid: str, external_userid: str, reason: str = "customer_refused") -> str:
        return self.contact_change_xml("transfer_fail", userid, external_userid, FailReason=reason)

    def _unfollow(self, userid: str, external_userid: str) -> None:
        contact = self.contacts.get(external_userid)
        if contact is not None:
            contact["follow_user"] = [f for f in contact["follow_user"] if f["userid"] != userid]

    def contact_change_xml(
        self, change: str, userid: str, external_userid: str, *, at: int | None = None, **extra: str | None
    ) -> str:
        parts = [
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>",
            "<FromUserName><![CDATA[sys]]></FromUserName>",
            f"<CreateTime>{at or int(time.time())}</CreateTime>",
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event>",
            f"<ChangeType><![CDATA[{change}]]></ChangeType>",
            f"<UserID><![CDATA[{userid}]]></UserID><ExternalUserID><![CDATA[{external_userid}]]></ExternalUserID>",
        ]
        parts.extend(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in extra.items() if v is not None)
        parts.append("</xml>")
        return "".join(parts)

    # -- corp tags ----------------------------------------------------------------------------------

    def add_tag_group(self, group_name: str, names: list[str]) -> str:
        """An admin creates a tag group with tags in the admin console: its callback."""
        with self.lock:
            group = {
                "group_id": self.new_id("etg"),
                "group_name": group_name,
                "create_time": int(time.time()),
                "order": len(self.tag_groups),
                "tag": [
                    {"id": self.new_id("et"), "name": n, "create_time": int(time.time()), "order": i}
                    for i, n in enumerate(names)
                ],
            }
            self.tag_groups.append(group)
            return self.tag_change_xml("create", str(group["group_id"]), "tag_group")

    def rename_tag(self, tag_id: str, name: str) -> str:
        with self.lock:
            for group in self.tag_groups:
                for tag in group["tag"]:
                    if tag["id"] == tag_id:
                        tag["name"] = name
            return self.tag_change_xml("update", tag_id, "tag")

    def delete_tag(self, tag_id: str) -> str:
        with self.lock:
            for group in self.tag_groups:
                group["tag"] = [t for t in group["tag"] if t["id"] != tag_id]
            self.tag_groups = [g for g in self.tag_groups if g["tag"]]  # an empty group goes with it
            return self.tag_change_xml("delete", tag_id, "tag")

    def tag_change_xml(self, change: str, item_id: str, tag_type: str) -> str:
        return (
            f"<xml><ToUserName><![CDATA[{self.corp_id}]]></ToUserName>"
            "<FromUserName><![CDATA[sys]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_tag]]></Event>"
            f"<Id><![CDATA[{item_id}]]></Id><TagType><![CDATA[{tag_type}]]></TagType>"
            f"<ChangeType><![CDATA[{change}]]></ChangeType></xml>"
        )

    def confirm(self, msgid: str) -> None:
        """The owner presses send on mass send ``msgid``: every group of it receives it."""
        with self.lock:
            task = self.msg_templates[msgid]
            task["sent_at"] = int(time.time())
            for chat in task["results"]:
                chat["status"] = 1
                chat["send_time"] = task["sent_at"]

    def expire_tokens(self) -> None:
        with self.lock:
            for token in self.tokens:
                self.tokens[token] = 0

    # -- the HTTP side -------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> JSONResponse:
        api = request.path_params["api"]
        query = dict(request.query_params)
        self.methods.append((request.method, api))
        body: dict[str, Any] = {}
        if request.method == "POST":
            raw = await request.body()
            if raw:
                try:
                    import json

                    parsed = json.loads(raw)
                except ValueError:
                    return JSONResponse(_err(47001, "data format error"))
                if not isinstance(parsed, dict):
                    return JSONResponse(_err(47001, "data format error"))
                body = parsed
        with self.lock:
            answer = self.handle(api, query, body)
            delay = self.delay_next.pop(api, 0.0)
        if delay:
            await asyncio.sleep(delay)  # done, but the answer comes late (a client timing out loses it)
        return JSONResponse(answer)

    def handle(self, api: str, query: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((api, body))
        planned = self.fail_next.get(api)
        if planned:
            return _err(planned.pop(0), "injected")
        if api == "gettoken":
            return self._gettoken(query)
        token = query.get("access_token")
        if not token:
            return _err(41001, "access_token missing")
        if token not in self.tokens:
            return _err(40014, "invalid access_token")
        if self.tokens[token] < time.time():
            return _err(42001, "access_token expired")
        handler = getattr(self, "_api_" + api.replace("externalcontact/", "").replace("/", "__"), None)
        if handler is None:
            return _err(48002, "api forbidden")
        result: dict[str, Any] = handler(body if body else query)
        return result

    def _gettoken(self, query: dict[str, Any]) -> dict[str, Any]:
        self.gettoken_calls += 1
        if query.get("corpid") != self.corp_id:
            return _err(40013, "invalid corpid")
        if query.get("corpsecret") != self.secret:
            return _err(40001, "invalid credential")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.time() + self.token_ttl
        return _ok(access_token=token, expires_in=self.token_ttl)

    def _api_groupchat__list(self, body: dict[str, Any]) -> dict[str, Any]:
        limit = int(body.get("limit") or 0)
        if not 1 <= limit <= 1000:
            return _err(40058, "limit must be 1-1000")
        ids = sorted(g.chat_id for g in self.groups.values() if not g.dismissed)
        start = int(body.get("cursor") or 0)
        page = ids[start : start + limit]
        nxt = str(start + limit) if start + limit < len(ids) else ""
        return _ok(group_chat_list=[{"chat_id": c, "status": 0} for c in page], next_cursor=nxt)

    def _api_groupchat__get(self, body: dict[str, Any]) -> dict[str, Any]:
        group = self.groups.get(str(body.get("chat_id")))
        if group is None or group.dismissed:
            return _err(40050, "chatid not found")
        members = []
        for m in group.members.values():
            item = dict(m)
            if not body.get("need_name"):
                item.pop("name", None)
            members.append(item)
        return _ok(
            group_chat={
                "chat_id": group.chat_id,
                "name": group.name,
                "owner": group.owner,
                "create_time": group.create_time,
                "notice": group.notice,
                "member_list": members,
                "admin_list": [],
                "member_version": group.version,
            }
        )

    def _api_groupchat__statistic_group_by_day(self, body: dict[str, Any]) -> dict[str, Any]:
        owners = set((body.get("owner_filter") or {}).get("userid_list") or [])
        total = sum(len(g.members) for g in self.groups.values() if not owners or g.owner in owners)
        return _ok(items=[{"stat_time": body.get("day_begin_time"), "data": {"member_total": total}}])

    def _join_way_fields(self, body: dict[str, Any]) -> dict[str, Any] | None:
        chats = body.get("chat_id_list") or []
        state = str(body.get("state") or "")
        if not chats or len(chats) > MAX_JOIN_WAY_GROUPS or len(state) > MAX_STATE:
            return None
        if any(c not in self.groups for c in chats):
            return None
        return {
            "scene": body.get("scene", 2),
            "remark": body.get("remark", ""),
            "auto_create_room": body.get("auto_create_room", 0),
            "chat_id_list": list(chats),
            "state": state,
        }

    def _api_groupchat__add_join_way(self, body: dict[str, Any]) -> dict[str, Any]:
        fields = self._join_way_fields(body)
        if fields is None:
            return _err(40058, "chat_id_list must name 1-5 groups of the corp; state at most 30 characters")
        config_id = self.new_id("cfg")
        fields["config_id"] = config_id
        fields["qr_code"] = f"https://wework.qpic.cn/wwpic/fake/{config_id}/0"
        self.join_ways[config_id] = fields
        return _ok(config_id=config_id)

    def _api_groupchat__get_join_way(self, body: dict[str, Any]) -> dict[str, Any]:
        way = self.join_ways.get(str(body.get("config_id")))
        return _ok(join_way=dict(way)) if way else _err(40058, "config_id not found")

    def _api_groupchat__update_join_way(self, body: dict[str, Any]) -> dict[str, Any]:
        way = self.join_ways.get(str(body.get("config_id")))
        fields = self._join_way_fields(body)
        if way is None or fields is None:
            return _err(40058, "config_id not found, or chat_id_list not 1-5 groups")
        way.update(fields)
        return _ok()

    def _api_groupchat__del_join_way(self, body: dict[str, Any]) -> dict[str, Any]:
        return _ok() if self.join_ways.pop(str(body.get("config_id")), None) else _err(40058, "config_id not found")

    def _api_add_contact_way(self, body: dict[str, Any]) -> dict[str, Any]:
        config_id = self.new_id("cw")
        return _ok(config_id=config_id, qr_code=f"https://wework.qpic.cn/wwpic/fake/{config_id}/0")

    def _api_group_welcome_template__add(self, body: dict[str, Any]) -> dict[str, Any]:
        text = str((body.get("text") or {}).get("content") or "")
        if not text or len(text.encode("utf-8")) > 4000:
            return _err(40058, "text.content must be 1-4000 bytes")
        template_id = self.new_id("msg")
        self.welcome_templates[template_id] = text
        return _ok(template_id=template_id)

    def _api_group_welcome_template__edit(self, body: dict[str, Any]) -> dict[str, Any]:
        template_id = str(body.get("template_id"))
        if template_id not in self.welcome_templates:
            return _err(40058, "template_id not found")
        self.welcome_templates[template_id] = str((body.get("text") or {}).get("content") or "")
        return _ok()

    def _api_send_welcome_msg(self, body: dict[str, Any]) -> dict[str, Any]:
        code = self.welcome_codes.get(str(body.get("welcome_code") or ""))
        if code is None:
            return _err(40058, "invalid welcome_code")
        if code["used"]:
            return _err(41051, "externaluser has started chatting")
        if time.time() - code["issued"] > self.welcome_ttl:
            return _err(40058, "welcome_code expired")
        text = str((body.get("text") or {}).get("content") or "")
        if not text and not body.get("attachments"):
            return _err(40058, "text or attachments required")
        code["used"] = True
        # ``after``: seconds from the callback (the code's issue) to this call.
        self.welcomes_sent.append(dict(body, after=time.time() - code["issued"]))
        return _ok()

    def _api_add_msg_template(self, body: dict[str, Any]) -> dict[str, Any]:
        if body.get("chat_type") != "group":
            return _err(40058, "chat_type")
        sender = body.get("sender")
        if not sender:
            return _err(40058, "sender is required for group mass sends")
        chats = [c for c in body.get("chat_id_list") or [] if c in self.groups and self.groups[c].owner == sender]
        if not chats:
            return _err(40058, "chat_id_list names no group of the sender")
        msgid = self.new_id("msg")
        self.msg_templates[msgid] = {
            "sender": sender,
            "text": (body.get("text") or {}).get("content", ""),
            "create_time": int(time.time()),
            "results": [{"chat_id": c, "userid": sender, "status": 0} for c in chats],
            "reminded": 0,
            "cancelled": False,
        }
        return _ok(fail_list=[], msgid=msgid)

    def _api_get_groupmsg_list_v2(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            start, end = int(body["start_time"]), int(body["end_time"])
            limit = int(body.get("limit") or 50)
        except (KeyError, TypeError, ValueError):
            return _err(40058, "start_time and end_time are required")
        if end < start or end - start > 31 * 86400:
            return _err(40058, "start_time and end_time must be at most a month apart")
        if body.get("chat_type", "single") != "group":
            return _ok(next_cursor="", group_msg_list=[])
        limit = limit if 1 <= limit <= 100 else 50
        # Mass sends made through the API are the enterprise's (create_type 0) and carry no creator.
        if body.get("creator") or int(body.get("filter_type", 2)) == 1:
            return _ok(next_cursor="", group_msg_list=[])
        items = [
            {"msgid": k, "create_type": 0, "create_time": v["create_time"], "text": {"content": v["text"]}}
            for k, v in self.msg_templates.items()
            if start <= v["create_time"] <= end
        ]
        offset = int(body.get("cursor") or 0)
        page = items[offset : offset + limit]
        nxt = str(offset + limit) if offset + limit < len(items) else ""
        return _ok(next_cursor=nxt, group_msg_list=page)

    def _api_get_groupmsg_task(self, body: dict[str, Any]) -> dict[str, Any]:
        task = self.msg_templates.get(str(body.get("msgid")))
        if task is None:
            return _err(41063, "msgid not found")
        sent = all(r["status"] == 1 for r in task["results"])
        item = {"userid": task["sender"], "status": 2 if sent else 0}
        if sent:
            item["send_time"] = task.get("sent_at")
        return _ok(next_cursor="", task_list=[item])

    def _api_get_groupmsg_send_result(self, body: dict[str, Any]) -> dict[str, Any]:
        task = self.msg_templates.get(str(body.get("msgid")))
        if task is None:
            return _err(41063, "msgid not found")
        return _ok(next_cursor="", send_list=[dict(r) for r in task["results"] if r["userid"] == body.get("userid")])

    def _api_remind_groupmsg_send(self, body: dict[str, Any]) -> dict[str, Any]:
        task = self.msg_templates.get(str(body.get("msgid")))
        if task is None:
            return _err(41063, "msgid not found")
        if task["reminded"] >= 3:
            return _err(41065, "reminded 3 times within 24 hours")
        task["reminded"] += 1
        return _ok()

    def _api_cancel_groupmsg_send(self, body: dict[str, Any]) -> dict[str, Any]:
        task = self.msg_templates.get(str(body.get("msgid")))
        if task is None:
            return _err(41063, "msgid not found")
        task["cancelled"] = True
        return _ok()

    def _check_words(self, words: Any) -> bool:
        return (
            isinstance(words, list)
            and 1 <= len(words) <= MAX_RULE_WORDS
            and all(isinstance(w, str) and 0 < len(w) <= 32 for w in words)
        )

    def _api_add_intercept_rule(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("rule_name") or "")
        if not name or len(name) > 20 or not self._check_words(body.get("word_list")):
            return _err(40058, "rule_name 1-20 characters; word_list 1-300 words of at most 32 characters")
        rule_id = self.new_id("rule")
        self.rules[rule_id] = {"rule_id": rule_id, "rule_name": name, "word_list": list(body["word_list"])}
        return _ok(rule_id=rule_id)

    def _api_get_intercept_rule_list(self, body: dict[str, Any]) -> dict[str, Any]:
        return _ok(rule_list=[{"rule_id": r["rule_id"], "rule_name": r["rule_name"]} for r in self.rules.values()])

    def _api_get_intercept_rule(self, body: dict[str, Any]) -> dict[str, Any]:
        rule = self.rules.get(str(body.get("rule_id")))
        return _ok(rule=dict(rule)) if rule else _err(40058, "rule_id not found")

    def _api_update_intercept_rule(self, body: dict[str, Any]) -> dict[str, Any]:
        rule = self.rules.get(str(body.get("rule_id")))
        if rule is None or ("word_list" in body and not self._check_words(body["word_list"])):
            return _err(40058, "rule_id not found, or word_list not 1-300 words")
        if body.get("rule_name"):
            rule["rule_name"] = body["rule_name"]
        if "word_list" in body:
            rule["word_list"] = list(body["word_list"])
        return _ok()

    def _api_del_intercept_rule(self, body: dict[str, Any]) -> dict[str, Any]:
        return _ok() if self.rules.pop(str(body.get("rule_id")), None) else _err(40058, "rule_id not found")

    def _api_get_corp_tag_list(self, body: dict[str, Any]) -> dict[str, Any]:
        return _ok(tag_group=[dict(g, tag=[dict(t) for t in g["tag"]]) for g in self.tag_groups])

    def _api_add_corp_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        name = str(body.get("group_name") or "")
        group = next((g for g in self.tag_groups if g["group_name"] == name), None)
        if group is None:
            group = {"group_id": self.new_id("etg"), "group_name": name, "create_time": int(time.time()), "tag": []}
            self.tag_groups.append(group)
        added = []
        for t in body.get("tag") or []:
            tag = {"id": self.new_id("et"), "name": t["name"], "create_time": int(time.time())}
            group["tag"].append(tag)
            added.append(tag)
        return _ok(tag_group={"group_id": group["group_id"], "group_name": name, "tag": added})

    def _api_mark_tag(self, body: dict[str, Any]) -> dict[str, Any]:
        known = {t["id"] for g in self.tag_groups for t in g["tag"]}
        if any(t not in known for t in (body.get("add_tag") or []) + (body.get("remove_tag") or [])):
            return _err(40068, "invalid tagid")
        if not body.get("userid") or not body.get("external_userid"):
            return _err(40058, "userid and external_userid are required")
        self.marks.append(body)
        return _ok()

    def _api_get(self, query: dict[str, Any]) -> dict[str, Any]:
        userid = str(query.get("external_userid") or "")
        contact = self.contacts.get(userid)
        if contact is None:
            owners = [g.owner for g in self.groups.values() if userid in g.members]
            if not owners:
                return _err(84061, "not external contact")
            contact = {"name": userid, "follow_user": [{"userid": owners[0]}]}
        return _ok(
            external_contact={
                "external_userid": userid,
                "name": contact["name"],
                "type": 1,
                "gender": contact.get("gender", 0),
            },
            follow_user=[dict(f) for f in contact["follow_user"]],
        )

    def _api_add_moment_task(self, body: dict[str, Any]) -> dict[str, Any]:
        return _ok(jobid=self.new_id("job"))


def callback_request(
    crypto: WeComCrypto, xml: str, *, timestamp: int | None = None, nonce: str | None = None
) -> tuple[dict[str, str], str]:
    """The query and body of the POST WeCom makes for the event ``xml``."""
    body = crypto.callback_body(xml)
    encrypted = body.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
    ts = str(timestamp or int(time.time()))
    nonce = nonce or str(secrets.randbelow(10**9))
    return {"msg_signature": signature(crypto.token, ts, nonce, encrypted), "timestamp": ts, "nonce": nonce}, body


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(fake: FakeWeCom) -> Iterator[str]:
    """Run ``fake`` on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(fake.app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the fake WeCom server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
