"""Many writers on the same sessions at once: nothing lost, conflicts reported, never swallowed."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext
from agentledger.application.errors import ConcurrencyConflict
from agentledger.domain.errors import InvalidTransition, LeaseLapsed
from agentledger.domain.sessions import AgentSession
from agentledger.infrastructure.bootstrap import Runtime
from tests.support.helpers import agent_context, run_threads
from tests.support.overlap import Conflicts, DecidedTogether

REFUSALS = (InvalidTransition, LeaseLapsed, ConcurrencyConflict)


@dataclass
class Tally:
    acknowledged: list[tuple[str, int, Any]] = field(default_factory=list)
    refused: list[BaseException] = field(default_factory=list)
    unexpected: list[BaseException] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, kind: str, call: Callable[[], Any]) -> Any:
        try:
            outcome = call()
        except REFUSALS as exc:
            with self.lock:
                self.refused.append(exc)
            return None
        except BaseException as exc:
            with self.lock:
                self.unexpected.append(exc)
            return None
        with self.lock:
            self.acknowledged.append((kind, outcome.events_written, outcome))
        return outcome


def test_sixteen_writers_on_one_session(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=3600).value.id
    tally = Tally()
    # The four endings all decide on the live session before any saves: three must collide.
    endings = DecidedTogether(4, only_marked=True).install(monkeypatch)
    conflicts = Conflicts(runtime)

    def heartbeats() -> None:
        for _ in range(5):
            # 60 advances of 50 s stay inside the 3600 s lease, so it cannot lapse; every
            # eighth or so moves the expiry past the write threshold (360 s).
            clock.advance(50)
            tally.attempt("heartbeat", lambda: runtime.sessions.heartbeat(alice, sid))

    def complete() -> None:
        wait_for_a_written_renewal(tally)  # so the ending races live heartbeats, not none
        ending = endings.marked(lambda: runtime.sessions.complete(alice, sid, reason="done"))
        tally.attempt("complete", ending)

    def fail() -> None:
        wait_for_a_written_renewal(tally)
        tally.attempt("fail", endings.marked(lambda: runtime.sessions.fail(alice, sid, "crash")))

    run_threads([heartbeats] * 12 + [complete, complete, fail, fail])

    assert tally.unexpected == []
    events = list(runtime.ledger.events.get(sid))
    versions = [e.originator_version for e in events]
    assert versions == list(range(1, len(events) + 1)), "versions must be contiguous"
    terminal = [
        e
        for e in events
        if isinstance(e, AgentSession.SessionCompleted | AgentSession.SessionFailed)
    ]
    assert len(terminal) == 1 and events[-1] is terminal[0]
    ended = [a for a in tally.acknowledged if a[0] in ("complete", "fail")]
    assert len(ended) == 1, "exactly one terminal command is acknowledged"
    assert len(tally.refused) >= 3, "the losing terminal commands were reported"
    assert endings.all_in_flight and conflicts.since() >= 3, "the endings' saves collided"
    assert not any(isinstance(r, LeaseLapsed) for r in tally.refused)
    assert len(written_renewals(tally)) >= 1, "some renewals were written"

    # Every acknowledged write is in the log, at the version it was told.
    by_version = {e.originator_version: e for e in events}
    written = [a for a in tally.acknowledged if a[1] == 1]
    renewals = [e for e in events if isinstance(e, AgentSession.LeaseRenewed)]
    assert len([a for a in written if a[0] == "heartbeat"]) == len(renewals)
    for kind, _, outcome in written:
        view = outcome.value.session if kind == "heartbeat" else outcome.value
        event = by_version[view.version]
        expected = {
            "heartbeat": AgentSession.LeaseRenewed,
            "complete": AgentSession.SessionCompleted,
            "fail": AgentSession.SessionFailed,
        }[kind]
        assert isinstance(event, expected)
        if kind == "heartbeat":
            assert event.lease_expires_at == view.lease_expires_at


def test_sweeper_racing_heartbeats(runtime: Runtime, clock: ManualClock) -> None:
    agents = [agent_context(runtime, f"agent-{i}") for i in range(12)]
    sessions = [runtime.sessions.start(a, ttl_seconds=60).value.id for a in agents]
    tally = Tally()
    done = threading.Event()
    rng = random.Random(7)
    stops = {sid: rng.choice([8, 15, 40, 40]) for sid in sessions}  # some agents "die" early

    def heartbeater(who: RequestContext, sid: UUID) -> Callable[[], None]:
        def run() -> None:
            for _ in range(stops[sid]):
                clock.advance(rng.uniform(0, 3))
                if tally.attempt("heartbeat", lambda: runtime.sessions.heartbeat(who, sid)) is None:
                    return

        return run

    def sweeper() -> None:
        while not done.is_set():
            for sid in sessions:
                tally.attempt("expire", lambda sid=sid: runtime.sessions.expire(sid, "race"))
            tally.attempt("sweep", lambda: _as_outcome(runtime.sessions.sweep()))

    heartbeaters = [heartbeater(a, s) for a, s in zip(agents, sessions, strict=True)]

    def heartbeat_then_finish() -> None:
        workers = [threading.Thread(target=h) for h in heartbeaters]
        for w in workers:
            w.start()
        for w in workers:
            w.join(120)
        done.set()

    run_threads([heartbeat_then_finish, sweeper, sweeper, sweeper, sweeper])
    clock.advance(120)  # every lease has now lapsed: a final sweep must expire the rest
    for sid in sessions:
        runtime.sessions.expire(sid, "final")

    assert tally.unexpected == []
    expired_early = 0
    for sid in sessions:
        events = list(runtime.ledger.events.get(sid))
        expiries = [e for e in events if isinstance(e, AgentSession.SessionExpired)]
        assert len(expiries) == 1, "every session expires exactly once"
        assert events[-1] is expiries[0], "nothing happens after expiry"
        leases = [getattr(e, "lease_expires_at", None) for e in events[:-1]]
        last_lease = [lease for lease in leases if lease is not None][-1]
        # The expiry was decided on the latest lease, which had really lapsed.
        assert expiries[0].lease_expired_at == last_lease
        assert expiries[0].timestamp >= last_lease
        if expiries[0].trace_id != "final":
            expired_early += 1
    assert expired_early > 0, "the race must have expired some sessions while others beat"
    early, renewed = early_expiries_and_renewals(runtime)
    assert min(early) < max(renewed), "sweepers and heartbeats wrote at the same time"
    # Every acknowledged renewal is in its session's log.
    for kind, written, outcome in tally.acknowledged:
        if kind == "heartbeat" and written:
            view = outcome.value.session
            event = list(runtime.ledger.events.get(view.id))[view.version - 1]
            assert isinstance(event, AgentSession.LeaseRenewed)
            assert event.lease_expires_at == view.lease_expires_at


def early_expiries_and_renewals(rt: Runtime) -> tuple[list[int], list[int]]:
    """Log positions of the expiries the racing sweepers wrote, and of every renewal."""
    early: list[int] = []
    renewed: list[int] = []
    after = 0
    while batch := rt.ledger.read_log(after=after, limit=1000):
        for notification in batch:
            event = rt.ledger.to_event(notification)
            if isinstance(event, AgentSession.SessionExpired) and event.trace_id != "final":
                early.append(notification.id)
            elif isinstance(event, AgentSession.LeaseRenewed):
                renewed.append(notification.id)
        after = batch[-1].id
    return early, renewed


def wait_for_a_written_renewal(tally: Tally, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not written_renewals(tally):
        assert time.monotonic() < deadline, "no renewal was written"
        time.sleep(0.001)


def written_renewals(tally: Tally) -> list[Any]:
    with tally.lock:
        return [a for a in tally.acknowledged if a[0] == "heartbeat" and a[1] == 1]


@dataclass
class _as_outcome:
    value: int
    events_written: int = 0
