"""The seal: `verify` recomputes the hash chain from the stored events and names the first
position where the log was changed after sealing, on both stores; gaps are not tampering."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext
from agentledger.application.seal import parse_published
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.runners.log_tail import LogTail
from agentledger.infrastructure.runners.runner import Runner
from agentledger.infrastructure.runners.seal_worker import SealWorker
from agentledger.infrastructure.settings import Settings
from tests.support.helpers import agent_context
from tests.support.stored_log import StoredLog


def _projects(runtime: Runtime, agent: RequestContext, count: int, prefix: str = "p") -> None:
    for n in range(count):
        runtime.projects.create(agent, f"{prefix}{n}", f"project number {n}")


def _seal(runtime: Runtime) -> Runner[SealWorker]:
    assert runtime.runners.seal is not None
    return runtime.runners.seal


@pytest.fixture
def agent(runtime: Runtime) -> RequestContext:
    return agent_context(runtime, "sealer")  # its token is the log's first event


@pytest.fixture
def sealed(runtime: Runtime, agent: RequestContext) -> Runtime:
    """A log of 12 events, all sealed: the token, then projects p0..p10 at positions 2..12."""
    _projects(runtime, agent, 11)
    runtime.catch_up()
    report = runtime.audit.verify()
    assert report.ok and report.checked == 12 and report.unsealed == 0
    return runtime


def test_an_untouched_log_verifies_with_its_sealed_head(sealed: Runtime) -> None:
    report = sealed.audit.verify()
    assert report.ok and report.breach is None
    assert report.sealed_head is not None and report.sealed_head.position == 12


def test_events_not_sealed_yet_are_counted_not_flagged(
    runtime: Runtime, agent: RequestContext
) -> None:
    _projects(runtime, agent, 3)
    runtime.catch_up()
    _seal(runtime).stop()
    _projects(runtime, agent, 2, prefix="later")
    report = runtime.audit.verify()
    assert report.ok and report.checked == 4 and report.unsealed == 2


def test_an_altered_event_is_named(sealed: Runtime, settings: Settings) -> None:
    StoredLog(settings).alter(7, b"project number 5", b"project number 9")
    report = sealed.audit.verify()
    assert not report.ok and report.breach is not None
    assert (report.breach.position, report.breach.kind) == (7, "altered")
    assert report.checked == 6


def test_a_removed_event_is_named(sealed: Runtime, settings: Settings) -> None:
    StoredLog(settings).delete(5)
    report = sealed.audit.verify()
    assert report.breach is not None
    assert (report.breach.position, report.breach.kind) == (5, "removed")


def test_an_inserted_event_is_named(sealed: Runtime, settings: Settings) -> None:
    forged = StoredLog(settings).insert_after(8)
    report = sealed.audit.verify()
    assert report.breach is not None
    assert (report.breach.position, report.breach.kind) == (forged, "inserted")


def test_two_swapped_events_are_named(sealed: Runtime, settings: Settings) -> None:
    StoredLog(settings).swap(4, 9)
    report = sealed.audit.verify()
    assert report.breach is not None
    assert (report.breach.position, report.breach.kind) == (4, "reordered")
    assert "position 9" in report.breach.detail


def test_gaps_left_by_failed_transactions_are_not_tampering(
    runtime: Runtime, agent: RequestContext, settings: Settings
) -> None:
    log = StoredLog(settings)
    _projects(runtime, agent, 3)
    log.fail_a_transaction()
    log.fail_a_transaction()
    _projects(runtime, agent, 3, prefix="after-gap")
    runtime.catch_up()
    positions = log.positions()
    # PostgreSQL leaves the two positions unused; SQLite hands them to the next events.
    gaps = positions[-1] - len(positions)
    assert gaps == (2 if settings.uses_postgres else 0)
    report = runtime.audit.verify()
    assert report.ok, report.breach
    assert report.checked == len(positions)


def test_a_rewritten_chain_fails_against_a_published_checkpoint(
    sealed: Runtime, settings: Settings
) -> None:
    head = sealed.audit.verify().sealed_head
    assert head is not None
    published = parse_published(f"{head.position}:{head.link}")
    assert sealed.audit.verify(published).ok
    # Someone who can write both changes an event and then seals the whole log afresh.
    StoredLog(settings).alter(3, b"project number 1", b"project number 7")
    seal = _seal(sealed)
    seal.stop()
    seal.worker.tables.reset()
    # Read afresh: this process's tail still holds the bytes it read before the change.
    tail = LogTail(sealed.ledger)
    rewritten = SealWorker(tail, seal.worker.tables, ManualClock(), 1000)
    position = 0
    while position < 12:
        position = rewritten.step(position, tail.mark())
    assert sealed.audit.verify().ok  # the seal alone cannot tell
    report = sealed.audit.verify(published)
    assert not report.ok and report.breach is not None
    assert report.breach.kind == "chain-rewritten"


@pytest.fixture
def every_five(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings.model_copy(update={"seal_checkpoint_events": 5}))
    rt.start_runners()
    yield rt
    rt.close()


def test_a_checkpoint_is_written_every_n_events(every_five: Runtime) -> None:
    agent = agent_context(every_five, "sealer")
    _projects(every_five, agent, 11)  # 12 events
    every_five.catch_up()
    checkpoints = every_five.audit.checkpoints()
    assert [(c.position, c.events) for c in checkpoints] == [(5, 5), (10, 10)]
    report = every_five.audit.verify()
    assert report.ok and report.checkpoints == 2


def test_a_changed_checkpoint_is_caught(every_five: Runtime, settings: Settings) -> None:
    agent = agent_context(every_five, "sealer")
    _projects(every_five, agent, 6)
    every_five.catch_up()
    tables = _seal(every_five).worker.tables
    with tables._store.transaction(commit=True) as cursor:
        cursor.execute(tables.sql("UPDATE {checkpoints} SET link = %(l)s"), {"l": "0" * 64})
    report = every_five.audit.verify()
    assert report.breach is not None
    assert (report.breach.position, report.breach.kind) == (5, "chain-rewritten")
