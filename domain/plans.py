"""A project's plan structure: which work item sits under which, and what depends on what.

Every structure edit of one project goes through this one aggregate, so two concurrent edits
are ordered by its version: they can never both pass the cycle and depth checks against a state
that neither of them saw.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from agentledger.domain.errors import (
    CrossProject,
    DependencyCycle,
    DepthExceeded,
    DomainError,
    ItemArchived,
)
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.work_items import WorkItem

MAX_DEPTH = 5  # levels below a root: a root is level 0, its deepest descendant level 5


def plan_id(project: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"agentledger:plan:{project}")


def check_parent(project: str, parent: WorkItem) -> None:
    """An item's parent is an unarchived item of the item's own project."""
    if parent.project != project:
        raise CrossProject("parent", project, parent.project)
    if parent.archived:
        raise ItemArchived(parent.id)


def check_dependency(item: WorkItem, other: WorkItem) -> None:
    """An unarchived item waits only for items of its own project."""
    if item.archived:
        raise ItemArchived(item.id)
    if other.project != item.project:
        raise CrossProject("dependency", item.project, other.project)


class ProjectPlan(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        project: str
        parents: dict[str, str | None]
        dependencies: dict[str, list[str]]

    class PlanStarted(LedgerAggregate.Created):
        project: str

        def apply(self, aggregate: Any) -> None:
            aggregate.project = self.project
            aggregate.parents = {}
            aggregate.dependencies = {}

    class ItemPlaced(LedgerAggregate.Event):
        item_id: UUID
        parent_id: UUID | None

        def apply(self, aggregate: Any) -> None:
            aggregate.parents[str(self.item_id)] = str(self.parent_id) if self.parent_id else None

    class DependencyAdded(LedgerAggregate.Event):
        item_id: UUID
        depends_on: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.dependencies.setdefault(str(self.item_id), []).append(str(self.depends_on))

    class DependencyRemoved(LedgerAggregate.Event):
        item_id: UUID
        depends_on: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.dependencies[str(self.item_id)].remove(str(self.depends_on))

    @classmethod
    def start(cls, ctx: EventContext, project: str) -> ProjectPlan:
        return cls._begin(cls.PlanStarted, ctx, plan_id(project), project=project)

    # --- commands -------------------------------------------------------------------------

    def place(self, ctx: EventContext, item_id: UUID, parent_id: UUID | None) -> None:
        """Put an item under `parent_id` (or at the root), refusing cycles and depth > 5."""
        if parent_id is not None:
            if str(parent_id) not in self.parents:
                raise DomainError(f"parent {parent_id} is not in this project's plan")
            path = self._path(str(parent_id), str(item_id))
            if path is not None:
                raise DependencyCycle([item_id, *map(UUID, path)])
            depth = self.depth(parent_id) + 1 + self._height(str(item_id))
            if depth > MAX_DEPTH:
                raise DepthExceeded(depth, MAX_DEPTH)
        self._record(self.ItemPlaced, ctx, item_id=item_id, parent_id=parent_id)

    def add_dependency(self, ctx: EventContext, item_id: UUID, depends_on: UUID) -> bool:
        """`item_id` waits for `depends_on`. Refused if `depends_on` already (transitively)
        reaches `item_id` over dependency or parent edges."""
        for known in (item_id, depends_on):
            if str(known) not in self.parents:
                raise DomainError(f"work item {known} is not in this project's plan")
        if item_id == depends_on:
            raise DependencyCycle([item_id, item_id])
        if str(depends_on) in self.dependencies.get(str(item_id), []):
            return False
        path = self._path(str(depends_on), str(item_id))
        if path is not None:
            raise DependencyCycle([item_id, *map(UUID, path)])
        self._record(self.DependencyAdded, ctx, item_id=item_id, depends_on=depends_on)
        return True

    def remove_dependency(self, ctx: EventContext, item_id: UUID, depends_on: UUID) -> bool:
        if str(depends_on) not in self.dependencies.get(str(item_id), []):
            return False
        self._record(self.DependencyRemoved, ctx, item_id=item_id, depends_on=depends_on)
        return True

    # --- queries on state -----------------------------------------------------------------

    def depth(self, item_id: UUID) -> int:
        depth, current = 0, self.parents.get(str(item_id))
        while current is not None:
            depth += 1
            current = self.parents.get(current)
        return depth

    def _edges(self, node: str) -> list[str]:
        """Edges point from an item to what it waits for: its parent and its dependencies."""
        parent = self.parents.get(node)
        return [*([parent] if parent else []), *self.dependencies.get(node, [])]

    def _path(self, start: str, goal: str) -> list[str] | None:
        """A path of edges from `start` to `goal`, if there is one (depth-first)."""
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        seen = {start}
        while stack:
            node, path = stack.pop()
            if node == goal:
                return path
            for nxt in self._edges(node):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
        return None

    def _height(self, item: str) -> int:
        """Levels below `item` (0 for a leaf): moving a subtree moves its depth with it."""
        children = [c for c, p in self.parents.items() if p == item]
        return 1 + max(map(self._height, children)) if children else 0
