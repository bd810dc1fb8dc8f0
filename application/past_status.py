"""A project's status report as it was at a past moment, rebuilt from the log.

The live read models hold only the present, so the past is projected afresh: the same
projections, into scratch read models (in memory), over the log from its start up to the
moment asked for; then the same report, with the clock stopped at that moment. So the report
for a time equals the one a reader got then, whatever happened since.

"Up to the moment" is a prefix of the log: every event up to the first one recorded after it.
Events are stored in commit order and stamped when decided, a few milliseconds apart at most.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from agentledger.application.clock import ManualClock
from agentledger.application.consistency import Consistency
from agentledger.application.ledger import Ledger
from agentledger.application.projections import (
    Projection,
    ProjectsProjection,
    SelectionsProjection,
    SessionsProjection,
    WorkItemsProjection,
    followed_topics,
)
from agentledger.application.readmodels import (
    Cursors,
    ProjectsReader,
    Read,
    SelectionsReader,
    SessionsReader,
    WorkItemsReader,
)
from agentledger.application.status import StatusReport, StatusService
from agentledger.application.work_items import WorkItemQueries

PAGE = 1000


class ScratchModels(Protocol):
    """Empty read models the status report reads, to project the past into."""

    items: WorkItemsReader
    projects: ProjectsReader
    sessions: SessionsReader
    selections: SelectionsReader

    def apply(self, projection: Projection, batch: list[tuple[Any, int]], position: int) -> None:
        """Apply a batch of events to the read model `projection` writes."""

    def close(self) -> None: ...


class PastStatus:
    def __init__(
        self,
        ledger: Ledger,
        scratch: Callable[[], ScratchModels],
        cursors: Cursors,
    ) -> None:
        self._ledger = ledger
        self._scratch = scratch
        self._cursors = cursors

    def report(self, project: str, at: datetime) -> Read[StatusReport]:
        """The report as it was at `at`, with the log position it reflects."""
        with self._projected(at) as (models, position):
            clock = ManualClock(at)
            consistency = Consistency(timeout=0.0, head=lambda: position)
            queries = WorkItemQueries(models.items, clock, consistency, self._cursors)
            status = StatusService(
                queries,
                models.items,
                models.projects,
                models.sessions,
                models.selections,
                clock,
                consistency,
            )
            read = status.report(project)
            return Read(read.value, position)

    @contextmanager
    def _projected(self, at: datetime) -> Iterator[tuple[ScratchModels, int]]:
        models = self._scratch()
        try:
            yield models, self._replay(models, at)
        finally:
            models.close()

    def _replay(self, models: ScratchModels, at: datetime) -> int:
        """Project the log's prefix up to `at`; returns the position it reflects."""
        projections: list[Projection] = [
            WorkItemsProjection(),
            ProjectsProjection(),
            SessionsProjection(),
            SelectionsProjection(),
        ]
        topics = sorted({t for p in projections for t in followed_topics(p)})
        position = 0
        reached = 0
        while True:
            notifications = self._ledger.read_log(position, PAGE, topics)
            batch: list[tuple[Any, int]] = []
            for notification in notifications:
                event = self._ledger.to_event(notification)
                if event.timestamp > at:
                    self._apply(models, projections, batch, reached)
                    return reached
                batch.append((event, notification.id))
                reached = notification.id
            self._apply(models, projections, batch, reached)
            if len(notifications) < PAGE:
                return reached
            position = notifications[-1].id

    @staticmethod
    def _apply(
        models: ScratchModels,
        projections: list[Projection],
        batch: list[tuple[Any, int]],
        position: int,
    ) -> None:
        if not batch:
            return
        for projection in projections:
            followed = [(e, p) for e, p in batch if isinstance(e, projection.follows)]
            if followed:
                models.apply(projection, followed, position)
