"""The OpenAPI document says what the server does: every header a handler reads and every
status a route can answer, for every operation (a new route needs its row here)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.requests import Request
from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.app import OPERATIONS, create_app
from agentledger.interfaces.http.call import HttpCall

CW, FENCE, IM, INM, ACCEPT, IK = (
    "AgentLedger-Consistent-With",
    "AgentLedger-Fence",
    "If-Match",
    "If-None-Match",
    "Accept",
    "Idempotency-Key",
)
ANY = {401, 422, 503}  # token, query parameters, the store
READ = ANY | {400}  # plus the Consistent-With header (and the cursor)
WRITE = ANY | {400, 413, 415}  # plus the body
SESSION_WRITE = (frozenset({IM}), WRITE | {200, 403, 404, 409, 412})
ITEM_WRITE = WRITE | {200, 403, 404, 409, 428}

# (method, path): (headers the handler reads, statuses the route can answer)
EXPECTED: dict[tuple[str, str], tuple[frozenset[str], set[int]]] = {
    ("GET", "/healthz"): (frozenset(), {200, 422}),
    ("GET", "/readyz"): (frozenset(), {200, 422, 503}),
    ("GET", "/openapi.json"): (frozenset(), {200, 422, 503}),
    ("GET", "/metrics"): (frozenset(), {200, 422, 503}),
    ("GET", "/v1/me"): (frozenset(), ANY | {200}),
    ("POST", "/v1/sessions"): (frozenset(), WRITE | {201, 403}),
    ("GET", "/v1/sessions"): (frozenset({CW}), READ | {200}),
    ("GET", "/v1/sessions/{session_id}"): (frozenset({CW}), READ | {200, 404}),
    ("PATCH", "/v1/sessions/{session_id}"): SESSION_WRITE,
    ("POST", "/v1/sessions/{session_id}/heartbeat"): SESSION_WRITE,
    ("POST", "/v1/sessions/{session_id}/activate"): SESSION_WRITE,
    ("POST", "/v1/sessions/{session_id}/complete"): SESSION_WRITE,
    ("POST", "/v1/sessions/{session_id}/fail"): SESSION_WRITE,
    ("POST", "/v1/projects"): (frozenset(), WRITE | {201, 403, 409}),
    ("GET", "/v1/projects"): (frozenset({CW}), READ | {200}),
    ("GET", "/v1/projects/{name}"): (frozenset({CW}), READ | {200, 404}),
    ("POST", "/v1/projects/{name}/archive"): (
        frozenset({IM}),
        WRITE | {200, 403, 404, 412},
    ),
    ("GET", "/v1/projects/{name}/status"): (frozenset({CW, ACCEPT}), READ | {200, 403, 404}),
    ("GET", "/v1/projects/{name}/status.md"): (frozenset({CW}), READ | {200, 403, 404}),
    ("GET", "/v1/agents/{agent_id}/project"): (frozenset({CW}), READ | {200, 404}),
    ("PUT", "/v1/agents/{agent_id}/project"): (
        frozenset({IM, INM}),
        WRITE | {200, 403, 404, 409, 412, 428},
    ),
    ("DELETE", "/v1/agents/{agent_id}/project"): (
        frozenset({IM, INM}),
        ANY | {200, 400, 403, 404, 412, 428},
    ),
    ("POST", "/v1/projects/{name}/entries"): (frozenset(), WRITE | {201, 403, 404, 409}),
    ("POST", "/v1/entries"): (frozenset(), WRITE | {201, 403, 404, 409}),
    ("GET", "/v1/projects/{name}/entries"): (frozenset({CW}), READ | {200, 404}),
    ("POST", "/v1/work-items"): (frozenset(), WRITE | {201, 403, 404, 409}),
    ("GET", "/v1/work-items"): (frozenset({CW}), READ | {200}),
    ("GET", "/v1/work-items/ready"): (frozenset({CW}), READ | {200, 404}),
    ("POST", "/v1/work-items/claim-next"): (frozenset(), WRITE | {201, 204, 403, 404, 409}),
    ("GET", "/v1/work-items/{id}"): (frozenset({CW}), READ | {200, 404}),
    ("PATCH", "/v1/work-items/{id}"): (frozenset({FENCE, IM}), ITEM_WRITE | {412}),
    ("POST", "/v1/work-items/{id}/transition"): (frozenset({FENCE, IM}), ITEM_WRITE | {412}),
    ("POST", "/v1/work-items/{id}/claim"): (frozenset({IM}), WRITE | {200, 403, 404, 409, 412}),
    ("POST", "/v1/work-items/{id}/release"): (frozenset({FENCE, IM}), ITEM_WRITE | {412}),
    ("POST", "/v1/work-items/{id}/archive"): (frozenset({FENCE, IM}), ITEM_WRITE | {412}),
    ("POST", "/v1/work-items/{id}/unarchive"): (frozenset({FENCE, IM}), ITEM_WRITE | {412}),
    ("GET", "/v1/work-items/{id}/readiness"): (frozenset({CW}), READ | {200, 404}),
    ("PUT", "/v1/work-items/{id}/dependencies/{other_id}"): (
        frozenset({FENCE, IM}),
        ITEM_WRITE | {201, 412},
    ),
    ("DELETE", "/v1/work-items/{id}/dependencies/{other_id}"): (
        frozenset({FENCE, IM}),
        ANY | {200, 400, 403, 404, 409, 412, 428},
    ),
    ("POST", "/v1/work-items/{id}/approvals"): (
        frozenset({FENCE, IM}),
        WRITE | {201, 403, 404, 409, 412, 428},
    ),
    ("GET", "/v1/approvals"): (frozenset({CW}), READ | {200}),
    ("GET", "/v1/approvals/{id}"): (frozenset({CW}), READ | {200, 404}),
    ("POST", "/v1/approvals/{id}/decision"): (frozenset(), WRITE | {200, 403, 404, 409}),
    ("POST", "/v1/work-items/{id}/handoff"): (frozenset({FENCE, IM}), ITEM_WRITE | {412}),
    ("POST", "/v1/work-items/{id}/handoff/accept"): (frozenset(), WRITE | {200, 403, 404, 409}),
    ("POST", "/v1/work-items/{id}/handoff/decline"): (frozenset(), WRITE | {200, 403, 404, 409}),
    ("POST", "/v1/work-items/{id}/park"): (frozenset({FENCE, IM}), ITEM_WRITE | {412}),
    ("POST", "/v1/work-items/{id}/resume"): (frozenset(), WRITE | {200, 403, 404, 409}),
    ("POST", "/v1/sessions/{session_id}/handover"): (
        frozenset({IM}),
        WRITE | {200, 201, 403, 404, 409, 412},
    ),
    ("GET", "/v1/handovers/{handover_id}"): (frozenset({CW}), READ | {200, 404}),
    ("GET", "/v1/agents/{agent_id}/handovers/latest"): (frozenset({CW}), READ | {200, 404}),
    ("GET", "/v1/projects/{name}/handovers"): (frozenset({CW}), READ | {200}),
    ("POST", "/v1/messages"): (frozenset(), WRITE | {201, 403, 404, 409}),
    ("GET", "/v1/messages/{message_id}"): (frozenset({CW}), READ | {200, 403, 404}),
    ("POST", "/v1/messages/{message_id}/read"): (frozenset(), WRITE | {200, 403, 404, 409}),
    ("POST", "/v1/messages/{message_id}/ack"): (frozenset(), WRITE | {200, 403, 404, 409}),
    ("GET", "/v1/agents/{agent_id}/inbox"): (frozenset({CW}), READ | {200, 403}),
    ("GET", "/v1/threads/{thread_id}"): (frozenset({CW}), READ | {200, 403, 404}),
    ("GET", "/v1/agents/{agent_id}/conversations/{other_agent_id}"): (
        frozenset({CW}),
        READ | {200, 403},
    ),
    ("GET", "/v1/agents/{agent_id}/requests/unanswered"): (frozenset({CW}), READ | {200, 403}),
    ("GET", "/v1/agents/{agent_id}/messages/unacked"): (frozenset({CW}), READ | {200, 403}),
    ("PUT", "/v1/agents/{agent_id}"): (frozenset({IM, INM}), WRITE | {200, 201, 403, 409, 412}),
    ("GET", "/v1/agents"): (frozenset({CW}), READ | {200}),
    ("GET", "/v1/agents/{agent_id}"): (frozenset({CW}), READ | {200, 404}),
    ("GET", "/v1/agents/{agent_id}/metrics"): (frozenset({CW}), READ | {200, 404}),
    ("GET", "/v1/sessions/{session_id}/timeline"): (frozenset({CW}), READ | {200, 403, 404}),
    ("GET", "/v1/events"): (frozenset(), READ | {200, 403}),
    ("GET", "/v1/audit/aggregates/{id}/history"): (frozenset(), ANY | {200, 403, 404}),
    ("GET", "/v1/audit/aggregates/{id}/state"): (frozenset(), READ | {200, 403, 404}),
    ("GET", "/v1/audit/verify"): (frozenset(), READ | {200, 403}),
    ("GET", "/v1/projections"): (frozenset(), ANY | {200, 403}),
    ("GET", "/v1/projections/{projection}/verification"): (frozenset(), ANY | {200, 403, 404}),
}

# Every write also takes an Idempotency-Key: 409 while the first request with it runs, 422
# when the key is reused for another request.
KEYED = {409, 422}
EXPECTED = {
    (method, path): (
        (headers | {IK}, statuses | KEYED)
        if method in {"POST", "PUT", "PATCH", "DELETE"}
        else (headers, statuses)
    )
    for (method, path), (headers, statuses) in EXPECTED.items()
}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The document as the app serves it, fetched once: it is the route table's, the same on
    either store (one runtime per operation tested spent 80 s of the suite building stores)."""
    rt = build_runtime(Settings(data_dir=tmp_path_factory.mktemp("openapi"), database_url=None))
    try:
        with TestClient(create_app(rt)) as client:
            response = client.get("/openapi.json")
        assert response.status_code == 200
        yield dict(response.json())
    finally:
        rt.close()


def test_every_operation_has_a_row() -> None:
    assert {(op.method, op.path) for op in OPERATIONS} == set(EXPECTED)


@pytest.mark.parametrize(("method", "path"), list(EXPECTED), ids=lambda v: str(v))
def test_the_document_declares_each_header_and_status(
    document: dict[str, Any], method: str, path: str
) -> None:
    headers, statuses = EXPECTED[(method, path)]
    spec = document["paths"][path][method.lower()]
    declared = {p["name"] for p in spec["parameters"] if p["in"] == "header"}
    assert declared == headers
    assert {int(s) for s in spec["responses"]} == statuses
    for param in spec["parameters"]:
        assert param["schema"], param  # every parameter has a format, not just "a string"


def test_preconditions_and_formats_are_declared(document: dict[str, Any]) -> None:
    def header(path: str, method: str, name: str) -> dict[str, Any]:
        params = document["paths"][path][method]["parameters"]
        return next(p for p in params if p["name"] == name)

    patch_if_match = header("/v1/work-items/{id}", "patch", IM)
    assert patch_if_match["required"] is True
    assert patch_if_match["schema"]["pattern"] == '^"[0-9]{1,18}"$'
    assert header("/v1/sessions/{session_id}", "patch", IM)["required"] is False
    fence = header("/v1/work-items/{id}/release", "post", FENCE)["schema"]
    assert fence["type"] == "integer" and fence["minimum"] == 0
    assert header("/v1/sessions", "get", CW)["schema"]["type"] == "integer"
    include = next(
        p
        for p in document["paths"]["/v1/work-items/{id}"]["get"]["parameters"]
        if p["name"] == "include"
    )
    assert (include["style"], include["explode"]) == ("form", False)
    assert "claim" in include["schema"]["items"]["enum"]
    name = document["paths"]["/v1/projects/{name}"]["get"]["parameters"][0]["schema"]
    assert name["maxLength"] == 256 and "\\x00" in name["pattern"]
    markdown = document["paths"]["/v1/projects/{name}/status"]["get"]["responses"]["200"]
    assert set(markdown["content"]) == {"application/json", "text/markdown"}
    assert document["paths"]["/v1/work-items/claim-next"]["post"]["responses"]["204"]


def test_a_handler_cannot_read_a_header_its_operation_does_not_declare(
    runtime: Runtime, client: TestClient
) -> None:
    """What keeps the headers of the document complete: an undeclared read fails loudly."""
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "state": {}}
    request = Request({**scope, "state": {"trace_id": "t"}})
    call = HttpCall(request, b"", runtime, frozenset({CW}))
    assert call.consistent_with() is None
    with pytest.raises(LookupError):
        call.fence()


def test_no_operation_declares_a_parameter_twice(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, spec in operations.items():
            names = [(p["in"], p["name"].lower()) for p in spec["parameters"]]
            assert len(names) == len(set(names)), (method, path, names)


def _body(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    ref = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return dict(document["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]])


def test_text_and_metadata_rules_are_declared_as_the_domain_enforces_them(
    document: dict[str, Any],
) -> None:
    """A client generated from the document sends text the server takes: no control
    characters (tab and line breaks aside), titles and messages not blank, metadata keys of
    1-64 characters, at most 64 of them."""
    item = _body(document, "/v1/work-items", "post")["properties"]
    assert item["title"]["minLength"] == 1 and r"[^\s" in item["title"]["pattern"]
    assert "\\x00" in _first(item["description"])["pattern"]
    keys = item["metadata"]["propertyNames"]
    assert (keys["minLength"], keys["maxLength"], item["metadata"]["maxProperties"]) == (1, 64, 64)
    entry = _body(document, "/v1/projects/{name}/entries", "post")["properties"]
    assert r"[^\s" in entry["message"]["pattern"]
    assert "\\x00" in _first(entry["metadata"]["additionalProperties"])["pattern"]
    reason = _body(document, "/v1/sessions/{session_id}/complete", "post")["properties"]
    assert "\\x00" in _first(reason["reason"])["pattern"]


def _first(schema: dict[str, Any]) -> dict[str, Any]:
    """The string branch of an optional (`anyOf` with null) or a union schema."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            return dict(branch)
    raise AssertionError(f"no string branch in {schema}")


def test_cursors_are_declared_in_the_form_the_server_issues(document: dict[str, Any]) -> None:
    for path in ("/v1/sessions", "/v1/projects", "/v1/projects/{name}/entries", "/v1/work-items"):
        (cursor,) = [
            p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "cursor"
        ]
        schema = _first(cursor["schema"])
        assert schema["maxLength"] == 2048 and schema["pattern"].startswith("^[A-Za-z0-9_-]")


def test_blocking_needs_a_reason_in_the_document_too(document: dict[str, Any]) -> None:
    transition = _body(document, "/v1/work-items/{id}/transition", "post")
    assert transition["if"]["properties"]["to"] == {"const": "blocked"}
    assert transition["then"]["required"] == ["reason"]


KEY_PROBLEMS = {
    "400": "invalid-idempotency-key",
    "409": "idempotency-request-in-progress",
    "422": "idempotency-key-reused",
}


@pytest.mark.parametrize(("method", "path"), list(EXPECTED), ids=lambda v: str(v))
def test_a_keyed_write_declares_its_replays_and_the_keys_problems(
    document: dict[str, Any], method: str, path: str
) -> None:
    """Every answer a replay can repeat (successes, stored refusals) may carry
    Idempotent-Replayed; the key's own problems are named under their statuses."""
    spec = document["paths"][path][method.lower()]
    responses = spec["responses"]
    keyed = IK in {p["name"] for p in spec["parameters"]}
    replayable = {s for s in responses if int(s) < 400 or int(s) in {409, 412, 422, 428}}
    for status, response in responses.items():
        replayed = "Idempotent-Replayed" in response.get("headers", {})
        assert replayed == (keyed and status in replayable), (status, response)
    if not keyed:
        return
    for status, slug in KEY_PROBLEMS.items():
        examples = responses[status]["content"]["application/problem+json"]["examples"]
        assert examples[slug]["value"]["type"].endswith("/" + slug)
        assert slug in responses[status]["description"]
    assert responses["409"]["headers"]["Retry-After"]["schema"]["type"] == "integer"
