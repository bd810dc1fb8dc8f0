"""Every work-item write path under concurrent writers: nothing lost, conflicts reported; and
the read model rebuilt from the log matches the live one (paths of moved subtrees included)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any
from uuid import UUID

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.errors import PreconditionFailed
from agentledger.application.preconditions import Precondition
from agentledger.application.work_items import NewWorkItem
from agentledger.domain.errors import InvalidTransition
from agentledger.domain.plans import ProjectPlan, plan_id
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from tests.integration.work_items_support import Team
from tests.support.helpers import run_threads
from tests.support.overlap import Conflicts, DecidedTogether


def outcomes_of(targets: list[Any]) -> Counter[str]:
    """Run each target at once; count 'ok' or the name of the error each one raised."""
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def wrap(target: Any) -> Any:
        def go() -> None:
            try:
                target()
                outcome = "ok"
            except Exception as exc:  # counted and asserted on by the caller
                outcome = type(exc).__name__
            with lock:
                results[outcome] += 1

        return go

    run_threads([wrap(t) for t in targets])
    return results


@pytest.fixture
def other_server(runtime: Runtime, settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """A second runtime on the runtime's store: a second server, without background work."""
    second = build_runtime(settings, clock)
    yield second
    second.close()


def test_concurrent_creates_in_one_project_all_land_in_its_plan(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creates in one project take turns within a server; across two servers only the plan's
    version stands between them. Half the writers go through each server, and the first
    create of each server decides before either saves, so those two must collide."""
    team = Team(runtime)
    parent = team.item("epic", kind="epic").id
    made: list[UUID] = []
    lock = threading.Lock()
    together = DecidedTogether(2).install(monkeypatch)  # one per server: each takes turns
    conflicts = Conflicts(runtime, other_server)

    def create(n: int) -> None:
        rt = (runtime, other_server)[n % 2]
        for k in range(10):
            new = NewWorkItem("apollo", "task", f"w{n} item {k}", parent_id=parent)
            item = rt.work_items.create(team.boss, new).value.id
            with lock:
                made.append(item)

    run_threads([lambda n=n: create(n) for n in range(16)])
    assert together.all_in_flight and conflicts.since() >= 1
    assert len(set(made)) == 160
    plan = runtime.ledger.repository.get(plan_id("apollo"))
    assert {UUID(i) for i, p in plan.parents.items() if p == str(parent)} == set(made)
    runtime.catch_up()
    children = runtime.work_items.get(parent, frozenset({"children"})).value.children
    assert children is not None
    assert {c.id for c in children} == set(made) and {c.depth for c in children} == {1}


def test_concurrent_edits_with_one_version_make_one_winner(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    item = team.item("shared").id
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)

    def edit(n: int) -> None:
        runtime.work_items.update(
            team.boss, item, {"title": f"title {n}"}, precondition=Precondition.at(1), fence=None
        )

    results = outcomes_of([lambda n=n: edit(n) for n in range(8)])
    assert results == Counter({"ok": 1, PreconditionFailed.__name__: 7})
    updates = [e for e in team.events(item) if isinstance(e, WorkItem.WorkItemUpdated)]
    assert len(updates) == 1
    # All eight passed the version check at once: the losers collided, re-ran, were refused.
    assert together.all_in_flight and conflicts.since() >= 7


def test_concurrent_transitions_from_one_state_make_one_winner(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    item = team.item("contested").id
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)

    def start_work() -> None:
        runtime.work_items.transition(team.boss, item, "in_progress", None, fence=None)

    results = outcomes_of([start_work for _ in range(8)])
    assert results == Counter({"ok": 1, InvalidTransition.__name__: 7})
    changes = [e for e in team.events(item) if isinstance(e, WorkItem.StatusChanged)]
    assert [(e.from_status, e.to_status) for e in changes] == [("open", "in_progress")]
    assert together.all_in_flight and conflicts.since() >= 7


def test_concurrent_archives_write_one_archive(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    item = team.item("old").id
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    results = outcomes_of(
        [lambda: runtime.work_items.archive(team.boss, item, fence=None) for _ in range(8)]
    )
    assert results == Counter({"ok": 8})  # archiving an archived item is already done
    archives = [e for e in team.events(item) if isinstance(e, WorkItem.WorkItemArchived)]
    assert len(archives) == 1
    assert together.all_in_flight and conflicts.since() >= 7


def test_concurrent_dependency_edits_on_one_item_all_land(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Like creates, structure edits take turns within a server: split over two servers."""
    team = Team(runtime)
    item = team.item("waits").id
    others = [team.item(f"prerequisite {n}").id for n in range(12)]
    runtime.catch_up()  # both servers know the items' plan, so each takes turns on it
    together = DecidedTogether(2).install(monkeypatch)
    conflicts = Conflicts(runtime, other_server)
    results = outcomes_of(
        [
            lambda n=n, other=other: (runtime, other_server)[n % 2].work_items.add_dependency(
                team.boss, item, other, fence=None
            )
            for n, other in enumerate(others)
        ]
    )
    assert results == Counter({"ok": 12})
    assert together.all_in_flight and conflicts.since() >= 1
    added = [
        e.depends_on
        for e in runtime.ledger.events.get(plan_id("apollo"))
        if isinstance(e, ProjectPlan.DependencyAdded)
    ]
    assert sorted(added) == sorted(others)


def test_a_rebuilt_read_model_matches_the_live_one(runtime: Runtime, clock: ManualClock) -> None:
    team = Team(runtime)
    root = team.item("root", kind="epic").id
    a = team.item("a", parent=root).id
    b = team.item("b", parent=a).id
    c = team.item("c", parent=b).id
    other = team.item("other root", kind="epic").id
    runtime.work_items.add_dependency(team.boss, c, other, fence=None)
    moved = runtime.work_items.update(
        team.boss, a, {"parent_id": other}, precondition=Precondition.at(1), fence=None
    )
    assert moved.value.parent_id == other
    ctx, session = team.agent("alice"), team.session("alice", ttl_seconds=300)
    runtime.work_items.claim(ctx, b, session)
    clock.advance(200)
    runtime.sessions.heartbeat(ctx, session)  # the claim's expiry follows the lease
    runtime.work_items.transition(team.boss, other, "cancelled", None, fence=None)
    runtime.catch_up()

    def snapshot() -> dict[str, Any]:
        view = runtime.read_models["work_items_v4"]
        rows = sorted(view.in_project("apollo"), key=lambda r: r.created_position)
        return {
            "rows": [asdict(r) for r in rows],
            "edges": view.dependencies([r.id for r in rows]),
        }

    live = snapshot()
    by_title = {r["title"]: r for r in live["rows"]}
    assert (by_title["c"]["depth"], by_title["c"]["path"]) == (3, f"{other}/{a}/{b}/{c}")
    lease = runtime.sessions.get(session).value.lease_expires_at
    assert by_title["b"]["claim_expires_at"] == lease
    runtime.runners.projections["work_items_v4"].rebuild()
    assert snapshot() == live


def test_concurrent_removals_of_one_dependency_remove_it_once(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two servers remove the same edge at once: one removes it, the other is told it is
    gone (404), never a second removal."""
    team = Team(runtime)
    item, other = team.item("waits").id, team.item("prerequisite").id
    runtime.work_items.add_dependency(team.boss, item, other, fence=None)
    runtime.catch_up()
    together = DecidedTogether(2).install(monkeypatch)
    conflicts = Conflicts(runtime, other_server)
    results = outcomes_of(
        [
            lambda rt=rt: rt.work_items.remove_dependency(team.boss, item, other, fence=None)
            for rt in (runtime, other_server)
        ]
    )
    assert results == Counter({"ok": 1, "NotFound": 1})
    removed = [
        e
        for e in runtime.ledger.events.get(plan_id("apollo"))
        if isinstance(e, ProjectPlan.DependencyRemoved)
    ]
    assert len(removed) == 1
    assert together.all_in_flight and conflicts.since() >= 1


def test_concurrent_unarchives_write_one_unarchive_event(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    item = team.item("back again").id
    runtime.work_items.archive(team.boss, item, fence=None)
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    results = outcomes_of(
        [lambda: runtime.work_items.unarchive(team.boss, item, fence=None) for _ in range(8)]
    )
    assert results == Counter({"ok": 8})  # unarchiving an unarchived item is already done
    unarchived = [e for e in team.events(item) if isinstance(e, WorkItem.WorkItemUnarchived)]
    assert len(unarchived) == 1
    assert together.all_in_flight and conflicts.since() >= 7


def test_concurrent_activations_of_a_pending_session_activate_it_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The losers re-run against the active session and are refused, not silently merged."""
    team = Team(runtime)
    alice = team.agent("alice")
    session = runtime.sessions.start(alice, pending=True).value.id
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    results = outcomes_of([lambda: runtime.sessions.activate(alice, session) for _ in range(8)])
    assert results == Counter({"ok": 1, "InvalidTransition": 7})
    activated = [
        e for e in runtime.ledger.events.get(session) if type(e).__name__ == "SessionActivated"
    ]
    assert len(activated) == 1
    assert together.all_in_flight and conflicts.since() >= 7
