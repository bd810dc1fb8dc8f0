"""A log written before the layers moved under `agentledger.` still loads, replays and grows.

The fixture holds the exact stored rows (topic, originator, version, state bytes) of a small
store that main at 0b5a137 wrote, when the layers were top-level packages and every topic read
`domain.<module>:<Class>`: tokens issued and revoked, a session renewed 25 times (with the
snapshot the library took of it), projects, a selection, an entry, a plan with a dependency,
a claimed and finished item, an archived project.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from agentledger.application.readmodels import EntryFilter, WorkItemFilter
from agentledger.domain.plans import ProjectPlan, plan_id
from agentledger.domain.sessions import AgentSession
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from tests.support.helpers import agent_context

READ_MODELS_ADDED_SINCE = {"approvals_v1", "handovers_v1", "messages_v1"}
FIXTURE = Path(__file__).parent.parent / "fixtures" / "store-0b5a137.json"


def stored(rows: list[dict[str, Any]]) -> list[StoredEvent]:
    return [
        StoredEvent(
            originator_id=UUID(r["originator_id"]),
            originator_version=r["originator_version"],
            topic=r["topic"],
            state=base64.b64decode(r["state"]),
        )
        for r in rows
    ]


def old_store(settings: Settings) -> tuple[Runtime, dict[str, Any]]:
    """A runtime whose log holds exactly the fixture's rows, as the old main stored them."""
    fixture = json.loads(FIXTURE.read_text())
    rt = build_runtime(settings)
    rt.ledger.recorder.insert_events(stored(fixture["events"]))
    assert rt.ledger.snapshots is not None
    rt.ledger.snapshots.recorder.insert_events(stored(fixture["snapshots"]))
    return rt, fixture


def test_every_old_aggregate_loads_under_the_new_names(settings: Settings) -> None:
    rt, fixture = old_store(settings)
    try:
        assert all(e["topic"].startswith("domain.") for e in fixture["events"])
        for originator in {e["originator_id"] for e in fixture["events"]}:
            aggregate = rt.ledger.repository.get(UUID(originator))
            assert type(aggregate).__module__.startswith("agentledger.domain."), aggregate
        # The renewed session loads through the snapshot stored under the old aggregate topic.
        snapshot = fixture["snapshots"][0]
        assert json.loads(base64.b64decode(snapshot["state"]))["topic"].startswith("domain.")
        session = rt.ledger.repository.get(UUID(snapshot["originator_id"]))
        assert isinstance(session, AgentSession)
        assert session.version > snapshot["originator_version"]
        assert session.role is None  # a version 1 snapshot, upcast: no role
        plan = rt.ledger.repository.get(plan_id("compiler"))
        assert isinstance(plan, ProjectPlan) and len(plan.parents) == 3
    finally:
        rt.close()


def test_read_models_replay_the_old_log_and_equal_a_rebuild(settings: Settings) -> None:
    rt, fixture = old_store(settings)
    try:
        rt.catch_up()
        assert rt.runners.projections["work_items_v4"].worker.position() == len(fixture["events"])
        projects = {p.name: p.archived for p in rt.projects.list(limit=10).items}
        assert projects == {"compiler": False, "old-project": True}
        items = rt.work_items.list(WorkItemFilter(project="compiler")).items
        assert {i.title: i.status for i in items} == {
            "Front end": "open",
            "Lexer": "done",
            "Parser": "open",
        }
        assert rt.selections.get("alice").value.project == "compiler"
        tokens = rt.access.list(include_revoked=True).value
        assert sorted(t.principal for t in tokens) == ["agent:alice", "agent:bob", "user:carol"]
        live = {name: _rows(view) for name, view in rt.read_models.items()}
        # A rebuild asks the store for its events by topic: it must find the old topics too.
        for name in rt.read_models:
            report = rt.runners.projections[name].rebuild()
            assert report is not None, name
            # Read models of events added since have nothing to find in the old log.
            assert (report.applied == 0) if name in READ_MODELS_ADDED_SINCE else report.applied

        assert {name: _rows(view) for name, view in rt.read_models.items()} == live
    finally:
        rt.close()


def test_new_commands_extend_old_aggregates(settings: Settings) -> None:
    rt, _ = old_store(settings)
    try:
        rt.catch_up()
        alice = agent_context(rt, "alice")
        session = rt.sessions.start(alice, ttl_seconds=300).value
        # The parser waited on the lexer, done in the old log: it is ready now, and claiming it
        # appends to the old item's stream and reads the old plan.
        outcome = rt.work_items.claim_next(alice, session.id, project="compiler", kind="task")
        assert outcome is not None and outcome.value.title == "Parser"
        assert outcome.value.version > 1
    finally:
        rt.close()


def _rows(view: Any) -> dict[str, list[tuple[Any, ...]]]:
    found = {}
    for table in view.tables:
        rows = view.select(table.name, f"SELECT * FROM {{{table.name}}}", {})
        found[table.name] = sorted(tuple(sorted(r.items())) for r in rows)
    return found


def test_events_stored_before_a_field_was_added_are_upcast(settings: Settings) -> None:
    """Schema evolution: every event gained the rest of its context (token, session,
    idempotency key, client), `SessionStarted` gained `role` and `EntryAppended` gained
    `work_item_id` (all at class version 2). The old log stored version 1 of each, without
    the field: they load upcast (no role, no item), replay into the read models, and new
    events are stored as version 2."""
    rt, fixture = old_store(settings)
    try:
        old = {
            e["topic"].split(":")[1]: json.loads(base64.b64decode(e["state"]))
            for e in fixture["events"]
            if e["topic"].endswith(("SessionStarted", "EntryAppended"))
        }
        assert "role" not in old["AgentSession.SessionStarted"]
        assert "work_item_id" not in old["LogEntry.EntryAppended"]
        assert all("class_version" not in state for state in old.values())  # version 1

        loaded = [
            event
            for e in fixture["events"]
            if e["topic"].endswith(("SessionStarted", "EntryAppended"))
            for event in rt.ledger.events.get(UUID(e["originator_id"]), lte=1)
        ]
        assert {type(e).__name__ for e in loaded} == {"SessionStarted", "EntryAppended"}
        for event in loaded:
            missing = "role" if isinstance(event, AgentSession.SessionStarted) else "work_item_id"
            assert getattr(event, missing) is None
            assert (event.actor_token, event.acting_session, event.client) == (None, None, None)
        rt.catch_up()
        entries = rt.entries.list(EntryFilter(project="compiler")).items
        assert entries and all(e.work_item_id is None for e in entries)

        alice = agent_context(rt, "alice")
        session = rt.sessions.start(alice, ttl_seconds=300).value
        (stored,) = rt.ledger.recorder.select_events(session.id)
        assert json.loads(stored.state)["class_version"] == 2
        assert json.loads(stored.state)["role"] is None
    finally:
        rt.close()
