"""A projection's runner, which can also rebuild its read model from the whole log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from agentledger.infrastructure.runners.projection_worker import ProjectionWorker
from agentledger.infrastructure.runners.runner import LockLost, Runner


@dataclass(frozen=True)
class RebuildReport:
    events: int  # the log's length covered: the projection's position at the end
    seconds: float
    applied: int = 0  # the events it follows, read and applied

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class ProjectionRunner(Runner[ProjectionWorker]):
    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> RebuildReport | None:
        """Empty the read model and replay the whole log into it, holding the runner's lock;
        None if another process runs the projection (or this one has started it)."""
        if self.started or not self._lock.try_acquire():
            return None
        try:
            started = time.perf_counter()
            self.worker.reset()
            head = self.ledger.head_position()
            position = applied = 0
            while position < head:
                if not self._lock.still_held():
                    raise LockLost(f"{self.name} lost its runner lock during the rebuild")
                position, count = self.worker.replay(position, head)
                applied += count
                if progress is not None:
                    progress(position, head)
            self.worker.settle(position)
            return RebuildReport(position, time.perf_counter() - started, applied)
        finally:
            self._lock.release()
