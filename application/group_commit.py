"""Group commit: concurrent commands' events stored in one transaction.

The event store serialises writers (a table lock on PostgreSQL, one writer on SQLite) and each
transaction costs a commit and the library's per-save overhead, so one transaction per command
caps throughput whatever the concurrency. Commands that finish deciding while another batch is
being written wait in a queue; whoever gets the turn next writes everything queued (up to
`max_batch`) at once. Nobody waits for a timer: a lone command is written at once, alone.

Every command keeps its own outcome. A batch never holds two commands writing one aggregate
(the later one waits for the next batch). When a batch fails, each of its commands is written
again alone, so only a command whose own events conflict sees the conflict, and the command
path re-runs it against fresh state as before.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from agentledger.application.ledger import Ledger

# Told how many commands each transaction written held (1 for a command written alone); set
# by the wiring to feed a metric, so this layer knows nothing of how it is reported.
BatchObserver = Callable[[int], None]


@dataclass
class _Queued:
    events: list[Any]
    aggregates: list[Any]
    ids: frozenset[UUID]
    completions: list[Any]
    recordings: list[Any] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


class GroupCommitter:
    def __init__(
        self, ledger: Ledger, max_batch: int = 64, on_batch: BatchObserver | None = None
    ) -> None:
        self._ledger = ledger
        self._max_batch = max_batch
        self._on_batch = on_batch
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
        mine = _Queued(events, aggregates, ids, list(completions or []))
        with self._changed:
            self._queue.append(mine)
            while not mine.done:
                if self._writing:
                    self._changed.wait()
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
                recordings = self._ledger.record_events(
                    [e for q in batch for e in q.events],
                    [a for q in batch for a in q.aggregates],
                    **_completions([c for q in batch for c in q.completions]),
                )
            except Exception:  # each command is written again alone below
                pass
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


def _completions(completions: list[Any]) -> dict[str, Any]:
    # Passed only when there are some, so a write without idempotency keys is called as before.
    return {"completions": completions} if completions else {}
