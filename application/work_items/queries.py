"""Work-item queries over the read model: one item with its surroundings, lists, the ready
queue, an item's readiness reasons, and a project's tree."""

from __future__ import annotations

from uuid import UUID

from agentledger.application.clock import Clock
from agentledger.application.consistency import Consistency
from agentledger.application.errors import NotFound
from agentledger.application.readmodels import (
    MAX_PAGE,
    Cursors,
    Page,
    Read,
    WorkItemFilter,
    WorkItemRow,
    WorkItemsReader,
)
from agentledger.application.work_items.shapes import ItemDetail, ItemReadiness, WorkItemView
from agentledger.domain.readiness import readiness


class WorkItemQueries:
    def __init__(
        self, reader: WorkItemsReader, clock: Clock, consistency: Consistency, cursors: Cursors
    ) -> None:
        self._reader = reader
        self._clock = clock
        self._consistency = consistency
        self._cursors = cursors

    def get(
        self,
        item_id: UUID,
        include: frozenset[str] = frozenset(),
        consistent_with: int | None = None,
    ) -> Read[ItemDetail]:
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._row(item_id)
        now = self._clock.now()

        def items(rows: list[WorkItemRow]) -> list[WorkItemView]:
            return [WorkItemView.of_row(r, now) for r in rows]

        detail = ItemDetail(WorkItemView.of_row(row, now))
        if "ancestors" in include:
            ids = [UUID(part) for part in row.path.split("/")[:-1]]
            by_id = {r.id: r for r in self._reader.get_many(ids)}
            detail = _with(detail, ancestors=items([by_id[i] for i in ids if i in by_id]))
        if "children" in include:
            detail = _with(detail, children=items(self._reader.children(item_id)))
        if "descendants" in include:
            detail = _with(detail, descendants=items(self._reader.descendants(row)))
        if "dependencies" in include:
            ids = self._reader.dependencies([item_id]).get(item_id, [])
            detail = _with(detail, dependencies=items(self._reader.get_many(ids)))
        if "dependents" in include:
            dependents = self._reader.dependents(item_id)
            detail = _with(detail, dependents=items(self._reader.get_many(dependents)))
        return Read(detail, position)

    def ready(
        self,
        *,
        project: str | None = None,
        kind: str | None = None,
        to_role: str | None = None,
        roles: tuple[str, ...] | None = None,
        limit: int = 50,
        consistent_with: int | None = None,
    ) -> Read[list[WorkItemView]]:
        """The ready queue, best first: higher priority, then older. The read model decides
        readiness in its query (see `WorkItemsReader.ready`), so a page reads only itself."""
        position = self._consistency.wait(self._reader, consistent_with)
        now = self._clock.now()
        rows = self._reader.ready(
            project=project,
            kind=kind,
            to_role=to_role,
            roles=roles,
            now=now,
            limit=max(1, min(MAX_PAGE, limit)),
        )
        return Read([WorkItemView.of_row(r, now) for r in rows], position)

    def readiness(self, item_id: UUID, consistent_with: int | None = None) -> Read[ItemReadiness]:
        """Whether one item is ready, with every reason it is not: the domain's rule applied
        to the read model's facts."""
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._row(item_id)
        dependencies = self._reader.dependencies([item_id]).get(item_id, [])
        statuses = self._reader.statuses(dependencies)
        verdict = readiness(
            status=row.status,
            archived=row.archived,
            claimed_by=row.live_holder(self._clock.now()),
            dependencies={d: statuses.get(d, "unknown") for d in dependencies},
            project_archived=row.project_archived,
        )
        return Read(ItemReadiness(item_id, verdict), position)

    def tree(self, project: str, consistent_with: int | None = None) -> Read[list[WorkItemView]]:
        """Every unarchived item of the project, parents before children, siblings by age."""
        position = self._consistency.wait(self._reader, consistent_with)
        now = self._clock.now()
        rows = self._reader.in_project(project)
        children: dict[UUID | None, list[WorkItemRow]] = {}
        known = {r.id for r in rows}
        for row in rows:  # rows arrive oldest first, so siblings stay in age order
            parent = row.parent_id if row.parent_id in known else None
            children.setdefault(parent, []).append(row)
        ordered: list[WorkItemView] = []
        stack = list(reversed(children.get(None, [])))
        while stack:
            row = stack.pop()
            ordered.append(WorkItemView.of_row(row, now))
            stack.extend(reversed(children.get(row.id, [])))
        return Read(ordered, position)

    def _row(self, item_id: UUID) -> WorkItemRow:
        row = self._reader.get(item_id)
        if row is None:
            raise NotFound("work item", str(item_id))
        return row

    # Last: above other methods, `list` would shadow the builtin in their annotations.
    def list(
        self,
        where: WorkItemFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[WorkItemView]:
        return self._cursors.oldest_first(
            where,
            cursor,
            limit,
            wait=lambda: self._consistency.wait(self._reader, consistent_with),
            clock=self._clock,
            rows=lambda n, after, now: self._reader.list(
                where, limit=n, after_position=after, now=now
            ),
            output=WorkItemView.of_row,
        )


def _with(detail: ItemDetail, **parts: list[WorkItemView]) -> ItemDetail:
    return ItemDetail(**{**vars(detail), **parts})
