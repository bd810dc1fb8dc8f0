"""Group commit: concurrent commands share a transaction, yet each keeps its own outcome, and a
conflict in a batch fails only the command whose events conflict (which is then re-run)."""

from __future__ import annotations

import threading
import time
from typing import Any
from uuid import UUID

import pytest

from agentledger.application import deadlines
from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext
from agentledger.application.group_commit import GroupCommitter
from agentledger.domain.events import EventContext
from agentledger.infrastructure.bootstrap import Runtime
from agentledger.infrastructure.store_errors import is_store_outage
from tests.api.test_store_unavailable import hold_the_write_lock
from tests.support.helpers import agent_context, run_threads
from tests.support.overlap import DecidedTogether


def committer_of(rt: Runtime) -> GroupCommitter:
    committer = rt.commands.committer
    assert committer is not None, "group commit is on by default"
    return committer


def queued_behind_a_held_turn(rt: Runtime, commands: list[Any], before_release: Any = None) -> None:
    """Start every command while writes are paused, so they all queue; then let them go: the
    first to get the turn writes them as one batch."""
    committer = committer_of(rt)
    threads = [threading.Thread(target=c) for c in commands]
    with committer.paused():
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while committer.queued() < len(commands):
            assert time.monotonic() < deadline, "commands did not queue"
            time.sleep(0.005)
        if before_release is not None:
            before_release()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)


def sessions_of(rt: Runtime, count: int) -> list[tuple[RequestContext, UUID]]:
    agents = [agent_context(rt, f"a{n}") for n in range(count)]
    return [(a, rt.sessions.start(a, ttl_seconds=600).value.id) for a in agents]


def test_queued_commands_share_one_transaction_and_keep_their_own_outcomes(
    runtime: Runtime,
) -> None:
    sessions = sessions_of(runtime, 12)
    committer = committer_of(runtime)
    outcomes: dict[UUID, Any] = {}

    def edit(ctx: RequestContext, sid: UUID) -> Any:
        return lambda: outcomes.__setitem__(
            sid, runtime.sessions.update_metadata(ctx, sid, {"owner": str(sid)})
        )

    transactions = committer.transactions
    queued_behind_a_held_turn(runtime, [edit(ctx, sid) for ctx, sid in sessions])
    assert committer.transactions == transactions + 1  # twelve commands, one transaction
    positions = set()
    for _ctx, sid in sessions:
        outcome = outcomes[sid]
        assert outcome.value.metadata == {"owner": str(sid)}
        assert outcome.events_written == 1
        # The position reported is this command's own event, not the batch's last.
        (notification,) = runtime.ledger.read_log(after=outcome.position - 1, limit=1)
        assert runtime.ledger.to_event(notification).originator_id == sid
        positions.add(outcome.position)
    assert len(positions) == 12


def test_a_conflict_in_a_batch_fails_only_its_command_which_is_rerun(
    runtime: Runtime, clock: ManualClock
) -> None:
    sessions = sessions_of(runtime, 8)
    victim = sessions[3][1]
    outcomes: dict[UUID, Any] = {}

    def edit(ctx: RequestContext, sid: UUID) -> Any:
        return lambda: outcomes.__setitem__(
            sid, runtime.sessions.update_metadata(ctx, sid, {"mine": True})
        )

    def another_writer_commits_first() -> None:
        # Every command has decided (they are queued); one of them is now stale.
        session = runtime.ledger.repository.get(victim)
        ctx = EventContext("agent:other", "t", "test", "c", clock.now())
        session.update_metadata(ctx, {"theirs": True})
        runtime.ledger.record_events(session.collect_events(), [session])

    conflicts = runtime.commands.conflicts
    queued_behind_a_held_turn(
        runtime, [edit(ctx, sid) for ctx, sid in sessions], another_writer_commits_first
    )
    assert runtime.commands.conflicts == conflicts + 1  # only the victim conflicted
    assert set(outcomes) == {sid for _, sid in sessions}  # every command succeeded
    for _ctx, sid in sessions:
        events = list(runtime.ledger.events.get(sid))
        if sid == victim:
            # Re-run against fresh state: the other writer's change is kept, then ours.
            assert outcomes[sid].value.metadata == {"theirs": True, "mine": True}
            assert outcomes[sid].value.version == 3
        else:
            assert outcomes[sid].value.version == 2
        assert len(events) == outcomes[sid].value.version  # nothing lost, nothing twice


def test_a_batch_failed_by_an_outage_fails_all_its_commands_at_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a shared transaction that failed because the store was out was written again
    command by command, each waiting out the outage in turn (eight commands: nine attempts,
    the last answered after nine lock waits). Now the batch's one attempt fails them all."""
    sessions = sessions_of(runtime, 8)
    failures: dict[UUID, BaseException] = {}
    attempts: list[int] = []
    real_record = runtime.ledger.record_events

    def counted(events: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(len(events))
        return real_record(events, *args, **kwargs)

    monkeypatch.setattr(runtime.ledger, "record_events", counted)

    def edit(ctx: RequestContext, sid: UUID) -> Any:
        def run() -> None:
            # As a request runs (the HTTP layer sets it): bounds the library's own retries.
            with deadlines.within(3):
                try:
                    runtime.sessions.update_metadata(ctx, sid, {"mine": True})
                except Exception as exc:
                    failures[sid] = exc

        return run

    blocker = hold_the_write_lock(runtime.settings)
    try:
        queued_behind_a_held_turn(runtime, [edit(ctx, sid) for ctx, sid in sessions])
    finally:
        blocker.rollback()
        blocker.close()
    assert set(failures) == {sid for _, sid in sessions}
    assert all(is_store_outage(exc) for exc in failures.values())
    assert attempts == [8]  # one shared attempt, none alone after it
    for _ctx, sid in sessions:  # and nothing was written
        assert len(list(runtime.ledger.events.get(sid))) == 1


def test_a_command_still_queued_at_its_deadline_leaves_the_queue(runtime: Runtime) -> None:
    ctx, sid = sessions_of(runtime, 1)[0]
    committer = committer_of(runtime)
    failed: list[BaseException] = []

    def edit() -> None:
        with deadlines.within(0.5):
            try:
                runtime.sessions.update_metadata(ctx, sid, {"late": True})
            except BaseException as exc:
                failed.append(exc)

    with committer.paused():  # another batch is being written for longer than the deadline
        thread = threading.Thread(target=edit)
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), "the command waited past its deadline"
        assert committer.queued() == 0  # it left the queue
    assert [type(e) for e in failed] == [deadlines.DeadlineExceeded]
    assert len(list(runtime.ledger.events.get(sid))) == 1  # and was never written


def test_sixteen_writers_lose_nothing_through_group_commit(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = sessions_of(runtime, 16)
    committer = committer_of(runtime)
    commands = committer.commands
    # Each writer has its own session, so nothing collides: the first edits are held until
    # all sixteen have decided, so they reach the committer together.
    together = DecidedTogether(16).install(monkeypatch)

    def work(ctx: RequestContext, sid: UUID) -> Any:
        def go() -> None:
            for i in range(15):
                runtime.sessions.update_metadata(ctx, sid, {str(i): i})

        return go

    run_threads([work(ctx, sid) for ctx, sid in sessions])
    assert committer.commands == commands + 16 * 15
    assert together.all_in_flight
    for _ctx, sid in sessions:
        session = runtime.ledger.repository.get(sid)
        assert session.version == 16
        assert session.metadata == {str(i): i for i in range(15)}
