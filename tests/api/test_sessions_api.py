"""/v1/sessions over HTTP: the lease lifecycle, read-your-writes, versions and trace ids."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import partial
from typing import Any

from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import (
    CONSISTENT_WITH,
    POSITION,
    TRACE,
    agent,
    assert_problem,
    event_names,
    events_of,
    refused,
    start,
    when,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_start_then_read_your_own_write(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    alice = agent(runtime, "alice")
    response = client.post(
        "/v1/sessions", json={"ttl_seconds": 300, "metadata": {"task": "T-1"}}, headers=alice
    )

    assert response.status_code == 201
    created = response.json()
    assert response.headers["Location"] == f"/v1/sessions/{created['id']}"
    assert response.headers["ETag"] == '"1"'
    assert int(response.headers[POSITION]) == created["position"]
    assert created["position"] == runtime.ledger.head_position()
    assert created["agent_id"] == "alice"
    assert created["status"] == "active"
    assert created["ttl_seconds"] == 300
    assert created["heartbeat_interval_seconds"] == 100
    assert created["metadata"] == {"task": "T-1"}
    assert created["version"] == 1
    assert when(created["created_at"]) == clock.now()
    assert when(created["lease_expires_at"]) == clock.now() + timedelta(seconds=300)
    assert created["ended_at"] is None and created["end_reason"] is None

    read = client.get(
        response.headers["Location"],
        headers={**alice, CONSISTENT_WITH: str(created["position"])},
    )
    assert read.status_code == 200
    assert read.headers["ETag"] == '"1"'
    assert int(read.headers[POSITION]) >= created["position"]
    # The read model says exactly what the write answered.
    assert read.json() == {k: v for k, v in created.items() if k != "position"}


def test_ttl_defaults_to_900_and_is_clamped_to_60_3600(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    assert start(client, alice)["ttl_seconds"] == 900
    short = start(client, alice, ttl_seconds=5)
    assert (short["ttl_seconds"], short["heartbeat_interval_seconds"]) == (60, 20)
    assert start(client, alice, ttl_seconds=99_999)["ttl_seconds"] == 3600


def test_list_filters_and_pages_through_every_session_once(
    runtime: Runtime, client: TestClient
) -> None:
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    mine = [start(client, alice, ttl_seconds=3600)["id"] for _ in range(5)]
    pending = start(client, bob, status="pending")["id"]
    done = client.post(f"/v1/sessions/{mine[1]}/complete", headers=alice).json()
    newest_first = list(reversed(mine))

    def ids(**query: Any) -> list[str]:
        response = client.get(
            "/v1/sessions", params=query, headers={**bob, CONSISTENT_WITH: str(done["position"])}
        )
        assert response.status_code == 200, response.text
        assert int(response.headers[POSITION]) == response.json()["position"] >= done["position"]
        return [item["id"] for item in response.json()["items"]]

    assert ids() == [pending, *newest_first]
    assert ids(agent_id="alice") == newest_first
    assert ids(agent_id="bob") == [pending]
    assert ids(status="pending") == [pending]
    assert ids(status="completed") == [mine[1]]
    assert ids(agent_id="alice", status="active") == [s for s in newest_first if s != mine[1]]
    assert ids(agent_id="bob", status="active") == []

    seen: list[str] = []
    pages = 0
    query: dict[str, Any] = {"agent_id": "alice", "limit": 2}
    while True:
        page = client.get("/v1/sessions", params=query, headers=alice).json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        query["cursor"] = page["next_cursor"]
    assert pages == 3
    assert len(seen) == len(set(seen))
    assert seen == newest_first


def test_heartbeat_is_written_only_when_it_moves_the_lease_enough(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    alice = agent(runtime, "alice")
    created = start(client, alice, ttl_seconds=600)
    sid = created["id"]
    first_expiry = when(created["lease_expires_at"])

    clock.advance(59)  # the lease would move by 59 s: under a tenth of the TTL
    small = client.post(f"/v1/sessions/{sid}/heartbeat", headers=alice)
    assert small.status_code == 200
    body = small.json()
    assert body["renewed"] is False
    assert when(body["expires_at"]) == first_expiry
    assert body["heartbeat_interval_seconds"] == 200
    assert (body["version"], small.headers["ETag"]) == (1, '"1"')
    assert event_names(runtime, sid) == ["Started"]

    clock.advance(1)  # now it moves by 60 s, a tenth of the TTL
    renewal = client.post(f"/v1/sessions/{sid}/heartbeat", headers=alice)
    assert renewal.status_code == 200
    body = renewal.json()
    assert body["renewed"] is True
    assert when(body["expires_at"]) == clock.now() + timedelta(seconds=600)
    assert when(body["lease_expires_at"]) == when(body["expires_at"])
    assert (body["version"], renewal.headers["ETag"]) == (2, '"2"')
    assert int(renewal.headers[POSITION]) == body["position"] == runtime.ledger.head_position()
    assert event_names(runtime, sid) == ["Started", "LeaseRenewed"]

    seen = client.get(
        f"/v1/sessions/{sid}", headers={**alice, CONSISTENT_WITH: str(body["position"])}
    )
    assert when(seen.json()["lease_expires_at"]) == when(body["expires_at"])


def test_activating_an_active_session_is_an_invalid_transition(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    problem = refused(
        runtime,
        lambda: client.post(f"/v1/sessions/{sid}/activate", headers=alice),
        409,
        "invalid-transition",
    ).json()
    assert problem["current_status"] == "active"
    assert problem["allowed"] == ["heartbeat", "update metadata", "complete", "fail"]


def test_an_ended_session_stays_ended(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    done = client.post(f"/v1/sessions/{sid}/complete", json={"reason": "all done"}, headers=alice)
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["end_reason"]) == ("completed", "all done")
    assert done.json()["ended_at"] is not None

    for action in ("fail", "complete", "heartbeat", "activate"):
        problem = refused(
            runtime,
            partial(client.post, f"/v1/sessions/{sid}/{action}", headers=alice),
            409,
            "session-terminated",
        ).json()
        assert problem["current_status"] == "completed"
    refused(
        runtime,
        lambda: client.patch(f"/v1/sessions/{sid}", json={"metadata": {"k": 1}}, headers=alice),
        409,
        "session-terminated",
    )
    assert event_names(runtime, sid) == ["Started", "Completed"]


def test_a_lapsed_lease_is_expired_before_the_sweeper_records_it(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    alice = agent(runtime, "alice")
    created = start(client, alice, ttl_seconds=60)
    sid = created["id"]
    clock.advance(61)

    for action in ("heartbeat", "complete", "fail"):
        problem = refused(
            runtime,
            partial(client.post, f"/v1/sessions/{sid}/{action}", headers=alice),
            409,
            "session-expired",
        ).json()
        assert problem["session_id"] == sid

    seen = client.get(
        f"/v1/sessions/{sid}", headers={**alice, CONSISTENT_WITH: str(created["position"])}
    )
    assert seen.status_code == 200
    assert seen.json()["status"] == "expired"
    listed = client.get("/v1/sessions", params={"status": "expired"}, headers=alice).json()
    assert [s["id"] for s in listed["items"]] == [sid]
    assert event_names(runtime, sid) == ["Started"]  # no Expired event yet: computed on read


def test_patch_merges_metadata_under_if_match(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice, metadata={"task": "T-1", "step": 1})["id"]
    item = f"/v1/sessions/{sid}"

    patched = client.patch(
        item,
        json={"metadata": {"step": 2, "task": None, "note": "half way"}},
        headers={**alice, "If-Match": '"1"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["ETag"] == '"2"'
    assert patched.json()["version"] == 2
    assert patched.json()["metadata"] == {"step": 2, "note": "half way"}

    def patch_with(if_match: str) -> Any:
        return client.patch(
            item, json={"metadata": {"step": 3}}, headers={**alice, "If-Match": if_match}
        )

    stale = refused(runtime, lambda: patch_with('"1"'), 412, "version-mismatch").json()
    assert (stale["current_version"], stale["expected_version"]) == (2, 1)
    refused(runtime, lambda: patch_with('W/"2"'), 412, "version-mismatch")  # weak never matches
    for malformed in ("2", "two", '"2", "3"', '"-1"'):
        refused(runtime, partial(patch_with, malformed), 400, "invalid-precondition")
    assert event_names(runtime, sid) == ["Started", "MetadataUpdated"]

    current = patch_with('"2"')
    assert (current.status_code, current.headers["ETag"]) == (200, '"3"')
    assert patch_with("*").status_code == 200  # any version
    seen = client.get(item, headers={**alice, CONSISTENT_WITH: current.headers[POSITION]})
    assert seen.json()["metadata"] == {"step": 3, "note": "half way"}


def test_if_match_guards_lifecycle_commands_too(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    refused(
        runtime,
        lambda: client.post(f"/v1/sessions/{sid}/complete", headers={**alice, "If-Match": '"5"'}),
        412,
        "version-mismatch",
    )
    done = client.post(f"/v1/sessions/{sid}/complete", headers={**alice, "If-Match": '"1"'})
    assert (done.status_code, done.headers["ETag"]) == (200, '"2"')


def test_traceparent_becomes_the_events_trace_id(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    response = client.post(
        "/v1/sessions",
        headers={**alice, "traceparent": TRACEPARENT, "X-Request-ID": "ignored-when-traced"},
    )
    assert response.status_code == 201
    assert response.headers[TRACE] == TRACE_ID
    (started,) = events_of(runtime, response.json()["id"])
    assert started.trace_id == TRACE_ID


def test_request_id_is_the_trace_id_without_a_traceparent(
    runtime: Runtime, client: TestClient
) -> None:
    alice = agent(runtime, "alice")
    response = client.post("/v1/sessions", headers={**alice, "X-Request-ID": "req-42"})
    assert response.headers[TRACE] == "req-42"
    sid = response.json()["id"]
    assert events_of(runtime, sid)[0].trace_id == "req-42"

    # An all-zero trace id is invalid per W3C: the request id is used instead.
    zero = "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
    done = client.post(
        f"/v1/sessions/{sid}/complete",
        headers={**alice, "traceparent": zero, "X-Request-ID": "req-43"},
    )
    assert done.headers[TRACE] == "req-43"
    assert events_of(runtime, sid)[-1].trace_id == "req-43"


def test_every_answer_gets_a_fresh_trace_id_otherwise(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    first = client.post("/v1/sessions", headers=alice)
    second = client.post("/v1/sessions", headers={**alice, "X-Request-ID": "has spaces"})
    ids = {first.headers[TRACE], second.headers[TRACE]}
    assert len(ids) == 2
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert events_of(runtime, second.json()["id"])[0].trace_id == second.headers[TRACE]

    # Problems carry the same trace id in their body, so a client can quote it.
    problem = client.get("/v1/sessions/not-a-uuid", headers={**alice, "traceparent": TRACEPARENT})
    assert assert_problem(problem, 404)["trace_id"] == TRACE_ID == problem.headers[TRACE]
