"""An append storm on the progress log: 16 agents x 100 entries at once; none lost or misfiled."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from agentledger.application.context import RequestContext
from agentledger.application.entries import EntryView, NewEntry
from agentledger.application.errors import NotCaughtUp
from agentledger.application.readmodels import EntryFilter
from agentledger.domain.entries import LogEntry
from agentledger.domain.projects import project_id
from agentledger.infrastructure.bootstrap import Runtime
from tests.support.helpers import agent_context, run_threads
from tests.support.overlap import DecidedTogether

AGENTS = 16
PER_AGENT = 100


@dataclass
class Tally:
    acknowledged: list[tuple[str, int, Any]] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def read_all(rt: Runtime, project: str, position: int, **filters: Any) -> list[EntryView]:
    """Every entry of a project, page by page, once the read model has reached `position`."""
    deadline = time.monotonic() + 30
    while True:
        try:
            page = rt.entries.list(
                EntryFilter(project=project, **filters), limit=500, consistent_with=position
            )
            break
        except NotCaughtUp:  # lag is not what is tested here; completeness is
            assert time.monotonic() < deadline, "the entries read model never caught up"
    items = list(page.items)
    while page.next_cursor is not None:
        page = rt.entries.list(
            EntryFilter(project=project, **filters), limit=500, cursor=page.next_cursor
        )
        items += page.items
    return items


def storm(
    rt: Runtime,
    operator: RequestContext,
    project_of: Callable[[int], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"storm-{i:02d}" for i in range(AGENTS)]
    for project in sorted({project_of(i) for i in range(AGENTS)}):
        rt.projects.create(operator, project)
    contexts = {name: agent_context(rt, name) for name in names}
    sessions = {
        name: rt.sessions.start(ctx, ttl_seconds=3600).value.id for name, ctx in contexts.items()
    }
    tally = Tally()

    def appender(i: int) -> Callable[[], None]:
        name = names[i]

        def go() -> None:
            for n in range(PER_AGENT):
                entry = NewEntry(
                    message=f"{name} entry {n}",
                    session_id=sessions[name],
                    status="info" if n % 2 else "success",
                    metadata={"agent": name, "n": n},
                )
                try:
                    outcome = rt.entries.append(contexts[name], project_of(i), entry)
                except BaseException as exc:
                    with tally.lock:
                        tally.unexpected.append(exc)
                    return
                with tally.lock:
                    tally.acknowledged.append((name, n, outcome))

        return go

    # Appends write new entries only, so nothing collides: the agents' first appends are held
    # until all sixteen have decided, so they are all in flight at once.
    together = DecidedTogether(AGENTS).install(monkeypatch)
    started = time.monotonic()
    run_threads([appender(i) for i in range(AGENTS)])
    elapsed = time.monotonic() - started
    assert together.all_in_flight

    assert tally.unexpected == []
    assert len(tally.acknowledged) == AGENTS * PER_AGENT
    assert all(outcome.events_written == 1 for _, _, outcome in tally.acknowledged)
    acknowledged = {outcome.value.id: (name, n) for name, n, outcome in tally.acknowledged}
    assert len(acknowledged) == AGENTS * PER_AGENT, "two appends were told the same id"
    positions = [outcome.position for _, _, outcome in tally.acknowledged]
    assert len(set(positions)) == len(positions), "two appends were told the same position"
    newest = max(positions)

    # The log holds exactly the acknowledged entries, once each.
    appended: list[Any] = []
    after = 0
    while batch := rt.ledger.read_log(after=after, limit=1000):
        appended += [
            e for e in map(rt.ledger.to_event, batch) if isinstance(e, LogEntry.EntryAppended)
        ]
        after = batch[-1].id
    assert Counter(e.originator_id for e in appended) == Counter(list(acknowledged))

    # The read model has every one of them, in the right project, by the right agent.
    listed: list[EntryView] = []
    for project in sorted({project_of(i) for i in range(AGENTS)}):
        items = read_all(rt, project, newest)
        assert all(item.project == project for item in items)
        listed += items
    ids = [item.id for item in listed]
    assert len(ids) == len(set(ids)), "an entry was listed twice"
    assert set(ids) == set(acknowledged), "entries were lost (or invented)"
    per_agent: dict[str, list[int]] = {name: [] for name in names}
    for item in listed:
        name, n = acknowledged[item.id]
        assert item.agent_id == name
        assert item.project == project_of(names.index(name))
        assert item.session_id == sessions[name]
        assert item.message == f"{name} entry {n}"
        assert item.metadata == {"agent": name, "n": n}
        per_agent[name].append(n)
    for name in names:
        assert sorted(per_agent[name]) == list(range(PER_AGENT)), name
    # Newest first within each project, by log position.
    by_id = {outcome.value.id: outcome.position for _, _, outcome in tally.acknowledged}
    for project in sorted({project_of(i) for i in range(AGENTS)}):
        order = [by_id[item.id] for item in listed if item.project == project]
        assert order == sorted(order, reverse=True)
    assert elapsed < 60, f"the storm took {elapsed:.1f}s"


def test_sixteen_agents_each_on_its_own_project(
    runtime: Runtime, operator: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    storm(runtime, operator, lambda i: f"own-{i:02d}", monkeypatch)
    # Each project's log is exactly its agent's hundred.
    for i in range(AGENTS):
        items = read_all(runtime, f"own-{i:02d}", runtime.ledger.head_position())
        assert len(items) == PER_AGENT
        assert {item.agent_id for item in items} == {f"storm-{i:02d}"}


def test_sixteen_agents_on_one_project(
    runtime: Runtime, operator: RequestContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    storm(runtime, operator, lambda i: "shared", monkeypatch)
    head = runtime.ledger.head_position()
    items = read_all(runtime, "shared", head)
    assert len(items) == AGENTS * PER_AGENT
    assert Counter(item.agent_id for item in items) == {
        f"storm-{i:02d}": PER_AGENT for i in range(AGENTS)
    }
    # The read model's per-agent index agrees.
    for i in (0, 7, 15):
        mine = read_all(runtime, "shared", head, agent_id=f"storm-{i:02d}")
        assert len(mine) == PER_AGENT
        assert len({item.id for item in mine}) == PER_AGENT
    # The shared project is still one small aggregate: appends never touched it.
    assert len(list(runtime.ledger.events.get(project_id("shared")))) == 1
