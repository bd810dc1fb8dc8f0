"""/v1/events and /v1/audit: the timeline, filtered exactly; an aggregate's history and its
state at a version or a moment, equal to what was observed live then; auditors only."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import agent, assert_problem, start
from tests.conftest import bearer, issue_token


@pytest.fixture
def auditor(runtime: Runtime) -> dict[str, str]:
    return bearer(issue_token(runtime, "user:ann", "auditor"))


def _events(client: TestClient, auditor: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    """Every page of /v1/events with this filter, followed to the end."""
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        response = client.get("/v1/events", params={**query, "after": after}, headers=auditor)
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["events"]
        if body["next_after"] is None:
            return found
        after = body["next_after"]


@pytest.fixture
def scenario(client: TestClient, runtime: Runtime, clock: ManualClock) -> dict[str, Any]:
    """Alice and Bob each start a session and create a project; Alice's with a trace id."""
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    clock.advance(60)
    started = clock.now()
    a = start(client, {**alice, "X-Request-ID": "trace-alice-1"}, agent_id="alice")
    clock.advance(60)
    b = start(client, bob, agent_id="bob")
    made = client.post("/v1/projects", json={"name": "apollo"}, headers=alice)
    assert made.status_code == 201, made.text
    clock.advance(60)
    middle = clock.now()
    made = client.post("/v1/projects", json={"name": "gemini"}, headers=bob)
    assert made.status_code == 201, made.text
    clock.advance(120)
    renewed = client.post(f"/v1/sessions/{b['id']}/heartbeat", headers=bob)
    assert renewed.status_code == 200 and renewed.json()["renewed"], renewed.text
    return {"alice": a, "bob": b, "started": started, "middle": middle}


def test_only_auditors_and_admins_read_the_trail(
    client: TestClient, runtime: Runtime, scenario: dict[str, Any]
) -> None:
    session = scenario["alice"]["id"]
    paths = [
        "/v1/events",
        f"/v1/audit/aggregates/{session}/history",
        f"/v1/audit/aggregates/{session}/state",
        "/v1/audit/verify",
    ]
    coordinator = bearer(issue_token(runtime, "user:carl", "coordinator"))
    admin = bearer(issue_token(runtime, "user:root", "admin"))
    for path in paths:
        assert_problem(client.get(path, headers=agent(runtime, "mallory")), 403, "forbidden")
        assert_problem(client.get(path, headers=coordinator), 403, "forbidden")
        assert client.get(path, headers=admin).status_code == 200, path
        assert client.get(path).status_code == 401


def test_the_whole_timeline_is_every_stored_event_in_order(
    client: TestClient, runtime: Runtime, auditor: dict[str, str], scenario: dict[str, Any]
) -> None:
    events = _events(client, auditor, limit=2)
    positions = [e["position"] for e in events]
    assert positions == [n.id for n in runtime.ledger.read_log(0, 1000)]
    first = events[0]
    assert (first["aggregate_type"], first["event"]) == ("AccessToken", "Issued")
    assert first["changes"]["secret_sha256"] == "[redacted]"


def test_filters_return_exactly_the_matching_events(
    client: TestClient, auditor: dict[str, str], scenario: dict[str, Any]
) -> None:
    everything = _events(client, auditor)
    by_alice = _events(client, auditor, actor="agent:alice")
    assert by_alice == [e for e in everything if e["actor"] == "agent:alice"]
    assert {e["event"] for e in by_alice} == {"SessionStarted", "ProjectCreated"}

    created = _events(client, auditor, type="ProjectCreated")
    assert [e["changes"]["name"] for e in created] == ["apollo", "gemini"]
    assert _events(client, auditor, type="Project.ProjectCreated") == created

    traced = _events(client, auditor, trace_id="trace-alice-1")
    assert [(e["event"], e["aggregate_id"]) for e in traced] == [
        ("SessionStarted", scenario["alice"]["id"])
    ]

    session = scenario["bob"]["id"]
    own = _events(client, auditor, aggregate_id=session)
    assert own == [e for e in everything if e["aggregate_id"] == session]
    assert len(own) >= 2 and _events(client, auditor, aggregate_id=session, limit=1) == own

    since = _events(client, auditor, since=scenario["started"].isoformat())
    assert since == [e for e in everything if e["occurred_at"] >= _z(scenario["started"])]
    until = _events(client, auditor, until=scenario["middle"].isoformat())
    assert until == [e for e in everything if e["occurred_at"] < _z(scenario["middle"])]
    assert until and since and until != everything


def _z(moment: Any) -> str:
    return str(moment.isoformat()).replace("+00:00", "Z")


def test_a_bad_filter_is_a_clear_400_class_error(
    client: TestClient, auditor: dict[str, str]
) -> None:
    for query in (
        {"type": "NoSuchEvent"},
        {"type": "drop table"},
        {"actor": "alice"},
        {"since": "yesterday"},
        {"limit": "0"},
        {"limit": "1001"},
        {"aggregate_id": "not-a-uuid"},
        {"after": "-1"},
        {"unknown": "1"},
    ):
        response = client.get("/v1/events", params=query, headers=auditor)
        assert response.status_code == 422, (query, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_history_and_state_as_it_was(
    client: TestClient, runtime: Runtime, auditor: dict[str, str], clock: ManualClock
) -> None:
    alice = agent(runtime, "alice")
    session = start(client, alice, agent_id="alice", ttl_seconds=600)
    observed = []
    for step in range(3):
        clock.advance(120)
        heartbeat = client.post(f"/v1/sessions/{session['id']}/heartbeat", headers=alice)
        assert heartbeat.status_code == 200, heartbeat.text
        live = heartbeat.json()  # the session as its agent saw it at that moment
        observed.append((clock.now(), live["version"], live["lease_expires_at"], step))
    history = client.get(f"/v1/audit/aggregates/{session['id']}/history", headers=auditor)
    assert history.status_code == 200, history.text
    versions = [e["version"] for e in history.json()["events"]]
    assert versions == list(range(1, len(versions) + 1))
    for moment, version, lease, _ in observed:
        at = client.get(
            f"/v1/audit/aggregates/{session['id']}/state",
            params={"at": moment.isoformat()},
            headers=auditor,
        )
        assert at.status_code == 200, at.text
        assert at.json()["version"] == version
        assert at.json()["state"]["lease_expires_at"] == lease
        by_version = client.get(
            f"/v1/audit/aggregates/{session['id']}/state",
            params={"version": version},
            headers=auditor,
        )
        assert by_version.json()["state"] == at.json()["state"]
    both = client.get(
        f"/v1/audit/aggregates/{session['id']}/state",
        params={"version": 1, "at": clock.now().isoformat()},
        headers=auditor,
    )
    assert_problem(both, 422, "validation-error")
    unknown = client.get(
        "/v1/audit/aggregates/00000000-0000-4000-8000-000000000000/history", headers=auditor
    )
    assert_problem(unknown, 404, "not-found")


def test_verify_over_http(client: TestClient, runtime: Runtime, auditor: dict[str, str]) -> None:
    runtime.catch_up()
    response = client.get("/v1/audit/verify", headers=auditor)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["breach"] is None
    head = body["sealed_head"]
    published = f"{head['position']}:{head['link']}"
    again = client.get("/v1/audit/verify", params={"checkpoint": published}, headers=auditor)
    assert again.json()["ok"] is True
    wrong = client.get(
        "/v1/audit/verify", params={"checkpoint": f"{head['position']}:{'0' * 64}"}, headers=auditor
    )
    assert wrong.json()["ok"] is False
    assert wrong.json()["breach"]["kind"] == "chain-rewritten"
    bad = client.get("/v1/audit/verify", params={"checkpoint": "nope"}, headers=auditor)
    assert_problem(bad, 422, "validation-error")
