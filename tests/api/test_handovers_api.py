"""Handover documents over HTTP: each check refuses what it should and a complete document
passes; stored with the checks' results, revised under If-Match, read first by the next
session, listed per project; a handoff goes only with a document that passed."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from starlette.testclient import TestClient

from agentledger.domain.handovers import Handover
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, agent, assert_problem, refused, start
from tests.conftest import bearer, issue_token
from tests.support.helpers import run_threads
from tests.support.overlap import DecidedTogether

Headers = dict[str, str]
COMPLETE: dict[str, Any] = {
    "summary": "Parser rewritten; the error paths still need review.",
    "next_steps": ["Review the error paths in parser.py", "Run the fuzz suite"],
    "files_to_read": ["src/parser.py", "docs/grammar.md"],
    "open_questions": ["Do we keep the old AST shape?"],
    "notes": "The fuzz corpus lives in tests/corpus.",
}


@pytest.fixture
def lead(runtime: Runtime, client: TestClient) -> Headers:
    headers = agent(runtime, "lead")
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=boss).status_code == 201
    return headers


def selected(client: TestClient, headers: Headers) -> str:
    """A session of the lead, which selects apollo (its handovers' project by default)."""
    session = start(client, headers)["id"]
    body = {"project": "apollo", "session_id": session}
    chosen = client.put(
        "/v1/agents/lead/project", json=body, headers={**headers, "If-None-Match": "*"}
    )
    assert chosen.status_code in (200, 201), chosen.text
    return str(session)


def write(
    client: TestClient, headers: Headers, session: str, version: int | None = None, **body: Any
) -> Any:
    extra = {} if version is None else {"If-Match": f'"{version}"'}
    return client.post(f"/v1/sessions/{session}/handover", json=body, headers={**headers, **extra})


def rules(response: Any) -> list[str]:
    assert response.status_code in (200, 201), response.text
    return sorted({f["rule"] for f in response.json()["failures"]})


def test_each_check_refuses_what_it_should_and_a_complete_document_passes(
    runtime: Runtime, client: TestClient, lead: Headers
) -> None:
    session = selected(client, lead)
    item = client.post(
        "/v1/work-items",
        json={"project": "apollo", "kind": "task", "title": "Parser"},
        headers=lead,
    ).json()["id"]
    first = write(client, lead, session, summary="", next_steps=[])
    assert first.status_code == 201
    assert first.headers["Location"] == f"/v1/handovers/{first.json()['id']}"
    assert rules(first) == ["next-steps-present", "summary-present"]
    assert first.json()["passed"] is False and first.json()["project"] == "apollo"
    cases = [
        ({**COMPLETE, "summary": "Done, see {{link}}"}, ["no-placeholders"]),
        ({**COMPLETE, "next_steps": ["TODO: decide"]}, ["no-placeholders"]),
        ({**COMPLETE, "open_questions": ["Owner TBD"]}, ["no-placeholders"]),
        ({**COMPLETE, "work_item_ids": [item, str(uuid4())]}, ["work-items-exist"]),
        ({**COMPLETE, "next_steps": ["  "]}, ["next-steps-present"]),
    ]
    version = first.json()["version"]
    for body, expected in cases:
        revised = write(client, lead, session, version, **body)
        assert revised.status_code == 200, revised.text
        assert rules(revised) == expected, body
        detail = revised.json()["failures"][0]["detail"]
        assert detail  # says where, or which item
        version = revised.json()["version"]
    # Words that only look like placeholders pass: TBDs, TODO without a colon.
    passed = write(
        client,
        lead,
        session,
        version,
        **{**COMPLETE, "notes": "TODOs tracked; TBDX"},
        work_item_ids=[item],
    )
    assert passed.status_code == 200 and passed.json()["passed"] is True
    assert passed.json()["failures"] == []
    # Stored with its results: the next session of the agent reads it first.
    seen = {**lead, CONSISTENT_WITH: str(passed.json()["position"])}
    latest = client.get("/v1/agents/lead/handovers/latest", headers=seen)
    assert latest.status_code == 200 and latest.json()["id"] == passed.json()["id"]
    assert latest.json()["passed"] is True and latest.json()["work_item_ids"] == [item]
    assert latest.headers["ETag"] == f'"{passed.json()["version"]}"'
    listed = client.get("/v1/projects/apollo/handovers", headers=seen).json()["items"]
    assert [h["id"] for h in listed] == [passed.json()["id"]]
    stored = list(runtime.ledger.events.get(UUID(passed.json()["id"])))
    assert [type(e).__name__ for e in stored][:2] == ["HandoverWritten", "HandoverRevised"]
    assert stored[1].failures == [{"rule": "no-placeholders", "detail": "summary holds '{{link}}'"}]


def test_malformed_or_foreign_documents_are_refused_and_write_nothing(
    runtime: Runtime, client: TestClient, lead: Headers
) -> None:
    session = start(client, lead)["id"]
    other = agent(runtime, "other")
    too_many = {**COMPLETE, "next_steps": ["step"] * 51}
    refused(runtime, lambda: write(client, lead, session, **too_many), 422, "validation-error")
    nul = {**COMPLETE, "notes": "bad\x00byte"}
    refused(runtime, lambda: write(client, lead, session, **nul), 422, "validation-error")
    refused(runtime, lambda: write(client, lead, session, **COMPLETE, mood="x"), 422)
    refused(runtime, lambda: write(client, other, session, **COMPLETE), 403, "forbidden")
    refused(runtime, lambda: write(client, lead, str(uuid4()), **COMPLETE), 404, "not-found")
    ghost = {**COMPLETE, "project": "no-such-project"}
    refused(runtime, lambda: write(client, lead, session, **ghost), 404, "not-found")
    assert write(client, lead, session, **COMPLETE).status_code == 201
    refused(runtime, lambda: write(client, lead, session, 7, **COMPLETE), 412, "version-mismatch")
    assert_problem(client.get("/v1/agents/nobody/handovers/latest", headers=lead), 404)


def test_a_handoff_goes_only_with_a_document_that_passed(
    runtime: Runtime, client: TestClient, lead: Headers
) -> None:
    session = start(client, lead)["id"]
    item = client.post(
        "/v1/work-items",
        json={"project": "apollo", "kind": "task", "title": "Parser"},
        headers=lead,
    ).json()["id"]
    claim = client.post(f"/v1/work-items/{item}/claim", json={"session_id": session}, headers=lead)
    fence = {"AgentLedger-Fence": str(claim.json()["claim"]["fence"])}
    draft = write(client, lead, session, summary="TBD").json()
    offer = {"to_agent": "reviewer", "handover_id": draft["id"]}
    problem = refused(
        runtime,
        lambda: client.post(
            f"/v1/work-items/{item}/handoff", json=offer, headers={**lead, **fence}
        ),
        409,
        "handover-incomplete",
    ).json()
    assert problem["failed_rules"] == ["next-steps-present", "no-placeholders"]
    done = write(client, lead, session, draft["version"], **COMPLETE, work_item_ids=[item]).json()
    assert done["passed"]
    offered = client.post(f"/v1/work-items/{item}/handoff", json=offer, headers={**lead, **fence})
    assert offered.status_code == 200, offered.text
    assert offered.json()["offered_to"] == "reviewer"
    reviewer = agent(runtime, "reviewer")
    mine = start(client, reviewer)["id"]
    taken = client.post(
        f"/v1/work-items/{item}/handoff/accept", json={"session_id": mine}, headers=reviewer
    )
    assert taken.status_code == 200, taken.text
    assert taken.json()["claim"]["session_id"] == mine and taken.json()["offered_to"] is None
    refused(
        runtime,
        lambda: client.post(
            f"/v1/work-items/{item}/transition", json={"to": "in_review"}, headers={**lead, **fence}
        ),
        409,
        "claim-lost",
    )


def test_concurrent_revisions_at_one_version_make_one_winner(
    runtime: Runtime, client: TestClient, lead: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = selected(client, lead)
    first = write(client, lead, session, **COMPLETE).json()
    together = DecidedTogether(4).install(monkeypatch)
    answers: list[int] = []

    def revise(n: int) -> None:
        body = {**COMPLETE, "notes": f"revision {n}"}
        answers.append(write(client, lead, session, first["version"], **body).status_code)

    run_threads([lambda n=n: revise(n) for n in range(4)])
    assert together.all_in_flight
    assert sorted(answers) == [200, 412, 412, 412]
    events = list(runtime.ledger.events.get(UUID(first["id"])))
    assert [type(e) for e in events] == [Handover.HandoverWritten, Handover.HandoverRevised]
