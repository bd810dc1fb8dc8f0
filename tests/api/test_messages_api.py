"""Messages over HTTP: inboxes, replies that answer requests in their thread, read and ack
once, roles, conversations, what waits, long-polls; every refusal writes nothing."""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import uuid4

import pytest
from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, agent, assert_problem, refused, start
from tests.conftest import bearer, issue_token

Headers = dict[str, str]


@pytest.fixture
def pair(runtime: Runtime, client: TestClient) -> tuple[Headers, Headers]:
    lead, reviewer = agent(runtime, "lead"), agent(runtime, "reviewer")
    start(client, lead)
    start(client, reviewer)
    return lead, reviewer


def send(client: TestClient, headers: Headers, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def at(headers: Headers, written: dict[str, Any]) -> Headers:
    return {**headers, CONSISTENT_WITH: str(written["position"])}


def test_a_request_is_answered_in_its_thread_and_read_and_acked_once(
    runtime: Runtime, client: TestClient, pair: tuple[Headers, Headers]
) -> None:
    lead, reviewer = pair
    ask = send(
        client,
        lead,
        to="reviewer",
        type="request",
        subject="Review",
        body="Please review **parser.py**",
        context={"item": {"id": 7}},
        importance="high",
        ack_required=True,
    )
    assert ask["sender"] == "agent:lead" and ask["recipients"] == ["reviewer"]
    assert ask["thread_id"] == ask["id"]
    inbox = client.get("/v1/agents/reviewer/inbox?unread=true", headers=at(reviewer, ask)).json()
    assert [m["id"] for m in inbox["items"]] == [ask["id"]]
    waiting = client.get("/v1/agents/lead/requests/unanswered?side=sent", headers=at(lead, ask))
    assert [m["id"] for m in waiting.json()["items"]] == [ask["id"]]

    base = f"/v1/messages/{ask['id']}"
    read = client.post(base + "/read", headers=reviewer)
    assert read.status_code == 200, read.text
    refused(runtime, lambda: client.post(base + "/read", headers=reviewer), 409, "already-marked")
    refused(runtime, lambda: client.post(base + "/ack", headers=lead), 403, "not-a-recipient")
    assert client.post(base + "/ack", headers=reviewer).status_code == 200
    refused(runtime, lambda: client.post(base + "/ack", headers=reviewer), 409, "already-marked")

    answer = send(
        client, reviewer, to="lead", type="response", body="Looks good", reply_to=ask["id"]
    )
    assert answer["thread_id"] == ask["id"]
    seen = at(lead, answer)
    thread = client.get(f"/v1/threads/{ask['id']}", headers=seen).json()["items"]
    assert [m["id"] for m in thread] == [ask["id"], answer["id"]]
    assert thread[0]["answered_by"] == "reviewer" and thread[0]["answered_at"]
    unanswered = client.get("/v1/agents/lead/requests/unanswered?side=sent", headers=seen)
    assert unanswered.json()["items"] == []
    talk = client.get("/v1/agents/lead/conversations/reviewer", headers=seen).json()["items"]
    assert [m["id"] for m in talk] == [answer["id"], ask["id"]]  # newest first
    mine = client.get("/v1/agents/reviewer/inbox", headers=at(reviewer, answer)).json()["items"]
    assert mine[0]["read_at"] and mine[0]["acked_at"]


def test_a_message_to_a_role_reaches_every_agent_acting_in_it_and_nobody_else(
    runtime: Runtime, client: TestClient
) -> None:
    lead = agent(runtime, "lead")
    start(client, lead)
    for name in ("r1", "r2"):
        headers = bearer(issue_token(runtime, f"agent:{name}", "agent", "worker:reviewer"))
        start(client, headers, role="reviewer")
    builder = bearer(issue_token(runtime, "agent:b1", "agent", "worker:builder"))
    start(client, builder, role="builder")
    sent = send(client, lead, to="role:reviewer", type="notification", body="Release at 5")
    assert sent["recipients"] == ["r1", "r2"] and sent["to"] == "role:reviewer"
    coordinator = bearer(issue_token(runtime, "user:boss", "coordinator"))
    for name, expected in (("r1", 1), ("r2", 1), ("b1", 0), ("lead", 0)):
        inbox = client.get(f"/v1/agents/{name}/inbox", headers=at(coordinator, sent))
        assert len(inbox.json()["items"]) == expected, name
    nobody = {"to": "role:auditors", "type": "notification", "body": "hello"}
    refused(
        runtime,
        lambda: client.post("/v1/messages", json=nobody, headers=lead),
        409,
        "no-recipients",
    )


def test_bad_messages_are_refused_and_write_nothing(
    runtime: Runtime, client: TestClient, pair: tuple[Headers, Headers]
) -> None:
    lead, reviewer = pair
    note = send(client, lead, to="reviewer", type="notification", body="FYI")

    def post(**body: Any) -> Any:
        return client.post("/v1/messages", json={"to": "reviewer", **body}, headers=lead)

    refused(runtime, lambda: post(type="gossip", body="x"), 422, "validation-error")
    refused(runtime, lambda: post(type="notification", body="x" * 40_000), 422)
    refused(runtime, lambda: post(type="notification", body="   "), 422)
    deep: dict[str, Any] = {}
    for _ in range(10):
        deep = {"d": deep}
    refused(runtime, lambda: post(type="notification", body="x", context=deep), 422)
    refused(runtime, lambda: post(type="response", body="x"), 422, "validation-error")
    refused(
        runtime, lambda: post(type="response", body="x", reply_to=note["id"]), 422
    )  # a response answers a request, not a notification
    refused(runtime, lambda: post(to="ghost", type="notification", body="x"), 404, "not-found")
    refused(runtime, lambda: post(to="a b", type="notification", body="x"), 422)
    refused(
        runtime,
        lambda: post(type="notification", body="x", thread_id=str(uuid4())),
        404,
        "not-found",
    )
    refused(
        runtime,
        lambda: client.post(f"/v1/messages/{note['id']}/ack", headers=reviewer),
        409,
        "ack-not-required",
    )
    assert_problem(client.get("/v1/agents/reviewer/inbox", headers=lead), 403, "forbidden")
    assert_problem(client.get("/v1/agents/reviewer/inbox?wait=31", headers=reviewer), 422)
    auditor = bearer(issue_token(runtime, "user:audit", "auditor"))
    assert client.get("/v1/agents/reviewer/inbox", headers=auditor).status_code == 200
    refused(runtime, lambda: send_as(client, auditor), 403, "forbidden")


def send_as(client: TestClient, headers: Headers) -> Any:
    body = {"to": "reviewer", "type": "notification", "body": "x"}
    return client.post("/v1/messages", json=body, headers=headers)


def test_a_waiting_inbox_read_returns_soon_after_a_message_and_at_its_deadline_without(
    runtime: Runtime, client: TestClient, pair: tuple[Headers, Headers]
) -> None:
    lead, reviewer = pair
    began = time.monotonic()
    empty = client.get("/v1/agents/reviewer/inbox?wait=1", headers=reviewer)
    waited = time.monotonic() - began
    assert empty.status_code == 200 and empty.json()["items"] == []
    assert 1.0 <= waited < 3.0, waited

    sent_at: list[float] = []

    def later() -> None:
        time.sleep(0.5)
        sent_at.append(time.monotonic())
        send(client, lead, to="reviewer", type="notification", body="here it is")

    sender = threading.Thread(target=later)
    began = time.monotonic()
    sender.start()
    got = client.get("/v1/agents/reviewer/inbox?wait=20", headers=reviewer)
    answered = time.monotonic()
    sender.join()
    assert [m["body"] for m in got.json()["items"]] == ["here it is"]
    assert answered - sent_at[0] < 2.0  # woken by the message, not by the deadline
    assert answered - began < 5.0
