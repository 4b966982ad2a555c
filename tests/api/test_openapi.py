"""The OpenAPI document describes /api/v1, its security schemes and error shapes."""

from __future__ import annotations

import threading

from fastapi.testclient import TestClient

from tests.api.conftest import World

EXPECTED_PATHS = {
    "/api/v1/auth/tokens": {"post"},
    "/api/v1/auth/tokens/current": {"delete"},
    "/api/v1/me": {"get"},
    "/api/v1/groups": {"get", "post"},
    "/api/v1/groups/{group_id}": {"get", "patch"},
    "/api/v1/groups/{group_id}/members": {"get"},
    "/api/v1/groups/{group_id}/memberships": {"get"},
    "/api/v1/groups/{group_id}/assignments": {"get", "put"},
    "/api/v1/members": {"get"},
    "/api/v1/members/{member_id}": {"get", "patch"},
    "/api/v1/members/{member_id}/memberships": {"get"},
    "/api/v1/members/{member_id}/tags/{tag_id}": {"put", "delete"},
    "/api/v1/tags": {"get", "post"},
    "/api/v1/tags/{tag_id}": {"get"},
    "/api/v1/channels": {"get", "post"},
    "/api/v1/channels/{channel_id}": {"get", "patch"},
    "/api/v1/events": {"get", "post"},
    "/api/v1/events/{event_id}": {"get"},
    "/api/v1/staff": {"get", "post"},
    "/api/v1/staff/{staff_id}": {"get"},
    "/api/v1/audit": {"get"},
    "/api/v1/audit/{entry_id}": {"get"},
    "/healthz": {"get"},
}


def test_openapi_lists_the_api(anon: TestClient) -> None:
    response = anon.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    for path, methods in EXPECTED_PATHS.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    # Console pages are not part of the API description.
    assert "/login" not in paths and "/" not in paths
    assert set(document["components"]["securitySchemes"]) == {"bearer", "session"}
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    ingest = paths["/api/v1/events"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(ingest)


def test_a_fresh_app_serves_health_and_the_document(database_url: str) -> None:
    from qunyun.api.app import create_app

    with TestClient(create_app()) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/openapi.json").status_code == 200
        # Swagger UI is served from an installed package (offline), in every environment.
        assert client.get("/docs").status_code == 200


def test_unknown_api_path_is_a_json_404(anon: TestClient, world: World) -> None:
    response = anon.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    # An anonymous write is refused before anything else (its body is never read) …
    assert anon.put("/api/v1/me").status_code == 401
    # … and a signed-in caller learns that the method is wrong.
    wrong_method = anon.put("/api/v1/me", headers=world.headers("lead"))
    assert wrong_method.status_code == 405 and wrong_method.json()["code"] == "method_not_allowed"


def test_the_app_runs_in_process_workers_for_its_lifetime(database_url: str) -> None:
    from qunyun.api.app import create_app

    app = create_app(in_process_workers=1)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        workers = [t for t in threading.enumerate() if t.name.startswith("qunyun")]
        assert workers, "the lifespan starts the in-process worker"
    assert not [t for t in threading.enumerate() if t.name.startswith("qunyun") and t.is_alive()]
