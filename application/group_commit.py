"""Group commit: concurrent commands' events stored in one transaction.

The event store serialises writers (a table lock on PostgreSQL, one writer on SQLite) and each
transaction costs a commit and the library's per-save overhead, so one transaction per command
caps throughput whatever the concurrency. Commands that finish deciding while another batch is
being written wait in a queue; whoever gets the turn next writes everything queued (up to
`max_batch`) at once. Nobody waits for a timer: a lone command is written at once, alone.

Every command keeps its own outcome. A batch never holds two commands writing one aggregate
(the later one waits for the next batch). When a batch fails on a conflict, each of its
commands is written again alone, so only a command whose own events conflict sees the
conflict, and the command path re-runs it against fresh state as before. When it fails because
the store is out, every command in it fails with that error at once: written again alone, each
would wait out the outage in turn. Each command keeps its request's deadline: one still queued
when it passes leaves the queue, and a batch is written under its latest member's deadline.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from agentledger.application import deadlines
from agentledger.application.ledger import Ledger

# Told how many commands each transaction written held (1 for a command written alone); set
# by the wiring to feed a metric, so this layer knows nothing of how it is reported.
BatchObserver = Callable[[int], None]
# Whether an error says the store is out (unreachable, locked, timed out) rather than that the
# batch itself was refused; set by the wiring, which knows the drivers' errors.
OutageTest = Callable[[BaseException], bool]


@dataclass(eq=False)  # queued commands are told apart by identity
class _Queued:
    events: list[Any]
    aggregates: list[Any]
    ids: frozenset[UUID]
    completions: list[Any]
    deadline: float | None
    recordings: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class GroupCommitter:
    def __init__(
        self,
        ledger: Ledger,
        max_batch: int = 64,
        on_batch: BatchObserver | None = None,
        is_outage: OutageTest | None = None,
    ) -> None:
        self._ledger = ledger
        self._max_batch = max_batch
        self._on_batch = on_batch
        self._is_outage = is_outage or (lambda exc: isinstance(exc, deadlines.DeadlineExceeded))
        self._queue: deque[_Queued] = deque()
        # Guards the queue and `_writing`; waiters sleep on it until their command is written
        # or nobody is writing (then one of them writes the next batch).
        self._changed = threading.Condition()
        self._writing = False
        self.transactions = 0  # batches written (for benchmarks and tests)
        self.commands = 0  # commands written

    def record(
        self, events: list[Any], aggregates: list[Any], completions: list[Any] | None = None
    ) -> list[Any]:
        """Store one command's events (in a batch with others' if they are waiting too),
        with its idempotency key's completion if any; returns its own recordings, or raises
        its own error."""
        ids = frozenset(a.id for a in aggregates)
        mine = _Queued(events, aggregates, ids, list(completions or []), deadlines.current())
        with self._changed:
            self._queue.append(mine)
            while not mine.done:
                if self._writing:
                    self._wait_for_turn(mine)
                    continue
                self._writing = True
                batch = self._next_batch()
                self._changed.release()  # write outside the lock: others keep queueing
                try:
                    self._write(batch)
                finally:
                    self._changed.acquire()
                    self._writing = False
                    self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.recordings

    def _wait_for_turn(self, mine: _Queued) -> None:
        """Wait (holding `_changed`) for the writer; once the deadline has passed, a command
        not yet taken into a batch leaves the queue and fails. One already taken waits for
        its batch, whose write is bounded by the batch's own deadline."""
        left = deadlines.remaining()
        if left is not None and left <= 0 and any(q is mine for q in self._queue):
            self._queue.remove(mine)
            deadlines.check()
        self._changed.wait(None if left is None else max(left, 0.01))

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold every write back (commands still queue) until the block ends."""
        with self._changed:
            while self._writing:
                self._changed.wait()
            self._writing = True
        try:
            yield
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()

    def queued(self) -> int:
        with self._changed:
            return len(self._queue)

    def _next_batch(self) -> list[_Queued]:
        """The queued commands to write next, oldest first (called holding `_changed`)."""
        batch: list[_Queued] = []
        taken: set[UUID] = set()
        later: list[_Queued] = []
        while self._queue and len(batch) < self._max_batch:
            queued = self._queue.popleft()
            if queued.ids & taken:
                later.append(queued)  # same aggregate as one in this batch: next batch
                continue
            batch.append(queued)
            taken |= queued.ids
        self._queue.extendleft(reversed(later))
        return batch

    def _write(self, batch: list[_Queued]) -> None:
        if len(batch) > 1:
            try:
                with deadlines.until(_latest(q.deadline for q in batch)):
                    recordings = self._ledger.record_events(
                        [e for q in batch for e in q.events],
                        [a for q in batch for a in q.aggregates],
                        **_completions([c for q in batch for c in q.completions]),
                    )
            except Exception as exc:
                if self._is_outage(exc):  # the store is out: every command fails with it now
                    for queued in batch:
                        queued.error = exc
                        queued.done = True
                    return
                # Otherwise (a conflict) each command is written again alone below.
            else:
                self._count(len(batch))
                for queued in batch:
                    queued.recordings = [
                        r for r in recordings if r.domain_event.originator_id in queued.ids
                    ]
                    queued.done = True
                return
        for queued in batch:
            try:
                with deadlines.until(queued.deadline):
                    queued.recordings = self._ledger.record_events(
                        queued.events, queued.aggregates, **_completions(queued.completions)
                    )
                self._count(1)
            except BaseException as exc:  # the command's own error, raised in its own thread
                queued.error = exc
            queued.done = True

    def _count(self, commands: int) -> None:
        self.transactions += 1
        self.commands += commands
        if self._on_batch is not None:
            self._on_batch(commands)


def _latest(moments: Iterable[float | None]) -> float | None:
    """The latest deadline of a batch's commands; None if any has none (no one is failed
    for another's lateness)."""
    found = list(moments)
    known = [m for m in found if m is not None]
    return None if len(known) < len(found) else max(known)


def _completions(completions: list[Any]) -> dict[str, Any]:
    # Passed only when there are some, so a write without idempotency keys is called as before.
    return {"completions": completions} if completions else {}
