"""Sessions through the real stores (PostgreSQL and SQLite): log, read model, sweeper."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import pytest
from eventsourcing.application import project_aggregate

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext
from agentledger.application.errors import Forbidden, InvalidCursor, NotFound, PreconditionFailed
from agentledger.application.preconditions import Precondition
from agentledger.domain.errors import InvalidValue, LeaseLapsed
from agentledger.domain.sessions import AgentSession
from agentledger.infrastructure.bootstrap import Runtime
from tests.conftest import issue_token
from tests.support.helpers import agent_context


def events_of(rt: Runtime, session_id: UUID) -> list[AgentSession.Event]:
    return list(rt.ledger.events.get(session_id))


def test_start_writes_one_event_with_context_and_reads_back(runtime: Runtime) -> None:
    alice = agent_context(runtime, "alice")
    outcome = runtime.sessions.start(alice, ttl_seconds=300, metadata={"task": "T-1"})
    (started,) = events_of(runtime, outcome.value.id)
    assert isinstance(started, AgentSession.SessionStarted)
    assert (started.actor, started.trace_id, started.causation) == (
        "agent:alice",
        "alice",
        "sessions.start",
    )
    assert started.timestamp == runtime.clock.now()
    read = runtime.sessions.get(outcome.value.id, consistent_with=outcome.position)
    assert read.position >= outcome.position
    assert read.value.agent_id == "alice"
    assert read.value.metadata == {"task": "T-1"}
    assert read.value.version == 1


def test_read_your_writes_after_every_command(runtime: Runtime, clock: ManualClock) -> None:
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=600).value.id
    clock.advance(120)
    beat = runtime.sessions.heartbeat(alice, sid)
    assert beat.value.renewed and beat.events_written == 1
    assert runtime.sessions.get(sid, consistent_with=beat.position).value.version == 2
    done = runtime.sessions.complete(alice, sid, reason="finished")
    seen = runtime.sessions.get(sid, consistent_with=done.position).value
    assert (seen.status, seen.end_reason, seen.version) == ("completed", "finished", 3)


def test_small_heartbeat_is_not_written(runtime: Runtime, clock: ManualClock) -> None:
    alice = agent_context(runtime, "alice")
    start = runtime.sessions.start(alice, ttl_seconds=600)
    clock.advance(30)
    beat = runtime.sessions.heartbeat(alice, start.value.id)
    assert (beat.value.renewed, beat.events_written) == (False, 0)
    assert beat.position >= start.position
    assert len(events_of(runtime, start.value.id)) == 1


def test_lapsed_session_is_refused_before_the_sweeper_runs(
    runtime: Runtime, clock: ManualClock
) -> None:
    alice = agent_context(runtime, "alice")
    start = runtime.sessions.start(alice, ttl_seconds=60)
    clock.advance(61)
    for act in (runtime.sessions.heartbeat, runtime.sessions.complete, runtime.sessions.fail):
        with pytest.raises(LeaseLapsed):
            act(alice, start.value.id)
    assert len(events_of(runtime, start.value.id)) == 1  # nothing written, not even expiry
    seen = runtime.sessions.get(start.value.id, consistent_with=start.position).value
    assert seen.status == "expired"  # computed on read


def test_sweeper_records_expiry_once(runtime: Runtime, clock: ManualClock) -> None:
    alice = agent_context(runtime, "alice")
    short = runtime.sessions.start(alice, ttl_seconds=60)
    long = runtime.sessions.start(alice, ttl_seconds=3600)
    clock.advance(61)
    runtime.catch_up()
    assert runtime.sessions.sweep() == 1
    runtime.catch_up()
    assert runtime.sessions.sweep() == 0
    assert [type(e).__name__ for e in events_of(runtime, short.value.id)] == [
        "SessionStarted",
        "SessionExpired",
    ]
    assert len(events_of(runtime, long.value.id)) == 1
    expired = events_of(runtime, short.value.id)[-1]
    assert expired.actor == "system:sweeper"


def test_list_filters_by_agent_and_effective_status(runtime: Runtime, clock: ManualClock) -> None:
    alice, bob = agent_context(runtime, "alice"), agent_context(runtime, "bob")
    a1 = runtime.sessions.start(alice, ttl_seconds=60).value.id
    a2 = runtime.sessions.start(alice, ttl_seconds=3600).value.id
    b1 = runtime.sessions.start(bob, ttl_seconds=3600, pending=True).value.id
    last = runtime.sessions.complete(alice, a2)
    clock.advance(61)

    def ids(**filters: str) -> list[UUID]:
        page = runtime.sessions.list(consistent_with=last.position, **filters)
        return [s.id for s in page.items]

    assert ids() == [b1, a2, a1]  # newest first
    assert ids(agent_id="alice") == [a2, a1]
    assert ids(status="expired") == [a1]
    assert ids(status="completed") == [a2]
    assert ids(status="pending") == [b1]
    assert ids(status="active") == []
    assert ids(agent_id="bob", status="expired") == []


def test_pagination_has_no_gaps_or_duplicates_while_sessions_are_added(runtime: Runtime) -> None:
    alice = agent_context(runtime, "alice")
    created = [runtime.sessions.start(alice).value.id for _ in range(7)]
    position = runtime.ledger.head_position()
    seen: list[UUID] = []
    page = runtime.sessions.list(agent_id="alice", limit=3, consistent_with=position)
    seen += [s.id for s in page.items]
    runtime.sessions.start(alice)  # newer than the cursor: must not shift the pages
    while page.next_cursor:
        page = runtime.sessions.list(agent_id="alice", limit=3, cursor=page.next_cursor)
        seen += [s.id for s in page.items]
    assert seen == list(reversed(created))


def test_cursor_is_bound_to_its_filters(runtime: Runtime) -> None:
    alice = agent_context(runtime, "alice")
    for _ in range(3):
        last = runtime.sessions.start(alice)
    page = runtime.sessions.list(agent_id="alice", limit=1, consistent_with=last.position)
    assert page.next_cursor
    with pytest.raises(InvalidCursor):
        runtime.sessions.list(agent_id="bob", limit=1, cursor=page.next_cursor)
    with pytest.raises(InvalidCursor):
        runtime.sessions.list(cursor="not-a-cursor")


def test_agents_act_only_on_their_own_sessions(runtime: Runtime) -> None:
    alice, bob = agent_context(runtime, "alice"), agent_context(runtime, "bob")
    sid = runtime.sessions.start(alice).value.id
    with pytest.raises(Forbidden):
        runtime.sessions.start(bob, agent_id="alice")
    for act in (runtime.sessions.heartbeat, runtime.sessions.complete, runtime.sessions.fail):
        with pytest.raises(Forbidden):
            act(bob, sid)
    assert len(events_of(runtime, sid)) == 1


def test_coordinator_opens_pending_session_which_only_the_agent_activates(runtime: Runtime) -> None:
    boss = RequestContext(
        runtime.access.authenticate(issue_token(runtime, "user:boss", "coordinator")), "t"
    )
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(boss, agent_id="alice", pending=True).value.id
    with pytest.raises(Forbidden):
        runtime.sessions.activate(boss, sid)
    assert runtime.sessions.activate(alice, sid).value.status == "active"
    assert runtime.sessions.fail(boss, sid, reason="reassigned").value.status == "failed"
    assert [e.actor for e in events_of(runtime, sid)] == ["user:boss", "agent:alice", "user:boss"]


def test_expected_version_is_checked(runtime: Runtime) -> None:
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice).value.id
    with pytest.raises(PreconditionFailed) as stale:
        runtime.sessions.update_metadata(alice, sid, {"k": 1}, precondition=Precondition.at(7))
    assert stale.value.current == 1
    assert (
        runtime.sessions.update_metadata(
            alice, sid, {"k": 1}, precondition=Precondition.at(1)
        ).value.version
        == 2
    )


def test_unknown_session(runtime: Runtime) -> None:
    alice = agent_context(runtime, "alice")
    missing = UUID(int=1)
    with pytest.raises(NotFound):
        runtime.sessions.heartbeat(alice, missing)
    with pytest.raises(NotFound):
        runtime.sessions.get(missing)


def test_auditors_only_read_even_their_own_sessions(runtime: Runtime) -> None:
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice).value.id
    watcher = RequestContext(
        runtime.access.authenticate(issue_token(runtime, "agent:alice", "auditor")), "t"
    )
    with pytest.raises(Forbidden):
        runtime.sessions.heartbeat(watcher, sid)
    with pytest.raises(Forbidden):
        runtime.sessions.start(watcher)
    assert runtime.sessions.get(sid, consistent_with=runtime.ledger.head_position()).value


def test_a_coordinator_must_name_the_agent(runtime: Runtime) -> None:
    boss = RequestContext(
        runtime.access.authenticate(issue_token(runtime, "user:boss", "coordinator")), "t"
    )
    with pytest.raises(InvalidValue) as missing:
        runtime.sessions.start(boss)
    assert missing.value.field == "agent_id"


def test_long_sessions_load_from_snapshots(runtime: Runtime, clock: ManualClock, settings) -> None:  # type: ignore[no-untyped-def]
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=600).value.id
    for _ in range(45):
        clock.advance(100)
        runtime.sessions.heartbeat(alice, sid)
    runtime.sessions.update_metadata(alice, sid, {"phase": "late"})
    assert runtime.ledger.snapshots is not None
    snapshots = list(runtime.ledger.snapshots.get(sid))
    assert [s.originator_version for s in snapshots] == [20, 40]
    # Taken from the session just saved: the state a replay of its events reaches.
    for snapshot in snapshots:
        replayed = project_aggregate(
            None, runtime.ledger.events.get(sid, lte=snapshot.originator_version)
        )
        assert vars(snapshot.mutate(None)) == vars(replayed)
    session = runtime.ledger.repository.get(sid)  # snapshot at 40 plus 7 events
    assert (session.version, session.status.value, session.metadata) == (
        47,
        "active",
        {"phase": "late"},
    )
    assert session.lease_expires_at == clock.now() + timedelta(seconds=600)
    assert runtime.sessions.complete(alice, sid).value.status == "completed"
