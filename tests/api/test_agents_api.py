"""The agent directory over HTTP: profiles (versioned, validated), a status that follows
sessions and claims exactly, filters, metrics from read models, and session timelines."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.domain.agents import profile_id
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, agent, assert_problem, refused, start
from tests.conftest import bearer, issue_token
from tests.support.helpers import run_threads
from tests.support.overlap import DecidedTogether

Headers = dict[str, str]
PROFILE = {
    "display_name": "Reviewer bot",
    "kind": "reviewer",
    "capabilities": ["python", "code-review"],
    "workspace": "/srv/repos/parser",
    "endpoints": {"mcp": "https://reviewer.example/mcp"},
    "config": {"model": "large", "limits": {"tokens": 8000}},
}


@pytest.fixture
def boss(runtime: Runtime, client: TestClient) -> Headers:
    headers = bearer(issue_token(runtime, "user:boss", "coordinator"))
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=headers).status_code == 201
    return headers


def status_of(client: TestClient, headers: Headers, name: str, position: int) -> str:
    seen = {**headers, CONSISTENT_WITH: str(position)}
    response = client.get(f"/v1/agents/{name}", headers=seen)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def head(runtime: Runtime) -> int:
    return runtime.ledger.head_position()


def test_status_follows_sessions_and_claims_exactly(
    runtime: Runtime, client: TestClient, clock: ManualClock, boss: Headers
) -> None:
    alice = agent(runtime, "alice")
    item = client.post(
        "/v1/work-items", json={"project": "apollo", "kind": "task", "title": "T"}, headers=boss
    ).json()["id"]
    session = start(client, alice, ttl_seconds=60)
    assert status_of(client, boss, "alice", session["position"]) == "active"
    claim = client.post(
        f"/v1/work-items/{item}/claim", json={"session_id": session["id"]}, headers=alice
    )
    assert status_of(client, boss, "alice", claim.json()["position"]) == "busy"
    fence = {"AgentLedger-Fence": str(claim.json()["claim"]["fence"])}
    released = client.post(f"/v1/work-items/{item}/release", headers={**alice, **fence})
    assert status_of(client, boss, "alice", released.json()["position"]) == "active"
    client.post(f"/v1/work-items/{item}/claim", json={"session_id": session["id"]}, headers=alice)
    assert status_of(client, boss, "alice", head(runtime)) == "busy"
    clock.advance(61)  # the lease lapses: inactive at once, before the sweeper records it
    assert status_of(client, boss, "alice", head(runtime)) == "inactive"
    assert runtime.sessions.sweep() == 1
    assert status_of(client, boss, "alice", head(runtime)) == "inactive"
    second = start(client, alice)
    failed = client.post(
        f"/v1/sessions/{second['id']}/fail", json={"reason": "crash"}, headers=alice
    )
    assert status_of(client, boss, "alice", failed.json()["position"]) == "error"
    third = start(client, alice)
    assert status_of(client, boss, "alice", third["position"]) == "active"
    body = client.get(
        "/v1/agents/alice", headers={**boss, CONSISTENT_WITH: str(third["position"])}
    ).json()
    assert body["registered"] is False and body["version"] == 0
    assert body["last_session_id"] == third["id"] and body["last_seen_at"]


def test_profiles_are_versioned_validated_and_filtered(
    runtime: Runtime, client: TestClient, boss: Headers
) -> None:
    reviewer = agent(runtime, "reviewer")
    first = client.put("/v1/agents/reviewer", json=PROFILE, headers=reviewer)
    assert first.status_code == 201, first.text
    assert first.headers["Location"] == "/v1/agents/reviewer" and first.headers["ETag"] == '"1"'
    assert first.json()["registered"] is True and first.json()["status"] == "inactive"
    again = client.put("/v1/agents/reviewer", json=PROFILE, headers=reviewer)
    assert again.status_code == 200 and again.json()["version"] == 1  # nothing written
    changed = {**PROFILE, "capabilities": ["python"]}
    stale = {**reviewer, "If-Match": '"7"'}
    refused(runtime, lambda: client.put("/v1/agents/reviewer", json=changed, headers=stale), 412)
    ok = client.put("/v1/agents/reviewer", json=changed, headers={**reviewer, "If-Match": '"1"'})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    coder = bearer(issue_token(runtime, "agent:coder", "agent"))
    coding = {**PROFILE, "kind": "coding", "capabilities": ["python", "rust"]}
    assert client.put("/v1/agents/coder", json=coding, headers=boss).status_code == 201
    start(client, coder)
    seen = {**boss, CONSISTENT_WITH: str(head(runtime))}

    def names(query: str) -> list[str]:
        response = client.get(f"/v1/agents?{query}", headers=seen)
        assert response.status_code == 200, response.text
        return [a["agent_id"] for a in response.json()["items"]]

    assert names("capability=python") == ["coder", "reviewer"]
    assert names("capability=rust") == ["coder"]
    assert names("kind=reviewer") == ["reviewer"]
    assert names("status=active") == ["coder"]
    assert names("status=inactive&capability=python") == ["reviewer"]
    assert names("limit=1") == ["coder"]

    def put(body: dict[str, Any], headers: Headers = reviewer) -> Any:
        return client.put("/v1/agents/reviewer", json=body, headers=headers)

    deep: dict[str, Any] = {}
    for _ in range(10):
        deep = {"x": deep}
    for bad in (
        {**PROFILE, "config": deep},
        {**PROFILE, "config": {"blob": "x" * 20_000}},
        {**PROFILE, "capabilities": ["Not A Slug"]},
        {**PROFILE, "capabilities": ["a", "a"]},
        {**PROFILE, "endpoints": {"mcp": "ftp://example.com"}},
        {**PROFILE, "endpoints": {"mcp": "not a url"}},
        {**PROFILE, "colour": "blue"},
    ):
        refused(runtime, lambda bad=bad: put(bad), 422)
    refused(runtime, lambda: put(PROFILE, coder), 403, "forbidden")
    assert_problem(client.get("/v1/agents/nobody", headers=boss), 404)


def test_concurrent_profile_writes_at_one_version_make_one_winner(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    reviewer = agent(runtime, "reviewer")
    assert client.put("/v1/agents/reviewer", json=PROFILE, headers=reviewer).status_code == 201
    together = DecidedTogether(4).install(monkeypatch)
    answers: list[int] = []

    def write(n: int) -> None:
        body = {**PROFILE, "display_name": f"writer {n}"}
        headers = {**reviewer, "If-Match": '"1"'}
        answers.append(client.put("/v1/agents/reviewer", json=body, headers=headers).status_code)

    run_threads([lambda n=n: write(n) for n in range(4)])
    assert together.all_in_flight
    assert sorted(answers) == [200, 412, 412, 412]
    events = list(runtime.ledger.events.get(profile_id("reviewer")))
    assert [type(e).__name__ for e in events] == ["AgentRegistered", "AgentProfileUpdated"]


def test_a_timeline_holds_what_its_session_did_in_order_and_metrics_add_up(
    runtime: Runtime, client: TestClient, clock: ManualClock, boss: Headers
) -> None:
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    item = client.post(
        "/v1/work-items", json={"project": "apollo", "kind": "task", "title": "T"}, headers=boss
    ).json()["id"]
    mine = start(client, alice)["id"]
    other = start(client, bob)["id"]
    claim = client.post(f"/v1/work-items/{item}/claim", json={"session_id": mine}, headers=alice)
    fence = {**alice, "AgentLedger-Fence": str(claim.json()["claim"]["fence"])}
    entry = {"message": "Started", "session_id": mine, "work_item_id": item}
    assert client.post("/v1/projects/apollo/entries", json=entry, headers=alice).status_code == 201
    ask = client.post(
        "/v1/messages",
        json={"to": "alice", "type": "request", "body": "status?"},
        headers=bob,
    ).json()
    clock.advance(30)
    answer = {
        "to": "bob",
        "type": "response",
        "body": "soon",
        "reply_to": ask["id"],
        "session_id": mine,
    }
    assert client.post("/v1/messages", json=answer, headers=alice).status_code == 201
    clock.advance(70)
    for status in ("in_review", "done"):
        moved = client.post(f"/v1/work-items/{item}/transition", json={"to": status}, headers=fence)
        assert moved.status_code == 200, moved.text
    client.post(f"/v1/sessions/{other}/fail", json={"reason": "crash"}, headers=bob)
    seen = {**alice, CONSISTENT_WITH: str(head(runtime))}

    timeline = client.get(f"/v1/sessions/{mine}/timeline", headers=seen)
    assert timeline.status_code == 200, timeline.text
    events = [r["event"] for r in timeline.json()["items"]]
    assert events == [
        "AgentSession.SessionStarted",
        "WorkItem.WorkItemClaimed",
        "WorkItem.StatusChanged",
        "LogEntry.EntryAppended",
        "Message.MessageSent",
        "WorkItem.StatusChanged",
        "WorkItem.StatusChanged",
        "WorkItem.ClaimReleased",
    ]
    positions = [r["position"] for r in timeline.json()["items"]]
    assert positions == sorted(positions)
    done = timeline.json()["items"][-2]
    assert done["summary"]["to_status"] == "done" and done["aggregate_id"] == item
    assert_problem(client.get(f"/v1/sessions/{mine}/timeline", headers=bob), 403, "forbidden")

    metrics = client.get("/v1/agents/alice/metrics", headers=seen).json()
    assert metrics["items_completed"] == 1 and metrics["median_claim_to_done_seconds"] == 100.0
    assert metrics["messages_answered"] == 1 and metrics["median_response_seconds"] == 30.0
    assert (metrics["sessions_total"], metrics["sessions_failed"]) == (1, 0)
    bobs = client.get(
        "/v1/agents/bob/metrics", headers={**bob, CONSISTENT_WITH: str(head(runtime))}
    )
    assert bobs.json()["sessions_failed"] == 1 and bobs.json()["items_completed"] == 0
