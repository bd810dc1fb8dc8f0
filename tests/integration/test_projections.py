"""Projections: exactly once, supervised, one runner per projection, rebuildable from the log."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from application.clock import ManualClock
from application.errors import NotCaughtUp
from infrastructure.bootstrap import Runtime, build_runtime
from infrastructure.settings import Settings
from tests.conftest import issue_token
from tests.support.helpers import agent_context, wait_until


def session_rows(rt: Runtime) -> list[Any]:
    view = rt.views["sessions_v1"]
    return view.list(
        agent_id=None, status=None, now=rt.clock.now(), limit=1000, before_position=None
    )


def busy_log(rt: Runtime, clock: ManualClock) -> int:
    alice, bob = agent_context(rt, "alice"), agent_context(rt, "bob")
    ids = [
        rt.sessions.start(a, ttl_seconds=600, metadata={"n": i}).value.id
        for i, a in enumerate([alice, bob] * 5)
    ]
    clock.advance(100)
    for sid in ids[:6]:
        owner = alice if ids.index(sid) % 2 == 0 else bob
        rt.sessions.heartbeat(owner, sid)
    rt.sessions.complete(alice, ids[0])
    rt.sessions.fail(bob, ids[1], reason="oops")
    rt.sessions.update_metadata(alice, ids[2], {"n": None, "tag": "x"})
    clock.advance(700)
    rt.catch_up()
    rt.sessions.sweep()
    return rt.ledger.head_position()


def test_rebuild_reproduces_the_live_read_model(runtime: Runtime, clock: ManualClock) -> None:
    head = busy_log(runtime, clock)
    runtime.consistency.wait(runtime.views["sessions_v1"], head)
    live = session_rows(runtime)
    assert len(live) == 10
    runtime.runners.stop()
    report = runtime.runners.runners["sessions_v1"].rebuild()
    assert report is not None and report.events == head
    assert session_rows(runtime) == live


def test_a_failing_projection_is_restarted_and_applies_each_event_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    runner = runtime.runners.runners["sessions_v1"]
    original = runner.worker.projection  # type: ignore[attr-defined]
    failures = {"left": 1}

    class FlakyOnce:
        name = original.name
        follows = original.follows

        def handle(self, event: Any, position: int, writer: Any) -> None:
            original.handle(event, position, writer)  # the write happens, then the failure
            if type(event).__name__ == "SessionStarted" and failures["left"]:
                failures["left"] -= 1
                raise RuntimeError("simulated crash mid-batch")

    runner.worker.projection = FlakyOnce()  # type: ignore[attr-defined]
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=600).value.id
    clock.advance(100)
    beat = runtime.sessions.heartbeat(alice, sid)
    # The failure is visible (what /readyz reports) while the runner backs off...
    wait_until(lambda: not runtime.runners.healthy())
    assert runner.restarts == 1
    assert "simulated crash" in (runner.status().last_error or "")
    # ...then it restarts; the rolled-back batch is applied again, exactly once (a second
    # insert of the same session row would violate its primary key and fail for ever).
    read = runtime.sessions.get(sid, consistent_with=beat.position)  # recovered after back-off
    assert read.value.version == 2
    assert read.value.lease_expires_at == beat.value.session.lease_expires_at
    assert runner.state == "running"


def test_one_runner_per_projection_across_runtimes(settings: Settings, runtime: Runtime) -> None:
    second = build_runtime(settings, clock=runtime.clock)
    second.start_runners()
    try:
        wait_until(lambda: all(s.state == "standby" for s in second.runners.statuses()))
        assert all(s.state == "running" for s in runtime.runners.statuses())
        assert second.runners.healthy()
        # Writes through the standby runtime are projected by the running one.
        outcome = second.sessions.start(agent_context(second, "carol"))
        assert second.sessions.get(outcome.value.id, consistent_with=outcome.position).value
        # When the running one goes away, the standby takes over.
        runtime.runners.stop()
        wait_until(lambda: all(s.state == "running" for s in second.runners.statuses()))
        later = second.sessions.start(agent_context(second, "dave"))
        assert second.sessions.get(later.value.id, consistent_with=later.position).value
    finally:
        second.close()


def test_consistent_read_times_out_with_not_caught_up(settings: Settings) -> None:
    rt = build_runtime(settings, clock=ManualClock())  # projections deliberately not started
    try:
        rt.consistency.timeout = 0.1
        outcome = rt.sessions.start(agent_context(rt, "alice"))
        with pytest.raises(NotCaughtUp) as late:
            rt.sessions.get(outcome.value.id, consistent_with=outcome.position)
        assert late.value.wanted == outcome.position
        rt.catch_up()
        assert rt.sessions.get(outcome.value.id, consistent_with=outcome.position).value
    finally:
        rt.close()


def test_tracking_advances_over_events_the_projection_ignores(runtime: Runtime) -> None:
    # Token events mean nothing to the sessions view, yet a client may wait on their position.
    token_position = runtime.ledger.head_position()
    issue_token(runtime, "agent:zed", "agent")
    after = runtime.ledger.head_position()
    assert after > token_position
    view = runtime.views["sessions_v1"]
    assert runtime.consistency.wait(view, after) >= after


def test_postgres_runners_wake_on_other_processes_commits(postgres_url: str, tmp_path: Any) -> None:
    """On PostgreSQL a commit anywhere wakes the runner (LISTEN), not its next poll."""
    schema = f"t_wake_{time.time_ns()}"
    slow_poll = Settings(
        database_url=postgres_url,
        postgres_schema=schema,
        projection_poll_seconds=30.0,
        data_dir=tmp_path,
    )
    runner_side = build_runtime(slow_poll)
    writer_side = build_runtime(slow_poll)  # never runs projections: it only writes
    try:
        runner_side.start_runners()
        wait_until(lambda: all(s.state == "running" for s in runner_side.runners.statuses()))
        assert runner_side.listener is not None
        assert runner_side.listener.listening.wait(10)
        time.sleep(0.2)  # let the runners settle into their 30 s wait
        outcome = writer_side.sessions.start(agent_context(writer_side, "alice"))
        started = time.monotonic()
        writer_side.consistency.timeout = 5
        assert writer_side.sessions.get(outcome.value.id, consistent_with=outcome.position).value
        assert time.monotonic() - started < 2.0
    finally:
        writer_side.close()
        runner_side.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
