"""The newest events of the log, read and decoded once for all the runners of a process.

A commit wakes every runner at once; without a shared tail each would query and decode the same
new events (8 runners made every command about 2.7x slower in process).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import Notification

from agentledger.application.ledger import Ledger

# Events per read of the log. Catching up on 100,000 events took 10 s with 500 and 6.8 s with
# 1,000 (fewer transactions, and runners of different speeds share more reads); live batches
# are small anyway.
BATCH_SIZE = 1000
KEPT_READS = 16


_UNDECODED = object()


def covered(after: int, positions: Sequence[int], full: bool, head: int | None) -> int:
    """The newest position a read after `after` covers: its last event, or, when it was not
    cut short by the batch limit and the store's head was `head` before it was sent, that
    head (nothing it asked for lay between its last event and there)."""
    last = positions[-1] if positions else after
    return max(last, head) if head is not None and not full else last


@dataclass(frozen=True)
class Read:
    taken: int  # the tail's generation when the query was sent
    after: int
    last: int  # the newest position it covers: all it holds, and nothing else, up to there
    positions: list[int]
    stored: list[Notification]  # as stored, for the seal (which hashes the stored bytes)
    full: bool
    # Decoded on first demand, once for every reader: most runners follow a few kinds of
    # event, and decoding is most of what reading the log costs.
    decoded: list[Any]
    # The topics past a position, asked by each runner it passes over (most stand at `after`).
    _topics_after: dict[int, frozenset[str]] = field(default_factory=dict, compare=False)

    def serves(self, after: int, fresh_since: int) -> bool:
        """Whether this read answers a query after `after` sent in generation `fresh_since`
        or later.
        Events past `after` that it holds are an answer whenever it was sent: the store
        writes under a table lock, so positions are committed in order and nothing can appear
        between them later. That nothing lies past its end is an answer only from a read sent
        in that generation or later, and not cut short by the batch limit."""
        if not self.after <= after <= self.last:
            return False
        return after < self.last or (self.taken >= fresh_since and not self.full)

    def topics_after(self, position: int) -> frozenset[str]:
        """The stored topics of the events it holds past `position`."""
        found = self._topics_after.get(position)
        if found is None:
            start = bisect.bisect_right(self.positions, position)
            found = frozenset(stored.topic for stored in self.stored[start:])
            self._topics_after[position] = found
        return found

    def followed(self, start: int, topics: frozenset[str] | None, decode: Any) -> Followed:
        positions, events = [], []
        for index in range(start, len(self.positions)):
            stored = self.stored[index]
            if topics is not None and stored.topic not in topics:
                continue
            event = self.decoded[index]
            if event is _UNDECODED:  # two readers may both decode it: the same event
                event = self.decoded[index] = decode(stored)
            positions.append(self.positions[index])
            events.append(event)
        return Followed(self.last, positions, events)


# Told of each read shared by the runners level at the head of the log.
ReadCallback = Callable[[Read], None]


@dataclass(frozen=True)
class Followed:
    """A batch as one reader sees it: the last position it covers (the reader's own position
    when nothing was new) and, of its events, those the reader follows."""

    last: int
    positions: list[int]
    events: list[Any]


class LogTail:
    """Reads are shared by generation. Each wake-up of the runners starts one (`nudged()`,
    called after the commit and before the runners are woken); a runner woken by it takes the
    current generation (`woken()`) once it has cleared its wake-up, and a read sent in that
    generation or later has seen every commit whose wake-up it cleared, so it may answer that
    nothing lies beyond. Runners woken by the same commit thus share one query, including the
    one that confirms nothing more is new, however far apart the interpreter lets them run
    (with a tick per reader, a reader taking its tick after the first one's query had to send
    its own: fourteen runners sent about five queries per command). A reader with no wake-up
    to rely on starts a generation of its own (`mark()`, a catch-up) or shares one with the
    runners polling at about the same time (`polled()`).

    Sharing pays where the runners are level, at the head of the log. Catching up on a
    backlog they drift apart (a runner writing rows per event falls behind those writing
    none), and fourteen runners read a million events about nine times over: a runner more
    than a batch behind the furthest shared read reads alone, only the events it follows,
    as a rebuild does."""

    def __init__(self, ledger: Ledger, batch_size: int = BATCH_SIZE) -> None:
        self._ledger = ledger
        self._batch_size = batch_size
        self._generation = 0
        self._polled_at = -math.inf
        self._generation_lock = threading.Lock()
        self._lock = threading.Lock()
        # The last few reads, newest first: a runner a few batches behind the others (one
        # with more to write per event) still finds its next batch here.
        self._reads: deque[Read] = deque(maxlen=KEPT_READS)
        self._furthest = 0  # the furthest position a shared read reached
        self._read_callbacks: list[ReadCallback] = []

    @property
    def ledger(self) -> Ledger:
        return self._ledger

    def on_read(self, callback: ReadCallback) -> None:
        """Be told of each read shared by the runners level at the head of the log: everything
        the log holds between its ends, so what it does not hold concerns no one."""
        self._read_callbacks.append(callback)

    def nudged(self) -> None:
        """A commit was made: the reads sent from now on are of a new generation."""
        with self._generation_lock:  # never backwards, whoever nudges at once
            self._generation += 1

    def woken(self) -> int:
        """The generation a runner woken by a nudge needs its reads to be from."""
        return self._generation

    def polled(self, period: float) -> int:
        """The generation a runner whose poll came due needs: a new one at most every half
        `period`, so the runners polling together (fourteen, twenty times a second each, while
        the log is quiet) share a read. A commit no nudge announced is still found within
        one and a half polls."""
        with self._generation_lock:
            now = time.monotonic()
            if now - self._polled_at >= period / 2:
                self._generation += 1
                self._polled_at = now
            return self._generation

    def mark(self) -> int:
        """A generation only reads sent from now on belong to (for a reader no nudge woke)."""
        with self._generation_lock:
            self._generation += 1
            return self._generation

    def read(self, after: int, fresh_since: int, topics: frozenset[str] | None = None) -> Followed:
        """The next batch after `after`, as seen by a query sent in generation `fresh_since`
        or later:
        of its events, those whose stored topic is in `topics` (all of them if None)."""
        found = self._read(after, fresh_since, topics)
        start = bisect.bisect_right(found.positions, after)
        return found.followed(start, topics, self._ledger.to_event)

    def read_stored(self, after: int, fresh_since: int) -> Sequence[Notification]:
        """The same batch as `read`, as stored (undecoded)."""
        found = self._read(after, fresh_since, None)
        return found.stored[bisect.bisect_right(found.positions, after) :]

    def _read(self, after: int, fresh_since: int, topics: frozenset[str] | None) -> Read:
        with self._lock:
            found = next((r for r in self._reads if r.serves(after, fresh_since)), None)
            if found is not None:
                return found
            shared = None
            if after >= self._furthest - self._batch_size:  # level with the others
                shared = self._query(after, (), None)
                self._reads.appendleft(shared)
                self._furthest = max(self._furthest, shared.last)
        if shared is None:
            return self._alone(after, topics)
        if shared.last > after:
            for callback in self._read_callbacks:
                callback(shared)
        return shared

    def _alone(self, after: int, topics: frozenset[str] | None) -> Read:
        """A reader catching up: the events it follows, read for it alone. What the store
        held when the read was sent bounds it, so a short read covers up to there."""
        head = self._ledger.head_position()
        return self._query(after, topics or (), head)

    def _query(self, after: int, topics: Collection[str], head: int | None) -> Read:
        taken = self._generation
        notifications = self._ledger.read_log(after, self._batch_size, topics, stop=head)
        positions = [n.id for n in notifications]
        full = len(notifications) == self._batch_size
        return Read(
            taken,
            after,
            covered(after, positions, full, head),
            positions,
            notifications,
            full,
            [_UNDECODED] * len(notifications),
        )
