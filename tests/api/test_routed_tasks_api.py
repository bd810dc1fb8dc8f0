"""Routed tasks over HTTP: roles are granted (worker:<role>) and stated when a session starts;
an item routed to a role is seen and claimed only by sessions acting in it; an orchestrator
finds the items its request created by trace id."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, agent, refused, start
from tests.conftest import bearer, issue_token

Headers = dict[str, str]


def worker(rt: Runtime, name: str, *roles: str) -> Headers:
    return bearer(issue_token(rt, f"agent:{name}", "agent", *(f"worker:{r}" for r in roles)))


def setup(rt: Runtime, client: TestClient) -> tuple[Headers, dict[str, Any]]:
    """A coordinator, a project, and three ready items: one routed to reviewers, one to
    builders, one to nobody."""
    boss = bearer(issue_token(rt, "user:boss", "coordinator"))
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=boss).status_code == 201
    items = {}
    for role in ("reviewer", "builder", None):
        body = {"project": "apollo", "kind": "task", "title": f"for {role}", "to_role": role}
        response = client.post("/v1/work-items", json=body, headers=boss)
        assert response.status_code == 201, response.text
        items[role] = response.json()
    return boss, items


def titles(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return sorted(i["title"] for i in response.json()["items"])


def test_a_session_acts_only_in_a_role_its_token_grants(
    runtime: Runtime, client: TestClient
) -> None:
    ann = worker(runtime, "ann", "reviewer")
    session = start(client, ann, role="reviewer")
    assert session["role"] == "reviewer"
    read = client.get(
        f"/v1/sessions/{session['id']}",
        headers={**ann, CONSISTENT_WITH: str(session["position"])},
    )
    assert read.json()["role"] == "reviewer"
    post = client.post
    refused(runtime, lambda: post("/v1/sessions", json={"role": "builder"}, headers=ann), 403)
    plain = agent(runtime, "bob")
    refused(runtime, lambda: post("/v1/sessions", json={"role": "reviewer"}, headers=plain), 403)
    for bad in ("", "-x", "a b", "x" * 65, 7):
        refused(runtime, lambda b=bad: post("/v1/sessions", json={"role": b}, headers=ann), 422)
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    assigned = start(client, boss, agent_id="bob", role="builder")  # a coordinator assigns
    assert (assigned["agent_id"], assigned["role"]) == ("bob", "builder")
    assert start(client, plain)["role"] is None


def test_worker_roles_are_for_agents_only(runtime: Runtime) -> None:
    from agentledger.application.context import RequestContext, local_operator
    from agentledger.domain.errors import InvalidValue

    ctx = RequestContext(local_operator("tester"), "t")
    try:
        runtime.access.issue(ctx, "user:carol", ["worker:reviewer"])
    except InvalidValue as refused_role:
        assert "only for agent:NAME" in str(refused_role)
    else:
        raise AssertionError("a user was granted a worker role")


def test_a_routed_item_is_seen_and_claimed_only_in_its_role(
    runtime: Runtime, client: TestClient
) -> None:
    boss, items = setup(runtime, client)
    ann, bob = worker(runtime, "ann", "reviewer"), worker(runtime, "bob", "builder")
    carl = agent(runtime, "carl")
    reviewing = start(client, ann, role="reviewer")["id"]
    building = start(client, bob, role="builder")["id"]
    unassigned = start(client, carl)["id"]
    at = {CONSISTENT_WITH: str(runtime.ledger.head_position())}

    def queue(headers: Headers, **params: Any) -> list[str]:
        return titles(client.get("/v1/work-items/ready", params=params, headers={**headers, **at}))

    assert queue(ann, session_id=reviewing) == ["for None", "for reviewer"]
    assert queue(carl, session_id=unassigned) == ["for None"]
    assert queue(ann) == ["for None", "for reviewer"]  # what her token grants
    assert queue(carl) == ["for None"]
    assert queue(boss) == ["for None", "for builder", "for reviewer"]  # coordinators see all
    assert queue(boss, session_id=building) == ["for None", "for builder"]

    path = f"/v1/work-items/{items['reviewer']['id']}/claim"
    for headers, session in ((bob, building), (carl, unassigned), (boss, building)):
        answer = refused(
            runtime,
            lambda h=headers, s=session: client.post(path, json={"session_id": s}, headers=h),
            403,
            "role-required",
        )
        assert answer.json()["to_role"] == "reviewer"
    taken = client.post(path, json={"session_id": reviewing}, headers=ann)
    assert taken.status_code == 200 and taken.json()["assignee"] == "ann"

    def claim_next(headers: Headers, session: str) -> Any:
        return client.post(
            "/v1/work-items/claim-next", json={"session_id": session}, headers=headers
        )

    first = claim_next(carl, unassigned)
    assert first.status_code == 201 and first.json()["to_role"] is None
    assert claim_next(carl, unassigned).status_code == 204  # the builders' item is not his
    built = claim_next(bob, building)
    assert built.status_code == 201 and built.json()["title"] == "for builder"


def test_an_item_re_routed_after_the_queue_was_read_is_passed_over(
    runtime: Runtime, client: TestClient
) -> None:
    """claim-next checks the role again in its transaction: an item routed elsewhere since
    the read model listed it is not taken."""
    boss, items = setup(runtime, client)
    ann = worker(runtime, "ann", "reviewer")
    session = start(client, ann, role="reviewer")["id"]
    runtime.catch_up()
    runtime.runners.stop()  # the read model keeps listing the item as the reviewers'
    reviewer_item = items["reviewer"]
    moved = client.patch(
        f"/v1/work-items/{reviewer_item['id']}",
        json={"to_role": "builder"},
        headers={**boss, "If-Match": f'"{reviewer_item["version"]}"'},
    )
    assert moved.status_code == 200, moved.text
    claimed = client.post("/v1/work-items/claim-next", json={"session_id": session}, headers=ann)
    assert claimed.status_code == 201 and claimed.json()["title"] == "for None"


def test_an_orchestrator_finds_what_its_request_created_by_trace_id(
    runtime: Runtime, client: TestClient
) -> None:
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    client.post("/v1/projects", json={"name": "apollo"}, headers=boss)
    body = {"project": "apollo", "kind": "task", "title": "Review the parser", "to_role": "r"}
    sent = client.post(
        "/v1/work-items", json=body, headers={**boss, "X-Request-ID": "orch-42.step-1"}
    )
    assert sent.status_code == 201 and sent.json()["trace_id"] == "orch-42.step-1"
    client.post("/v1/work-items", json={**body, "title": "Another"}, headers=boss)
    found = client.get(
        "/v1/work-items",
        params={"trace_id": "orch-42.step-1"},
        headers={**boss, CONSISTENT_WITH: str(sent.json()["position"])},
    )
    assert titles(found) == ["Review the parser"]
    assert found.json()["items"][0]["trace_id"] == "orch-42.step-1"
    for bad in ("", "a b", "x" * 129, "tab\there"):
        bad_query = client.get("/v1/work-items", params={"trace_id": bad}, headers=boss)
        assert bad_query.status_code == 422, bad
