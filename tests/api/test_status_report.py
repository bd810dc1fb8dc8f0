"""The status report: JSON and markdown from the same read models; the markdown of a fixed
scenario matches a file a person has read (tests/api/expected/status_apollo.md)."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH, POSITION, agent, refused, start
from tests.conftest import bearer, issue_token

EXPECTED = Path(__file__).parent / "expected" / "status_apollo.md"


def scenario(rt: Runtime, client: TestClient, clock: ManualClock) -> int:
    """A small project in every state a report shows; returns the last write's position."""
    boss = bearer(issue_token(rt, "user:boss", "coordinator"))
    client.post("/v1/projects", json={"name": "apollo"}, headers=boss)

    def item(title: str, kind: str = "task", **fields: object) -> str:
        body = {"project": "apollo", "kind": kind, "title": title, **fields}
        response = client.post("/v1/work-items", json=body, headers=boss)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def move(item_id: str, *steps: str, reason: str | None = None) -> int:
        position = 0
        for step in steps:
            body = {"to": step, **({"reason": reason} if step == "blocked" else {})}
            response = client.post(f"/v1/work-items/{item_id}/transition", json=body, headers=boss)
            assert response.status_code == 200, response.text
            position = int(response.headers[POSITION])
        return position

    epic = item("Launch the parser", kind="epic")
    lexer = item("Write the lexer", parent_id=epic, priority=5)
    grammar = item("Define the grammar", parent_id=epic, priority=8)
    item("Survey existing parsers", kind="research", parent_id=epic, priority=2)
    item("Error messages", parent_id=lexer, priority=1)
    docs = item("Document the syntax", kind="chore", priority=3)
    waits = item("Benchmark the parser", parent_id=epic, priority=9)
    client.put(f"/v1/work-items/{waits}/dependencies/{lexer}", headers=boss)

    clock.advance(60)
    move(grammar, "in_progress", "in_review", "done")
    clock.advance(60)
    move(docs, "blocked", reason="the style guide is not written yet")

    alice = agent(rt, "alice")
    session = start(client, alice, ttl_seconds=900)["id"]
    claimed = client.post(
        f"/v1/work-items/{lexer}/claim", json={"session_id": session}, headers=alice
    )
    assert claimed.status_code == 200, claimed.text
    return int(claimed.headers[POSITION])


def test_the_markdown_report_of_a_fixed_scenario_matches_the_expected_file(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    position = scenario(runtime, client, clock)
    viewer = bearer(issue_token(runtime, "user:viewer", "auditor"))
    headers = {**viewer, CONSISTENT_WITH: str(position)}
    markdown = client.get("/v1/projects/apollo/status.md", headers=headers)
    assert markdown.status_code == 200, markdown.text
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text == EXPECTED.read_text()
    negotiated = client.get(
        "/v1/projects/apollo/status", headers={**headers, "Accept": "text/markdown"}
    )
    assert negotiated.text == markdown.text


def test_the_json_report_says_the_same(
    runtime: Runtime, client: TestClient, clock: ManualClock
) -> None:
    position = scenario(runtime, client, clock)
    viewer = bearer(issue_token(runtime, "user:viewer", "auditor"))
    report = client.get(
        "/v1/projects/apollo/status", headers={**viewer, CONSISTENT_WITH: str(position)}
    ).json()
    assert report["total"] == 7
    assert report["by_status"] == {"blocked": 1, "done": 1, "in_progress": 1, "open": 4}
    assert report["by_kind"] == {"chore": 1, "epic": 1, "research": 1, "task": 4}
    assert [i["title"] for i in report["in_progress"]] == ["Write the lexer"]
    assert report["in_progress"][0]["claim"]["agent_id"] == "alice"
    assert [i["blocked_reason"] for i in report["blocked"]] == [
        "the style guide is not written yet"
    ]
    assert [i["title"] for i in report["ready"]] == [
        "Survey existing parsers",
        "Error messages",
        "Launch the parser",
    ]
    assert [i["title"] for i in report["recently_done"]] == ["Define the grammar"]
    assert [(s["agent_id"], s["holds"]) for s in report["active_sessions"]] == [("alice", 1)]
    refused(runtime, lambda: client.get("/v1/projects/nope/status", headers=viewer), 404)


def test_what_clients_wrote_cannot_add_markdown_of_its_own(
    runtime: Runtime, client: TestClient
) -> None:
    """A title or a reason with line breaks and markdown in it stays one line of text: no
    heading, list item, link or emphasis of its own reaches status.md."""
    boss = bearer(issue_token(runtime, "user:boss", "coordinator"))
    client.post("/v1/projects", json={"name": "apollo"}, headers=boss)
    title = "Innocent\n\n## Ready next\n\n- [click me](https://evil.example) *now*"
    ready = client.post(
        "/v1/work-items",
        json={"project": "apollo", "kind": "task", "title": title, "priority": 1},
        headers=boss,
    )
    assert ready.status_code == 201, ready.text
    assert ready.json()["title"] == title  # stored as written: only the rendering escapes
    held_up = client.post(
        "/v1/work-items",
        json={"project": "apollo", "kind": "task", "title": "1. numbered"},
        headers=boss,
    ).json()
    blocked = client.post(
        f"/v1/work-items/{held_up['id']}/transition",
        json={"to": "blocked", "reason": "vendor\r\n# Active sessions\n<b>late</b> | x"},
        headers=boss,
    )
    assert blocked.status_code == 200, blocked.text

    markdown = client.get(
        "/v1/projects/apollo/status.md",
        headers={**boss, CONSISTENT_WITH: blocked.headers[POSITION]},
    ).text
    headings = [line for line in markdown.splitlines() if line.startswith("#")]
    assert headings == [
        "# Status of project `apollo`",
        "## Counts",
        "## In progress",
        "## Blocked",
        "## Ready next",
        "## Recently done",
        "## Active sessions",
    ]
    assert (
        r"- 1\. numbered (task) — waiting for: vendor \# Active sessions \<b\>late\</b\> \| x"
        in markdown.splitlines()
    )
    ready_section = markdown.split("## Ready next\n\n")[1].split("\n\n")[0]
    assert ready_section.splitlines() == [
        r"- Innocent \#\# Ready next - \[click me\](https://evil.example) \*now\* (task)"
        " — priority 1"
    ]
