"""A runner: supervises one worker that follows the log, in this process or standing by."""

from __future__ import annotations

import threading
import time
from typing import Generic, TypeVar

from agentledger.application.consistency import Consistency
from agentledger.application.ledger import Ledger
from agentledger.infrastructure.locks import RunnerLock
from agentledger.infrastructure.runners.log_tail import LogTail
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
    another process holds the lock it stands by, trying again every few seconds."""

    def __init__(
        self,
        ledger: Ledger,
        tail: LogTail,
        worker: W,
        lock: RunnerLock,
        poll_seconds: float,
    ) -> None:
        super().__init__(worker.name, f"runner-{worker.name}")
        self.ledger = ledger
        self._tail = tail
        self.worker = worker
        self._lock = lock
        self._poll_seconds = poll_seconds
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._progress: int | None = None

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

    def waiting(self) -> bool:
        """Running here, with nothing left to do: asleep until a commit wakes it or its next
        poll, and no wake-up pending."""
        return self.state == "running" and self._idle.is_set() and not self._wake.is_set()

    def progress(self) -> int | None:
        """The position this process has processed up to, while it runs the worker here."""
        return self._progress if self.state == "running" else None

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
        )

    def _run(self) -> None:
        if not self._lock.try_acquire():
            self.state = "standby"
            self._stop.wait(STANDBY_RETRY_SECONDS)
            return
        self.state = "running"
        self._loop()

    def _interrupt(self) -> None:
        self._wake.set()

    def _let_go(self) -> None:
        self._lock.release()

    def _loop(self) -> None:
        position = self.worker.position()
        self._progress = position
        verified = time.monotonic()
        self._wake.clear()
        fresh_since = self._tail.mark()
        while not self._stop.is_set():
            if time.monotonic() - verified > LOCK_CHECK_SECONDS:
                if not self._lock.still_held():
                    raise LockLost(f"{self.name} lost its runner lock; standing down")
                verified = time.monotonic()
            new_position = self.worker.step(position, fresh_since)
            if new_position == position:
                self._idle.set()
                self._wake.wait(self._poll_seconds)
                self._idle.clear()
                # Cleared before the tick is taken: a commit after this line either wakes
                # the runner again or is in a read sent after `fresh_since`.
                self._wake.clear()
                fresh_since = self._tail.mark()
            position = self._progress = new_position
            self.last_error = None
        # Stopping: record the position reached past ignored events, so readers waiting on
        # this read model after the runner stops are not left short of it.
        self.worker.settle(position)
