"""Health, readiness and the API description: open to anyone, and true to the app."""

from __future__ import annotations

import time
from typing import Any

from starlette.routing import Route
from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from agentledger.interfaces.http.app import OPERATIONS
from agentledger.interfaces.mcp.endpoint import PATH as MCP_PATH
from tests.api.helpers import TRACE, agent, start
from tests.support.helpers import wait_until

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


def ready(client: TestClient, deadline_seconds: float = 3.0) -> Any:
    """Readiness right after start-up may lag the runner threads by a moment: poll briefly."""
    deadline = time.monotonic() + deadline_seconds
    response = client.get("/readyz")
    while response.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
        response = client.get("/readyz")
    return response


def test_healthz_needs_no_token(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers[TRACE]


def test_readyz_lists_running_projections(runtime: Runtime, client: TestClient) -> None:
    created = start(client, agent(runtime, "alice"))
    response = ready(client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["store"]) == ("ready", "reachable")
    projections = {p["name"]: p for p in body["runners"]}
    assert set(projections) == {
        "sessions_v3",
        "tokens_v1",
        "projects_v1",
        "selections_v1",
        "entries_v2",
        "work_items_v4",
        "approvals_v1",
        "handovers_v1",
        "messages_v1",
        "agents_v1",
        "timeline_v1",
        "seal_v1",
        "policy_archived_project_clears_selections",
        "policy_session_end_releases_claims",
    }
    assert {p["kind"] for p in projections.values()} == {"projection", "policy"}
    for projection in projections.values():
        assert projection["state"] in ("catching-up", "running"), projection
        assert projection["last_error"] is None
        assert projection["lag"] >= 0
    # Catching up is quick: both read models soon reach the session just written.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        positions = [p["position"] for p in client.get("/readyz").json()["runners"]]
        if min(positions) >= created["position"]:
            break
        time.sleep(0.02)
    assert min(positions) >= created["position"]
    # Once caught up, every runner says so (readiness is already 200 while catching up).
    wait_until(
        lambda: {p["state"] for p in client.get("/readyz").json()["runners"]} == {"running"},
        timeout=5,
    )


def test_readyz_is_503_when_projections_are_not_running(
    runtime: Runtime, client: TestClient
) -> None:
    assert ready(client).status_code == 200
    runtime.runners.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not-ready"
    assert {p["state"] for p in body["runners"]} == {"stopped"}


def operations_in(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def refs_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in refs_in(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in refs_in(value)]
    return []


def test_openapi_describes_exactly_the_apps_routes(client: TestClient) -> None:
    response = client.get("/openapi.json")  # no token needed
    assert response.status_code == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    assert doc["info"]["title"] == "AgentLedger"

    documented = operations_in(doc)
    declared = {(op.method.upper(), op.path) for op in OPERATIONS}
    starlette_app = client.app.app  # type: ignore[attr-defined]  # inside the trace middleware
    assert all(isinstance(route, Route) for route in starlette_app.routes)
    served = {
        (method, route.path)
        for route in starlette_app.routes
        if isinstance(route, Route)
        for method in (route.methods or set())
        if method != "HEAD"  # added by Starlette to every GET
    }
    # /mcp speaks MCP (JSON-RPC), not the REST operations the document describes (docs/mcp.md).
    mcp = {(method, MCP_PATH) for method in ("GET", "POST", "DELETE")}
    assert mcp <= served
    assert documented == declared == served - mcp
    assert len(declared) == len(OPERATIONS)  # no operation declared twice
    assert ("POST", "/v1/sessions/{session_id}/heartbeat") in documented

    operation_ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(operation_ids) == len(set(operation_ids))


def test_openapi_schemas_are_all_defined(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    prefix = "#/components/schemas/"

    with_body = [op for op in OPERATIONS if op.body is not None]
    assert with_body, "the app has operations with a body"
    for op in with_body:
        spec = doc["paths"][op.path][op.method.lower()]
        schema = spec["requestBody"]["content"]["application/json"]["schema"]
        assert schema["$ref"] == prefix + op.body.__name__
        assert op.body.__name__ in schemas
        assert schemas[op.body.__name__].get("additionalProperties") is False  # unknown -> 422

    for op in OPERATIONS:
        spec = doc["paths"][op.path][op.method.lower()]
        if op.body is None:
            assert "requestBody" not in spec
        if op.response is not None:
            ok = spec["responses"][str(op.status)]["content"]["application/json"]["schema"]
            assert ok["$ref"] == prefix + op.response.__name__
        if op.authenticated:
            assert spec["security"] == [{"bearer": []}]
            assert "401" in spec["responses"]

    for ref in refs_in(doc):
        assert ref.startswith(prefix), ref
        assert ref.removeprefix(prefix) in schemas, f"dangling {ref}"
    assert "bearer" in doc["components"]["securitySchemes"]
