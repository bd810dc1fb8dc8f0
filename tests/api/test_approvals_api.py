"""Approvals over HTTP: request, the role that decides, separation of duties, decided once,
expiry, the `done` gate, the approval queue, and decisions racing each other."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.domain.approvals import Approval
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, agent, assert_problem, refused, start
from tests.conftest import bearer, issue_token
from tests.support.helpers import run_threads
from tests.support.overlap import Conflicts, DecidedTogether

Headers = dict[str, str]


def person(rt: Runtime, name: str, *roles: str) -> Headers:
    return bearer(issue_token(rt, f"user:{name}", *roles))


def at(headers: Headers, position: Any) -> Headers:
    return {**headers, CONSISTENT_WITH: str(position)}


@pytest.fixture
def boss(runtime: Runtime, client: TestClient) -> Headers:
    """A coordinator with a project: it creates items and requests approvals."""
    headers = person(runtime, "boss", "coordinator")
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=headers).status_code == 201
    return headers


def new_item(client: TestClient, headers: Headers, title: str = "Ship it") -> dict[str, Any]:
    body = {"project": "apollo", "kind": "task", "title": title}
    response = client.post("/v1/work-items", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def in_review(client: TestClient, headers: Headers, item_id: str) -> None:
    for status in ("in_progress", "in_review"):
        moved = client.post(
            f"/v1/work-items/{item_id}/transition", json={"to": status}, headers=headers
        )
        assert moved.status_code == 200, moved.text


def ask(
    client: TestClient, headers: Headers, item_id: str, role: str = "security", **extra: Any
) -> dict[str, Any]:
    body = {"approver_role": role, "reason": "touches the auth code", **extra}
    response = client.post(f"/v1/work-items/{item_id}/approvals", json=body, headers=headers)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"/v1/approvals/{response.json()['id']}"
    return dict(response.json())


def decide(
    client: TestClient, headers: Headers, approval_id: str, decision: str, notes: str = "ok"
) -> Any:
    return client.post(
        f"/v1/approvals/{approval_id}/decision",
        json={"decision": decision, "notes": notes},
        headers=headers,
    )


def finish(client: TestClient, headers: Headers, item_id: str) -> Any:
    return client.post(f"/v1/work-items/{item_id}/transition", json={"to": "done"}, headers=headers)


def test_a_request_is_queued_for_its_role_and_shown_on_the_item(
    runtime: Runtime, client: TestClient, boss: Headers
) -> None:
    item = new_item(client, boss)
    approval = ask(client, boss, item["id"], expires_in_seconds=3600)
    assert approval["status"] == "pending" and approval["requested_by"] == "user:boss"
    assert approval["work_item_version"] == item["version"] + 1  # the item now waits for it
    assert approval["expires_at"] is not None and approval["decided_by"] is None

    queue = client.get(
        "/v1/approvals",
        params={"approver_role": "security", "status": "pending"},
        headers=at(boss, approval["position"]),
    ).json()
    assert [a["id"] for a in queue["items"]] == [approval["id"]]
    assert (
        client.get("/v1/approvals", params={"approver_role": "legal"}, headers=boss).json()["items"]
        == []
    )
    shown = client.get(f"/v1/work-items/{item['id']}", headers=boss).json()
    assert [(a["id"], a["status"]) for a in shown["approvals"]] == [(approval["id"], "pending")]
    one = client.get(f"/v1/approvals/{approval['id']}", headers=boss)
    assert one.status_code == 200 and one.headers["ETag"] == '"1"'
    assert one.json()["reason"] == "touches the auth code"


def test_only_a_holder_of_the_approver_role_decides(
    runtime: Runtime, client: TestClient, boss: Headers
) -> None:
    approval = ask(client, boss, new_item(client, boss)["id"])
    path = approval["id"]
    for headers in (
        agent(runtime, "carol"),
        person(runtime, "dave", "approver:legal"),
        person(runtime, "root", "admin"),  # an admin is not an approver by being one
    ):
        refused(runtime, lambda h=headers: decide(client, h, path, "approved"), 403, "forbidden")
    assert client.get(f"/v1/approvals/{path}", headers=boss).json()["status"] == "pending"


def test_the_requester_can_never_decide_its_own_request(
    runtime: Runtime, client: TestClient, boss: Headers
) -> None:
    both = person(runtime, "eve", "coordinator", "approver:security")
    approval = ask(client, both, new_item(client, boss)["id"])
    answer = refused(
        runtime,
        lambda: decide(client, both, approval["id"], "approved"),
        403,
        "separation-of-duties",
    )
    assert answer.json()["requested_by"] == "user:eve"


def test_decided_once_the_same_decision_again_answers_as_before(
    runtime: Runtime, client: TestClient, boss: Headers
) -> None:
    approval = ask(client, boss, new_item(client, boss)["id"])
    alice = person(runtime, "alice", "approver:security")
    first = decide(client, alice, approval["id"], "approved", "looks fine")
    assert first.status_code == 200, first.text
    assert (first.json()["status"], first.json()["decided_by"]) == ("approved", "user:alice")

    head = runtime.ledger.head_position()
    again = decide(client, alice, approval["id"], "approved", "looks fine")
    assert again.status_code == 200 and runtime.ledger.head_position() == head
    assert {k: v for k, v in again.json().items() if k != "position"} == {
        k: v for k, v in first.json().items() if k != "position"
    }
    other = refused(
        runtime,
        lambda: decide(client, alice, approval["id"], "rejected"),
        409,
        "approval-already-decided",
    )
    assert (other.json()["decision"], other.json()["decided_by"]) == ("approved", "user:alice")
    bob = person(runtime, "bob", "approver:security")
    refused(
        runtime,
        lambda: decide(client, bob, approval["id"], "approved"),
        409,
        "approval-already-decided",
    )


def test_an_expired_approval_can_no_longer_be_decided(
    runtime: Runtime, client: TestClient, boss: Headers, clock: ManualClock
) -> None:
    item = new_item(client, boss)
    approval = ask(client, boss, item["id"], expires_in_seconds=60)
    clock.advance(61)
    alice = person(runtime, "alice", "approver:security")
    refused(
        runtime, lambda: decide(client, alice, approval["id"], "approved"), 409, "approval-expired"
    )
    assert client.get(f"/v1/approvals/{approval['id']}", headers=boss).json()["status"] == "expired"
    listed = client.get("/v1/approvals", params={"status": "expired"}, headers=boss).json()
    assert [a["id"] for a in listed["items"]] == [approval["id"]]
    assert (
        client.get("/v1/approvals", params={"status": "pending"}, headers=boss).json()["items"]
        == []
    )
    in_review(client, boss, item["id"])
    gate = refused(runtime, lambda: finish(client, boss, item["id"]), 409, "approval-required")
    assert gate.json()["approvals"] == [
        {"id": approval["id"], "approver_role": "security", "status": "expired"}
    ]


def test_done_waits_for_every_role_approved_and_a_new_request_replaces_a_rejection(
    runtime: Runtime, client: TestClient, boss: Headers
) -> None:
    item = new_item(client, boss)
    security = ask(client, boss, item["id"])
    legal = ask(client, boss, item["id"], role="legal")
    in_review(client, boss, item["id"])
    gate = refused(runtime, lambda: finish(client, boss, item["id"]), 409, "approval-required")
    assert {(a["approver_role"], a["status"]) for a in gate.json()["approvals"]} == {
        ("security", "pending"),
        ("legal", "pending"),
    }

    alice = person(runtime, "alice", "approver:security", "approver:legal")
    assert decide(client, alice, security["id"], "approved").status_code == 200
    assert decide(client, alice, legal["id"], "rejected", "not this way").status_code == 200
    gate = refused(runtime, lambda: finish(client, boss, item["id"]), 409, "approval-required")
    assert gate.json()["approvals"] == [
        {"id": legal["id"], "approver_role": "legal", "status": "rejected"}
    ]

    again = ask(client, boss, item["id"], role="legal")  # the rework is asked about anew
    assert decide(client, alice, again["id"], "approved").status_code == 200
    done = finish(client, boss, item["id"])
    assert done.status_code == 200, done.text
    shown = client.get(f"/v1/work-items/{item['id']}", headers=at(boss, done.json()["position"]))
    assert [a["status"] for a in shown.json()["approvals"]] == ["approved", "rejected", "approved"]
    refused(
        runtime,
        lambda: client.post(
            f"/v1/work-items/{item['id']}/approvals",
            json={"approver_role": "security", "reason": "too late"},
            headers=boss,
        ),
        409,
        "invalid-transition",
    )


def test_bad_requests_and_decisions_are_refused_and_write_nothing(
    runtime: Runtime, client: TestClient, boss: Headers
) -> None:
    item = new_item(client, boss)
    path = f"/v1/work-items/{item['id']}/approvals"
    for body in (
        {"approver_role": "Security", "reason": "x"},
        {"approver_role": "security:x", "reason": "x"},
        {"approver_role": "security", "reason": "   "},
        {"approver_role": "security", "reason": "x" * 2001},
        {"approver_role": "security", "reason": "x", "expires_in_seconds": 59},
        {"approver_role": "security", "reason": "x", "expires_in_seconds": 30 * 86400 + 1},
        {"approver_role": "security", "reason": "x", "expires_in_seconds": "60"},
        {"approver_role": "security"},
        {"approver_role": "security", "reason": "x", "extra": 1},
    ):
        refused(runtime, lambda b=body: client.post(path, json=b, headers=boss), 422)
    refused(
        runtime,
        lambda: client.post(
            "/v1/work-items/00000000-0000-0000-0000-000000000000/approvals",
            json={"approver_role": "security", "reason": "x"},
            headers=boss,
        ),
        404,
    )
    approval = ask(client, boss, item["id"])
    alice = person(runtime, "alice", "approver:security")
    refused(runtime, lambda: decide(client, alice, approval["id"], "maybe"), 422)
    refused(runtime, lambda: decide(client, alice, approval["id"], "approved", "\x00"), 422)
    refused(runtime, lambda: decide(client, alice, "not-an-id", "approved"), 404)
    assert client.get("/v1/approvals", params={"status": "later"}, headers=boss).status_code == 422
    assert client.get("/v1/approvals/nope", headers=boss).status_code == 404


def test_the_holder_requests_with_its_fence_and_others_cannot_write_its_item(
    runtime: Runtime, client: TestClient, boss: Headers
) -> None:
    item = new_item(client, boss)
    alice = agent(runtime, "alice")
    session = start(client, alice)
    claimed = client.post(
        f"/v1/work-items/{item['id']}/claim", json={"session_id": session["id"]}, headers=alice
    ).json()
    body = {"approver_role": "security", "reason": "please"}
    path = f"/v1/work-items/{item['id']}/approvals"
    refused(runtime, lambda: client.post(path, json=body, headers=alice), 428, "fence-required")
    bob = agent(runtime, "bob")
    refused(runtime, lambda: client.post(path, json=body, headers=bob), 409, "already-claimed")
    fenced = {**alice, "AgentLedger-Fence": str(claimed["claim"]["fence"])}
    refused(
        runtime,
        lambda: client.post(path, json=body, headers={**fenced, "If-Match": '"1"'}),
        412,
        "version-mismatch",
    )
    assert client.post(path, json=body, headers=fenced).status_code == 201


def test_two_approvers_deciding_at_once_one_wins_the_other_is_told(
    runtime: Runtime, client: TestClient, boss: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    approval = ask(client, boss, new_item(client, boss)["id"])
    deciders = [
        (person(runtime, "alice", "approver:security"), "approved"),
        (person(runtime, "bob", "approver:security"), "rejected"),
    ]
    answers: list[Any] = []
    lock = threading.Lock()
    together = DecidedTogether(2).install(monkeypatch)
    conflicts = Conflicts(runtime)

    def decider(headers: Headers, decision: str) -> Callable[[], None]:
        def go() -> None:
            response = decide(client, headers, approval["id"], decision)
            with lock:
                answers.append(response)

        return go

    run_threads([decider(h, d) for h, d in deciders])

    assert Counter(r.status_code for r in answers) == {200: 1, 409: 1}
    (won,) = [r.json() for r in answers if r.status_code == 200]
    (lost,) = [r for r in answers if r.status_code == 409]
    told = assert_problem(lost, 409, "approval-already-decided")
    assert (told["decision"], told["decided_by"]) == (won["status"], won["decided_by"])
    decided = [
        e
        for e in runtime.ledger.events.get(UUID(approval["id"]))
        if isinstance(e, Approval.ApprovalDecided)
    ]
    assert [(e.decision, e.actor) for e in decided] == [(won["status"], won["decided_by"])]
    assert together.all_in_flight and conflicts.since() >= 1


def test_concurrent_requests_for_one_item_are_all_kept(
    runtime: Runtime, client: TestClient, boss: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each request writes the item too: eight racing requests conflict on it, re-run, and
    every one is kept (none overwrites another's note on the item)."""
    item = new_item(client, boss)
    roles = [f"role-{i}" for i in range(8)]
    answers: list[Any] = []
    lock = threading.Lock()
    together = DecidedTogether(len(roles)).install(monkeypatch)
    conflicts = Conflicts(runtime)

    def requester(role: str) -> Callable[[], None]:
        def go() -> None:
            body = {"approver_role": role, "reason": f"for {role}"}
            response = client.post(
                f"/v1/work-items/{item['id']}/approvals", json=body, headers=boss
            )
            with lock:
                answers.append(response)

        return go

    run_threads([requester(r) for r in roles])

    assert [r.status_code for r in answers] == [201] * len(roles), [r.text for r in answers]
    position = max(r.json()["position"] for r in answers)
    shown = client.get(f"/v1/work-items/{item['id']}", headers=at(boss, position)).json()
    assert sorted(a["approver_role"] for a in shown["approvals"]) == roles
    assert shown["version"] == item["version"] + len(roles)
    assert together.all_in_flight and conflicts.since() >= len(roles) - 1


def test_a_move_to_done_racing_a_new_request_never_finishes_unapproved(
    runtime: Runtime, client: TestClient, boss: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = new_item(client, boss)
    first = ask(client, boss, item["id"])
    alice = person(runtime, "alice", "approver:security")
    assert decide(client, alice, first["id"], "approved").status_code == 200
    in_review(client, boss, item["id"])
    answers: dict[str, Any] = {}
    together = DecidedTogether(2).install(monkeypatch)

    def go_done() -> None:
        answers["done"] = finish(client, boss, item["id"])

    def go_request() -> None:
        answers["request"] = client.post(
            f"/v1/work-items/{item['id']}/approvals",
            json={"approver_role": "legal", "reason": "one more look"},
            headers=boss,
        )

    run_threads([go_done, go_request])

    done, request = answers["done"], answers["request"]
    assert together.all_in_flight
    if done.status_code == 200:  # done first: the request finds the item finished
        assert_problem(request, 409, "invalid-transition")
    else:  # the request first: done finds a pending approval
        assert request.status_code == 201
        assert assert_problem(done, 409, "approval-required")["approvals"][0]["status"] == "pending"
