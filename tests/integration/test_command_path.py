"""The one command path: conflicts are retried against fresh state, and a commit whose
acknowledgement was lost is reported as the success it was."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext, local_operator
from agentledger.application.preconditions import Precondition
from agentledger.domain.errors import ProjectArchived, SessionTerminated
from agentledger.domain.projects import project_id
from agentledger.domain.selections import selection_id
from agentledger.domain.sessions import AgentSession
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from tests.support.helpers import agent_context


def test_a_lost_acknowledgement_is_not_reported_as_a_conflict(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=600).value.id
    real_save = runtime.ledger.record_events

    def commit_then_lose_the_answer(events: Any, aggregates: Any, tracking: Any = None) -> Any:
        # What the library's retry after a dropped connection looks like: the first attempt
        # committed, the retried insert collides with it.
        real_save(events, aggregates, tracking)
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(runtime.ledger, "record_events", commit_then_lose_the_answer)
    outcome = runtime.sessions.complete(alice, sid, reason="done")
    monkeypatch.undo()
    assert outcome.value.status == "completed"
    assert outcome.events_written == 1
    events = list(runtime.ledger.events.get(sid))
    assert [type(e).__name__ for e in events] == ["SessionStarted", "SessionCompleted"]


def without_group_commit(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests run the other writer inside the save itself, in the same thread: through
    the group committer that thread would wait for its own turn."""
    monkeypatch.setattr(runtime.commands, "committer", None)


def test_a_conflicting_command_is_rerun_against_fresh_state(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_group_commit(runtime, monkeypatch)
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=600).value.id
    real_save = runtime.ledger.record_events
    interfered = threading.Event()

    def another_writer_wins_first(events: Any, aggregates: Any, tracking: Any = None) -> Any:
        if not interfered.is_set():
            interfered.set()
            runtime.sessions.update_metadata(alice, sid, {"by": "the other writer"})
        return real_save(events, aggregates, tracking)

    runtime.ledger.record_events = another_writer_wins_first  # type: ignore[method-assign]
    try:
        before = runtime.commands.conflicts
        outcome = runtime.sessions.update_metadata(alice, sid, {"mine": True})
    finally:
        del runtime.ledger.record_events
    assert runtime.commands.conflicts == before + 1
    # The re-run saw the other writer's change and merged onto it: nothing was lost.
    assert outcome.value.metadata == {"by": "the other writer", "mine": True}
    assert outcome.value.version == 3


def test_a_consistent_read_waits_for_the_read_model(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = agent_context(runtime, "alice")
    runtime.runners.stop()
    outcome = runtime.sessions.start(alice)
    runtime.consistency.timeout = 10
    result: dict[str, Any] = {}
    view = runtime.read_models["sessions_v3"]
    real_position = view.position
    looks_behind = threading.Semaphore(0)  # one release per look the reader took, found short

    def position() -> int:
        reached = real_position()
        if threading.current_thread() is reader and reached < outcome.position:
            looks_behind.release()
        return reached

    def read() -> None:
        result["view"] = runtime.sessions.get(outcome.value.id, consistent_with=outcome.position)
        result["returned"] = time.monotonic()

    monkeypatch.setattr(view, "position", position)
    reader = threading.Thread(target=read)
    reader.start()
    # The reader looked three times and found the read model behind: it is waiting, not
    # answering from a stale read model (the runners are stopped, so it cannot catch up).
    for _ in range(3):
        assert looks_behind.acquire(timeout=10), "the read never looked at the read model"
    assert reader.is_alive(), "the read must wait while the read model is behind"
    started = time.monotonic()
    runtime.start_runners()
    reader.join(15)
    assert result["view"].value.id == outcome.value.id
    assert result["view"].position >= outcome.position
    assert result["returned"] >= started  # it answered only once the runners caught up


def test_a_heartbeat_that_commits_first_beats_the_sweeper(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sweeper decided on the version it read (lease lapsed); a renewal commits before the
    sweeper's save: the save conflicts, the sweeper re-reads, and nothing expires."""
    without_group_commit(runtime, monkeypatch)
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=60).value.id
    real_save = runtime.ledger.record_events
    clock.advance(59)
    sweeper_clock_now = clock.now()

    def renewal_sneaks_in(events: Any, aggregates: Any, tracking: Any = None) -> Any:
        if any(isinstance(e, AgentSession.SessionExpired) for e in events):
            runtime.ledger.record_events = real_save  # type: ignore[method-assign]
            clock.set(sweeper_clock_now)
            runtime.sessions.heartbeat(alice, sid)  # renews to 59 + 60 s
            clock.advance(2)  # the sweeper's retry happens at 61 s: the old lease had lapsed
        return real_save(events, aggregates, tracking)

    clock.advance(1)  # 60 s: the lease has just lapsed, as the sweeper sees it
    runtime.ledger.record_events = renewal_sneaks_in  # type: ignore[method-assign]
    try:
        before = runtime.commands.conflicts
        expired = runtime.sessions.expire(sid, "race").value
    finally:
        runtime.ledger.record_events = real_save  # type: ignore[method-assign]
    assert runtime.commands.conflicts == before + 1
    assert expired is False
    assert [type(e).__name__ for e in runtime.ledger.events.get(sid)] == [
        "SessionStarted",
        "LeaseRenewed",
    ]


def test_aggregates_preloaded_from_the_cache_see_what_another_server_wrote(
    runtime: Runtime, settings: Settings, clock: ManualClock
) -> None:
    """A switch loads the selection, the session and the project in one query, bringing this
    process's cached copies up to date from the log: what a second server on the same store
    wrote since (an archived project, a completed session) is seen at once, and refused."""
    other = build_runtime(settings, clock)
    try:
        admin = RequestContext(local_operator("test"), "t")
        for name in ("apollo", "gemini", "mercury"):
            runtime.projects.create(admin, name)
        alice = agent_context(runtime, "alice")
        session = runtime.sessions.start(alice, ttl_seconds=600).value.id
        first = runtime.selections.select(alice, "alice", "mercury", session, Precondition.absent())
        second = runtime.selections.select(
            alice, "alice", "gemini", session, Precondition.at(first.value.version)
        )
        ids = (selection_id("alice"), session, project_id("mercury"))
        assert all(runtime.ledger.repository.cache.get(i) for i in ids)  # type: ignore[union-attr]
        other.projects.archive(admin, "mercury", precondition=Precondition.at(1))
        with pytest.raises(ProjectArchived):
            runtime.selections.select(
                alice, "alice", "mercury", session, Precondition.at(second.value.version)
            )
        other.sessions.complete(agent_context(other, "alice"), session, reason="done")
        with pytest.raises(SessionTerminated):
            runtime.selections.select(
                alice, "alice", "apollo", session, Precondition.at(second.value.version)
            )
        # And a version written by the other server is the one a precondition is checked on.
        bob = agent_context(other, "bob")
        bobs = other.sessions.start(bob, ttl_seconds=600).value.id
        other.selections.select(bob, "bob", "apollo", bobs, Precondition.absent())
        moved = other.selections.select(bob, "bob", "gemini", bobs, Precondition.at(1))
        runtime.selections.select(
            agent_context(runtime, "bob"),
            "bob",
            "apollo",
            bobs,
            Precondition.at(moved.value.version),
        )
    finally:
        other.close()
