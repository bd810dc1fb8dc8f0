"""/v1/projects over HTTP: create (unique names, even racing), list, get, archive."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.domain.projects import Project, project_id
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import (
    CONSISTENT_WITH,
    POSITION,
    agent,
    assert_problem,
    refused,
    when,
)
from tests.conftest import bearer, issue_token
from tests.support.helpers import run_threads
from tests.support.overlap import Conflicts, DecidedTogether


def coordinator(rt: Runtime) -> dict[str, str]:
    return bearer(issue_token(rt, "user:boss", "coordinator"))


def all_events(rt: Runtime) -> list[Any]:
    events: list[Any] = []
    after = 0
    while batch := rt.ledger.read_log(after=after, limit=500):
        events += [rt.ledger.to_event(n) for n in batch]
        after = batch[-1].id
    return events


def created_events(rt: Runtime, name: str) -> list[Any]:
    return [e for e in all_events(rt) if isinstance(e, Project.ProjectCreated) and e.name == name]


def create(client: TestClient, headers: dict[str, str], name: str, **extra: Any) -> Any:
    response = client.post("/v1/projects", json={"name": name, **extra}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_answers_201_with_location_etag_and_position(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    alice = agent(runtime, "alice")
    response = client.post(
        "/v1/projects", json={"name": "apollo", "description": "moon shot"}, headers=alice
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == "/v1/projects/apollo"
    assert response.headers["ETag"] == '"1"'
    assert int(response.headers[POSITION]) == body["position"] == runtime.ledger.head_position()
    assert body["name"] == "apollo"
    assert body["description"] == "moon shot"
    assert body["archived"] is False
    assert body["version"] == 1
    assert when(body["created_at"]) == clock.now() == when(body["updated_at"])
    (created,) = runtime.ledger.events.get(project_id("apollo"))
    assert isinstance(created, Project.ProjectCreated)
    assert created.actor == "agent:alice"

    read = client.get(
        response.headers["Location"], headers={**alice, CONSISTENT_WITH: str(body["position"])}
    )
    assert read.status_code == 200, read.text
    assert read.headers["ETag"] == '"1"'
    assert int(read.headers[POSITION]) >= body["position"]
    assert read.json() == {k: v for k, v in body.items() if k != "position"}

    # A coordinator may create too; the description is optional.
    other = create(client, coordinator(runtime), "gemini")
    assert other["description"] is None and other["version"] == 1


def test_a_second_create_of_one_name_is_refused(runtime: Runtime, client: TestClient) -> None:
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    create(client, alice, "apollo", description="first")

    problem = refused(
        runtime,
        lambda: client.post("/v1/projects", json={"name": "apollo"}, headers=bob),
        409,
        "project-exists",
    ).json()
    assert problem["project"] == "apollo"
    assert len(created_events(runtime, "apollo")) == 1
    seen = client.get(
        "/v1/projects/apollo", headers={**bob, CONSISTENT_WITH: str(runtime.ledger.head_position())}
    )
    assert seen.json()["description"] == "first"

    # Names are case-sensitive: another spelling is another project.
    assert create(client, bob, "Apollo")["name"] == "Apollo"


def test_only_agents_and_coordinators_create(runtime: Runtime, client: TestClient) -> None:
    auditor = bearer(issue_token(runtime, "user:eve", "auditor"))
    refused(
        runtime,
        lambda: client.post("/v1/projects", json={"name": "apollo"}, headers=auditor),
        403,
        "forbidden",
    )
    refused(runtime, lambda: client.post("/v1/projects", json={"name": "apollo"}), 401)


def test_sixteen_racing_creates_of_one_name(
    runtime: Runtime, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    callers = [agent(runtime, f"racer-{i}") for i in range(16)]
    answers: list[tuple[int, int, Any]] = []
    lock = threading.Lock()
    together = DecidedTogether(16).install(monkeypatch)
    conflicts = Conflicts(runtime)

    def creator(i: int) -> Callable[[], None]:
        def go() -> None:
            response = client.post(
                "/v1/projects",
                json={"name": "contested", "description": f"by racer {i}"},
                headers=callers[i],
            )
            with lock:
                answers.append((i, response.status_code, response))

        return go

    run_threads([creator(i) for i in range(16)])

    statuses = Counter(status for _, status, _ in answers)
    assert statuses == {201: 1, 409: 15}, statuses
    for _, status, response in answers:
        if status == 409:
            assert assert_problem(response, 409, "project-exists")["project"] == "contested"
    (winner,) = [(i, r.json()) for i, status, r in answers if status == 201]

    created = created_events(runtime, "contested")
    assert len(created) == 1
    assert list(runtime.ledger.events.get(project_id("contested"))) == created
    assert created[0].actor == f"agent:racer-{winner[0]}"
    assert created[0].description == f"by racer {winner[0]}"
    seen = client.get(
        "/v1/projects/contested",
        headers={**callers[0], CONSISTENT_WITH: str(winner[1]["position"])},
    )
    assert seen.json()["description"] == f"by racer {winner[0]}"
    # All sixteen found the name free at once: fifteen saves collided, re-ran, got 409.
    assert together.all_in_flight and conflicts.since() >= 15


def test_invalid_names_are_refused_with_422(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    bad_names: list[Any] = [
        "",
        "-lead",
        ".hidden",
        "_under",
        "has space",
        "slash/name",
        "colon:name",
        "ünïcode",
        "tab\tname",
        "a" * 65,
        123,
        None,
        ["list"],
    ]
    for name in bad_names:
        problem = refused(
            runtime,
            partial(client.post, "/v1/projects", json={"name": name}, headers=alice),
            422,
            "validation-error",
        ).json()
        assert problem["errors"], name
    refused(
        runtime,
        lambda: client.post("/v1/projects", json={"description": "no name"}, headers=alice),
        422,
        "validation-error",
    )
    refused(
        runtime,
        lambda: client.post("/v1/projects", json={"name": "ok", "colour": "red"}, headers=alice),
        422,
        "validation-error",
    )
    refused(
        runtime,
        lambda: client.post(
            "/v1/projects", json={"name": "ok", "description": "d" * 2001}, headers=alice
        ),
        422,
        "validation-error",
    )
    # The edges of the slug rule are accepted.
    for good in ("a" * 64, "A.b_c-9", "7"):
        assert create(client, alice, good)["name"] == good


def test_list_pages_by_name_with_an_archived_filter(runtime: Runtime, client: TestClient) -> None:
    boss = coordinator(runtime)
    names = ["kilo", "alpha", "india", "echo", "bravo", "juliet", "delta", "hotel", "golf"]
    for name in names:
        create(client, boss, name)
    archived = {"bravo", "echo", "hotel", "juliet"}
    last = 0
    for name in sorted(archived):
        response = client.post(f"/v1/projects/{name}/archive", headers=boss)
        assert response.status_code == 200, response.text
        last = response.json()["position"]

    def listing(**query: Any) -> tuple[list[str], list[dict[str, Any]]]:
        seen: list[str] = []
        pages: list[dict[str, Any]] = []
        while True:
            response = client.get(
                "/v1/projects", params=query, headers={**boss, CONSISTENT_WITH: str(last)}
            )
            assert response.status_code == 200, response.text
            page = response.json()
            assert int(response.headers[POSITION]) == page["position"] >= last
            pages.append(page)
            seen += [item["name"] for item in page["items"]]
            if page["next_cursor"] is None:
                return seen, pages
            query = {**query, "cursor": page["next_cursor"]}

    everything, pages = listing(limit=2)
    assert everything == sorted(names)
    assert [len(p["items"]) for p in pages] == [2, 2, 2, 2, 1]
    by_name = {item["name"]: item for p in pages for item in p["items"]}
    assert all(by_name[n]["archived"] is (n in archived) for n in names)
    assert all(by_name[n]["version"] == (2 if n in archived else 1) for n in names)

    assert listing(archived="true", limit=3)[0] == sorted(archived)
    assert listing(archived="false", limit=3)[0] == sorted(set(names) - archived)
    assert listing()[0] == sorted(names)
    assert [len(p["items"]) for p in listing(limit=9)[1]] == [9]

    # A cursor belongs to the filters it was issued for.
    first = client.get("/v1/projects", params={"archived": "true", "limit": 1}, headers=boss)
    cursor = first.json()["next_cursor"]
    assert cursor is not None
    assert_problem(
        client.get("/v1/projects", params={"cursor": cursor}, headers=boss), 400, "invalid-cursor"
    )
    assert_problem(
        client.get("/v1/projects", params={"cursor": "garbage"}, headers=boss),
        400,
        "invalid-cursor",
    )
    assert_problem(
        client.get("/v1/projects", params={"archived": "perhaps"}, headers=boss),
        422,
        "validation-error",
    )
    assert_problem(
        client.get("/v1/projects", params={"limit": 0}, headers=boss), 422, "validation-error"
    )


def test_get_one_project(runtime: Runtime, client: TestClient) -> None:
    alice = agent(runtime, "alice")
    made = create(client, alice, "apollo", description="moon")
    seen = client.get(
        "/v1/projects/apollo", headers={**alice, CONSISTENT_WITH: str(made["position"])}
    )
    assert seen.status_code == 200
    assert seen.json() == {k: v for k, v in made.items() if k != "position"}
    missing = assert_problem(client.get("/v1/projects/zeus", headers=alice), 404, "not-found")
    assert missing["resource"] == "project"
    assert_problem(client.get("/v1/projects/bad%20name", headers=alice), 404, "not-found")
    assert_problem(client.get("/v1/projects/apollo"), 401)


def test_archive_needs_a_coordinator_and_writes_once(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    alice, boss = agent(runtime, "alice"), coordinator(runtime)
    made = create(client, alice, "apollo")

    refused(
        runtime,
        lambda: client.post("/v1/projects/apollo/archive", headers=alice),
        403,
        "forbidden",
    )
    refused(
        runtime,
        lambda: client.post("/v1/projects/zeus/archive", headers=boss),
        404,
        "not-found",
    )
    refused(
        runtime,
        lambda: client.post("/v1/projects/apollo/archive", json={"why": "x"}, headers=boss),
        422,
        "validation-error",
    )

    clock.advance(30)
    first = client.post("/v1/projects/apollo/archive", json={"reason": "landed"}, headers=boss)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["archived"] is True
    assert body["version"] == 2
    assert first.headers["ETag"] == '"2"'
    assert int(first.headers[POSITION]) == body["position"] == runtime.ledger.head_position()
    assert when(body["updated_at"]) == clock.now()
    assert body["created_at"] == made["created_at"]

    head = runtime.ledger.head_position()
    again = client.post("/v1/projects/apollo/archive", json={"reason": "twice"}, headers=boss)
    assert again.status_code == 200, again.text
    assert again.json()["archived"] is True
    assert again.json()["version"] == 2
    assert again.headers["ETag"] == '"2"'
    assert runtime.ledger.head_position() == head, "archiving twice wrote a second event"

    events = list(runtime.ledger.events.get(project_id("apollo")))
    assert [type(e) for e in events] == [Project.ProjectCreated, Project.ProjectArchived]
    assert events[1].actor == "user:boss"
    assert events[1].reason == "landed"

    seen = client.get("/v1/projects/apollo", headers={**alice, CONSISTENT_WITH: str(head)})
    assert seen.json()["archived"] is True
    assert seen.json()["version"] == 2
    assert seen.headers["ETag"] == '"2"'
