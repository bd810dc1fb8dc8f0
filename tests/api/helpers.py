"""Small helpers shared by the HTTP API tests: callers, problem checks, the event log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import anyio
import httpx2 as httpx
from starlette.testclient import TestClient
from starlette.types import ASGIApp

from agentledger.domain.refusals import CommandRefusal
from agentledger.infrastructure.bootstrap import Runtime
from tests.conftest import bearer, issue_token

PROBLEM_JSON = "application/problem+json"
POSITION = "AgentLedger-Position"
CONSISTENT_WITH = "AgentLedger-Consistent-With"
TRACE = "AgentLedger-Trace-Id"


def agent(rt: Runtime, name: str) -> dict[str, str]:
    """Authorization headers of a fresh token for `agent:<name>` with the agent role."""
    return bearer(issue_token(rt, f"agent:{name}", "agent"))


def events_of(rt: Runtime, session_id: str | UUID) -> list[Any]:
    return list(rt.ledger.events.get(UUID(str(session_id))))


def event_names(rt: Runtime, session_id: str | UUID) -> list[str]:
    """The kinds of a session's events, e.g. ["Started", "LeaseRenewed", "Completed"] (the same
    whether the classes are named `Started` or `SessionStarted`)."""
    return [type(e).__name__.removeprefix("Session") for e in events_of(rt, session_id)]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def start(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """POST /v1/sessions and insist on success; returns the body."""
    response = client.post("/v1/sessions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem with the given status (and problem type, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if slug is not None:
        assert body["type"].endswith("/" + slug), body["type"]
    return dict(body)


def refused(
    rt: Runtime, send: Callable[[], httpx.Response], status: int, slug: str | None = None
) -> httpx.Response:
    """Send a request that must be refused with a problem and must write nothing to the log
    but, at most, the audit's record of the refusal."""
    head = rt.ledger.head_position()
    response = send()
    assert_problem(response, status, slug)
    assert written_since(rt, head) == [], "a refused request wrote to the log"
    assert len(refusals_since(rt, head)) <= 1
    return response


def written_since(rt: Runtime, head: int) -> list[str]:
    """The events stored after position `head`, but for records of refused commands."""
    events = [rt.ledger.to_event(n) for n in rt.ledger.read_log(head, 1000)]
    return [type(e).__qualname__ for e in events if not isinstance(e, CommandRefusal.Event)]


def refusals_since(rt: Runtime, head: int) -> list[Any]:
    """The refused commands recorded after position `head`."""
    events = [rt.ledger.to_event(n) for n in rt.ledger.read_log(head, 1000)]
    return [e for e in events if isinstance(e, CommandRefusal.Event)]


def raw_asgi_get(
    app: ASGIApp, path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[int, dict[bytes, bytes], bytes]:
    """GET with raw header bytes, as a real server passes them from the wire.

    The test client re-encodes header values as UTF-8, so it cannot send e.g. a lone Latin-1
    byte; a server such as uvicorn hands such bytes to the app unchanged.
    """
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }

    async def run() -> None:
        await app(scope, receive, send)  # type: ignore[arg-type]

    anyio.run(run)
    start_message = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start_message["status"], dict(start_message["headers"]), body
