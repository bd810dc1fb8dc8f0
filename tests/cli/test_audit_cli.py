"""`agentledger audit`: replay in every format, filtered exactly; state at a version; verify's
verdict and exit code (0 intact, 2 tampered); the review report."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from tests.support.helpers import agent_context
from tests.support.stored_log import StoredLog

Run = Callable[..., Result]


@pytest.fixture
def history(settings: Settings) -> dict[str, Any]:
    """Tokens for Alice (position 1) and Carl (4); Alice creates two projects (2, 3)."""
    rt = build_runtime(settings)
    try:
        alice = agent_context(rt, "alice")
        position = rt.projects.create(alice, "apollo", "the first").position
        rt.projects.create(alice, "gemini")
        agent_context(rt, "carl")
        apollo = rt.ledger.read_log(position - 1, 1)[0].originator_id
        return {"apollo": str(apollo)}
    finally:
        rt.close()


def _jsonl(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_replay_formats_carry_the_same_events(run: Run, history: dict[str, Any]) -> None:
    events = _jsonl(run("audit", "replay", "--format", "jsonl"))
    assert [e["event"] for e in events] == ["Issued", "ProjectCreated", "ProjectCreated", "Issued"]
    assert [e["position"] for e in events] == [1, 2, 3, 4]
    rows = list(csv.DictReader(io.StringIO(run("audit", "replay", "--format", "csv").output)))
    assert [int(r["position"]) for r in rows] == [1, 2, 3, 4]
    assert json.loads(rows[1]["changes"]) == {"name": "apollo", "description": "the first"}
    markdown = run("audit", "replay", "--format", "md").output.splitlines()
    assert markdown[0].startswith("| position | time | actor |")
    assert len(markdown) == 2 + 4
    table = run("audit", "replay").output.splitlines()
    assert table[0].split()[:3] == ["POSITION", "TIME", "ACTOR"]
    assert "Project created: name=apollo" in table[2]


def test_replay_filters_return_exactly_the_matching_events(
    run: Run, history: dict[str, Any]
) -> None:
    everything = _jsonl(run("audit", "replay", "--format", "jsonl"))
    by_alice = _jsonl(run("audit", "replay", "--format", "jsonl", "--actor", "agent:alice"))
    assert by_alice == [e for e in everything if e["actor"] == "agent:alice"]
    assert len(by_alice) == 2
    typed = _jsonl(run("audit", "replay", "--format", "jsonl", "--type", "Issued"))
    assert [e["position"] for e in typed] == [1, 4]
    one = _jsonl(run("audit", "replay", "--format", "jsonl", "--aggregate", history["apollo"]))
    assert [e["position"] for e in one] == [2]
    trace = everything[1]["trace_id"]
    traced = _jsonl(run("audit", "replay", "--format", "jsonl", "--trace-id", trace))
    assert [e for e in traced] == [e for e in everything if e["trace_id"] == trace]
    after = _jsonl(run("audit", "replay", "--format", "jsonl", "--after", "2"))
    assert [e["position"] for e in after] == [3, 4]
    since = everything[2]["occurred_at"]
    assert _jsonl(run("audit", "replay", "--format", "jsonl", "--since", since)) == [
        e for e in everything if e["occurred_at"] >= since
    ]
    assert _jsonl(run("audit", "replay", "--format", "jsonl", "--until", since)) == [
        e for e in everything if e["occurred_at"] < since
    ]
    unknown = run("audit", "replay", "--type", "NoSuchThing")
    assert unknown.exit_code != 0 and "no event type" in unknown.output
    naive = run("audit", "replay", "--since", "2026-01-01T00:00:00")
    assert naive.exit_code == 2 and "no zone" in naive.output


def test_state_at_a_version(run: Run, history: dict[str, Any]) -> None:
    result = run("audit", "state", history["apollo"], "--version", "1")
    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    assert (state["version"], state["state"]["name"]) == (1, "apollo")
    assert run("audit", "state", history["apollo"], "--version", "5").exit_code == 1


def test_verify_says_ok_then_names_the_tampered_position(
    run: Run, history: dict[str, Any], settings: Settings
) -> None:
    intact = run("audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert intact.output.startswith("ok: 4 events verified; sealed head 4:")
    published = intact.output.split("publish this checkpoint to verify against later: ")[1]
    assert run("audit", "verify", "--checkpoint", published.strip()).exit_code == 0
    StoredLog(settings).alter(3, b"gemini", b"gemin1")
    broken = run("audit", "verify")
    assert broken.exit_code == 2
    assert broken.output.startswith("FAILED at position 3: altered")
    verdict = json.loads(run("audit", "verify", "--json").output)
    assert verdict["ok"] is False and verdict["breach"]["position"] == 3
    assert run("audit", "verify", "--checkpoint", "nonsense").exit_code == 2


def test_report_for_a_reviewer(run: Run, history: dict[str, Any]) -> None:
    result = run("audit", "report")
    assert result.exit_code == 0, result.output
    text = result.output
    assert text.startswith("# Audit report")
    assert "Intact: 4 sealed events" in text
    assert "| agent:alice | 2 |" in text
    assert "| Project.ProjectCreated | 2 |" in text
    assert "issued to agent:alice with roles agent" in text
    data = json.loads(run("audit", "report", "--format", "json").output)
    assert data["events"] == 4 and data["seal"]["ok"] is True
