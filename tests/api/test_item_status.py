"""The status an orchestrator polls: `GET /v1/work-items/{id}` with its holder, its approvals
and the latest progress entries that report on it (entries naming the item by
`work_item_id`)."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, agent, refused, start
from tests.conftest import bearer, issue_token

Headers = dict[str, str]


def setup(rt: Runtime, client: TestClient) -> Headers:
    boss = bearer(issue_token(rt, "user:boss", "coordinator"))
    for name in ("apollo", "gemini"):
        assert client.post("/v1/projects", json={"name": name}, headers=boss).status_code == 201
    return boss


def item_in(client: TestClient, headers: Headers, project: str) -> dict[str, Any]:
    body = {"project": project, "kind": "task", "title": f"work in {project}"}
    response = client.post("/v1/work-items", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def report(client: TestClient, headers: Headers, session: str, message: str, **extra: Any) -> Any:
    return client.post(
        "/v1/projects/apollo/entries",
        json={"message": message, "session_id": session, **extra},
        headers=headers,
    )


def test_the_item_shows_its_holder_approvals_and_latest_entries(
    runtime: Runtime, client: TestClient
) -> None:
    boss = setup(runtime, client)
    item = item_in(client, boss, "apollo")
    other = item_in(client, boss, "apollo")
    alice = agent(runtime, "alice")
    session = start(client, alice)["id"]
    claim = client.post(
        f"/v1/work-items/{item['id']}/claim", json={"session_id": session}, headers=alice
    )
    assert claim.status_code == 200, claim.text
    for i in range(12):
        written = report(client, alice, session, f"step {i}", work_item_id=item["id"])
        assert written.status_code == 201, written.text
        assert written.json()["work_item_id"] == item["id"]
    report(client, alice, session, "about something else", work_item_id=other["id"])
    last = report(client, alice, session, "no item at all").json()
    approval = client.post(
        f"/v1/work-items/{item['id']}/approvals",
        json={"approver_role": "security", "reason": "auth code"},
        headers=boss,
    ).json()

    status = client.get(
        f"/v1/work-items/{item['id']}",
        headers={**boss, CONSISTENT_WITH: str(max(last["position"], approval["position"]))},
    )
    assert status.status_code == 200, status.text
    body = status.json()
    assert (body["status"], body["assignee"]) == ("in_progress", "alice")
    assert [(a["id"], a["status"]) for a in body["approvals"]] == [(approval["id"], "pending")]
    assert [e["message"] for e in body["entries"]] == [f"step {i}" for i in range(11, 1, -1)]
    assert {e["work_item_id"] for e in body["entries"]} == {item["id"]}

    listed = client.get(
        "/v1/projects/apollo/entries", params={"work_item_id": other["id"]}, headers=boss
    ).json()
    assert [e["message"] for e in listed["items"]] == ["about something else"]


def test_an_entry_names_an_existing_item_of_its_own_project(
    runtime: Runtime, client: TestClient
) -> None:
    boss = setup(runtime, client)
    elsewhere = item_in(client, boss, "gemini")
    alice = agent(runtime, "alice")
    session = start(client, alice)["id"]
    refused(
        runtime,
        lambda: report(client, alice, session, "wrong project", work_item_id=elsewhere["id"]),
        422,
        "cross-project",
    )
    refused(
        runtime,
        lambda: report(
            client, alice, session, "no such", work_item_id="00000000-0000-0000-0000-000000000001"
        ),
        404,
    )
    refused(runtime, lambda: report(client, alice, session, "bad", work_item_id="x"), 422)
