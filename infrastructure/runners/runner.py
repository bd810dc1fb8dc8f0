"""A runner: supervises one worker that follows the log, in this process or standing by."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Generic, TypeVar

from agentledger.application.consistency import Consistency
from agentledger.application.ledger import Ledger
from agentledger.infrastructure.locks import RunnerLock
from agentledger.infrastructure.readmodels.base import ProjectionFault
from agentledger.infrastructure.runners.log_tail import LogTail, Read
from agentledger.infrastructure.runners.registry import (
    RUNNER,
    RunnerRecord,
    RunnerRegistry,
    this_process,
)
from agentledger.infrastructure.runners.status import RunnerStatus
from agentledger.infrastructure.runners.supervised import Supervised
from agentledger.infrastructure.runners.worker import Worker

# How often a running worker confirms it still holds its lock (two runners at once stay
# correct through tracking, but fail and restart each other).
LOCK_CHECK_SECONDS = 1.0
# How often a runner standing by tries to take the lock.
STANDBY_RETRY_SECONDS = 2.0

W = TypeVar("W", bound=Worker)


class LockLost(RuntimeError):
    pass


class Runner(Supervised, Generic[W]):
    """Holds the worker's lock (one runner per worker across processes) and feeds it the log
    in batches, sleeping until a commit wakes it (`nudge`) or its poll interval passes. Where
    another process holds the lock it stands by, trying again every few seconds.

    States: `catching-up` from the start until the first batch that leaves nothing to do,
    then `running`; `faulted` after a failure (`faulted_at`: the event a projection's handler
    failed on), kept through the retries until a batch succeeds; `standby`; `stopped`. The
    process holding the runner writes them to the registry for the other processes."""

    def __init__(
        self,
        ledger: Ledger,
        tail: LogTail,
        worker: W,
        lock: RunnerLock,
        poll_seconds: float,
        registry: RunnerRegistry | None = None,
    ) -> None:
        super().__init__(worker.name, f"runner-{worker.name}")
        self.ledger = ledger
        self._tail = tail
        self.worker = worker
        self._lock = lock
        self._poll_seconds = poll_seconds
        self._registry = registry
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._passing = threading.Lock()  # between a pass over it and its own moves
        self._following = False  # its loop runs: `_progress` is where it is
        self._progress: int | None = None
        self.faulted_at: int | None = None

    def catch_up(self, consistency: Consistency) -> int:
        """Bring the worker to the head of the log now: here if no other process runs it,
        else by waiting for the one that does."""
        head = self.ledger.head_position()
        if self.started or not self._lock.try_acquire():
            return consistency.wait(self.worker, head)
        try:
            position = self.worker.position()
            while position < head:
                position = self.worker.step(position, self._tail.mark())
            self.worker.settle(position)
            return position
        finally:
            self._lock.release()

    def nudge(self, _position: int | None = None) -> None:
        self._wake.set()

    def follows_any(self, topics: frozenset[str] | None) -> bool:
        """Whether events of `topics` (None: not known) may concern its worker."""
        followed = self.worker.topics
        return topics is None or followed is None or not followed.isdisjoint(topics)

    def passed_over(self, read: Read) -> None:
        """A read shared by the runners level at the head: if this one is following the log
        from a position within it and nothing it follows lies beyond that position there, it
        is at the read's end without waking (readers in this process waiting on its read model
        see it there at once, not at its next poll)."""
        with self._passing:
            at = self._progress
            if not self._following or at is None or not read.after <= at < read.last:
                return
            if self.follows_any(read.topics_after(at)):
                return
            self.worker.passed_over(read.last)
            self._progress = read.last

    def waiting(self) -> bool:
        """Running here, with nothing left to do: asleep until a commit wakes it or its next
        poll, and no wake-up pending."""
        return self.state == "running" and self._idle.is_set() and not self._wake.is_set()

    def progress(self) -> int | None:
        """The position this process has processed up to, while it runs the worker here."""
        return self._progress if self.state in ("running", "catching-up") else None

    @property
    def holds(self) -> bool:
        """This process runs the worker (or is retrying it after a fault)."""
        return self.state in ("running", "catching-up", "faulted") and self.started

    def status(self, head: int | None = None) -> RunnerStatus:
        position = self.progress()
        return RunnerStatus(
            self.name,
            self.worker.kind,
            self.state,
            position if position is not None else self.worker.position(),
            head if head is not None else self.ledger.head_position(),
            self.last_error,
            self.restarts,
            faulted_at=self.faulted_at,
            holder=this_process() if self.holds else None,
        )

    def _run(self) -> None:
        if not self._lock.try_acquire():
            self.state = "standby"
            if self._registry is not None:
                self._registry.forget(self.name, RUNNER)
            self._standing_by()
            self._stop.wait(STANDBY_RETRY_SECONDS)
            return
        if self.state != "faulted":  # a fault stays shown until a batch succeeds
            self._set_state("catching-up")
        self._prepare()
        self._loop()

    def _prepare(self) -> None:
        """Holding the lock, before following the log: nothing to do for most workers."""

    def _standing_by(self) -> None:
        """Another process holds the lock: nothing to do for most workers."""

    def _interrupt(self) -> None:
        self._wake.set()

    def _let_go(self) -> None:
        self._lock.release()

    def _faulted(self, exc: Exception) -> None:
        super()._faulted(exc)
        self.faulted_at = exc.position if isinstance(exc, ProjectionFault) else None
        self._note()

    def stop(self, timeout: float = 30.0) -> None:
        held = self.started and self.state != "standby"
        super().stop(timeout)
        if held:
            self._note()

    def _set_state(self, state: str) -> None:
        changed = state != self.state
        self.state = state
        if changed:
            self._note()

    def _note(self) -> None:
        """Tell the other processes (the registry) what this runner does now."""
        if self._registry is None:
            return
        position = self._progress if self._progress is not None else 0
        faulted = self.state == "faulted"
        record = RunnerRecord(
            self.name,
            RUNNER,
            this_process(),
            self.state,
            position,
            datetime.now(UTC),
            faulted_at=self.faulted_at if faulted else None,
            error=self.last_error if faulted else None,
        )
        self._registry.note(record)

    def _succeeded(self, idle: bool) -> None:
        if self.state == "faulted":
            self.faulted_at = None
            self._recovered()
            self._set_state("catching-up")
        if idle and self.state == "catching-up":
            self._set_state("running")

    def _loop(self) -> None:
        with self._passing:
            position = self._progress = self.worker.position()
            self._following = True
        try:
            self._follow(position)
        finally:
            with self._passing:
                self._following = False

    def _follow(self, position: int) -> None:
        verified = time.monotonic()
        self._wake.clear()
        fresh_since = self._tail.mark()
        while not self._stop.is_set():
            if time.monotonic() - verified > LOCK_CHECK_SECONDS:
                if not self._lock.still_held():
                    raise LockLost(f"{self.name} lost its runner lock; standing down")
                verified = time.monotonic()
            new_position = self.worker.step(position, fresh_since)
            self._succeeded(idle=new_position == position)
            if new_position == position:
                self._idle.set()
                woken = self._wake.wait(self._poll_seconds)
                self._idle.clear()
                # Cleared before the generation is taken: a commit after this line either
                # wakes the runner again or is in a read of generation `fresh_since` or later.
                self._wake.clear()
                # A poll has no nudge behind it (another process's commit while the listener
                # is down): it needs a read sent since the poll came due.
                fresh_since = self._tail.woken() if woken else self._tail.polled(self._poll_seconds)
            with self._passing:  # passed over meanwhile: nothing it follows lies before there
                position = self._progress = max(new_position, self._progress or 0)
        # Stopping: record the position reached past ignored events, so readers waiting on
        # this read model after the runner stops are not left short of it.
        self.worker.settle(position)
