"""Work items over HTTP: create, read with includes, edit under If-Match, lifecycle, claims with
fences, dependencies, the ready queue and readiness reasons, archive, and the problems each
mistake gets (with nothing written)."""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, POSITION, agent, refused, start
from tests.conftest import bearer, issue_token

Headers = dict[str, str]
FENCE = "AgentLedger-Fence"


def boss(rt: Runtime) -> Headers:
    return bearer(issue_token(rt, "user:boss", "coordinator"))


def setup(rt: Runtime, client: TestClient) -> Headers:
    headers = boss(rt)
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=headers).status_code == 201
    return headers


def create(client: TestClient, headers: Headers, title: str, **fields: Any) -> dict[str, Any]:
    body = {"project": "apollo", "kind": "task", "title": title, **fields}
    response = client.post("/v1/work-items", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def at(headers: Headers, position: Any) -> Headers:
    return {**headers, CONSISTENT_WITH: str(position)}


def test_create_and_read_an_item_with_its_surroundings(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    epic = create(client, headers, "Parser", kind="epic", metadata={"goal": "parse it all"})
    task = create(client, headers, "Lexer", parent_id=epic["id"], priority=5)
    leaf = create(client, headers, "Tokens", parent_id=task["id"])
    assert (task["status"], task["version"], task["parent_id"]) == ("open", 1, epic["id"])

    response = client.get(
        f"/v1/work-items/{task['id']}",
        params={"include": "ancestors,children,descendants,dependencies,claim"},
        headers=at(headers, leaf["position"]),
    )
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == '"1"'
    body = response.json()
    assert body["depth"] == 1
    assert [a["title"] for a in body["ancestors"]] == ["Parser"]
    assert [c["title"] for c in body["children"]] == ["Tokens"]
    assert [d["depth"] for d in body["descendants"]] == [2]
    assert body["dependencies"] == [] and body["claim"] is None

    listed = client.get(
        "/v1/work-items", params={"project": "apollo", "kind": "task"}, headers=headers
    ).json()
    assert [i["title"] for i in listed["items"]] == ["Lexer", "Tokens"]


def test_patch_needs_if_match_and_refuses_a_stale_version(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    item = create(client, headers, "Old title")
    path = f"/v1/work-items/{item['id']}"
    patch = partial(client.patch, path, json={"title": "New title"})
    refused(runtime, lambda: patch(headers=headers), 428, "precondition-required")
    stale = refused(runtime, lambda: patch(headers={**headers, "If-Match": '"7"'}), 412)
    assert stale.json()["current_version"] == 1
    done = patch(headers={**headers, "If-Match": '"1"'})
    assert done.status_code == 200, done.text
    assert (done.json()["title"], done.headers["ETag"]) == ("New title", '"2"')
    invalid = partial(client.patch, path, headers={**headers, "If-Match": '"2"'})
    refused(runtime, lambda: invalid(json={"priority": 5000}), 422, "validation-error")
    refused(runtime, lambda: invalid(json={"metadata": {"colour": "red"}}), 422)
    refused(runtime, lambda: invalid(json={"owner": "me"}), 422)


def test_an_invalid_transition_lists_the_allowed_targets(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    item = create(client, headers, "Task")
    move = partial(client.post, f"/v1/work-items/{item['id']}/transition", headers=headers)
    problem = refused(runtime, lambda: move(json={"to": "done"}), 409, "invalid-transition")
    assert problem.json()["allowed"] == ["in_progress", "blocked", "cancelled"]
    refused(runtime, lambda: move(json={"to": "blocked"}), 422)  # blocking needs a reason
    refused(runtime, lambda: move(json={"to": "sideways"}), 422)
    blocked = move(json={"to": "blocked", "reason": "waiting for the API key"})
    assert blocked.json()["blocked_reason"] == "waiting for the API key"


def test_claims_fences_and_the_problems_of_others(runtime: Runtime, client: TestClient) -> None:
    headers = setup(runtime, client)
    item = create(client, headers, "Contested")
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    alices, bobs = start(client, alice)["id"], start(client, bob)["id"]
    path = f"/v1/work-items/{item['id']}"

    won = client.post(f"{path}/claim", json={"session_id": alices}, headers=alice)
    assert won.status_code == 200, won.text
    claim = won.json()["claim"]
    assert (claim["agent_id"], claim["fence"], won.json()["status"]) == ("alice", 1, "in_progress")

    lost = refused(
        runtime,
        lambda: client.post(f"{path}/claim", json={"session_id": bobs}, headers=bob),
        409,
        "already-claimed",
    ).json()
    assert lost["holder"] == {"agent_id": "alice", "session_id": alices}
    assert lost["expires_at"] == claim["expires_at"]

    review = partial(client.post, f"{path}/transition", json={"to": "in_review"})
    refused(runtime, lambda: review(headers=alice), 428, "fence-required")
    refused(runtime, lambda: review(headers=bob), 409, "already-claimed")
    refused(runtime, lambda: review(headers={**alice, FENCE: "9"}), 409, "claim-lost")
    refused(runtime, lambda: review(headers={**alice, FENCE: "x"}), 400, "invalid-fence")
    assert review(headers={**alice, FENCE: "1"}).status_code == 200

    released = client.post(f"{path}/release", headers={**alice, FENCE: "1"})
    assert released.status_code == 200, released.text
    assert released.json()["claim"] is None
    refused(runtime, lambda: review(headers={**alice, FENCE: "1"}), 409, "claim-lost")


def test_claim_with_a_dead_or_foreign_session_is_refused(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    headers = setup(runtime, client)
    item = create(client, headers, "Task")
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    alices = start(client, alice, ttl_seconds=60)["id"]
    path = f"/v1/work-items/{item['id']}/claim"
    refused(
        runtime,
        lambda: client.post(path, json={"session_id": alices}, headers=bob),
        409,
        "session-not-owned",
    )
    clock.advance(61)
    refused(
        runtime,
        lambda: client.post(path, json={"session_id": alices}, headers=alice),
        409,
        "session-expired",
    )


def test_claim_next_takes_the_best_ready_item_then_answers_204(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    low = create(client, headers, "Low", priority=1)
    high = create(client, headers, "High", priority=9)
    waiting = create(client, headers, "Waits for low", priority=50)
    put = client.put(f"/v1/work-items/{waiting['id']}/dependencies/{low['id']}", headers=headers)
    assert put.status_code == 201, put.text
    assert put.json()["depends_on"] == [low["id"]]
    again = client.put(f"/v1/work-items/{waiting['id']}/dependencies/{low['id']}", headers=headers)
    assert again.status_code == 200

    ready = client.get(
        "/v1/work-items/ready",
        params={"project": "apollo"},
        headers=at(headers, put.headers[POSITION]),
    ).json()
    assert [i["title"] for i in ready["items"]] == ["High", "Low"]
    reasons = client.get(
        f"/v1/work-items/{waiting['id']}/readiness", headers=at(headers, put.headers[POSITION])
    ).json()
    assert reasons["ready"] is False
    assert reasons["reasons"] == [
        {"code": "blocked_by", "item_id": low["id"], "status": "open", "agent_id": None}
    ]

    alice = agent(runtime, "alice")
    session = start(client, alice)["id"]
    take = partial(client.post, "/v1/work-items/claim-next", headers=alice)
    first = take(json={"session_id": session, "project": "apollo"})
    assert (first.status_code, first.json()["id"]) == (201, high["id"])
    second = take(json={"session_id": session, "project": "apollo"})
    assert (second.status_code, second.json()["id"]) == (201, low["id"])
    assert take(json={"session_id": session, "project": "apollo"}).status_code == 204


def test_a_dependency_cycle_is_refused_with_its_path(runtime: Runtime, client: TestClient) -> None:
    headers = setup(runtime, client)
    a, b, c = (create(client, headers, name)["id"] for name in "ABC")
    for item, other in ((a, b), (b, c)):
        assert client.put(f"/v1/work-items/{item}/dependencies/{other}", headers=headers).is_success
    problem = refused(
        runtime,
        lambda: client.put(f"/v1/work-items/{c}/dependencies/{a}", headers=headers),
        409,
        "dependency-cycle",
    ).json()
    assert problem["cycle"] == [c, a, b, c]
    gone = client.delete(f"/v1/work-items/{b}/dependencies/{c}", headers=headers)
    assert (gone.status_code, gone.json()["depends_on"]) == (200, [])
    refused(
        runtime,
        lambda: client.delete(f"/v1/work-items/{b}/dependencies/{c}", headers=headers),
        404,
    )


def test_a_sixth_level_is_refused(runtime: Runtime, client: TestClient) -> None:
    headers = setup(runtime, client)
    parent = None
    for level in range(6):
        parent = create(client, headers, f"level {level}", parent_id=parent)["id"]
    problem = refused(
        runtime,
        lambda: client.post(
            "/v1/work-items",
            json={"project": "apollo", "kind": "task", "title": "too deep", "parent_id": parent},
            headers=headers,
        ),
        409,
        "depth-exceeded",
    ).json()
    assert (problem["depth"], problem["max_depth"]) == (6, 5)


def test_archive_and_unarchive(runtime: Runtime, client: TestClient) -> None:
    headers = setup(runtime, client)
    item = create(client, headers, "Old")
    path = f"/v1/work-items/{item['id']}"
    archived = client.post(f"{path}/archive", headers=headers)
    assert archived.json()["archived"] is True
    refused(
        runtime,
        lambda: client.post(f"{path}/transition", json={"to": "cancelled"}, headers=headers),
        409,
        "item-archived",
    )
    back = client.post(f"{path}/unarchive", headers=headers)
    assert back.json()["archived"] is False
    listed = client.get(
        "/v1/work-items",
        params={"archived": "false"},
        headers=at(headers, back.headers[POSITION]),
    ).json()
    assert [i["id"] for i in listed["items"]] == [item["id"]]


def test_bad_input_is_refused_and_writes_nothing(runtime: Runtime, client: TestClient) -> None:
    headers = setup(runtime, client)
    post = partial(client.post, "/v1/work-items", headers=headers)
    base = {"project": "apollo", "kind": "task", "title": "x"}
    refused(runtime, lambda: post(json={**base, "project": "nope"}), 404)
    refused(runtime, lambda: post(json={**base, "kind": "Not A Kind"}), 422)
    refused(runtime, lambda: post(json={**base, "title": "  "}), 422)
    refused(runtime, lambda: post(json={**base, "priority": "high"}), 422)
    refused(runtime, lambda: post(json={**base, "parent_id": "not-a-uuid"}), 422)
    refused(
        runtime,
        lambda: post(json={**base, "parent_id": "00000000-0000-0000-0000-000000000001"}),
        404,
    )
    refused(runtime, lambda: client.get("/v1/work-items/nope", headers=headers), 404)
    refused(
        runtime,
        lambda: client.get(
            "/v1/work-items/00000000-0000-0000-0000-000000000001",
            params={"include": "everything"},
            headers=headers,
        ),
        422,
    )
    auditor = bearer(issue_token(runtime, "user:audit", "auditor"))
    refused(runtime, lambda: client.post("/v1/work-items", json=base, headers=auditor), 403)


def test_only_the_holder_writes_with_its_fence_and_finishing_ends_the_claim(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    headers = setup(runtime, client)
    item = create(client, headers, "Mine")
    alice, bob = agent(runtime, "alice"), agent(runtime, "bob")
    alices = start(client, alice, ttl_seconds=60)["id"]
    path = f"/v1/work-items/{item['id']}"
    fence = client.post(f"{path}/claim", json={"session_id": alices}, headers=alice).json()
    assert fence["claim"]["fence"] == 1

    # The fence is no password: another agent presenting it is still not the holder.
    steal = partial(client.post, f"{path}/release", headers={**bob, FENCE: "1"})
    refused(runtime, steal, 409, "already-claimed")

    finish = partial(client.post, f"{path}/transition", headers={**alice, FENCE: "1"})
    assert finish(json={"to": "in_review"}).status_code == 200
    done = finish(json={"to": "done"})
    assert done.status_code == 200, done.text
    assert (done.json()["claim"], done.json()["assignee"]) == (None, None)
    assert done.json()["finished_at"] is not None

    # A holder whose lease lapsed must still say which claim it writes under.
    other = create(client, headers, "Lapses")
    other_path = f"/v1/work-items/{other['id']}"
    client.post(f"{other_path}/claim", json={"session_id": alices}, headers=alice)
    clock.advance(61)
    move = partial(client.post, f"{other_path}/transition", json={"to": "in_review"})
    refused(runtime, lambda: move(headers=alice), 428, "fence-required")
    lost = refused(runtime, lambda: move(headers={**alice, FENCE: "1"}), 409, "claim-lost")
    assert lost.json()["current_fence"] is None
    assert move(headers=bob).status_code == 200  # the lapsed claim binds nobody else


def test_an_archived_project_has_no_ready_work(runtime: Runtime, client: TestClient) -> None:
    headers = setup(runtime, client)
    item = create(client, headers, "Left behind")
    archived = client.post("/v1/projects/apollo/archive", json={}, headers=headers)
    assert archived.status_code == 200, archived.text
    at_archive = at(headers, archived.headers[POSITION])
    reasons = client.get(f"/v1/work-items/{item['id']}/readiness", headers=at_archive).json()
    assert reasons["reasons"] == [
        {"code": "project_archived", "status": None, "agent_id": None, "item_id": None}
    ]
    assert client.get("/v1/work-items/ready", headers=at_archive).json()["items"] == []
    alice = agent(runtime, "alice")
    session = start(client, alice)["id"]
    refused(
        runtime,
        lambda: client.post(
            f"/v1/work-items/{item['id']}/claim", json={"session_id": session}, headers=alice
        ),
        409,
        "project-archived",
    )
    take = partial(client.post, "/v1/work-items/claim-next", headers=alice)
    assert take(json={"session_id": session}).status_code == 204
    refused(runtime, lambda: take(json={"session_id": session, "project": "nope"}), 404)


def test_parents_stay_in_the_project_and_out_of_the_archive(
    runtime: Runtime, client: TestClient
) -> None:
    headers = setup(runtime, client)
    client.post("/v1/projects", json={"name": "gemini"}, headers=headers)
    elsewhere = create(client, headers, "Elsewhere", project="gemini")
    old = create(client, headers, "Old")
    client.post(f"/v1/work-items/{old['id']}/archive", headers=headers)
    post = partial(client.post, "/v1/work-items", headers=headers)
    base = {"project": "apollo", "kind": "task", "title": "child"}
    refused(
        runtime, lambda: post(json={**base, "parent_id": elsewhere["id"]}), 422, "cross-project"
    )
    refused(runtime, lambda: post(json={**base, "parent_id": old["id"]}), 409, "item-archived")
    mine = create(client, headers, "Mine")
    refused(
        runtime,
        lambda: client.put(
            f"/v1/work-items/{mine['id']}/dependencies/{elsewhere['id']}", headers=headers
        ),
        422,
        "cross-project",
    )
