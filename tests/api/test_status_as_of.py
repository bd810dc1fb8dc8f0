"""status?as_of=T: the report as it was at T, rebuilt from the log, equals the report a reader
got at T (JSON and markdown), whatever happened since; auditors and admins only."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, POSITION, agent, assert_problem, start
from tests.conftest import bearer, issue_token

STATUS = "/v1/projects/apollo/status"


def _live(client: TestClient, headers: dict[str, str], position: int) -> tuple[dict[str, Any], str]:
    at = {**headers, CONSISTENT_WITH: str(position)}
    report = client.get(STATUS, headers=at)
    markdown = client.get(STATUS + ".md", headers=at)
    assert report.status_code == markdown.status_code == 200, report.text
    return report.json(), markdown.text


def _past(client: TestClient, headers: dict[str, str], moment: str) -> tuple[dict[str, Any], str]:
    report = client.get(STATUS, params={"as_of": moment}, headers=headers)
    markdown = client.get(STATUS + ".md", params={"as_of": moment}, headers=headers)
    assert report.status_code == markdown.status_code == 200, report.text
    return report.json(), markdown.text


def test_the_report_as_of_a_moment_equals_the_one_captured_then(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    auditor = bearer(issue_token(runtime, "user:ann", "auditor"))
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=boss).status_code == 201
    captured: list[tuple[str, dict[str, Any], str]] = []
    alice = agent(runtime, "alice")
    session = start(client, alice, ttl_seconds=900)["id"]
    items = []
    for phase in range(4):
        clock.advance(60)
        made = client.post(
            "/v1/work-items",
            json={"project": "apollo", "kind": "task", "title": f"step {phase}", "priority": phase},
            headers=boss,
        )
        assert made.status_code == 201, made.text
        items.append(made.json()["id"])
        position = int(made.headers[POSITION])
        if phase >= 1:
            claim = client.post(
                f"/v1/work-items/{items[phase - 1]}/claim",
                json={"session_id": session},
                headers=alice,
            )
            assert claim.status_code == 200, claim.text
            position = int(claim.headers[POSITION])
        if phase == 3:
            done = client.post(
                f"/v1/work-items/{items[0]}/transition",
                json={"to": "in_review"},
                headers={**alice, "AgentLedger-Fence": "1"},
            )
            assert done.status_code == 200, done.text
            position = int(done.headers[POSITION])
        report, markdown = _live(client, boss, position)
        captured.append((clock.now().isoformat(), report, markdown))
    clock.advance(2000)  # alice's lease lapses; the report of the past still shows her
    archived = client.post("/v1/projects/apollo/archive", json={}, headers=boss)
    assert archived.status_code == 200, archived.text
    for moment, report, markdown in captured:
        past, past_markdown = _past(client, auditor, moment)
        assert past_markdown == markdown
        assert {k: v for k, v in past.items() if k != "position"} == {
            k: v for k, v in report.items() if k != "position"
        }
    assert captured[0][1] != captured[-1][1]  # the moments differ, and so do their reports


def test_only_auditors_ask_for_the_past(runtime: Runtime, client: TestClient) -> None:
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    assert client.post("/v1/projects", json={"name": "apollo"}, headers=boss).status_code == 201
    moment = runtime.clock.now().isoformat()
    assert_problem(client.get(STATUS, params={"as_of": moment}, headers=boss), 403)
    auditor = bearer(issue_token(runtime, "user:ann", "auditor"))
    assert_problem(client.get(STATUS, params={"as_of": "yesterday"}, headers=auditor), 422)
    assert_problem(
        client.get(STATUS, params={"as_of": "2999-01-01T00:00:00Z"}, headers=auditor), 422
    )
    before = client.get(STATUS, params={"as_of": "2000-01-01T00:00:00Z"}, headers=auditor)
    assert_problem(before, 404, "not-found")  # the project did not exist yet
