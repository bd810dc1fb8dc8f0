"""Archiving a project clears every selection on it: by a policy that reacts exactly once, even
when it fails or is restarted mid-way, and even for selections that slip in around the archive."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

import pytest
from starlette.testclient import TestClient

from agentledger.application.commands import UnitOfWork
from agentledger.application.context import RequestContext
from agentledger.application.preconditions import Precondition
from agentledger.domain.errors import ProjectArchived
from agentledger.domain.events import EventContext
from agentledger.domain.projects import Project, project_id
from agentledger.domain.selections import ProjectSelection, selection_id
from agentledger.infrastructure.bootstrap import Runtime
from tests.api.helpers import CONSISTENT_WITH
from tests.conftest import bearer, issue_token
from tests.support.overlap import DecidedTogether

POLICY = "policy_archived_project_clears_selections"
FIRST = Precondition.absent()


class Actors:
    """Tokens, sessions and selections for a runtime, through the application layer."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        boss = rt.access.authenticate(issue_token(rt, "user:boss", "coordinator"))
        self.boss = boss
        self.contexts: dict[str, RequestContext] = {}
        self.sessions: dict[str, UUID] = {}

    def coordinator(self, trace_id: str = "setup") -> RequestContext:
        return RequestContext(self.boss, trace_id)

    def project(self, *names: str) -> None:
        for name in names:
            self.rt.projects.create(self.coordinator(), name)

    def agent(self, name: str) -> RequestContext:
        if name not in self.contexts:
            token = issue_token(self.rt, f"agent:{name}", "agent")
            self.contexts[name] = RequestContext(self.rt.access.authenticate(token), name)
            self.sessions[name] = self.rt.sessions.start(
                self.contexts[name], ttl_seconds=3600
            ).value.id
        return self.contexts[name]

    def select(self, name: str, project: str) -> int:
        """Select (first time or by current version); returns the log position."""
        ctx = self.agent(name)
        version = version_of(self.rt, name)
        precondition = FIRST if version == 0 else Precondition.at(version)
        outcome = self.rt.selections.select(ctx, name, project, self.sessions[name], precondition)
        return outcome.position

    def archive(self, project: str, trace_id: str) -> int:
        return self.rt.projects.archive(self.coordinator(trace_id), project).position


def version_of(rt: Runtime, agent_id: str) -> int:
    events = list(rt.ledger.events.get(selection_id(agent_id)))
    return len(events)


def selection_events(rt: Runtime, agent_id: str) -> list[Any]:
    return list(rt.ledger.events.get(selection_id(agent_id)))


def archive_clears(rt: Runtime, agent_id: str) -> list[Any]:
    return [
        e
        for e in selection_events(rt, agent_id)
        if isinstance(e, ProjectSelection.SelectionCleared) and e.reason == "project_archived"
    ]


def all_archive_clears(rt: Runtime) -> list[Any]:
    found: list[Any] = []
    after = 0
    while batch := rt.ledger.read_log(after=after, limit=1000):
        found += [
            e
            for e in map(rt.ledger.to_event, batch)
            if isinstance(e, ProjectSelection.SelectionCleared) and e.reason == "project_archived"
        ]
        after = batch[-1].id
    return found


def wait_for_policy(rt: Runtime, position: int, timeout: float = 20.0) -> None:
    """Until the policy runner has handled every event up to `position` (and is running)."""
    runner = rt.runners.policies[POLICY]
    deadline = time.monotonic() + timeout
    while True:
        status = runner.status()
        if status.state == "running" and status.position >= position:
            return
        assert time.monotonic() < deadline, f"policy stuck: {status}"
        time.sleep(0.005)


def assert_cleared_once_by_policy(
    rt: Runtime, agent_id: str, project: str, trace_id: str | None = None
) -> None:
    clears = archive_clears(rt, agent_id)
    assert len(clears) == 1, (agent_id, clears)
    (clear,) = clears
    assert clear.actor == "system:policy"
    assert clear.previous_project == project
    assert clear.causation == f"policy.{POLICY}"
    if trace_id is not None:
        assert clear.trace_id == trace_id
    assert selection_events(rt, agent_id)[-1] == clear  # nothing after it
    assert rt.ledger.repository.get(selection_id(agent_id)).project is None


def test_archiving_clears_every_selection_on_the_project(
    runtime: Runtime, client: TestClient
) -> None:
    actors = Actors(runtime)
    actors.project("doomed", "kept")
    on_doomed = [f"a{i}" for i in range(5)]
    for name in on_doomed:
        actors.select(name, "doomed")
    for name in ("b0", "b1"):
        actors.select(name, "kept")
    actors.select("c", "doomed")
    actors.select("c", "kept")  # moved away before the archive
    actors.select("d", "doomed")
    runtime.selections.clear(actors.agent("d"), "d", Precondition.at(1))
    untouched = {n: selection_events(runtime, n) for n in ("b0", "b1", "c", "d")}
    wait_for_policy(runtime, runtime.ledger.head_position())  # it has seen every selection

    boss = bearer(issue_token(runtime, "user:chief", "coordinator"))
    response = client.post(
        "/v1/projects/doomed/archive",
        json={"reason": "cancelled"},
        headers={**boss, "X-Request-ID": "archive-doomed"},
    )
    assert response.status_code == 200, response.text
    wait_for_policy(runtime, response.json()["position"])

    for name in on_doomed:
        assert_cleared_once_by_policy(runtime, name, "doomed", "archive-doomed")
        assert len(selection_events(runtime, name)) == 2
    for name, before in untouched.items():
        assert selection_events(runtime, name) == before, name
    assert runtime.ledger.repository.get(selection_id("c")).project == "kept"
    assert selection_events(runtime, "d")[-1].reason == "cleared"
    assert len(all_archive_clears(runtime)) == len(on_doomed)

    # The read model and the agent's next GET show it.
    head = runtime.ledger.head_position()
    a0 = bearer(issue_token(runtime, "agent:a0", "agent"))
    seen = client.get("/v1/agents/a0/project", headers={**a0, CONSISTENT_WITH: str(head)})
    assert seen.status_code == 200, seen.text
    body = seen.json()
    assert body["project"] is None
    assert body["cleared_reason"] == "project_archived"
    assert body["version"] == 2 == runtime.ledger.repository.get(selection_id("a0")).version
    assert seen.headers["ETag"] == '"2"'
    kept = client.get("/v1/agents/b0/project", headers={**a0, CONSISTENT_WITH: str(head)})
    assert (kept.json()["project"], kept.json()["cleared_reason"]) == ("kept", None)

    # The agent moves on, by the version it was shown.
    moved = client.put(
        "/v1/agents/a0/project",
        json={"project": "kept", "session_id": str(actors.sessions["a0"])},
        headers={**a0, "If-Match": '"2"'},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == 3


class FlakyPolicy:
    """The real policy, failing once at chosen moments: inside the reaction to the first
    archive (after it changed selections, before anything is saved), and when it decides on
    the second archive (after the event has been seen)."""

    def __init__(self, inner: Any, fail_inside: str, fail_deciding: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.follows = inner.follows
        self.fail_inside = fail_inside
        self.fail_deciding = fail_deciding
        self.failed: list[str] = []
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def decision(self, event: Any, position: int) -> Any:
        decided = self.inner.decision(event, position)
        if not isinstance(event, Project.ProjectArchived):
            return decided
        with self.lock:
            self.seen.append(event.name)
            first_time = self.seen.count(event.name) == 1
        if first_time and event.name == self.fail_deciding:
            self.failed.append(f"deciding {event.name}")
            raise RuntimeError(f"policy crashed deciding on {event.name}")
        if first_time and event.name == self.fail_inside and decided is not None:

            def crash_after_clearing(uow: UnitOfWork, ctx: EventContext) -> Any:
                cleared = decided(uow, ctx)  # the selections were changed in this attempt...
                self.failed.append(f"inside {event.name} after clearing {cleared}")
                raise RuntimeError("policy crashed before saving")  # ...and never saved

            return crash_after_clearing
        return decided


def test_a_policy_failing_mid_way_reacts_exactly_once_after_its_restart(
    runtime: Runtime,
) -> None:
    actors = Actors(runtime)
    actors.project("p1", "p2", "elsewhere")
    groups = {"p1": ["p1-a", "p1-b", "p1-c"], "p2": ["p2-a", "p2-b", "p2-c"]}
    for project, names in groups.items():
        for name in names:
            actors.select(name, project)
    actors.select("bystander", "elsewhere")
    # A first archive the policy handles normally: its reaction records the policy's position
    # past every selection above, so the restarts below resume from there.
    actors.project("warm-up")
    actors.select("early", "warm-up")
    wait_for_policy(runtime, runtime.ledger.head_position())
    wait_for_policy(runtime, actors.archive("warm-up", "archive-warm-up"))
    assert_cleared_once_by_policy(runtime, "early", "warm-up", "archive-warm-up")
    runner = runtime.runners.policies[POLICY]

    # Both archives land while the policy is down, so one batch holds both.
    runner.stop()
    first = actors.archive("p1", "archive-p1")
    second = actors.archive("p2", "archive-p2")
    flaky = FlakyPolicy(runner.worker.policy, fail_inside="p1", fail_deciding="p2")
    runner.worker.policy = flaky  # type: ignore[attr-defined]
    restarts = runner.restarts
    runner.start()
    wait_for_policy(runtime, second, timeout=30)

    assert flaky.failed == ["inside p1 after clearing 3", "deciding p2"]
    assert runner.restarts == restarts + 2
    assert flaky.seen.count("p1") >= 2 and flaky.seen.count("p2") >= 2
    for project, names in groups.items():
        for name in names:
            assert_cleared_once_by_policy(runtime, name, project, f"archive-{project}")
    assert len(all_archive_clears(runtime)) == 7
    assert_cleared_once_by_policy(runtime, "early", "warm-up", "archive-warm-up")
    assert runtime.ledger.repository.get(selection_id("bystander")).project == "elsewhere"
    assert runtime.ledger.tracked_position(POLICY) >= max(first, second)
    assert runner.status().state == "running"


def test_stopping_and_restarting_the_runners_between_archives(runtime: Runtime) -> None:
    actors = Actors(runtime)
    actors.project("p1", "p2")
    for name in ("x1", "x2"):
        actors.select(name, "p1")
    for name in ("y1", "y2"):
        actors.select(name, "p2")
    wait_for_policy(runtime, runtime.ledger.head_position())  # it has seen every selection

    wait_for_policy(runtime, actors.archive("p1", "archive-p1"))
    for name in ("x1", "x2"):
        assert_cleared_once_by_policy(runtime, name, "p1", "archive-p1")

    if runtime.listener is not None:
        runtime.listener.stop()
    runtime.runners.stop()
    second = actors.archive("p2", "archive-p2")
    # Nobody ran: every runner's thread has been joined, so nothing could clear anything.
    assert all(not r.started and r.state == "stopped" for r in runtime.runners.all())
    assert runtime.ledger.tracked_position(POLICY) < second
    assert archive_clears(runtime, "y1") == [] == archive_clears(runtime, "y2")
    runtime.start_runners()
    wait_for_policy(runtime, second)

    for name in ("y1", "y2"):
        assert_cleared_once_by_policy(runtime, name, "p2", "archive-p2")
    for name in ("x1", "x2"):  # not repeated after the restart
        assert_cleared_once_by_policy(runtime, name, "p1", "archive-p1")
    assert len(all_archive_clears(runtime)) == 4

    # And once more, the policy alone, with nothing new to do.
    runner = runtime.runners.policies[POLICY]
    runner.stop()
    runner.start()
    head = runtime.ledger.head_position()
    wait_for_policy(runtime, head)
    assert len(all_archive_clears(runtime)) == 4
    assert runtime.ledger.head_position() == head


def test_selections_made_just_before_the_archive_are_cleared_as_its_reaction(
    runtime: Runtime,
) -> None:
    """Selections committed before the archive, which a lagging policy sees only after the
    archive committed, are cleared by the archive's reaction: once, with its trace id."""
    actors = Actors(runtime)
    actors.project("quick", "home")
    names = [f"q{i}" for i in range(4)]
    for name in names:
        actors.agent(name)
    actors.select("q3", "home")
    runner = runtime.runners.policies[POLICY]
    wait_for_policy(runtime, runtime.ledger.head_position())
    runner.stop()  # the policy lags: it sees the selections only after the archive
    for name in names:
        actors.select(name, "quick")
    archived = actors.archive("quick", "archive-quick")
    runner.start()
    wait_for_policy(runtime, archived)
    for name in names:
        clears = archive_clears(runtime, name)
        assert len(clears) == 1, (name, clears)
        assert clears[0].actor == "system:policy"
    assert len(all_archive_clears(runtime)) == len(names)
    for name in names:
        # The selection was made while the project was open: what cleared it is the archive.
        assert_cleared_once_by_policy(runtime, name, "quick", "archive-quick")


@pytest.mark.parametrize("kind", ["first selection", "switch"])
def test_a_selection_saved_after_the_archive_is_cleared(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """The switch checked the project before the archive committed, and saved after it: its
    event follows the archive in the log."""
    actors = Actors(runtime)
    actors.project("late", "home")
    actors.agent("slow")
    if kind == "switch":
        actors.select("slow", "home")
    loaded = threading.Event()
    archived = threading.Event()
    repository = runtime.ledger.repository
    real_get = repository.get
    selecting: list[threading.Thread] = []

    def paused_get(aggregate_id: Any, *args: Any, **kwargs: Any) -> Any:
        found = real_get(aggregate_id, *args, **kwargs)
        if threading.current_thread() in selecting and aggregate_id == project_id("late"):
            loaded.set()
            assert archived.wait(10)
        return found

    real_load = runtime.ledger.load_current

    def paused_load(ids: Any, *args: Any, **kwargs: Any) -> Any:
        found = real_load(ids, *args, **kwargs)
        if threading.current_thread() in selecting and project_id("late") in ids:
            loaded.set()
            assert archived.wait(10)
        return found

    # A command loads what it needs in one query (`load_current`), or one by one (`get`).
    monkeypatch.setattr(repository, "get", paused_get)
    monkeypatch.setattr(runtime.ledger, "load_current", paused_load)
    outcome: list[int] = []
    errors: list[BaseException] = []

    def select() -> None:
        try:
            outcome.append(actors.select("slow", "late"))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=select)
    selecting.append(thread)
    thread.start()
    assert loaded.wait(10)
    archive_position = actors.archive("late", "archive-late")
    archived.set()
    thread.join(10)
    assert errors == []
    (selected_at,) = outcome
    assert selected_at > archive_position, "the selection must follow the archive in the log"
    chosen = selection_events(runtime, "slow")[-1]
    expected = (
        ProjectSelection.ProjectSelected if kind == "switch" else ProjectSelection.SelectionStarted
    )
    assert isinstance(chosen, expected) and chosen.project == "late"

    wait_for_policy(runtime, selected_at)
    assert_cleared_once_by_policy(runtime, "slow", "late")
    assert len(all_archive_clears(runtime)) == 1


def test_selections_racing_archives_are_all_cleared(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    actors = Actors(runtime)
    rounds = 12
    projects = [f"race-{i:02d}" for i in range(rounds)]
    actors.project(*projects)
    for i in range(rounds):
        actors.agent(f"racer-{i:02d}")
        if i % 2:  # half switch from a selection they already have
            actors.project(f"home-{i:02d}")
            actors.select(f"racer-{i:02d}", f"home-{i:02d}")
    selected: list[str] = []
    refused: list[str] = []
    unexpected: list[BaseException] = []
    for i, project in enumerate(projects):
        name = f"racer-{i:02d}"
        barrier = threading.Barrier(2)

        def select(
            name: str = name, project: str = project, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            try:
                actors.select(name, project)
                selected.append(name)
            except ProjectArchived:
                refused.append(name)
            except BaseException as exc:
                unexpected.append(exc)

        def archive(project: str = project, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            try:
                actors.archive(project, f"archive-{project}")
            except BaseException as exc:
                unexpected.append(exc)

        if i % 2:
            run_pair(select, archive)  # as it comes: the archive may land first, and refuse
            continue
        # Both decided before either saves: the selection saw the project open, and lands
        # before or after the archive as it comes, so its clearing is the policy's.
        with monkeypatch.context() as patch:
            together = DecidedTogether(2).install(patch)
            run_pair(select, archive)
        assert together.all_in_flight and name in selected, project

    assert unexpected == []
    assert len(selected) + len(refused) == rounds
    wait_for_policy(runtime, runtime.ledger.head_position())
    for i, project in enumerate(projects):
        name = f"racer-{i:02d}"
        if name in selected:
            assert_cleared_once_by_policy(runtime, name, project)
        else:
            assert archive_clears(runtime, name) == []
            assert version_of(runtime, name) == (1 if i % 2 else 0)
    assert len(all_archive_clears(runtime)) == len(selected)


def run_pair(*targets: Callable[[], None]) -> None:
    threads = [threading.Thread(target=t) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
