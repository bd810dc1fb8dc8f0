"""Who may call the API, and as whom: the bearer token alone decides the actor of every event."""

from __future__ import annotations

from functools import partial
from uuid import uuid4

import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext, local_operator
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import (
    CONSISTENT_WITH,
    agent,
    assert_problem,
    event_names,
    events_of,
    refused,
    start,
)
from tests.conftest import bearer, issue_token


def assert_unauthenticated(response) -> dict:  # type: ignore[no-untyped-def]
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


def test_requests_without_a_token_are_401_with_a_bearer_challenge(
    runtime: Runtime, client: TestClient
) -> None:
    sid = start(client, agent(runtime, "alice"))["id"]
    # Each request would be valid with a token (see the test below for invalid ones).
    calls = [
        ("GET", "/v1/sessions", None),
        ("POST", "/v1/sessions", {}),
        ("GET", f"/v1/sessions/{sid}", None),
        ("PATCH", f"/v1/sessions/{sid}", {"metadata": {"k": 1}}),
        ("POST", f"/v1/sessions/{sid}/heartbeat", None),
        ("POST", f"/v1/sessions/{sid}/activate", None),
        ("POST", f"/v1/sessions/{sid}/complete", {"reason": "done"}),
        ("POST", f"/v1/sessions/{sid}/fail", None),
    ]
    for method, path, body in calls:
        send = partial(client.request, method, path, json=body)
        assert_unauthenticated(refused(runtime, send, 401))
    assert event_names(runtime, sid) == ["Started"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",  # not even shaped like one
        "Bearer alt_" + "x" * 43,  # shaped like one, never issued
        "Bearer ",  # scheme without a secret
        "Basic dXNlcjpwYXNzd29yZA==",  # another scheme
        "alt_abcdef",  # a secret without the scheme
    ],
)
def test_malformed_or_unknown_tokens_are_401(
    runtime: Runtime, client: TestClient, authorization: str
) -> None:
    headers = {"Authorization": authorization}
    response = refused(runtime, lambda: client.post("/v1/sessions", headers=headers), 401)
    assert_unauthenticated(response)
    assert_unauthenticated(client.get("/v1/sessions", headers=headers))


def test_anonymous_caller_is_refused_before_its_input_is_examined(
    runtime: Runtime, client: TestClient
) -> None:
    """Without a token the answer is 401, whatever the body or query: an anonymous caller must
    not learn the request schema (nor be told how to fix its input) before authenticating."""
    assert_unauthenticated(client.post("/v1/sessions", json={"bogus": 1}))
    assert_unauthenticated(client.get("/v1/sessions", params={"limit": "0"}))


def test_a_revoked_token_is_refused_at_once(runtime: Runtime, client: TestClient) -> None:
    secret = issue_token(runtime, "agent:alice", "agent")
    sid = start(client, bearer(secret))["id"]
    token_id = runtime.access.authenticate(secret).token_id
    assert token_id is not None

    runtime.access.revoke(RequestContext(local_operator("tester"), "revoke"), token_id, "leaked")

    # No waiting for any projection: the very next request is refused.
    body = assert_unauthenticated(client.post("/v1/sessions", headers=bearer(secret)))
    assert "revoked" in body["detail"]
    assert_unauthenticated(client.get(f"/v1/sessions/{sid}", headers=bearer(secret)))
    assert_unauthenticated(
        refused(
            runtime,
            lambda: client.post(f"/v1/sessions/{sid}/complete", headers=bearer(secret)),
            401,
        )
    )
    assert event_names(runtime, sid) == ["Started"]
    # A fresh token for the same agent still works: it is the token that was revoked.
    assert client.post(f"/v1/sessions/{sid}/complete", headers=agent(runtime, "alice")).is_success


def test_an_auditor_may_read_but_not_open_sessions(runtime: Runtime, client: TestClient) -> None:
    auditor = bearer(issue_token(runtime, "user:carol", "auditor"))
    created = start(client, agent(runtime, "alice"))

    for body in ({}, {"agent_id": "alice"}, {"agent_id": "alice", "status": "pending"}):
        refused(
            runtime,
            partial(client.post, "/v1/sessions", json=body, headers=auditor),
            403,
            "forbidden",
        )

    read = client.get(
        f"/v1/sessions/{created['id']}",
        headers={**auditor, CONSISTENT_WITH: str(created["position"])},
    )
    assert read.status_code == 200
    assert read.json()["agent_id"] == "alice"


def test_an_agent_cannot_open_or_touch_another_agents_session(
    runtime: Runtime, client: TestClient
) -> None:
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")

    refused(
        runtime,
        lambda: client.post("/v1/sessions", json={"agent_id": "alice"}, headers=bob),
        403,
        "forbidden",
    )

    sid = start(client, alice, ttl_seconds=600, metadata={"owner": "alice"})["id"]
    written = len(events_of(runtime, sid))
    attempts = [
        ("POST", f"/v1/sessions/{sid}/heartbeat", None),
        ("POST", f"/v1/sessions/{sid}/complete", {"reason": "bob says so"}),
        ("POST", f"/v1/sessions/{sid}/fail", {"reason": "bob says so"}),
        ("PATCH", f"/v1/sessions/{sid}", {"metadata": {"owner": "bob"}}),
        ("PATCH", f"/v1/sessions/{sid}", {"metadata": {"owner": None}}),
    ]
    for method, path, body in attempts:
        response = client.request(method, path, json=body, headers=bob)
        assert_problem(response, 403, "forbidden")
        assert len(events_of(runtime, sid)) == written, f"{method} {path} wrote an event"

    # Alice's session is untouched and still hers to end.
    done = client.post(f"/v1/sessions/{sid}/complete", headers=alice)
    assert done.status_code == 200
    assert done.json()["metadata"] == {"owner": "alice"}
    assert [e.actor for e in events_of(runtime, sid)] == ["agent:alice", "agent:alice"]


def test_a_coordinator_opens_a_pending_session_that_only_the_agent_picks_up(
    runtime: Runtime, client: TestClient
) -> None:
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    alice = agent(runtime, "alice")

    created = start(client, boss, agent_id="alice", status="pending", ttl_seconds=600)
    assert (created["agent_id"], created["status"], created["version"]) == ("alice", "pending", 1)
    sid = created["id"]

    for action in ("heartbeat", "activate"):
        refused(
            runtime,
            partial(client.post, f"/v1/sessions/{sid}/{action}", headers=boss),
            403,
            "forbidden",
        )

    activated = client.post(f"/v1/sessions/{sid}/activate", headers=alice)
    assert activated.status_code == 200
    assert (activated.json()["status"], activated.json()["version"]) == ("active", 2)

    # Coordinators may still end it (e.g. to reassign the work).
    ended = client.post(f"/v1/sessions/{sid}/fail", json={"reason": "reassigned"}, headers=boss)
    assert ended.status_code == 200
    assert (ended.json()["status"], ended.json()["end_reason"]) == ("failed", "reassigned")

    assert event_names(runtime, sid) == ["Started", "Activated", "Failed"]
    assert [e.actor for e in events_of(runtime, sid)] == ["user:boss", "agent:alice", "user:boss"]


def test_a_coordinator_must_name_the_agent(runtime: Runtime, client: TestClient) -> None:
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    send = partial(client.post, "/v1/sessions", json={"status": "pending"}, headers=boss)
    problem = refused(runtime, send, 422, "validation-error").json()
    assert ["body", "agent_id"] in [e["loc"] for e in problem["errors"]]


def test_the_actor_of_every_event_is_the_tokens_principal(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice, ttl_seconds=600)["id"]
    clock.advance(120)
    assert client.post(f"/v1/sessions/{sid}/heartbeat", headers=alice).json()["renewed"] is True
    assert client.patch(
        f"/v1/sessions/{sid}", json={"metadata": {"k": 1}}, headers=alice
    ).is_success
    assert client.post(f"/v1/sessions/{sid}/complete", headers=alice).is_success

    assert event_names(runtime, sid) == ["Started", "LeaseRenewed", "MetadataUpdated", "Completed"]
    assert {e.actor for e in events_of(runtime, sid)} == {"agent:alice"}


def test_the_actor_is_never_taken_from_the_body(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    attempts = [
        ("POST", "/v1/sessions", {"actor": "agent:bob"}),
        ("PATCH", f"/v1/sessions/{sid}", {"metadata": {"k": 1}, "actor": "agent:bob"}),
        ("POST", f"/v1/sessions/{sid}/heartbeat", {"actor": "agent:bob"}),
        ("POST", f"/v1/sessions/{sid}/complete", {"reason": "done", "actor": "agent:bob"}),
    ]
    for method, path, body in attempts:
        problem = refused(
            runtime,
            partial(client.request, method, path, json=body, headers=alice),
            422,
            "validation-error",
        ).json()
        assert ["body", "actor"] in [e["loc"] for e in problem["errors"]]
    assert [e.actor for e in events_of(runtime, sid)] == ["agent:alice"]


def test_unknown_session_is_404_for_an_authenticated_caller_only(
    runtime: Runtime, client: TestClient
) -> None:
    missing = uuid4()
    assert_unauthenticated(client.get(f"/v1/sessions/{missing}"))
    assert_problem(client.get(f"/v1/sessions/{missing}", headers=agent(runtime, "bob")), 404)


def test_me_says_who_the_token_is(runtime: Runtime, client: TestClient) -> None:
    agent_token = issue_token(runtime, "agent:alice", "agent", "worker:reviewer")
    person = issue_token(runtime, "user:sam", "approver:security")
    me = client.get("/v1/me", headers=bearer(agent_token))
    assert me.status_code == 200, me.text
    assert me.json() == {
        "principal": "agent:alice",
        "agent_id": "alice",
        "roles": ["agent", "worker:reviewer"],
    }
    assert client.get("/v1/me", headers=bearer(person)).json()["agent_id"] is None
    assert_unauthenticated(client.get("/v1/me"))
