"""Every client mistake is a 4xx problem (RFC 9457) and writes nothing to the log."""

from __future__ import annotations

import base64
import json
import time
from functools import partial
from typing import Any
from uuid import uuid4

import pytest
from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import (
    CONSISTENT_WITH,
    PROBLEM_JSON,
    agent,
    assert_problem,
    raw_asgi_get,
    refused,
    start,
    written_since,
)
from tests.conftest import bearer, issue_token

JSON = {"content-type": "application/json"}
SOME_ID = "5b0e6c1e-8d0f-4a51-9d52-2f8e8a6f1c11"


def forged_cursor(before: Any) -> str:
    """A cursor in the shape the server issues, for the filters of the list, but not signed
    by it (see tests/api/test_cursors.py for signed ones out of range)."""
    raw = f'{{"f": {{"agent_id": null, "status": null}}, "k": {before}}}'
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


INVALID = "validation-error"


def mistake(name: str, status: int, slug: str, loc: list[str] | None = None, **request: Any) -> Any:
    """One bad POST /v1/sessions: the request's kwargs, the problem expected, the field named."""
    return pytest.param(request, status, slug, loc, id=name)


BODY_MISTAKES = [
    mistake("malformed JSON", 400, "malformed-json", content=b'{"ttl_seconds": 6', headers=JSON),
    mistake("deep JSON", 400, "malformed-json", content=b"[" * 30000 + b"]" * 30000, headers=JSON),
    mistake("JSON array", 422, INVALID, ["body"], content=b"[]", headers=JSON),
    mistake("JSON string", 422, INVALID, ["body"], content=b'"hello"', headers=JSON),
    mistake("unknown field", 422, INVALID, ["body", "bogus"], json={"bogus": 1}),
    mistake("ttl not a number", 422, INVALID, ["body", "ttl_seconds"], json={"ttl_seconds": "abc"}),
    mistake("ttl zero", 422, INVALID, ["body", "ttl_seconds"], json={"ttl_seconds": 0}),
    mistake("ttl fractional", 422, INVALID, ["body", "ttl_seconds"], json={"ttl_seconds": 1.5}),
    mistake("invalid status", 422, INVALID, ["body", "status"], json={"status": "running"}),
    mistake("terminal status", 422, INVALID, ["body", "status"], json={"status": "completed"}),
    mistake("nested metadata", 422, INVALID, json={"metadata": {"a": {"b": 1}}}),
    mistake("metadata list", 422, INVALID, ["body", "metadata"], json={"metadata": [1, 2]}),
    mistake("65 metadata keys", 422, INVALID, json={"metadata": {f"k{i}": i for i in range(65)}}),
    mistake("long metadata key", 422, INVALID, json={"metadata": {"k" * 65: 1}}),
    mistake(
        "text/plain body",
        415,
        "unsupported-media-type",
        content=b'{"ttl_seconds": 60}',
        headers={"content-type": "text/plain"},
    ),
    mistake("no content type", 415, "unsupported-media-type", content=b'{"ttl_seconds": 60}'),
    mistake("over 64 KiB", 413, "body-too-large", json={"metadata": {"blob": "x" * 64 * 1024}}),
]


@pytest.mark.parametrize(("kwargs", "status", "slug", "loc"), BODY_MISTAKES)
def test_body_mistakes_on_start(
    runtime: Runtime,
    client: TestClient,
    kwargs: dict[str, Any],
    status: int,
    slug: str,
    loc: list[str] | None,
) -> None:
    alice = agent(runtime, "alice")
    kwargs = dict(kwargs)  # the parameters are shared by both backends' runs
    headers = {**alice, **kwargs.pop("headers", {})}
    response = refused(
        runtime, lambda: client.post("/v1/sessions", headers=headers, **kwargs), status, slug
    )
    problem = response.json()
    assert problem["instance"] == "/v1/sessions"
    if status == 422:
        assert problem["errors"], "a validation problem lists what is wrong"
    if loc is not None:
        assert loc in [error["loc"] for error in problem["errors"]]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"metadata": {"x": NaN}}',
        b'{"metadata": {"x": Infinity}}',
        b'{"metadata": {"x": -Infinity}}',
        b'{"metadata": {"x": 1e400}}',
        b'{"metadata": {"x": "\\ud800"}}',  # a lone surrogate: not encodable text
    ],
    ids=["NaN", "Infinity", "-Infinity", "1e400", "lone surrogate"],
)
def test_values_json_cannot_carry_are_refused(
    runtime: Runtime, client: TestClient, raw: bytes
) -> None:
    """NaN/Infinity are not JSON (RFC 8259) and a lone surrogate is not text: such a body is a
    client mistake. It must not be stored, nor break later reads of the session list."""
    alice = agent(runtime, "alice")
    head = runtime.ledger.head_position()
    response = client.post("/v1/sessions", content=raw, headers={**alice, **JSON})
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    assert written_since(runtime, head) == []  # at most the refusal, recorded for the audit
    assert client.get("/v1/sessions", headers=alice).status_code == 200


def test_body_mistakes_on_the_other_writes(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    item = f"/v1/sessions/{sid}"

    def send(method: str, path: str, **kwargs: Any):  # type: ignore[no-untyped-def]
        headers = {**alice, **kwargs.pop("headers", {})}
        return lambda: client.request(method, path, headers=headers, **kwargs)

    refused(runtime, send("PATCH", item), 422, "validation-error")  # metadata is required
    refused(runtime, send("PATCH", item, json={"metadata": {"a": [1]}}), 422, "validation-error")
    refused(runtime, send("PATCH", item, content=b"{", headers=JSON), 400, "malformed-json")
    refused(runtime, send("POST", f"{item}/heartbeat", json={"ttl_seconds": 60}), 422)
    refused(runtime, send("POST", f"{item}/complete", json={"reason": "x" * 1001}), 422)
    refused(runtime, send("POST", f"{item}/fail", json={"reason": 42}), 422)
    refused(
        runtime,
        send("POST", f"{item}/fail", content=b"reason", headers={"content-type": "text/plain"}),
        415,
        "unsupported-media-type",
    )


def test_a_streamed_body_over_the_limit_is_413(runtime: Runtime, client: TestClient) -> None:
    """Without a Content-Length (chunked upload) the limit is enforced while reading."""
    alice = agent(runtime, "alice")

    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"metadata": {"blob": "'
        for _ in range(5):
            yield b"x" * 16 * 1024
        yield b'"}}'

    response = refused(
        runtime,
        lambda: client.post("/v1/sessions", content=chunks(), headers={**alice, **JSON}),
        413,
        "body-too-large",
    )
    assert "content-length" not in response.request.headers


def test_a_coordinator_naming_an_invalid_agent_id_is_422(
    runtime: Runtime, client: TestClient
) -> None:
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    for bad in ("bad id!", "", "a" * 129):
        refused(
            runtime,
            partial(client.post, "/v1/sessions", json={"agent_id": bad}, headers=boss),
            422,
            "validation-error",
        )


QUERY_MISTAKES = [
    pytest.param({"bogus": "1"}, 422, INVALID, id="unknown parameter"),
    pytest.param({"limit": "0"}, 422, INVALID, id="limit 0"),
    pytest.param({"limit": "501"}, 422, INVALID, id="limit 501"),
    pytest.param({"limit": "ten"}, 422, INVALID, id="limit not a number"),
    pytest.param({"status": "running"}, 422, INVALID, id="invalid status"),
    pytest.param("status=active&status=pending", 422, INVALID, id="repeated parameter"),
    pytest.param({"cursor": "not-a-cursor"}, 400, "invalid-cursor", id="garbage cursor"),
    pytest.param({"cursor": forged_cursor("Infinity")}, 400, "invalid-cursor", id="cursor inf"),
    pytest.param({"cursor": forged_cursor(10**30)}, 400, "invalid-cursor", id="cursor 10**30"),
    pytest.param({"cursor": forged_cursor(1)}, 400, "invalid-cursor", id="forged cursor"),
]


@pytest.mark.parametrize(("params", "status", "slug"), QUERY_MISTAKES)
def test_query_mistakes_on_list(
    runtime: Runtime,
    client: TestClient,
    params: dict[str, str] | str,
    status: int,
    slug: str,
) -> None:
    alice = agent(runtime, "alice")
    start(client, alice)
    url = "/v1/sessions" + (f"?{params}" if isinstance(params, str) else "")
    query = params if isinstance(params, dict) else None
    problem = refused(
        runtime, lambda: client.get(url, params=query, headers=alice), status, slug
    ).json()
    if status == 422:
        assert problem["errors"] and all(e["loc"][0] == "query" for e in problem["errors"])


def test_a_cursor_only_works_with_the_filters_it_was_issued_for(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    for _ in range(3):
        last = start(client, alice)
    first = client.get(
        "/v1/sessions",
        params={"agent_id": "alice", "limit": "1"},
        headers={**alice, CONSISTENT_WITH: str(last["position"])},
    ).json()
    cursor = first["next_cursor"]
    assert cursor
    for other in ({"agent_id": "bob"}, {}, {"agent_id": "alice", "status": "active"}):
        refused(
            runtime,
            partial(client.get, "/v1/sessions", params={**other, "cursor": cursor}, headers=alice),
            400,
            "invalid-cursor",
        )
    same = client.get(
        "/v1/sessions", params={"agent_id": "alice", "limit": "1", "cursor": cursor}, headers=alice
    )
    assert same.status_code == 200


@pytest.mark.parametrize(
    "value",
    ["abc", "-1", "1.5", "", "0x10", "9" * 5000],
    ids=["abc", "negative", "fraction", "empty", "hex", "5000 digits"],
)
def test_consistent_with_must_be_a_log_position(
    runtime: Runtime, client: TestClient, value: str
) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    for path in ("/v1/sessions", f"/v1/sessions/{sid}"):
        response = client.get(path, headers={**alice, CONSISTENT_WITH: value})
        assert_problem(response, 400, "invalid-position")


def test_consistent_with_in_non_ascii_digits_is_400(runtime: Runtime, client: TestClient) -> None:
    """'²' (Latin-1 0xB2) is a digit to str.isdigit() but not a number: still a bad header."""
    token = issue_token(runtime, "agent:alice", "agent")
    status, headers, body = raw_asgi_get(
        client.app,
        "/v1/sessions",
        [
            (b"authorization", f"Bearer {token}".encode()),
            (CONSISTENT_WITH.lower().encode(), b"\xb2"),
        ],
    )
    assert status == 400, body
    assert headers[b"content-type"] == PROBLEM_JSON.encode()
    assert json.loads(body)["type"].endswith("/invalid-position")


def test_a_read_model_that_lags_answers_503_with_retry_after(
    runtime: Runtime, client: TestClient
) -> None:
    runtime.consistency.timeout = 0.2
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    runtime.runners.stop()  # the read models stop following the log
    wanted = start(client, alice)["position"]
    for path in ("/v1/sessions", f"/v1/sessions/{sid}"):
        response = client.get(path, headers={**alice, CONSISTENT_WITH: str(wanted)})
        problem = assert_problem(response, 503, "not-caught-up")
        assert int(response.headers["Retry-After"]) >= 1
        assert problem["wanted_position"] == wanted
        assert problem["position"] < wanted


def test_a_position_beyond_the_log_is_refused_at_once(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    wanted = runtime.ledger.head_position() + 1000
    for path in ("/v1/sessions", f"/v1/sessions/{sid}"):
        started = time.monotonic()
        response = client.get(path, headers={**alice, CONSISTENT_WITH: str(wanted)})
        assert_problem(response, 400, "invalid-position")
        assert time.monotonic() - started < runtime.consistency.timeout  # no waiting


def test_unknown_sessions_are_404(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    for sid in (str(uuid4()), "not-a-uuid", "12345"):
        problem = assert_problem(client.get(f"/v1/sessions/{sid}", headers=alice), 404, "not-found")
        assert problem["resource"] == "session"
        for action in ("heartbeat", "activate", "complete", "fail"):
            refused(
                runtime,
                partial(client.post, f"/v1/sessions/{sid}/{action}", headers=alice),
                404,
                "not-found",
            )
        refused(
            runtime,
            partial(
                client.patch, f"/v1/sessions/{sid}", json={"metadata": {"k": 1}}, headers=alice
            ),
            404,
            "not-found",
        )


def test_unknown_routes_are_404_problems(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    for path in ("/v1/nope", "/v2/sessions", "/v1/sessions/x/y/z", "/"):
        problem = assert_problem(client.get(path, headers=alice), 404, "not-found")
        assert problem["instance"] == path
    refused(runtime, lambda: client.post("/v1/sessions/x/restart", headers=alice), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/sessions", {"GET", "POST"}),
        ("PUT", f"/v1/sessions/{SOME_ID}", {"GET", "PATCH"}),
        ("GET", f"/v1/sessions/{SOME_ID}/heartbeat", {"POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
    ids=["DELETE sessions", "PUT session", "GET heartbeat", "POST healthz"],
)
def test_wrong_method_is_405_problem_with_allow(
    runtime: Runtime, client: TestClient, method: str, path: str, allowed: set[str]
) -> None:
    """RFC 9110 §15.5.6: a 405 response MUST carry Allow, listing the resource's methods."""
    alice = agent(runtime, "alice")
    response = refused(
        runtime, lambda: client.request(method, path, headers=alice), 405, "method-not-allowed"
    )
    assert "Allow" in response.headers, "405 without an Allow header"
    listed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert allowed <= listed
    assert method not in listed
