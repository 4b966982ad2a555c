"""Out-of-range numbers and bad input: 404 or 422 naming the field, never 500, on every route;
validation messages in English by default and in Chinese on request.

The integer parameters are read from the application's own route table, so a new route is
covered (and must declare bounds) without touching this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from annotated_types import Ge, Le
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from tests.api.conftest import World, console_login

INT64_MAX = 2**63 - 1
API = "/api/v1"


@dataclass(frozen=True)
class IntParam:
    method: str
    path: str
    where: str  # "path" or "query"
    name: str
    ge: int | None
    le: int | None

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.where}:{self.name}"


def _params(dependant: Any) -> Iterator[tuple[str, Any]]:
    yield from (("path", p) for p in dependant.path_params)
    yield from (("query", p) for p in dependant.query_params)
    for sub in dependant.dependencies:
        yield from _params(sub)


def _is_int(annotation: Any) -> bool:
    return annotation is int or int in getattr(annotation, "__args__", ())


def integer_params(routes: list[Any]) -> list[IntParam]:
    """Every integer path and query parameter of the API routes, with its declared bounds."""
    found: list[IntParam] = []
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not str(context.path).startswith(API):
            continue
        for where, param in _params(route.dependant):
            if not _is_int(param.field_info.annotation):
                continue
            metadata = param.field_info.metadata
            ge = next((m.ge for m in metadata if isinstance(m, Ge)), None)
            le = next((m.le for m in metadata if isinstance(m, Le)), None)
            for method in sorted(context.methods or ()):
                found.append(IntParam(method, str(context.path), where, param.alias, ge, le))
    return found


def _api_routes() -> list[Any]:
    from qunyun.api.app import api_router

    router = APIRouter()
    router.include_router(api_router())
    return list(router.routes)


PARAMS = integer_params(_api_routes())
PATH_PARAMS = [p for p in PARAMS if p.where == "path"]
QUERY_PARAMS = [p for p in PARAMS if p.where == "query"]

# A real object for each path parameter, for requests that test another parameter of the route.
VALID_IDS = {
    "group_id": ("groups", "g1"),
    "member_id": ("members", "m1"),
    "tag_id": ("tags", "vip"),
    "channel_id": ("channels", "sms"),
    "staff_id": ("staff", "lead"),
    "event_id": ("events", "join-g1-m1"),
    # The world holds no live code: any id is a missing one, answered 404 whatever the rest.
    "live_code_id": ("groups", "g1"),
}


def _url(world: World, param: IntParam, value: int | None = None) -> str:
    path = param.path
    for name, (kind, key) in VALID_IDS.items():
        replacement = value if (param.where == "path" and name == param.name) else getattr(world, kind)[key]
        path = path.replace("{" + name + "}", str(replacement))
    if param.where == "path" and "{" + param.name + "}" in path:
        path = path.replace("{" + param.name + "}", str(value))
    assert "{" not in path, f"add a valid id for {path} to VALID_IDS"
    return path


def _request(client: TestClient, world: World, method: str, url: str, **params: Any) -> Any:
    body = {"assignments": []} if method == "PUT" and url.endswith("/assignments") else {}
    if method == "POST" and url.endswith("/spend"):
        body = {"day": "2026-03-03"}
    # Live code routes with a required body get a valid one, so that the path decides.
    if method == "PUT" and url.endswith("/fallback-image"):
        body = {"image_base64": None}
    if method == "POST" and url.endswith("/qr-images"):
        body = {"image_base64": "iVBORw0KGgo="}
    if method == "POST" and url.startswith(f"{API}/livecodes/") and url.endswith("/groups"):
        body = {"group_id": world.groups["g1"]}
    json_body = body if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, url, params=params, json=json_body, headers=world.headers("lead"))


def test_the_route_table_has_integer_parameters_and_the_app_serves_them(api_app: FastAPI) -> None:
    # The list this file parametrizes over is the one the running application serves.
    assert {str(p) for p in integer_params(list(api_app.routes))} == {str(p) for p in PARAMS}
    assert len(PATH_PARAMS) >= 15 and len(QUERY_PARAMS) >= 15


@pytest.mark.parametrize("param", PARAMS, ids=str)
def test_every_integer_parameter_is_bounded_by_a_64_bit_integer(param: IntParam) -> None:
    assert param.ge is not None and param.le is not None, f"{param}: declare bounds (api/pagination.py)"
    assert param.ge >= -(INT64_MAX + 1) and param.le <= INT64_MAX


@pytest.mark.parametrize("param", PATH_PARAMS, ids=str)
def test_an_id_out_of_range_in_the_path_is_404(client: TestClient, world: World, param: IntParam) -> None:
    assert param.ge is not None and param.le is not None
    for value in (param.ge - 1, -1, 0, param.le, param.le + 1, 2**31, 2**63, 2**64, 10**30):
        response = _request(client, world, param.method, _url(world, param, value))
        assert response.status_code == 404, (value, response.text)
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("param", QUERY_PARAMS, ids=str)
def test_a_query_number_out_of_range_is_422_naming_it(client: TestClient, world: World, param: IntParam) -> None:
    assert param.ge is not None and param.le is not None
    url = _url(world, param)
    for value in (param.ge - 1, param.le + 1, 2**63, 2**64, -(2**63) - 1, 10**30):
        response = _request(client, world, param.method, url, **{param.name: value})
        assert response.status_code == 422, (value, response.text)
        body = response.json()
        assert body["field"] == param.name and param.name in body["message"]
    # The extremes of the range are answered, not crashed on (SQLite and PostgreSQL alike).
    for value in (param.ge, param.le):
        response = _request(client, world, param.method, url, **{param.name: value})
        assert response.status_code in (200, 404), (value, response.text)


def test_the_largest_offset_and_cursor_give_empty_pages(client: TestClient, world: World) -> None:
    for path in ("/groups", "/members", "/tags", "/channels", "/staff"):
        response = client.get(API + path, params={"offset": INT64_MAX}, headers=world.headers("lead"))
        assert response.status_code == 200, response.text
        assert response.json()["items"] == [] and response.json()["offset"] == INT64_MAX
    for path in ("/events", "/audit"):
        response = client.get(API + path, params={"cursor": INT64_MAX}, headers=world.headers("lead"))
        assert response.status_code == 200, response.text
        assert response.json() == {"items": [], "next_cursor": None}


def test_an_id_out_of_range_in_a_body_is_422(client: TestClient, world: World) -> None:
    body = {"external_id": "big", "name": "Big", "community_id": 2**31}
    response = client.post(f"{API}/groups", json=body, headers=world.headers("lead"))
    assert response.status_code == 422
    assert response.json()["field"] == "community_id"
    assert response.json()["message"] == "community_id: must be at most 2147483647"
    assignments = {"assignments": [{"staff_id": 2**63}]}
    response = client.put(
        f"{API}/groups/{world.groups['g1']}/assignments", json=assignments, headers=world.headers("lead")
    )
    assert response.status_code == 422 and response.json()["field"] == "assignments.0.staff_id"


# -- the safety net ------------------------------------------------------------------------


def test_a_number_the_database_cannot_hold_is_422_not_500(world: World) -> None:
    """A route that forgot its bounds: SQLite raises OverflowError past 2^63 - 1, PostgreSQL
    "integer out of range" past 2^31 - 1; either is bad input."""
    from sqlalchemy import select

    from qunyun.api.errors import install_error_handlers
    from qunyun.models import Group

    app = FastAPI()
    install_error_handlers(app)

    @app.get("/api/v1/unbounded/{number}")
    def unbounded(number: int) -> dict[str, Any]:
        with world.db() as s:
            return {"found": s.scalar(select(Group.id).where(Group.id == number))}

    with TestClient(app, raise_server_exceptions=False) as c:
        assert c.get("/api/v1/unbounded/1").status_code == 200
        response = c.get(f"/api/v1/unbounded/{2**64}")
        assert response.status_code == 422, response.text
        assert response.json() == {
            "code": "invalid_input",
            "message": "a value in the request is out of the supported range",
        }
        chinese = c.get(f"/api/v1/unbounded/{2**64}", headers={"Accept-Language": "zh-CN"})
        assert chinese.json()["message"] == "请求中的数值超出了支持的范围"


# -- stats dates ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "9999-12-25"}, "from"),
        ({"from": "9999-12-25", "to": "9999-12-31"}, "from"),
        ({"from": "0001-01-01"}, "from"),
        ({"from": "0001-01-01", "to": "0001-01-07", "period": "weekly"}, "from"),
        ({"from": "2026-01-01", "to": "9999-12-31", "period": "weekly"}, "to"),
        ({"from": "1969-12-31", "to": "1970-01-01"}, "from"),
    ],
)
def test_stats_at_the_ends_of_the_calendar_are_422(
    client: TestClient, world: World, query: dict[str, str], field: str
) -> None:
    console_login(client, "lead")
    for path in ("/stats", "/stats/export"):
        response = client.get(path, params=query)
        assert response.status_code == 422, response.text
        assert f"{field} 须为 1970-01-01 至 9998-12-31 之间的日期" in response.text


@pytest.mark.parametrize("period", ["daily", "weekly"])
@pytest.mark.parametrize(("first", "last"), [("1970-01-01", "1970-01-20"), ("9998-12-01", "9998-12-31")])
def test_stats_at_the_ends_of_the_supported_range_work(
    client: TestClient, world: World, period: str, first: str, last: str
) -> None:
    console_login(client, "lead")
    response = client.get("/stats/export", params={"period": period, "from": first, "to": last, "format": "csv"})
    assert response.status_code == 200, response.text


def test_stats_range_errors_are_in_the_readers_language(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    backwards = client.get("/stats", params={"from": "2026-03-02", "to": "2026-03-01"})
    assert backwards.status_code == 422 and "结束日期不能早于开始日期" in backwards.text
    too_long = client.get("/stats", params={"from": "2000-01-01", "to": "2026-03-01"})
    assert too_long.status_code == 422 and "日期范围最长 3660 天" in too_long.text
    client.cookies.set("lang", "en")
    english = client.get("/stats", params={"from": "2026-03-02", "to": "2026-03-01"})
    assert "the end date is before the start date" in english.text


# -- validation messages -------------------------------------------------------------------

LONG_NAME = "x" * 201


def _validation_cases(world: World) -> list[tuple[str, str, dict[str, Any], str, str, str, str]]:
    """(method, path, request kwargs, field, pydantic type, English, Chinese)."""
    g1 = world.groups["g1"]
    group = {"external_id": "new", "name": "New"}
    return [
        ("POST", "/groups", {"json": {"name": "New"}}, "external_id", "missing",
         "external_id: is required", "external_id：必填"),
        ("POST", "/groups", {"json": {**group, "name": LONG_NAME}}, "name", "string_too_long",
         "name: may be at most 200 characters", "name：最多 200 个字符"),
        ("POST", "/groups", {"json": {**group, "name": ""}}, "name", "string_too_short",
         "name: may not be empty", "name：不能为空"),
        ("POST", "/staff", {"json": {"username": "a", "password": "long enough pw", "role": "operator"}}, "username",
         "string_too_short", "username: must be at least 2 characters", "username：至少 2 个字符"),
        ("POST", "/groups", {"json": {**group, "capacity": 0}}, "capacity", "greater_than_equal",
         "capacity: must be at least 1", "capacity：不能小于 1"),
        ("POST", "/groups", {"json": {**group, "capacity": 100_001}}, "capacity", "less_than_equal",
         "capacity: must be at most 100000", "capacity：不能大于 100000"),
        ("POST", "/groups", {"json": {**group, "capacity": "many"}}, "capacity", "int_parsing",
         "capacity: must be a whole number", "capacity：须为整数"),
        ("POST", "/groups", {"json": {**group, "capacity": 1.5}}, "capacity", "int_from_float",
         "capacity: must be a whole number, without a fraction", "capacity：须为整数，不能带小数"),
        ("POST", "/groups", {"json": {**group, "colour": "red"}}, "colour", "extra_forbidden",
         "colour: is not a known field", "colour：不是可识别的字段"),
        ("POST", "/groups", {"json": {**group, "status": "sleeping"}}, "status", "enum",
         "status: must be one of 'active', 'full', 'archived', 'dismissed'",
         "status：须为以下之一：'active', 'full', 'archived', 'dismissed'"),
        ("POST", "/groups", {"json": {**group, "platform": "We Com"}}, "platform", "string_pattern_mismatch",
         "platform: has characters that are not allowed (it must match ^[a-z0-9_-]+$)",
         "platform：包含不允许的字符（须匹配 ^[a-z0-9_-]+$）"),
        ("POST", "/groups", {"content": b"{not json", "headers": {"Content-Type": "application/json"}}, "body",
         "json_invalid", "body: the body is not valid JSON", "body：请求体不是有效的 JSON"),
        ("PATCH", f"/groups/{g1}", {"json": {"name": None}}, "name", "not_null",
         "name: may not be null; omit it to keep the current value", "name：不能为 null；如不修改请省略该字段"),
        ("PUT", f"/groups/{g1}/assignments", {"json": {"assignments": "all"}}, "assignments", "list_type",
         "assignments: must be a list", "assignments：须为列表"),
        ("PUT", f"/groups/{g1}/assignments", {"json": {"assignments": [{"staff_id": 1}] * 201}}, "assignments",
         "too_long", "assignments: may have at most 200 items", "assignments：最多 200 项"),
        ("PUT", f"/groups/{g1}/assignments", {"json": {"assignments": [{"staff_id": 1, "role": "boss"}]}},
         "assignments.0.role", "literal_error", "assignments.0.role: must be one of 'owner', 'admin', 'operator'",
         "assignments.0.role：须为以下之一：'owner', 'admin', 'operator'"),
        ("PUT", f"/groups/{g1}/assignments", {"json": {"assignments": ["x"]}}, "assignments.0", "model_attributes_type",
         "assignments.0: must be an object", "assignments.0：须为对象"),
        ("POST", "/tags", {"json": {"name": "   "}}, "name", "blank", "name: may not be empty", "name：不能为空"),
        ("POST", "/channels", {"json": {"code": "c", "name": "C", "cost_per_touch": "0.001"}}, "cost_per_touch",
         "decimal_max_places", "cost_per_touch: may have at most 2 decimal places", "cost_per_touch：最多 2 位小数"),
        ("GET", "/members", {"params": {"current": "maybe"}}, "current", "bool_parsing",
         "current: must be true or false", "current：须为 true 或 false"),
        ("GET", "/events", {"params": {"since": "yesterday"}}, "since", "datetime_from_date_parsing",
         "since: must be a date and time (ISO 8601, e.g. 2026-03-01T08:00:00+08:00)",
         "since：须为日期时间（ISO 8601，例如 2026-03-01T08:00:00+08:00）"),
        ("GET", "/groups", {"params": {"q": "x" * 101}}, "q", "string_too_long",
         "q: may be at most 100 characters", "q：最多 100 个字符"),
    ]  # fmt: skip


def test_validation_messages_in_english_by_default_and_chinese_on_request(client: TestClient, world: World) -> None:
    for method, path, kwargs, field, error_type, english, chinese in _validation_cases(world):
        headers = {**world.headers("lead"), **kwargs.pop("headers", {})}
        for accept, message in ((None, english), ("zh-CN,zh;q=0.9", chinese)):
            sent = {**headers, "Accept-Language": accept} if accept else headers
            response = client.request(method, API + path, headers=sent, **kwargs)
            assert response.status_code == 422, (path, response.text)
            body = response.json()
            assert set(body) == {"code", "message", "field", "detail"}
            assert body["code"] == "invalid_input" and body["field"] == field, body
            assert body["message"] == message, body
            first = body["detail"]["errors"][0]
            assert first["field"] == field and first["type"] == error_type, first
            assert f"{field}{'：' if accept else ': '}{first['message']}" == message


def test_every_problem_is_listed_in_detail(client: TestClient, world: World) -> None:
    body = {"external_id": "", "name": LONG_NAME, "capacity": 0}
    response = client.post(f"{API}/groups", json=body, headers={**world.headers("lead"), "Accept-Language": "zh"})
    errors = response.json()["detail"]["errors"]
    assert [(e["field"], e["message"]) for e in errors] == [
        ("external_id", "不能为空"),
        ("name", "最多 200 个字符"),
        ("capacity", "不能小于 1"),
    ]


def test_an_unknown_problem_keeps_pydantics_text(client: TestClient, world: World) -> None:
    from qunyun.api.errors import problem_message

    assert problem_message("uuid_parsing", {}, "Input should be a valid UUID").render("en") == (
        "Input should be a valid UUID"
    )
    assert problem_message("uuid_parsing", {}, "Input should be a valid UUID").render("zh") == (
        "取值无效（Input should be a valid UUID）"
    )


def test_api_errors_raised_by_our_code_are_localized(client: TestClient, world: World) -> None:
    zh = {**world.headers("owner"), "Accept-Language": "zh-CN"}
    response = client.get(f"{API}/groups/{world.groups['g3']}", headers=zh)
    assert response.status_code == 404 and response.json()["message"] == f"群 {world.groups['g3']} 不存在"
    response = client.get(f"{API}/members/{world.members['m4']}", headers=world.headers("owner"))
    assert response.json()["message"] == f"no member {world.members['m4']}"
    body = {"owner_id": world.staff["admin"]}
    response = client.patch(f"{API}/groups/{world.groups['g1']}", json=body, headers=zh)
    assert response.status_code == 403 and response.json()["message"] == "仅总群主可执行此操作"
    response = client.get(f"{API}/staff/{2**31 - 1}", headers={**world.headers("lead"), "Accept-Language": "zh"})
    assert response.status_code == 404 and response.json()["message"] == f"员工 {2**31 - 1} 不存在"
    response = client.get(f"{API}/audit", params={"since": "2026-03-01T08:00:00"}, headers=world.headers("lead"))
    assert response.status_code == 422
    assert response.json()["message"] == "since needs a time zone offset, e.g. 2026-03-01T08:00:00+08:00"


# -- the console ---------------------------------------------------------------------------


def test_the_console_shows_validation_errors_in_chinese(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    response = client.get("/communities/abc")
    assert response.status_code == 422
    assert "community_id：须为整数" in response.text
    # An id no row can have names nothing.
    assert client.get(f"/communities/{2**63}").status_code == 404
    assert client.get(f"/communities/{2**31}/edit").status_code == 404
    assert client.get(f"/groups/{2**63}").status_code == 404
    assert client.get(f"/members/{2**64}").status_code == 404
