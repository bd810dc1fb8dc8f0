"""The seal's worker: links every new stored event to the chain, in position order, and writes
a checkpoint every `checkpoint_every` events, with its position, in one transaction."""

from __future__ import annotations

from agentledger.application.clock import Clock
from agentledger.application.seal import GENESIS, Checkpoint, seal
from agentledger.infrastructure.readmodels.seal import SealTables
from agentledger.infrastructure.runners.log_tail import LogTail


class SealWorker:
    kind = "projection"  # of the log into its hash chain
    topics = None  # it links every event

    def __init__(
        self, tail: LogTail, tables: SealTables, clock: Clock, checkpoint_every: int
    ) -> None:
        self.tail = tail
        self.tables = tables
        self.name = tables.name
        self._clock = clock
        self._every = checkpoint_every
        self._head: tuple[int, str, int] | None = None  # position, link, events sealed

    def position(self) -> int:
        return self.tables.recorded_position()

    def step(self, after: int, fresh_since: int) -> int:
        stored = self.tail.read_stored(after, fresh_since)
        if not stored:
            return after
        position, previous, count = self._sealed_head()
        if position != after:  # another runner moved on meanwhile: start again from the store
            self._head = None
            return self.position()
        links = seal(stored, previous)
        checkpoints = []
        for offset, link in enumerate(links, start=1):
            if (count + offset) % self._every == 0:
                checkpoints.append(
                    Checkpoint(link.position, link.link, count + offset, self._clock.now())
                )
        last = links[-1]
        self.tables.append(links, checkpoints, last.position)
        self._head = (last.position, last.link, count + len(links))
        return last.position

    def settle(self, position: int) -> None:
        """Nothing to record: the seal's position moves only with the links it writes."""

    def passed_over(self, position: int) -> None:
        """Never: it follows every event."""

    def _sealed_head(self) -> tuple[int, str, int]:
        if self._head is None:
            head = self.tables.head()
            if head is None:
                self._head = (0, GENESIS, 0)
            else:
                self._head = (head.position, head.link, self.tables.count())
        return self._head
