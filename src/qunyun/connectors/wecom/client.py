"""A WeCom server API client on httpx (企业微信 服务端 API, 客户联系).

- The access_token comes from :class:`~qunyun.connectors.wecom.tokens.TokenCache` (shared by
  processes through the database); 40014 (invalid) and 42001 (expired) refresh it once and
  repeat the call.
- -1 (system busy), 45009 (API frequency limit) and 45033 (concurrency limit) are retried with
  exponential backoff; when they persist the call raises :class:`WeComBusy`, a
  :class:`~qunyun.connectors.base.TransientError` (the dispatcher retries later with the same key).
- Every other non-zero errcode raises :class:`WeComApiError` with the code, WeCom's errmsg and
  what it means in words (``wecom.err.<code>`` in the locale catalogues).
- Each API has its own rate limit in this process (:class:`RateLimiter`), below WeCom's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import httpx

from qunyun.connectors.base import TransientError
from qunyun.connectors.pace import LocalWindows, Windows
from qunyun.connectors.wecom.tokens import TokenCache
from qunyun.errors import QunyunError
from qunyun.locale import Msg, catalogue

DEFAULT_BASE = "https://qyapi.weixin.qq.com"
TOKEN_ERRORS = frozenset({40014, 42001})
BUSY_ERRORS = frozenset({-1, 45009, 45033})
# Codes whose meaning the catalogues spell out (others show WeCom's errmsg).
KNOWN_ERRORS = frozenset(
    {
        -1,
        40001,
        40003,
        40013,
        40014,
        40056,
        40058,
        40096,
        41001,
        41004,
        41051,
        41096,
        42001,
        45009,
        45033,
        48002,
        60011,
        84061,
    }
)
MAX_RETRIES = 3
BACKOFF = 0.2  # seconds; doubled each retry

# Calls per second per API in this process (WeCom's own limits are per corp and higher).
RATE_LIMITS: dict[str, float] = {"default": 50.0, "externalcontact/add_msg_template": 10.0}


def describe(errcode: int, errmsg: str) -> Msg:
    """What an errcode means, in words (the catalogue's text, else WeCom's errmsg)."""
    key = f"wecom.err.{errcode}"
    if errcode in KNOWN_ERRORS and key in catalogue("en"):
        return Msg(key, code=errcode)
    return Msg("wecom.err.other", code=errcode, errmsg=errmsg[:200])


class WeComApiError(QunyunError):
    """WeCom answered a non-zero errcode (not a temporary one)."""

    status_code = 502
    code = "wecom_api_error"

    def __init__(self, api: str, errcode: int, errmsg: str) -> None:
        super().__init__(describe(errcode, errmsg), api=api, errcode=errcode)
        self.api = api
        self.errcode = errcode
        self.errmsg = errmsg


class WeComBusy(TransientError):
    """WeCom stayed busy or rate-limited (-1, 45009, 45033) through every retry, or was unreachable."""

    def __init__(self, api: str, errcode: int | None, detail: str) -> None:
        super().__init__(f"{api}: {errcode if errcode is not None else 'network'} {detail}")
        self.api = api
        self.errcode = errcode


class RateLimiter:
    """At most ``rate`` calls a second per API (a one-second sliding window each), in
    :mod:`~qunyun.connectors.pace` windows: this process's own, or Redis's (shared by every worker
    process of the corp) with ``QUNYUN_REDIS_URL``; ``prefix`` names the corp there."""

    def __init__(
        self, limits: dict[str, float] | None = None, *, windows: Windows | None = None, prefix: str = "wecom:"
    ) -> None:
        self.limits = dict(limits or RATE_LIMITS)
        self.windows = windows or LocalWindows()
        self.prefix = prefix

    def wait(self, api: str) -> None:
        rate = self.limits.get(api, self.limits.get("default", 50.0))
        while (delay := self.windows.take(self.prefix + api, max(int(rate), 1), 1.0)) > 0:
            time.sleep(delay)


class WeComClient:
    """One corp app's API (corp id + secret), against ``api_base``."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        tokens: TokenCache,
        *,
        api_base: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.corp_id = corp_id
        self._secret = secret
        self.tokens = tokens
        self.base = (api_base or DEFAULT_BASE).rstrip("/")
        self.http = httpx.Client(base_url=self.base + "/cgi-bin/", timeout=timeout, transport=transport)
        self.sleep = sleep
        self.limiter = limiter or RateLimiter()

    def __repr__(self) -> str:  # no secret in logs
        return f"WeComClient(corp_id={self.corp_id!r}, base={self.base!r})"

    def close(self) -> None:
        self.http.close()

    def __del__(self) -> None:  # a connector dropped by the registry closes its connections
        try:
            self.http.close()
        except Exception:  # at interpreter exit contextlib's names may be gone already
            return

    # -- transport -----------------------------------------------------------------------------

    def _send(self, method: str, api: str, params: dict[str, Any], body: dict[str, Any] | None) -> dict[str, Any]:
        self.limiter.wait(api)
        try:
            response = self.http.request(method, api, params=params, json=body)
        except httpx.HTTPError as exc:
            raise WeComBusy(api, None, type(exc).__name__) from None
        if response.status_code >= 500:
            raise WeComBusy(api, None, f"HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise WeComBusy(api, None, f"HTTP {response.status_code}: not JSON") from None
        if not isinstance(data, dict):
            raise WeComBusy(api, None, "not a JSON object")
        return data

    def fetch_token(self) -> tuple[str, int]:
        """gettoken: (access_token, expires_in); WeComApiError with the reason when refused."""
        data = self._retrying("gettoken", lambda: self._send("GET", "gettoken", self._credentials(), None))
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise WeComApiError(api="gettoken", errcode=-2, errmsg="no access_token in the answer")
        return token, int(data.get("expires_in") or 7200)

    def _credentials(self) -> dict[str, Any]:
        return {"corpid": self.corp_id, "corpsecret": self._secret}

    def _retrying(self, api: str, attempt: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        delay = BACKOFF
        for n in range(MAX_RETRIES + 1):
            data = attempt()
            code = int(data.get("errcode") or 0)
            if code == 0:
                return data
            if code in BUSY_ERRORS:
                if n == MAX_RETRIES:
                    raise WeComBusy(api, code, str(data.get("errmsg", ""))[:200])
                self.sleep(delay)
                delay *= 2
                continue
            raise WeComApiError(api, code, str(data.get("errmsg", "")))
        raise AssertionError("unreachable")

    def call(
        self, api: str, body: dict[str, Any] | None = None, *, method: str = "POST", query: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call ``api`` (the path after /cgi-bin/) with the token; the answer when errcode is 0."""
        token = self.tokens.current() or self.tokens.refresh(self.fetch_token)
        refreshed = False
        while True:
            used = token
            try:
                params = {**(query or {}), "access_token": used}
                return self._retrying(api, partial(self._send, method, api, params, body))
            except WeComApiError as exc:
                if exc.errcode not in TOKEN_ERRORS or refreshed:
                    raise
                token = self.tokens.refresh(self.fetch_token, rejected=used)
                refreshed = True

    # -- customer groups -------------------------------------------------------------------------

    def list_group_chats(self, *, limit: int = 1000, status_filter: int = 0) -> Iterator[dict[str, Any]]:
        """groupchat/list, every page (cursor paging): ``{"chat_id", "status"}`` per group."""
        cursor = ""
        while True:
            body: dict[str, Any] = {"status_filter": status_filter, "limit": limit}
            if cursor:
                body["cursor"] = cursor
            data = self.call("externalcontact/groupchat/list", body)
            yield from data.get("group_chat_list") or []
            cursor = str(data.get("next_cursor") or "")
            if not cursor:
                return

    def get_group_chat(self, chat_id: str) -> dict[str, Any]:
        """groupchat/get with need_name: the group, its members and member_version."""
        data = self.call("externalcontact/groupchat/get", {"chat_id": chat_id, "need_name": 1})
        return dict(data.get("group_chat") or {})

    def group_statistic_by_day(
        self, day_begin_time: int, owners: list[str], day_end_time: int | None = None
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"day_begin_time": day_begin_time, "owner_filter": {"userid_list": owners}}
        if day_end_time is not None:
            body["day_end_time"] = day_end_time
        return list(self.call("externalcontact/groupchat/statistic_group_by_day", body).get("items") or [])

    # -- join ways (live codes) --------------------------------------------------------------------

    def add_join_way(self, chat_ids: list[str], *, state: str, remark: str = "", scene: int = 2) -> str:
        body = {"scene": scene, "remark": remark[:30], "auto_create_room": 0, "chat_id_list": chat_ids, "state": state}
        return str(self.call("externalcontact/groupchat/add_join_way", body)["config_id"])

    def get_join_way(self, config_id: str) -> dict[str, Any]:
        return dict(self.call("externalcontact/groupchat/get_join_way", {"config_id": config_id}).get("join_way") or {})

    def update_join_way(
        self, config_id: str, chat_ids: list[str], *, state: str, remark: str = "", scene: int = 2
    ) -> None:
        body = {
            "config_id": config_id,
            "scene": scene,
            "remark": remark[:30],
            "auto_create_room": 0,
            "chat_id_list": chat_ids,
            "state": state,
        }
        self.call("externalcontact/groupchat/update_join_way", body)

    def del_join_way(self, config_id: str) -> None:
        self.call("externalcontact/groupchat/del_join_way", {"config_id": config_id})

    def add_contact_way(self, users: list[str], *, state: str, type_: int = 2, scene: int = 2) -> dict[str, Any]:
        body = {"type": type_, "scene": scene, "user": users, "state": state}
        return self.call("externalcontact/add_contact_way", body)

    # -- welcome -----------------------------------------------------------------------------------

    def add_group_welcome_template(self, text: str) -> str:
        data = self.call("externalcontact/group_welcome_template/add", {"text": {"content": text}, "notify": 1})
        return str(data["template_id"])

    def edit_group_welcome_template(self, template_id: str, text: str) -> None:
        self.call(
            "externalcontact/group_welcome_template/edit", {"template_id": template_id, "text": {"content": text}}
        )

    def send_welcome_msg(self, welcome_code: str, text: str) -> None:
        self.call("externalcontact/send_welcome_msg", {"welcome_code": welcome_code, "text": {"content": text}})

    # -- mass sends ----------------------------------------------------------------------------------

    def add_group_msg_template(
        self, sender: str, chat_ids: list[str], text: str, attachments: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """add_msg_template with chat_type group: a task for ``sender`` (the owner) to confirm."""
        body: dict[str, Any] = {"chat_type": "group", "sender": sender, "chat_id_list": chat_ids, "allow_select": False}
        if text:
            body["text"] = {"content": text}
        if attachments:
            body["attachments"] = attachments
        return self.call("externalcontact/add_msg_template", body)

    def get_groupmsg_list_v2(
        self, start_time: int, end_time: int, *, creator: str | None = None, filter_type: int | None = None
    ) -> list[dict[str, Any]]:
        """Group mass sends created between the times (at most a month apart), every page.
        ``filter_type`` 0: made by the enterprise (API or admin), 1: by staff, 2 or None: all.
        Mass sends made through the API carry no ``creator``."""
        out: list[dict[str, Any]] = []
        cursor = ""
        while True:
            body: dict[str, Any] = {"chat_type": "group", "start_time": start_time, "end_time": end_time, "limit": 100}
            if creator:
                body["creator"] = creator
            if filter_type is not None:
                body["filter_type"] = filter_type
            if cursor:
                body["cursor"] = cursor
            data = self.call("externalcontact/get_groupmsg_list_v2", body)
            out.extend(data.get("group_msg_list") or [])
            cursor = str(data.get("next_cursor") or "")
            if not cursor:
                return out

    def get_groupmsg_task(self, msgid: str) -> list[dict[str, Any]]:
        return self._paged("externalcontact/get_groupmsg_task", {"msgid": msgid}, "task_list")

    def get_groupmsg_send_result(self, msgid: str, userid: str) -> list[dict[str, Any]]:
        return self._paged("externalcontact/get_groupmsg_send_result", {"msgid": msgid, "userid": userid}, "send_list")

    def remind_groupmsg_send(self, msgid: str) -> None:
        self.call("externalcontact/remind_groupmsg_send", {"msgid": msgid})

    def cancel_groupmsg_send(self, msgid: str) -> None:
        self.call("externalcontact/cancel_groupmsg_send", {"msgid": msgid})

    def _paged(self, api: str, body: dict[str, Any], key: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = ""
        while True:
            page = dict(body, limit=1000)
            if cursor:
                page["cursor"] = cursor
            data = self.call(api, page)
            out.extend(data.get(key) or [])
            cursor = str(data.get("next_cursor") or "")
            if not cursor:
                return out

    # -- intercept rules -----------------------------------------------------------------------------

    def add_intercept_rule(self, name: str, words: list[str]) -> str:
        body = {
            "rule_name": name,
            "word_list": words,
            "intercept_type": 1,
            "applicable_range": {"department_list": [1]},
        }
        return str(self.call("externalcontact/add_intercept_rule", body)["rule_id"])

    def get_intercept_rule_list(self) -> list[dict[str, Any]]:
        # A GET in WeCom's documentation (the other intercept-rule APIs are POSTs).
        return list(self.call("externalcontact/get_intercept_rule_list", method="GET").get("rule_list") or [])

    def get_intercept_rule(self, rule_id: str) -> dict[str, Any]:
        return dict(self.call("externalcontact/get_intercept_rule", {"rule_id": rule_id}).get("rule") or {})

    def update_intercept_rule(self, rule_id: str, name: str, words: list[str]) -> None:
        self.call("externalcontact/update_intercept_rule", {"rule_id": rule_id, "rule_name": name, "word_list": words})

    def del_intercept_rule(self, rule_id: str) -> None:
        self.call("externalcontact/del_intercept_rule", {"rule_id": rule_id})

    # -- tags and contacts ---------------------------------------------------------------------------

    def get_corp_tag_list(self) -> list[dict[str, Any]]:
        return list(self.call("externalcontact/get_corp_tag_list", {}).get("tag_group") or [])

    def add_corp_tag(self, group_name: str, names: list[str]) -> list[dict[str, Any]]:
        body = {"group_name": group_name, "tag": [{"name": n} for n in names]}
        return list((self.call("externalcontact/add_corp_tag", body).get("tag_group") or {}).get("tag") or [])

    def mark_tag(self, userid: str, external_userid: str, add: list[str], remove: list[str]) -> None:
        body = {"userid": userid, "external_userid": external_userid, "add_tag": add, "remove_tag": remove}
        self.call("externalcontact/mark_tag", body)

    def get_external_contact(self, external_userid: str) -> dict[str, Any]:
        return self.call("externalcontact/get", method="GET", query={"external_userid": external_userid})

    def add_moment_task(self, text: str) -> str:
        return str(self.call("externalcontact/add_moment_task", {"text": {"content": text}})["jobid"])
