"""A projection's runner, which can also rebuild its read model: blue/green beside the live one
while it keeps serving (the default), or in place when downtime is acceptable.

Blue/green: the rebuilt tables (`<name>__next_<table>`, with a tracking row of their own) are
filled from the log while the live ones keep answering queries and the live runner keeps
writing them. Once the rebuild is close to the head it switches over in one transaction: it
takes the live model's tracking row (so the live runner's next batch waits behind it), applies
what the live model has and the rebuilt one lacks, drops the live tables, renames the rebuilt
ones into their place and moves the rebuilt model's position to the live row. A crash before
that commit leaves the live model as it was, and the rebuilt tables where they had got to: the
next rebuild resumes from there. The live runner, whose next batch then finds the position
moved past it, rolls that batch back and goes on from the new position (`PositionMoved`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from agentledger.application.ledger import Ledger
from agentledger.infrastructure.locks import RunnerLock
from agentledger.infrastructure.readmodels.base import ReadModel
from agentledger.infrastructure.runners.log_tail import BATCH_SIZE, LogTail
from agentledger.infrastructure.runners.projection_worker import ProjectionWorker
from agentledger.infrastructure.runners.registry import (
    REBUILD,
    RunnerRecord,
    RunnerRegistry,
    this_process,
)
from agentledger.infrastructure.runners.runner import LockLost, Runner

log = logging.getLogger("agentledger.runners")

Progress = Callable[[int, int], None]
# A rebuild switches over once a pass over the log starts this close to the head: the rest is
# applied inside the switch-over's transaction. Bounded passes: writers faster than the
# rebuild do not keep it from switching.
CLOSE_ENOUGH_EVENTS = BATCH_SIZE
MAX_PASSES = 20
NOTE_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class RebuildReport:
    events: int  # the log's length covered: the projection's position at the end
    seconds: float
    applied: int = 0  # the events it follows, read and applied (by this run)
    resumed_from: int = 0  # where an interrupted rebuild had got to (0: from the start)
    blue_green: bool = True

    @property
    def events_per_second(self) -> float:
        done = self.events - self.resumed_from
        return done / self.seconds if self.seconds > 0 else 0.0


class ProjectionRunner(Runner[ProjectionWorker]):
    def __init__(
        self,
        ledger: Ledger,
        tail: LogTail,
        worker: ProjectionWorker,
        lock: RunnerLock,
        poll_seconds: float,
        registry: RunnerRegistry | None = None,
        rebuild_lock: RunnerLock | None = None,
    ) -> None:
        super().__init__(ledger, tail, worker, lock, poll_seconds, registry)
        self._rebuild_lock = rebuild_lock
        self._unbuilt = False

    def rebuild(
        self, progress: Progress | None = None, fresh: bool = False
    ) -> RebuildReport | None:
        """Rebuild blue/green beside the live read model, then switch over; resumes an
        interrupted rebuild unless `fresh`. None if another rebuild of it is under way."""
        lock = self._rebuild_lock
        if lock is None or not lock.try_acquire():
            return None
        try:
            return self._build_beside(progress, fresh)
        finally:
            lock.release()
            self._forget_rebuild()

    def start(self) -> None:
        # Decided before the thread starts, so that no request slips in before it would be
        # refused: a model never built is refused until its first build has switched over.
        self._unbuilt = self._never_built()
        super().start()

    def first_build_under_way(self) -> bool:
        return self._unbuilt

    def _never_built(self) -> bool:
        return self.worker.position() == 0 and self.ledger.head_position() > 0

    def _set_state(self, state: str) -> None:
        if state == "running":  # caught up with the log: whole, however it got there
            self._unbuilt = False
        super()._set_state(state)

    def _standing_by(self) -> None:
        if self._unbuilt:
            self._unbuilt = self._never_built()  # built by the process that holds it

    def _prepare(self) -> None:
        """A read model never built while the log holds events (a new version: a new name and
        new tables) is built the way a rebuild is, beside its empty live tables, and switched
        over whole; meanwhile the HTTP API answers 503 `read-model-building` rather than
        answer from a model that is partly built. If a rebuild of it is already running
        elsewhere, that one switches it over. Decided when the runner started: a log that was
        empty then is followed in place from its first event."""
        if not self._unbuilt or not self._never_built():
            self._unbuilt = False
            return
        lock = self._rebuild_lock
        if lock is None or not lock.try_acquire():
            return  # a rebuild elsewhere switches it over; standing by notices
        try:
            self._set_state("rebuilding")
            report = self._build_beside(None, fresh=False)
            log.info(
                "built %s (a new version): %d events in %.1fs",
                self.name,
                report.events,
                report.seconds,
            )
        finally:
            lock.release()
            self._forget_rebuild()
        self._unbuilt = False
        self._set_state("catching-up")

    def rebuild_in_place(self, progress: Progress | None = None) -> RebuildReport | None:
        """Empty the read model and replay the whole log into it, holding the runner's lock
        (queries see it empty, then filling); None if another process runs the projection
        (or this one has started it)."""
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
            return RebuildReport(position, time.perf_counter() - started, applied, blue_green=False)
        finally:
            self._lock.release()

    def _build_beside(self, progress: Progress | None, fresh: bool) -> RebuildReport:
        started = time.perf_counter()
        building = self.worker.read_model.building()
        if fresh:
            building.store.drop_tables()
        building.store.create_tables()
        builder = ProjectionWorker(self._tail, building, self.worker.projection)
        resumed_from = position = builder.position()
        applied = 0
        noted = 0.0
        for _ in range(MAX_PASSES):
            head = self.ledger.head_position()
            close = head - position < CLOSE_ENOUGH_EVENTS
            while position < head:
                position, count = builder.replay(position, head)
                applied += count
                if progress is not None:
                    progress(position, head)
                if time.monotonic() - noted > NOTE_EVERY_SECONDS:
                    self._note_rebuild(position, head)
                    noted = time.monotonic()
            if close:
                break
        position, caught_up = self._switch_over(building, position)
        applied += caught_up
        if progress is not None:
            progress(position, max(position, self.ledger.head_position()))
        return RebuildReport(position, time.perf_counter() - started, applied, resumed_from)

    def _switch_over(self, building: ReadModel, built_at: int) -> tuple[int, int]:
        """One transaction: catch the rebuilt model up to the live one, then promote it.
        Returns the position the read model is at and how many events the catch-up applied."""
        live = self.worker.read_model
        projection = self.worker.projection
        applied = 0
        with live.store.transaction(commit=True) as cursor:
            live_at = live.store.lock_position(cursor)
            built_at = max(built_at, building.store.lock_position(cursor))
            while built_at < live_at:
                notifications = self.ledger.read_log(
                    built_at, BATCH_SIZE, self.worker.topics, stop=live_at
                )
                batch = [(self.ledger.to_event(n), n.id) for n in notifications]
                building.apply_in(cursor, batch, projection)
                applied += len(batch)
                built_at = notifications[-1].id if len(notifications) == BATCH_SIZE else live_at
            live.store.promote(building.store, cursor, built_at)
        return built_at, applied

    def _forget_rebuild(self) -> None:
        if self._registry is not None:
            self._registry.remove(self.name, REBUILD, this_process())

    def _note_rebuild(self, done: int, total: int) -> None:
        if self._registry is None:
            return
        record = RunnerRecord(
            self.name,
            REBUILD,
            this_process(),
            "rebuilding",
            done,
            datetime.now(UTC),
            done=done,
            total=total,
        )
        with contextlib.suppress(Exception):  # progress notes never fail the rebuild
            self._registry.put(record)
