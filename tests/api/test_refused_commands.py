"""Refused commands are recorded for the audit (actor, command, target, problem, trace, time)
without touching their target; 401s are counted in metrics, not recorded; a malformed request
is not a refusal. Concurrent refusals are all recorded."""

from __future__ import annotations

import threading
from typing import Any
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from agentledger.application.refusals import RefusalLog
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import agent, assert_problem, refusals_since, start, written_since
from tests.api.test_work_items_api import FENCE, create, setup
from tests.conftest import bearer, issue_token
from tests.support.helpers import run_threads


def test_each_kind_of_refusal_is_recorded_and_the_target_is_untouched(
    runtime: Runtime, client: TestClient
) -> None:
    boss = setup(runtime, client)
    item = create(client, boss, "Guarded")
    path = f"/v1/work-items/{item['id']}"
    alice = agent(runtime, "alice")
    session = start(client, alice)["id"]
    claimed = client.post(f"{path}/claim", json={"session_id": session}, headers=alice)
    assert claimed.status_code == 200, claimed.text
    version = claimed.json()["version"]
    head = runtime.ledger.head_position()
    traced = {**alice, "X-Request-ID": "refused-1"}
    attempts = [
        # 412: a stale If-Match
        (
            lambda: client.patch(
                path, json={"title": "x"}, headers={**traced, FENCE: "1", "If-Match": '"1"'}
            ),
            412,
            "version-mismatch",
        ),
        # 428: a holder's write without its fence
        (lambda: client.post(f"{path}/release", headers=traced), 428, "fence-required"),
        # 409: a move the state does not allow
        (
            lambda: client.post(
                f"{path}/transition", json={"to": "done"}, headers={**traced, FENCE: "1"}
            ),
            409,
            "invalid-transition",
        ),
        # 403: an agent archiving a project (coordinators only)
        (
            lambda: client.post("/v1/projects/apollo/archive", json={}, headers=traced),
            403,
            "forbidden",
        ),
        # 422 of a rule (the domain), not of the request's shape
        (
            lambda: client.patch(
                path,
                content=b'{"metadata": {"x": NaN}}',
                headers={
                    **traced,
                    FENCE: "1",
                    "If-Match": f'"{version}"',
                    "Content-Type": "application/json",
                },
            ),
            422,
            "validation-error",
        ),
    ]
    answered = []
    for send, status, slug in attempts:
        answered.append(assert_problem(send(), status, slug))
    assert written_since(runtime, head) == []
    # The target did not move: its log holds the same events as before the refusals.
    assert runtime.audit.history(UUID(item["id"]))[-1].version == version
    refusals = refusals_since(runtime, head)
    assert [(r.problem, r.status) for r in refusals] == [(s, st) for _, st, s in attempts]
    for refusal, problem in zip(refusals, answered, strict=True):
        assert refusal.actor == "agent:alice"
        assert refusal.trace_id == "refused-1" == problem["trace_id"]
        assert refusal.client and refusal.client.startswith("testclient")
        assert refusal.actor_token is not None
    assert [r.command for r in refusals] == [  # the operation ids of the API
        "patch_item",
        "release_item",
        "transition_item",
        "archive_project",
        "patch_item",
    ]
    assert refusals[0].target == path and refusals[0].target_id == item["id"]


def test_refusals_appear_in_the_timeline_of_their_target(
    runtime: Runtime, client: TestClient
) -> None:
    boss = setup(runtime, client)
    item = create(client, boss, "Guarded")
    stale = client.patch(
        f"/v1/work-items/{item['id']}", json={"title": "x"}, headers={**boss, "If-Match": '"7"'}
    )
    assert_problem(stale, 412, "version-mismatch")
    auditor = bearer(issue_token(runtime, "user:ann", "auditor"))
    timeline = client.get("/v1/events", params={"aggregate_id": item["id"]}, headers=auditor)
    events = [(e["event"], e["actor"]) for e in timeline.json()["events"]]
    assert events == [("WorkItemCreated", "user:boss"), ("CommandRefused", "user:boss")]
    refused = timeline.json()["events"][-1]
    assert refused["changes"]["problem"] == "version-mismatch"
    assert refused["changes"]["status"] == 412
    only = client.get("/v1/events", params={"type": "CommandRefused"}, headers=auditor)
    assert [e["position"] for e in only.json()["events"]] == [refused["position"]]


def test_malformed_requests_and_unknown_tokens_are_not_recorded(
    runtime: Runtime, client: TestClient
) -> None:
    boss = setup(runtime, client)
    head = runtime.ledger.head_position()
    before = _metric(client, "agentledger_unauthenticated_requests_total")
    assert_problem(client.post("/v1/work-items", json={"title": 3}, headers=boss), 422)
    assert_problem(client.post("/v1/work-items", json={}, headers=bearer("nope")), 401)
    assert_problem(client.post("/v1/work-items", json={}), 401)
    assert runtime.ledger.head_position() == head
    assert _metric(client, "agentledger_unauthenticated_requests_total") == before + 2


def _metric(client: TestClient, name: str) -> float:
    response = client.get("/metrics")
    assert response.status_code == 200
    for line in response.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_concurrent_refusals_are_all_recorded(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sixteen stale writes at once: all refused, all recorded, none lost. The recordings are
    held until all sixteen are in flight together (run one after another, the barrier would
    time out)."""
    boss = setup(runtime, client)
    item = create(client, boss, "Contended")
    together = threading.Barrier(16, timeout=30)
    record = RefusalLog.record

    def held(self: RefusalLog, *args: Any) -> int | None:
        together.wait()
        return record(self, *args)

    monkeypatch.setattr(RefusalLog, "record", held)
    head = runtime.ledger.head_position()
    traces = [f"stale-{n}" for n in range(16)]

    def stale(trace: str) -> Any:
        def send() -> None:
            response = client.patch(
                f"/v1/work-items/{item['id']}",
                json={"title": trace},
                headers={**boss, "If-Match": '"9"', "X-Request-ID": trace},
            )
            assert_problem(response, 412, "version-mismatch")

        return send

    run_threads([stale(t) for t in traces])
    assert written_since(runtime, head) == []
    assert sorted(r.trace_id for r in refusals_since(runtime, head)) == sorted(traces)
    assert [r.version for r in runtime.audit.history(UUID(item["id"]))] == [1]
