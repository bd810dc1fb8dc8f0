"""/v1/agents/{agent_id}/project over HTTP: each agent's own selection, changed by version only."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.domain.selections import ProjectSelection, selection_id
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import (
    CONSISTENT_WITH,
    POSITION,
    agent,
    assert_problem,
    refused,
    start,
    when,
)
from tests.conftest import bearer, issue_token
from tests.support.helpers import run_threads
from tests.support.overlap import Conflicts, DecidedTogether

Headers = dict[str, str]
ANY_FIRST = {"If-None-Match": "*"}


def coordinator(rt: Runtime) -> Headers:
    return bearer(issue_token(rt, "user:boss", "coordinator"))


def make_projects(rt: Runtime, client: TestClient, *names: str) -> None:
    boss = coordinator(rt)
    for name in names:
        response = client.post("/v1/projects", json={"name": name}, headers=boss)
        assert response.status_code == 201, response.text


def archive(rt: Runtime, client: TestClient, name: str) -> int:
    response = client.post(f"/v1/projects/{name}/archive", headers=coordinator(rt))
    assert response.status_code == 200, response.text
    return int(response.json()["position"])


def if_match(version: int | str) -> Headers:
    return {"If-Match": f'"{version}"'}


def put(
    client: TestClient,
    headers: Headers,
    agent_id: str,
    project: str,
    session_id: str,
    precondition: Headers | None = None,
) -> httpx.Response:
    return client.put(
        f"/v1/agents/{agent_id}/project",
        json={"project": project, "session_id": session_id},
        headers={**headers, **(precondition or {})},
    )


def get(client: TestClient, headers: Headers, agent_id: str, at: int | None = None) -> Any:
    extra = {CONSISTENT_WITH: str(at)} if at is not None else {}
    return client.get(f"/v1/agents/{agent_id}/project", headers={**headers, **extra})


def aggregate_version(rt: Runtime, agent_id: str) -> int:
    return int(rt.ledger.repository.get(selection_id(agent_id)).version)


def selection_events(rt: Runtime, agent_id: str) -> list[Any]:
    return list(rt.ledger.events.get(selection_id(agent_id)))


def test_get_before_any_selection_is_404(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    problem = assert_problem(get(client, alice, "alice"), 404, "not-found")
    assert problem["resource"] == "selection"
    # A malformed agent id names no agent at all: the request itself is wrong (422).
    assert_problem(get(client, alice, "not an id"), 422, "validation-error")


def test_put_needs_a_precondition(runtime: Runtime, client: TestClient) -> None:
    make_projects(runtime, client, "xray")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]

    refused(runtime, lambda: put(client, alice, "alice", "xray", sid), 428, "precondition-required")
    # `If-Match: *` would be an unconditional write: it is no precondition at all.
    refused(
        runtime,
        lambda: put(client, alice, "alice", "xray", sid, {"If-Match": "*"}),
        428,
        "precondition-required",
    )
    refused(
        runtime,
        lambda: put(client, alice, "alice", "xray", sid, {"If-None-Match": '"1"'}),
        400,
        "invalid-precondition",
    )
    refused(
        runtime,
        lambda: put(client, alice, "alice", "xray", sid, {**ANY_FIRST, **if_match(1)}),
        400,
        "invalid-precondition",
    )
    assert_problem(get(client, alice, "alice"), 404)


def test_first_selection_then_switches_by_version(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    make_projects(runtime, client, "xray", "yankee")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]

    # If-Match on a selection that does not exist yet: version 0, no project.
    stale = refused(
        runtime, lambda: put(client, alice, "alice", "xray", sid, if_match(1)), 412
    ).json()
    assert (stale["current_version"], stale["current_project"]) == (0, None)

    first = put(client, alice, "alice", "xray", sid, ANY_FIRST)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["agent_id"] == "alice"
    assert body["project"] == "xray"
    assert body["session_id"] == sid
    assert body["version"] == 1 == aggregate_version(runtime, "alice")
    assert body["cleared_reason"] is None
    assert when(body["updated_at"]) == clock.now()
    assert first.headers["ETag"] == '"1"'
    assert int(first.headers[POSITION]) == body["position"] == runtime.ledger.head_position()

    read = get(client, alice, "alice", body["position"])
    assert read.status_code == 200, read.text
    assert read.headers["ETag"] == '"1"'
    assert read.json() == {k: v for k, v in body.items() if k != "position"}

    # A second "first" selection is stale: the problem says what is there now.
    again = refused(
        runtime,
        lambda: put(client, alice, "alice", "yankee", sid, ANY_FIRST),
        412,
        "version-mismatch",
    ).json()
    assert (again["current_version"], again["current_project"]) == (1, "xray")

    clock.advance(5)
    switched = put(client, alice, "alice", "yankee", sid, if_match(1))
    assert switched.status_code == 200, switched.text
    assert switched.json()["project"] == "yankee"
    assert switched.json()["version"] == 2 == aggregate_version(runtime, "alice")
    assert switched.headers["ETag"] == '"2"'
    assert when(switched.json()["updated_at"]) == clock.now()

    for old in ('"1"', '"7"', 'W/"2"'):
        problem = refused(
            runtime,
            partial(put, client, alice, "alice", "xray", sid, {"If-Match": old}),
            412,
            "version-mismatch",
        ).json()
        assert (problem["current_version"], problem["current_project"]) == (2, "yankee")
    refused(
        runtime,
        lambda: put(client, alice, "alice", "xray", sid, {"If-Match": "2"}),
        400,
        "invalid-precondition",
    )

    # Choosing what is already chosen writes nothing and keeps the version.
    head = runtime.ledger.head_position()
    same = put(client, alice, "alice", "yankee", sid, if_match(2))
    assert same.status_code == 200, same.text
    assert same.json()["version"] == 2
    assert runtime.ledger.head_position() == head

    events = selection_events(runtime, "alice")
    assert [type(e) for e in events] == [
        ProjectSelection.SelectionStarted,
        ProjectSelection.ProjectSelected,
    ]
    assert events[1].previous_project == "xray"
    assert all(e.actor == "agent:alice" for e in events)
    latest = get(client, alice, "alice", switched.json()["position"]).json()
    assert (latest["project"], latest["version"]) == ("yankee", 2)


def test_the_session_must_be_the_agents_own_active_lease(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    make_projects(runtime, client, "xray")
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    bobs = start(client, bob)["id"]
    pending = start(client, alice, status="pending")["id"]
    completed = start(client, alice)["id"]
    done = client.post(f"/v1/sessions/{completed}/complete", headers=alice)
    assert done.status_code == 200, done.text
    short = start(client, alice, ttl_seconds=60)["id"]
    clock.advance(61)

    def attempt(session_id: str) -> httpx.Response:
        return put(client, alice, "alice", "xray", session_id, ANY_FIRST)

    unknown = refused(runtime, partial(attempt, str(uuid.uuid4())), 404, "not-found").json()
    assert unknown["resource"] == "session"
    foreign = refused(runtime, partial(attempt, bobs), 409, "session-not-owned").json()
    assert (foreign["session_id"], foreign["owner"]) == (bobs, "bob")
    assert (
        refused(runtime, partial(attempt, pending), 409, "session-not-active").json()["session_id"]
        == pending
    )
    assert (
        refused(runtime, partial(attempt, short), 409, "session-expired").json()["session_id"]
        == short
    )
    refused(runtime, partial(attempt, completed), 409, "session-terminated")
    refused(runtime, partial(attempt, "not-a-uuid"), 422, "validation-error")
    assert_problem(get(client, alice, "alice"), 404)

    # The same checks guard a switch of an existing selection.
    live = start(client, alice, ttl_seconds=3600)["id"]
    assert put(client, alice, "alice", "xray", live, ANY_FIRST).status_code == 200
    make_projects(runtime, client, "yankee")
    for sid, slug in ((bobs, "session-not-owned"), (short, "session-expired")):
        refused(
            runtime,
            partial(put, client, alice, "alice", "yankee", sid, if_match(1)),
            409,
            slug,
        )
    assert aggregate_version(runtime, "alice") == 1


def test_the_project_must_exist_and_be_open(runtime: Runtime, client: TestClient) -> None:
    make_projects(runtime, client, "xray", "yankee")
    archive(runtime, client, "yankee")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]

    missing = refused(
        runtime, lambda: put(client, alice, "alice", "zulu", sid, ANY_FIRST), 404, "not-found"
    ).json()
    assert missing["resource"] == "project"
    refused(
        runtime, lambda: put(client, alice, "alice", "bad name", sid, ANY_FIRST), 404, "not-found"
    )
    closed = refused(
        runtime,
        lambda: put(client, alice, "alice", "yankee", sid, ANY_FIRST),
        409,
        "project-archived",
    ).json()
    assert closed["project"] == "yankee"

    assert put(client, alice, "alice", "xray", sid, ANY_FIRST).status_code == 200
    refused(
        runtime,
        lambda: put(client, alice, "alice", "yankee", sid, if_match(1)),
        409,
        "project-archived",
    )
    assert selection_events(runtime, "alice")[-1].project == "xray"


def test_only_the_agent_itself_or_a_coordinator_changes_a_selection(
    runtime: Runtime, client: TestClient
) -> None:
    make_projects(runtime, client, "xray", "yankee")
    alice, bob, boss = agent(runtime, "alice"), agent(runtime, "bob"), coordinator(runtime)
    alices = start(client, alice)["id"]
    bobs = start(client, bob)["id"]

    refused(runtime, lambda: put(client, bob, "alice", "xray", alices, ANY_FIRST), 403, "forbidden")
    refused(runtime, lambda: put(client, bob, "alice", "xray", bobs, ANY_FIRST), 403, "forbidden")
    auditor = bearer(issue_token(runtime, "user:eve", "auditor"))
    refused(
        runtime, lambda: put(client, auditor, "alice", "xray", alices, ANY_FIRST), 403, "forbidden"
    )

    # A coordinator switches alice, with one of alice's own sessions.
    chosen = put(client, boss, "alice", "xray", alices, ANY_FIRST)
    assert chosen.status_code == 200, chosen.text
    assert (chosen.json()["agent_id"], chosen.json()["project"]) == ("alice", "xray")
    assert chosen.json()["version"] == 1 == aggregate_version(runtime, "alice")
    refused(
        runtime,
        lambda: put(client, boss, "alice", "yankee", bobs, if_match(1)),
        409,
        "session-not-owned",
    )
    moved = put(client, boss, "alice", "yankee", alices, if_match(1))
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 2 == aggregate_version(runtime, "alice")
    assert [e.actor for e in selection_events(runtime, "alice")] == ["user:boss", "user:boss"]

    # Bob cannot clear alice's selection either; the coordinator can.
    refused(
        runtime,
        lambda: client.delete("/v1/agents/alice/project", headers={**bob, **if_match(2)}),
        403,
        "forbidden",
    )
    cleared = client.delete("/v1/agents/alice/project", headers={**boss, **if_match(2)})
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["project"] is None
    # Bob's own selection was never touched by any of this.
    assert_problem(get(client, bob, "bob"), 404)


def test_delete_clears_under_if_match(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    make_projects(runtime, client, "xray")
    alice = agent(runtime, "alice")
    sid = start(client, alice)["id"]
    item = "/v1/agents/alice/project"

    assert_problem(client.delete(item, headers={**alice, **if_match(1)}), 412, "version-mismatch")
    assert put(client, alice, "alice", "xray", sid, ANY_FIRST).status_code == 200

    refused(runtime, lambda: client.delete(item, headers=alice), 428, "precondition-required")
    refused(
        runtime,
        lambda: client.delete(item, headers={**alice, "If-Match": "*"}),
        428,
        "precondition-required",
    )
    stale = refused(
        runtime, lambda: client.delete(item, headers={**alice, **if_match(3)}), 412
    ).json()
    assert (stale["current_version"], stale["current_project"]) == (1, "xray")

    clock.advance(10)
    cleared = client.delete(item, headers={**alice, **if_match(1)})
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert body["project"] is None
    assert body["cleared_reason"] == "cleared"
    assert body["version"] == 2 == aggregate_version(runtime, "alice")
    assert cleared.headers["ETag"] == '"2"'
    assert when(body["updated_at"]) == clock.now()
    assert int(cleared.headers[POSITION]) == body["position"] == runtime.ledger.head_position()
    seen = get(client, alice, "alice", body["position"])
    assert seen.json() == {k: v for k, v in body.items() if k != "position"}
    event = selection_events(runtime, "alice")[-1]
    assert isinstance(event, ProjectSelection.SelectionCleared)
    assert (event.reason, event.previous_project) == ("cleared", "xray")

    # Clearing an empty selection writes nothing.
    head = runtime.ledger.head_position()
    again = client.delete(item, headers={**alice, **if_match(2)})
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 2
    assert runtime.ledger.head_position() == head

    # Selecting again (by version) fills it and forgets the reason.
    back = put(client, alice, "alice", "xray", sid, if_match(2))
    assert back.status_code == 200, back.text
    assert (back.json()["project"], back.json()["cleared_reason"]) == ("xray", None)
    assert back.json()["version"] == 3 == aggregate_version(runtime, "alice")


def test_two_agents_working_at_once_never_touch_each_other(
    runtime: Runtime, client: TestClient
) -> None:
    own = {"alice": ("x-one", "x-two"), "bob": ("y-one", "y-two")}
    make_projects(runtime, client, *own["alice"], *own["bob"])
    headers = {name: agent(runtime, name) for name in own}
    sessions = {name: start(client, headers[name], ttl_seconds=3600)["id"] for name in own}
    rounds = 12
    # Every entry each agent was acknowledged: (entry id, the project it had selected).
    written: dict[str, list[tuple[str, str]]] = {name: [] for name in own}
    seen_projects: dict[str, set[str]] = {name: set() for name in own}

    def work(name: str) -> Callable[[], None]:
        def go() -> None:
            me, sid = headers[name], sessions[name]
            response = put(client, me, name, own[name][0], sid, ANY_FIRST)
            assert response.status_code == 200, response.text
            version = response.json()["version"]
            for i in range(rounds):
                project = own[name][i % 2]
                if i:
                    response = put(client, me, name, project, sid, if_match(version))
                    assert response.status_code == 200, response.text
                    assert response.json()["version"] == version + 1
                    version = response.json()["version"]
                mine = get(client, me, name, response.json()["position"])
                assert mine.status_code == 200, mine.text
                assert (mine.json()["project"], mine.json()["version"]) == (project, version)
                seen_projects[name].add(mine.json()["project"])
                for n in range(2):
                    entry = client.post(
                        "/v1/entries",
                        json={"message": f"{name} round {i} #{n}", "session_id": sid},
                        headers=me,
                    )
                    assert entry.status_code == 201, entry.text
                    assert entry.json()["project"] == project
                    assert entry.json()["agent_id"] == name
                    written[name].append((entry.json()["id"], project))

        return go

    run_threads([work("alice"), work("bob")])

    head = runtime.ledger.head_position()
    for name, projects in own.items():
        assert seen_projects[name] == set(projects)
        final = get(client, headers[name], name, head).json()
        assert final["project"] == projects[(rounds - 1) % 2]
        assert final["version"] == rounds == aggregate_version(runtime, name)
        assert final["session_id"] == sessions[name]
        # Only the agent itself ever wrote its selection.
        events = selection_events(runtime, name)
        assert {e.actor for e in events} == {f"agent:{name}"}
        assert {getattr(e, "project", None) for e in events} <= set(projects)
        assert len(events) == rounds
    for name, projects in own.items():
        for project in projects:
            listed = client.get(
                f"/v1/projects/{project}/entries",
                params={"limit": 500},
                headers={**headers[name], CONSISTENT_WITH: str(head)},
            )
            assert listed.status_code == 200, listed.text
            items = listed.json()["items"]
            expected = {eid for eid, p in written[name] if p == project}
            assert {item["id"] for item in items} == expected
            assert len(items) == len(expected) == rounds
            assert {(item["agent_id"], item["session_id"]) for item in items} == {
                (name, sessions[name])
            }


def test_sixteen_concurrent_switches_with_one_if_match(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = [f"target-{i:02d}" for i in range(16)]
    make_projects(runtime, client, "home", *targets)
    alice = agent(runtime, "alice")
    sid = start(client, alice, ttl_seconds=3600)["id"]
    assert put(client, alice, "alice", "home", sid, ANY_FIRST).status_code == 200
    answers: list[tuple[str, httpx.Response]] = []
    lock = threading.Lock()
    together = DecidedTogether(16).install(monkeypatch)
    conflicts = Conflicts(runtime)

    def switch(project: str) -> Callable[[], None]:
        def go() -> None:
            response = put(client, alice, "alice", project, sid, if_match(1))
            with lock:
                answers.append((project, response))

        return go

    run_threads([switch(p) for p in targets])

    statuses = Counter(r.status_code for _, r in answers)
    assert statuses == {200: 1, 412: 15}, statuses
    ((winner, won),) = [(p, r) for p, r in answers if r.status_code == 200]
    assert won.json()["version"] == 2
    assert won.headers["ETag"] == '"2"'
    for project, response in answers:
        if project == winner:
            continue
        problem = assert_problem(response, 412, "version-mismatch")
        assert problem["current_version"] == 2
        assert problem["current_project"] == winner
        assert problem["expected_version"] == 1

    events = selection_events(runtime, "alice")
    assert len(events) == 2
    assert events[-1].project == winner
    assert aggregate_version(runtime, "alice") == 2
    final = get(client, alice, "alice", won.json()["position"])
    assert final.status_code == 200, final.text
    assert (final.json()["project"], final.json()["version"]) == (winner, 2)
    assert final.headers["ETag"] == '"2"'
    # All sixteen passed If-Match at once: fifteen saves collided, re-ran, were told 412.
    assert together.all_in_flight and conflicts.since() >= 15


def test_sixteen_concurrent_first_selections(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = [f"target-{i:02d}" for i in range(16)]
    make_projects(runtime, client, *targets)
    alice = agent(runtime, "alice")
    sid = start(client, alice, ttl_seconds=3600)["id"]
    answers: list[tuple[str, httpx.Response]] = []
    lock = threading.Lock()
    together = DecidedTogether(16).install(monkeypatch)
    conflicts = Conflicts(runtime)

    def first(project: str) -> Callable[[], None]:
        def go() -> None:
            response = put(client, alice, "alice", project, sid, ANY_FIRST)
            with lock:
                answers.append((project, response))

        return go

    run_threads([first(p) for p in targets])

    statuses = Counter(r.status_code for _, r in answers)
    assert statuses == {200: 1, 412: 15}, statuses
    ((winner, won),) = [(p, r) for p, r in answers if r.status_code == 200]
    assert won.json()["version"] == 1
    for project, response in answers:
        if project != winner:
            problem = assert_problem(response, 412, "version-mismatch")
            assert (problem["current_version"], problem["current_project"]) == (1, winner)
    assert [e.project for e in selection_events(runtime, "alice")] == [winner]
    final = get(client, alice, "alice", won.json()["position"]).json()
    assert (final["project"], final["version"]) == (winner, 1)
    assert together.all_in_flight and conflicts.since() >= 15
