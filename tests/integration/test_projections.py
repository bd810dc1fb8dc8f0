"""Projections: exactly once, supervised, one runner per projection, rebuildable from the log."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext, local_operator
from agentledger.application.entries import NewEntry
from agentledger.application.errors import NotCaughtUp
from agentledger.application.preconditions import Precondition
from agentledger.application.projections import ProjectsProjection, followed_topics
from agentledger.application.readmodels import EntryFilter
from agentledger.application.work_items import NewWorkItem
from agentledger.domain.projects import Project
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.runners.log_tail import LogTail
from agentledger.infrastructure.settings import Settings
from tests.conftest import issue_token
from tests.support.helpers import agent_context, wait_until


def session_rows(rt: Runtime) -> list[Any]:
    view = rt.read_models["sessions_v3"]
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
    runtime.consistency.wait(runtime.read_models["sessions_v3"], head)
    live = session_rows(runtime)
    assert len(live) == 10
    runtime.runners.stop()
    report = runtime.runners.projections["sessions_v3"].rebuild()
    assert report is not None and report.events == head
    assert session_rows(runtime) == live


def test_a_failing_projection_is_restarted_and_applies_each_event_once(
    runtime: Runtime, clock: ManualClock
) -> None:
    runner = runtime.runners.projections["sessions_v3"]
    original = runner.worker.projection
    mended = threading.Event()

    class FlakyUntilMended:
        follows = original.follows

        def handle(self, event: Any, position: int, writer: Any) -> None:
            original.handle(event, position, writer)  # the write happens, then the failure
            if type(event).__name__ == "SessionStarted" and not mended.is_set():
                raise RuntimeError("simulated crash mid-batch")

    runner.worker.projection = FlakyUntilMended()
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=600).value.id
    clock.advance(100)
    beat = runtime.sessions.heartbeat(alice, sid)
    # The failure is visible (what /readyz reports) while the runner backs off, every time
    # it tries again, until the cause is mended...
    wait_until(lambda: runner.state == "faulted")
    assert not runtime.runners.healthy()
    assert runner.restarts >= 1
    assert "simulated crash" in (runner.status().last_error or "")
    restarts = runner.restarts
    mended.set()
    # ...then it restarts; the rolled-back batch is applied again, exactly once (a second
    # insert of the same session row would violate its primary key and fail for ever).
    runtime.consistency.timeout = 40  # the back-off doubles with each failure, up to 5 s
    read = runtime.sessions.get(sid, consistent_with=beat.position)  # recovered after back-off
    assert read.value.version == 2
    assert read.value.lease_expires_at == beat.value.session.lease_expires_at
    wait_until(lambda: runner.state == "running")  # caught up: nothing left to do
    assert runner.restarts in (restarts, restarts + 1)  # one more if it failed as we mended
    assert runner.status().last_error is None


def test_one_runner_per_projection_across_runtimes(settings: Settings, runtime: Runtime) -> None:
    second = build_runtime(settings, clock=runtime.clock)
    second.start_runners()
    try:
        wait_until(lambda: all(r.state == "standby" for r in second.runners.all()))
        wait_until(lambda: all(r.state == "running" for r in runtime.runners.all()))
        assert second.runners.healthy()
        # Writes through the standby runtime are projected by the running one.
        outcome = second.sessions.start(agent_context(second, "carol"))
        assert second.sessions.get(outcome.value.id, consistent_with=outcome.position).value
        # When the running one goes away, the standby takes over.
        runtime.runners.stop()
        wait_until(lambda: all(r.state == "running" for r in second.runners.all()))
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
    view = runtime.read_models["sessions_v3"]
    assert runtime.consistency.wait(view, after) >= after


@contextmanager
def two_slow_polling_runtimes(
    postgres_url: str, tmp_path: Any
) -> Iterator[tuple[Runtime, Runtime]]:
    """Two runtimes on a fresh PostgreSQL schema whose runners poll every 30 s: within a
    test, only a commit's nudge or NOTIFY wakes them."""
    schema = f"t_wake_{time.time_ns()}"
    slow_poll = Settings(
        database_url=postgres_url,
        postgres_schema=schema,
        projection_poll_seconds=30.0,
        data_dir=tmp_path,
    )
    first, second = build_runtime(slow_poll), build_runtime(slow_poll)
    try:
        yield first, second
    finally:
        second.close()
        first.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgres_runners_wake_on_other_processes_commits(postgres_url: str, tmp_path: Any) -> None:
    """On PostgreSQL a commit anywhere wakes the runner (LISTEN), not its next poll."""
    # The writer never runs projections: it only writes.
    with two_slow_polling_runtimes(postgres_url, tmp_path) as (runner_side, writer_side):
        runner_side.start_runners()
        wait_until(lambda: all(s.state == "running" for s in runner_side.runners.statuses()))
        assert runner_side.listener is not None
        assert runner_side.listener.listening.wait(10)
        # Every runner has read what the listener's first wake-up asked for and sleeps in
        # its 30 s wait: only a notification can wake it now.
        wait_until(lambda: all(r.waiting() for r in runner_side.runners.all()))
        outcome = writer_side.sessions.start(agent_context(writer_side, "alice"))
        started = time.monotonic()
        writer_side.consistency.timeout = 5
        assert writer_side.sessions.get(outcome.value.id, consistent_with=outcome.position).value
        assert time.monotonic() - started < 2.0


def test_a_commit_wakes_every_runner_once_and_they_share_one_read(
    postgres_url: str, tmp_path: Any
) -> None:
    """Fourteen runners woken by one commit send one query between them, the one that
    confirms nothing more is new included (a reader's own tick made each send its own), and
    the commit's NOTIFY, signed by this process, does not wake them again; another process's
    commit still does."""
    with two_slow_polling_runtimes(postgres_url, tmp_path) as (rt, other):
        alice, bob = agent_context(rt, "alice"), agent_context(other, "bob")  # tokens: commits
        rt.start_runners()
        assert rt.listener is not None and rt.listener.listening.wait(10)
        wait_until(lambda: all(r.progress() == rt.ledger.head_position() for r in rt.runners.all()))
        wait_until(lambda: all(r.waiting() for r in rt.runners.all()))
        reads: list[int] = []
        read_log = rt.ledger.read_log

        def counted(after: int, *args: Any, **kwargs: Any) -> Any:
            reads.append(after)
            return read_log(after, *args, **kwargs)

        rt.ledger.read_log = counted  # type: ignore[method-assign]
        outcome = rt.sessions.start(alice)
        wait_until(lambda: all(r.progress() == outcome.position for r in rt.runners.all()))
        wait_until(lambda: all(r.waiting() for r in rt.runners.all()))
        time.sleep(0.5)  # the NOTIFY has long arrived
        assert len(rt.runners.all()) >= 14
        assert len(reads) == 1

        elsewhere = other.sessions.start(bob)
        wait_until(lambda: all(r.progress() == elsewhere.position for r in rt.runners.all()))
        assert len(reads) >= 2


def test_a_commit_wakes_only_the_runners_that_follow_what_it_wrote(
    postgres_url: str, tmp_path: Any
) -> None:
    """A session's start concerns neither approvals nor messages: their runners sleep through
    it, in this process (the ledger's nudge) and in another (the NOTIFY names the topics),
    and the read the woken runners share passes them over, so their read models are at the
    commit at once, not at their next poll (30 s here)."""
    with two_slow_polling_runtimes(postgres_url, tmp_path) as (rt, other):
        alice, bob = agent_context(rt, "alice"), agent_context(other, "bob")
        rt.start_runners()
        assert rt.listener is not None and rt.listener.listening.wait(10)
        wait_until(lambda: all(r.waiting() for r in rt.runners.all()))
        steps: dict[str, int] = {}
        for runner in rt.runners.all():
            step = runner.worker.step

            def counted(after: int, fresh: int, name: str = runner.name, step: Any = step) -> int:
                steps[name] = steps.get(name, 0) + 1
                return int(step(after, fresh))

            runner.worker.step = counted  # type: ignore[method-assign]
        asleep = [rt.runners.projections[name] for name in ("approvals_v1", "messages_v1")]
        for writer, context in ((rt, alice), (other, bob)):
            at = writer.sessions.start(context).position
            wait_until(lambda at=at: all(r.progress() == at for r in rt.runners.all()))
            for runner in asleep:
                assert runner.worker.read_model.position() == at
                assert runner.waiting()
        assert steps.get("sessions_v3", 0) >= 2  # it follows a start: woken by both
        assert all(runner.name not in steps for runner in asleep)
        rt.runners.nudge()  # topics not known: every runner wakes
        wait_until(lambda: all(runner.name in steps for runner in asleep))


def test_a_read_from_behind_a_sleeping_runner_passes_it_over_from_where_it_stands(
    postgres_url: str, tmp_path: Any
) -> None:
    """The first runner to read after a commit may stand behind the others (it had more to
    write): its read, shared, still moves a sleeping runner that stands within it past what
    it does not follow, and leaves a runner that follows what lies beyond asleep where it is."""
    with two_slow_polling_runtimes(postgres_url, tmp_path) as (rt, other):
        rt.start_runners()
        assert rt.listener is not None and rt.listener.listening.wait(10)
        approvals, sessions = (
            rt.runners.projections["approvals_v1"],
            rt.runners.projections["sessions_v3"],
        )
        behind = rt.ledger.head_position()
        first = other.sessions.start(agent_context(other, "bob")).position
        wait_until(lambda: approvals.progress() == sessions.progress() == first)
        wait_until(lambda: approvals.waiting() and sessions.waiting())
        rt.listener.stop()  # no runner of rt hears of the next commit
        second = other.sessions.start(agent_context(other, "carol")).position
        tail = LogTail(rt.ledger)
        tail.on_read(approvals.passed_over)
        tail.on_read(sessions.passed_over)
        assert tail.read(behind, tail.mark()).last == second  # from behind both runners
        assert approvals.progress() == approvals.worker.read_model.position() == second
        assert sessions.progress() == first  # a start concerns it: left for its own read


def test_runners_polling_together_share_a_read_that_finds_an_unannounced_commit(
    runtime: Runtime,
) -> None:
    """Polls due within half a period of each other share one generation, so one read
    answers them all; a commit no nudge announced is in the next poll's read."""
    runtime.runners.stop()
    tail = LogTail(runtime.ledger)
    head = runtime.ledger.head_position()
    first = tail.polled(60.0)
    assert tail.polled(60.0) == first
    assert tail.read(head, first).last == head
    runtime.sessions.start(agent_context(runtime, "alice"))  # no runner is told of it
    assert tail.read(head, tail.polled(60.0)).positions == []  # the same poll: not seen yet
    assert tail.read(head, tail.polled(0.0)).last == runtime.ledger.head_position()


def test_log_tail_answers_only_from_reads_sent_after_the_reader_looked(runtime: Runtime) -> None:
    """A read sent before a runner cleared its wake-up may predate the commit that woke it:
    the tail must not answer from it, and must answer (the same decoded events) from a later
    one, for runners level with it or a batch behind."""
    runtime.runners.stop()  # the test drives the tail alone
    tail = LogTail(runtime.ledger, batch_size=3)
    alice = agent_context(runtime, "alice")
    before = runtime.ledger.head_position()
    runtime.sessions.start(alice)
    first = tail.mark()
    batch = tail.read(before, first)
    assert batch.last == batch.positions[-1] == runtime.ledger.head_position()

    runtime.sessions.start(alice)  # a commit after `first`: its reader marks again
    stale = tail.read(batch.last, first)
    assert (stale.last, stale.positions) == (batch.last, [])  # what it saw: nothing after
    fresh = tail.read(batch.last, tail.mark())
    assert fresh.positions == [runtime.ledger.head_position()]

    shared = tail.read(before, first)
    assert shared.positions == batch.positions
    assert all(a is b for a, b in zip(shared.events, batch.events, strict=True))  # decoded once


def test_log_tail_shows_a_reader_only_what_it_follows(runtime: Runtime) -> None:
    """A reader following some topics is shown only those events, decoded, and the batch's
    last position, so it moves past the rest; another reader of the same read shares them."""
    runtime.runners.stop()
    tail = LogTail(runtime.ledger)
    alice = agent_context(runtime, "alice")
    before = runtime.ledger.head_position()
    session = runtime.sessions.start(alice).value.id
    runtime.sessions.heartbeat(alice, session)
    runtime.projects.create(RequestContext(local_operator("test"), "t"), "followed")
    topics = frozenset(followed_topics(ProjectsProjection()))
    since = tail.mark()
    projects = tail.read(before, since, topics)
    assert projects.last == runtime.ledger.head_position()
    assert [type(e) for e in projects.events] == [Project.ProjectCreated]
    everything = tail.read(before, since)
    assert everything.positions[-1] == projects.last and len(everything.positions) >= 2
    assert projects.events[0] is everything.events[-1]
    assert tail.read(projects.last, tail.mark(), topics).positions == []
    # Sent before this reader's tick, the read still answers for the events it holds.
    assert tail.read(before, tail.mark()).events[0] is everything.events[0]


def test_a_reader_far_behind_the_others_reads_alone_only_what_it_follows(
    runtime: Runtime,
) -> None:
    """Runners catching up drift apart; one that fell out of the kept reads is not sent every
    event again but reads alone the events it follows, up to the head the store had then."""
    runtime.runners.stop()
    tail = LogTail(runtime.ledger, batch_size=2)
    before = runtime.ledger.head_position()
    runtime.projects.create(RequestContext(local_operator("test"), "t"), "followed")
    alice = agent_context(runtime, "alice")
    for _ in range(40):
        runtime.sessions.start(alice)
    head = runtime.ledger.head_position()
    since, position = tail.mark(), before
    while (batch := tail.read(position, since)).last != position:
        position = batch.last  # the others, level with each other, share reads to the head
    assert position == head

    topics = frozenset(followed_topics(ProjectsProjection()))
    behind = tail.read(before, since, topics)
    assert [type(e) for e in behind.events] == [Project.ProjectCreated]
    assert behind.last == head  # one read, not a batch of two at a time


def test_log_tail_reads_past_a_full_batch(runtime: Runtime) -> None:
    runtime.runners.stop()
    tail = LogTail(runtime.ledger, batch_size=2)
    alice = agent_context(runtime, "alice")
    for _ in range(3):
        runtime.sessions.start(alice)
    head = runtime.ledger.head_position()
    since, position, seen = tail.mark(), 0, []
    while True:
        batch = tail.read(position, since)
        if batch.last == position:
            break
        seen += batch.positions
        position = batch.last
    assert position == head
    assert seen == sorted(set(seen))


def test_entries_rebuilt_in_bulk_equal_the_live_read_model(runtime: Runtime) -> None:
    """A rebuild writes each batch's rows together (COPY on PostgreSQL); the rows, and the
    metadata side table the filters use, come out as the live runner wrote them one by one."""
    boss = RequestContext(
        runtime.access.authenticate(issue_token(runtime, "user:boss", "coordinator")), "t"
    )
    runtime.projects.create(boss, "alpha")
    alice = agent_context(runtime, "alice")
    session = runtime.sessions.start(alice).value.id
    last = 0
    for n in range(40):
        entry = NewEntry(f"step {n}", session, metadata={"n": n, "even": n % 2 == 0})
        last = runtime.entries.append(alice, "alpha", entry).position

    def both() -> tuple[list[Any], list[Any]]:
        everything = runtime.entries.list(EntryFilter("alpha"), limit=100, consistent_with=last)
        even = EntryFilter("alpha", metadata=(("even", "true"),))
        return everything.items, runtime.entries.list(even, limit=100).items

    live_all, live_even = both()
    assert len(live_all) == 40 and len(live_even) == 20
    runtime.runners.stop()
    report = runtime.runners.projections["entries_v2"].rebuild()
    assert report is not None
    assert both() == (live_all, live_even)


def work_item_rows(rt: Runtime) -> list[dict[str, Any]]:
    view = rt.read_models["work_items_v4"]
    return view.select("work_items", "SELECT * FROM {work_items} ORDER BY id", {})  # type: ignore[no-any-return]


def test_work_items_rebuilt_in_batches_equal_the_live_read_model(
    runtime: Runtime, clock: ManualClock
) -> None:
    """A rebuild sends runs of the same UPDATE together (pipelined on PostgreSQL): claims,
    leases followed by heartbeats, moves that read rows mid-batch and rewrite a subtree all
    come out as the live runner wrote them event by event."""
    boss = RequestContext(
        runtime.access.authenticate(issue_token(runtime, "user:boss", "coordinator")), "t"
    )
    runtime.projects.create(boss, "alpha")
    root = runtime.work_items.create(boss, NewWorkItem("alpha", "epic", "root")).value.id
    middle = [
        runtime.work_items.create(boss, NewWorkItem("alpha", "story", f"s{n}", parent_id=root))
        for n in range(3)
    ]
    for story in middle:
        for n in range(3):
            new = NewWorkItem("alpha", "task", f"t{n}", parent_id=story.value.id, priority=n)
            runtime.work_items.create(boss, new)
    agents = [agent_context(runtime, name) for name in ("alice", "bob", "carol")]
    sessions = [runtime.sessions.start(a, ttl_seconds=600).value.id for a in agents]
    claimed = [
        runtime.work_items.claim(agent, story.value.id, session).value
        for agent, session, story in zip(agents, sessions, middle, strict=True)
    ]
    moved = claimed[2]
    runtime.work_items.update(
        boss,
        moved.id,
        {"parent_id": middle[1].value.id},
        precondition=Precondition.at(moved.version),
        fence=None,
    )
    clock.advance(100)
    for agent, session in zip(agents, sessions, strict=True):
        runtime.sessions.heartbeat(agent, session)
    last = runtime.sessions.complete(agents[0], sessions[0]).position
    # the policy then releases the ended session's claim, in events of its own
    wait_until(lambda: runtime.ledger.head_position() > last)
    runtime.consistency.wait(runtime.read_models["work_items_v4"], runtime.ledger.head_position())
    live = work_item_rows(runtime)
    assert [r["holder_agent"] for r in live if r["kind"] == "story"].count(None) == 1
    assert len(live) == 13
    assert {r["depth"] for r in live} == {0, 1, 2, 3}  # the moved story went one level down
    runtime.runners.stop()
    report = runtime.runners.projections["work_items_v4"].rebuild()
    assert report is not None and report.events == runtime.ledger.head_position()
    assert work_item_rows(runtime) == live


def test_an_update_of_a_row_the_view_never_saw_fails_the_whole_batch(runtime: Runtime) -> None:
    """Updates are sent together, but each one's row count is still checked: one that finds
    no row rolls back the batch (the rows before it included) and the tracking position."""
    alice = agent_context(runtime, "alice")
    ids = [runtime.sessions.start(alice, ttl_seconds=600).value.id for _ in range(3)]
    view = runtime.read_models["sessions_v3"]
    runtime.consistency.wait(view, runtime.ledger.head_position())
    runtime.runners.stop()
    before, position = session_rows(runtime), view.position()

    class RenameEach:
        follows = (object,)

        def handle(self, event: Any, at: int, rows: Any) -> None:
            for session_id in [*ids[:2], uuid4(), ids[2]]:
                rows.update("sessions", {"id": session_id}, {"end_reason": "renamed"})

    with pytest.raises(LookupError, match="no row for"):
        view.process([(object(), position + 1)], position + 1, RenameEach())
    assert session_rows(runtime) == before
    assert view.position() == position


def every_row(rt: Runtime) -> dict[str, list[dict[str, Any]]]:
    rows = {}
    for name, view in rt.read_models.items():
        for table in view.tables:
            order = ", ".join(table.key)
            statement = f"SELECT * FROM {{{table.name}}} ORDER BY {order}"
            rows[f"{name}.{table.name}"] = view.select(table.name, statement, {})
    return rows


def test_every_projection_rebuilt_from_its_own_topics_equals_the_live_one(
    runtime: Runtime, clock: ManualClock
) -> None:
    """A rebuild reads only the events its projection follows (filtered by topic in the
    store); every table of every read model still comes out as the live runners wrote it,
    and every projection's position reaches the head of the log."""
    boss = RequestContext(
        runtime.access.authenticate(issue_token(runtime, "user:boss", "coordinator")), "t"
    )
    operator = RequestContext(local_operator("test"), "t")
    spare = runtime.access.issue(operator, "agent:spare", ["agent"]).value
    runtime.access.revoke(operator, spare.token_id, "not needed")
    for name in ("alpha", "beta"):
        runtime.projects.create(boss, name)
    alice, bob = agent_context(runtime, "alice"), agent_context(runtime, "bob")
    sessions = {a: runtime.sessions.start(a, ttl_seconds=600).value.id for a in (alice, bob)}
    version = runtime.selections.select(
        alice, "alice", "alpha", sessions[alice], Precondition.absent()
    ).value.version
    runtime.selections.select(alice, "alice", "beta", sessions[alice], Precondition.at(version))
    runtime.selections.select(bob, "bob", "beta", sessions[bob], Precondition.absent())
    runtime.entries.append(alice, "beta", NewEntry("hello", sessions[alice], metadata={"k": 1}))
    item = runtime.work_items.create(boss, NewWorkItem("beta", "task", "one")).value
    runtime.work_items.claim(bob, item.id, sessions[bob])
    clock.advance(100)
    runtime.sessions.heartbeat(bob, sessions[bob])
    last = runtime.projects.archive(boss, "beta", "done").position
    # the policies then clear the archived project's selections, in events of their own
    wait_until(lambda: runtime.ledger.head_position() > last + 1)
    runtime.catch_up()
    live = every_row(runtime)
    assert all(live[t] for t in ("tokens_v1.tokens", "selections_v1.selections"))
    runtime.runners.stop()
    head = runtime.ledger.head_position()
    for name in runtime.read_models:
        report = runtime.runners.projections[name].rebuild()
        assert report is not None and report.events == head, name
        assert runtime.read_models[name].position() == head, name
    assert every_row(runtime) == live
