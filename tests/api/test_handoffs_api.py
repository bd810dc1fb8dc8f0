"""Handoffs and parked claims over HTTP: each refusal is a problem that writes nothing, and the
item shows its offer and its park."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, agent, refused, start
from tests.conftest import bearer, issue_token

Headers = dict[str, str]


@pytest.fixture
def claimed(runtime: Runtime, client: TestClient) -> dict[str, Any]:
    """lead holds an item of apollo: its headers, item id and fence header."""
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=boss).status_code == 201
    lead = agent(runtime, "lead")
    item = client.post(
        "/v1/work-items", json={"project": "apollo", "kind": "task", "title": "T"}, headers=lead
    ).json()["id"]
    session = start(client, lead)["id"]
    claim = client.post(f"/v1/work-items/{item}/claim", json={"session_id": session}, headers=lead)
    fence = {"AgentLedger-Fence": str(claim.json()["claim"]["fence"])}
    return {"lead": lead, "item": item, "fence": fence, "boss": boss}


def test_handoff_and_park_refusals_are_problems_that_write_nothing(
    runtime: Runtime, client: TestClient, claimed: dict[str, Any]
) -> None:
    lead, item, fence = claimed["lead"], claimed["item"], claimed["fence"]
    path = f"/v1/work-items/{item}"
    fenced = {**lead, **fence}

    def post(suffix: str, body: dict[str, Any], headers: Headers) -> Any:
        return client.post(path + suffix, json=body, headers=headers)

    refused(runtime, lambda: post("/handoff", {"to_agent": "bob"}, lead), 428, "fence-required")
    refused(runtime, lambda: post("/handoff", {"to_agent": "b o b"}, fenced), 422)
    refused(runtime, lambda: post("/handoff", {"to_agent": "lead"}, fenced), 422)
    too_long = {"to_agent": "bob", "expires_in_seconds": 10**7}
    refused(runtime, lambda: post("/handoff", too_long, fenced), 422, "validation-error")
    stale = {**fenced, "If-Match": '"1"'}
    refused(runtime, lambda: post("/handoff", {"to_agent": "bob"}, stale), 412)
    refused(runtime, lambda: post("/park", {}, fenced), 409, "no-pending-approval")
    bob = agent(runtime, "bob")
    bobs = start(client, bob)["id"]
    accept = {"session_id": bobs}
    refused(runtime, lambda: post("/handoff/accept", accept, bob), 409, "no-handoff-offered")
    refused(runtime, lambda: post("/resume", accept, bob), 409, "no-pending-approval")

    offered = post("/handoff", {"to_agent": "bob", "reason": "review"}, fenced)
    assert offered.status_code == 200, offered.text
    assert offered.json()["offered_to"] == "bob" and offered.json()["offer_expires_at"]
    eve = agent(runtime, "eve")
    eves = {"session_id": start(client, eve)["id"]}
    refused(runtime, lambda: post("/handoff/accept", eves, eve), 403, "handoff-for-another-agent")
    refused(runtime, lambda: post("/claim", eves, eve), 409, "handoff-pending")
    refused(
        runtime,
        lambda: post("/transition", {"to": "in_review"}, fenced),
        409,
        "handoff-pending",
    )
    after = {**eve, CONSISTENT_WITH: str(offered.json()["position"])}
    shown = client.get(path, headers=after).json()
    assert shown["offered_to"] == "bob" and shown["assignee"] == "lead"
    withdrawn = post("/handoff/decline", {"reason": "changed my mind"}, lead)
    assert withdrawn.status_code == 200 and withdrawn.json()["offered_to"] is None
    refused(runtime, lambda: post("/handoff/decline", {}, bob), 409, "no-handoff-offered")


def test_a_parked_item_shows_its_approval_and_resumes_over_http(
    runtime: Runtime, client: TestClient, claimed: dict[str, Any]
) -> None:
    lead, item, fence, boss = claimed["lead"], claimed["item"], claimed["fence"], claimed["boss"]
    asked = client.post(
        f"/v1/work-items/{item}/approvals",
        json={"approver_role": "security", "reason": "auth code"},
        headers=boss,
    ).json()
    parked = client.post(f"/v1/work-items/{item}/park", json={}, headers={**lead, **fence})
    assert parked.status_code == 200, parked.text
    assert parked.json()["parked_on"] == asked["id"]
    session = {"session_id": start(client, lead)["id"]}
    resume = f"/v1/work-items/{item}/resume"
    refused(
        runtime, lambda: client.post(resume, json=session, headers=lead), 409, "approval-pending"
    )
    approver = bearer(issue_token(runtime, "user:sec", "approver:security"))
    decided = client.post(
        f"/v1/approvals/{asked['id']}/decision", json={"decision": "approved"}, headers=approver
    )
    assert decided.status_code == 200, decided.text
    resumed = client.post(resume, json=session, headers=lead)
    assert resumed.status_code == 200, resumed.text
    body = resumed.json()
    assert (
        body["parked_on"] is None and body["claim"]["fence"] == int(fence["AgentLedger-Fence"]) + 1
    )
