"""Work-item commands: create and edit items, move them through their lifecycle (under the
claim's fence), and edit the plan's structure. Claiming is in `claiming`.

Each decision loads the aggregates, asks the domain's rule once, and leaves the saving to the
command path. Structure edits (placing an item under a parent, adding a dependency) go through
the project's one `ProjectPlan` aggregate, saved in the same transaction as the item, so two
concurrent edits are ordered by the plan's version and can never both pass its cycle and depth
checks. Every write to an existing item honours the version the client expects (`If-Match`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any
from uuid import UUID

from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.context import RequestContext
from agentledger.application.errors import NotFound
from agentledger.application.preconditions import Precondition, check, required
from agentledger.application.projects import load_project
from agentledger.application.readmodels import WorkItemsReader
from agentledger.application.work_items.facts import (
    holder_of,
    park_stands,
    plan_for,
    writer,
)
from agentledger.application.work_items.shapes import Dependencies, NewWorkItem, WorkItemView
from agentledger.domain.access import Role
from agentledger.domain.approvals import Approval, require_approved
from agentledger.domain.claims import check_write
from agentledger.domain.events import EventContext
from agentledger.domain.metadata import merge_patch
from agentledger.domain.plans import ProjectPlan, check_dependency, check_parent, plan_id
from agentledger.domain.work_items import WorkItem, WorkStatus

ARCHIVE_BATCH = 100  # items archived per transaction by archive-done
ARCHIVE_SCAN = 100_000  # items archive-done considers per run (run it again for more)

Act = Callable[[UnitOfWork, EventContext, WorkItem], object]


class WorkItemCommands:
    def __init__(self, commands: CommandRunner, reader: WorkItemsReader, clock: Clock) -> None:
        self._commands = commands
        self._reader = reader
        self._clock = clock

    def create(self, request: RequestContext, new: NewWorkItem) -> Outcome[WorkItemView]:
        writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            load_project(uow, new.project).ensure_open()
            plan = plan_for(uow, ctx, new.project)
            if new.parent_id is not None:
                check_parent(new.project, uow.get(WorkItem, new.parent_id, "work item"))
            item = WorkItem.create(ctx, **vars(new))  # its fields are `create`'s, by name
            plan.place(ctx, item.id, new.parent_id)
            uow.add(item)
            return WorkItemView.of_aggregate(item, None)

        return self._commands.run(
            request, "work_items.create", decide, serialize_on=plan_id(new.project)
        )

    def update(
        self,
        request: RequestContext,
        item_id: UUID,
        changes: Mapping[str, Any],
        *,
        precondition: Precondition | None,
        fence: int | None,
    ) -> Outcome[WorkItemView]:
        """Edit fields (and move under another parent): `If-Match` is required. A metadata
        patch is merged onto the metadata of the item as each attempt finds it."""
        writer(request.principal)
        required(precondition, 'changing a work item needs If-Match: "<version>"')
        # Read-only: a decision re-run after a conflict must start from the same request.
        fields = MappingProxyType({k: v for k, v in changes.items() if k != "parent_id"})
        move = "parent_id" in changes
        new_parent = changes.get("parent_id")

        def act(uow: UnitOfWork, ctx: EventContext, item: WorkItem) -> None:
            item.update(ctx, **_metadata_merged(fields, item.metadata))
            if move and new_parent != item.parent_id:
                plan = plan_for(uow, ctx, item.project)
                if new_parent is not None:
                    check_parent(item.project, uow.get(WorkItem, new_parent, "work item"))
                plan.place(ctx, item.id, new_parent)
                item.move(ctx, new_parent)

        plan = self._plan_of(item_id) if move else None
        return self._write(
            request, "work_items.update", item_id, fence, precondition, act, serialize_on=plan
        )

    def transition(
        self,
        request: RequestContext,
        item_id: UUID,
        to: str,
        reason: str | None,
        *,
        fence: int | None,
        precondition: Precondition | None = None,
    ) -> Outcome[WorkItemView]:
        def act(uow: UnitOfWork, ctx: EventContext, item: WorkItem) -> None:
            target = item.check_transition(to, reason)
            if target is WorkStatus.DONE:  # decided approvals are final: reading them is safe
                approvals = [uow.get(Approval, i, "approval") for i in item.approval_ids]
                require_approved(approvals, ctx.occurred_at)
            item.transition(ctx, to, reason)

        return self._write(request, "work_items.transition", item_id, fence, precondition, act)

    def archive(
        self,
        request: RequestContext,
        item_id: UUID,
        *,
        fence: int | None,
        precondition: Precondition | None = None,
    ) -> Outcome[WorkItemView]:
        return self._write(
            request,
            "work_items.archive",
            item_id,
            fence,
            precondition,
            lambda uow, ctx, item: item.archive(ctx),
        )

    def unarchive(
        self,
        request: RequestContext,
        item_id: UUID,
        *,
        fence: int | None,
        precondition: Precondition | None = None,
    ) -> Outcome[WorkItemView]:
        return self._write(
            request,
            "work_items.unarchive",
            item_id,
            fence,
            precondition,
            lambda uow, ctx, item: item.unarchive(ctx),
        )

    def release(
        self,
        request: RequestContext,
        item_id: UUID,
        *,
        fence: int | None,
        precondition: Precondition | None = None,
    ) -> Outcome[WorkItemView]:
        """The holder gives its claim back (or a coordinator takes it away)."""
        holder = request.principal.agent_id

        def act(uow: UnitOfWork, ctx: EventContext, item: WorkItem) -> None:
            by_holder = holder is not None and holder == item.holder_agent
            item.release(ctx, "released by holder" if by_holder else f"released by {ctx.actor}")

        return self._write(request, "work_items.release", item_id, fence, precondition, act)

    def add_dependency(
        self,
        request: RequestContext,
        item_id: UUID,
        depends_on: UUID,
        *,
        fence: int | None,
        precondition: Precondition | None = None,
    ) -> Outcome[Dependencies]:
        """`item_id` waits for `depends_on`. `precondition` is the item's (`item_id`)."""
        return self._edit_dependency(request, item_id, depends_on, fence, precondition, add=True)

    def remove_dependency(
        self,
        request: RequestContext,
        item_id: UUID,
        depends_on: UUID,
        *,
        fence: int | None,
        precondition: Precondition | None = None,
    ) -> Outcome[Dependencies]:
        """`item_id` no longer waits for `depends_on`. `precondition` is the item's."""
        return self._edit_dependency(request, item_id, depends_on, fence, precondition, add=False)

    def archive_done(self, request: RequestContext, older_than: timedelta) -> int:
        """Archive done and cancelled items finished more than `older_than` ago (as the read
        model knows them), a batch per transaction; returns how many it archived."""
        request.principal.require_any_role(Role.COORDINATOR)
        finished = self._reader.finished_before(self._clock.now() - older_than, ARCHIVE_SCAN)
        archived = 0
        for start in range(0, len(finished), ARCHIVE_BATCH):

            def decide(uow: UnitOfWork, ctx: EventContext, at: int = start) -> int:
                items = [
                    uow.get(WorkItem, i, "work item") for i in finished[at : at + ARCHIVE_BATCH]
                ]
                return sum(i.archive(ctx) for i in items if i.is_final)

            archived += self._commands.run(request, "work_items.archive_done", decide).value
        return archived

    # --- helpers ------------------------------------------------------------------------------

    def _write(
        self,
        request: RequestContext,
        command: str,
        item_id: UUID,
        fence: int | None,
        precondition: Precondition | None,
        act: Act,
        serialize_on: UUID | None = None,
    ) -> Outcome[WorkItemView]:
        """Every write to an item: who may write it (its claim's fence), the version the
        client expects, then the change."""
        caller = writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            item = uow.get(WorkItem, item_id, "work item")
            lease = check_write(
                item,
                caller,
                fence,
                holder_of(uow, item),
                ctx.occurred_at,
                parked=park_stands(uow, item, ctx.occurred_at),
            )
            check(precondition, item.version)
            act(uow, ctx, item)
            # A write keeps the claim or ends it (finishing, archiving, releasing).
            still_held = item.holder_session is not None
            return WorkItemView.of_aggregate(item, lease if still_held else None)

        return self._commands.run(request, command, decide, serialize_on=serialize_on)

    def _edit_dependency(
        self,
        request: RequestContext,
        item_id: UUID,
        depends_on: UUID,
        fence: int | None,
        precondition: Precondition | None,
        *,
        add: bool,
    ) -> Outcome[Dependencies]:
        caller = writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> Dependencies:
            item = uow.get(WorkItem, item_id, "work item")
            check_write(
                item,
                caller,
                fence,
                holder_of(uow, item),
                ctx.occurred_at,
                parked=park_stands(uow, item, ctx.occurred_at),
            )
            check(precondition, item.version)
            other = uow.get(WorkItem, depends_on, "work item")
            check_dependency(item, other)
            plan = uow.get(ProjectPlan, plan_id(item.project), "plan")
            if add:
                changed = plan.add_dependency(ctx, item_id, depends_on)
            else:
                changed = plan.remove_dependency(ctx, item_id, depends_on)
                if not changed:
                    raise NotFound("dependency", f"{item_id} -> {depends_on}")
            current = [UUID(d) for d in plan.dependencies.get(str(item_id), [])]
            return Dependencies(item_id, current, changed, item.version)

        return self._commands.run(
            request, "work_items.dependencies", decide, serialize_on=self._plan_of(item_id)
        )

    def _plan_of(self, item_id: UUID) -> UUID | None:
        """The plan a structure edit of this item writes, as the read model knows it (the
        edit itself loads the item; this only lets edits of one plan take turns)."""
        row = self._reader.get(item_id)
        return plan_id(row.project) if row is not None else None


def _metadata_merged(fields: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, Any]:
    """The edit as it applies to the item now: a metadata patch (null deletes a key) merged
    onto `current`. A new dict every time, so a re-run merges onto fresh state only."""
    patch = fields.get("metadata")
    if patch is None:
        return dict(fields)
    return {**fields, "metadata": merge_patch(current, patch)}
