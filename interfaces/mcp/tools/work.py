"""Work items: the plan (create, edit, read, list), the ready queue and claims, the lifecycle
and dependencies."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentledger.application.work_items import INCLUDES
from agentledger.interfaces.http.schemas import LooseUUID, Strict
from agentledger.interfaces.http.work_item_schemas import (
    ClaimNextBody,
    CreateWorkItem,
    DependenciesOut,
    IncludePart,
    ListWorkItemsQuery,
    PatchWorkItem,
    ReadyOut,
    ReadyQuery,
    Transition,
    WorkItemDetail,
    WorkItemPage,
    WorkItemWritten,
)
from agentledger.interfaces.mcp.api import Caller, seg
from agentledger.interfaces.mcp.tools.base import (
    ExpectedVersion,
    Fence,
    ItemId,
    Mutating,
    SessionId,
    ToolArgs,
    Toolbox,
    body,
)

toolbox = Toolbox()

OptionalVersion = Annotated[
    ExpectedVersion | None,
    Field(description="The item's version you last saw: the write is refused if it moved on."),
]
DEFAULT_INCLUDE: list[str] = ["ancestors", "children", "dependencies", "claim"]


class CreateWorkItemArgs(CreateWorkItem, Mutating):
    pass


class UpdateWorkItemArgs(PatchWorkItem, Mutating):
    id: ItemId
    expected_version: ExpectedVersion
    fence: Fence | None = None


class QueryWorkItemArgs(ToolArgs):
    id: ItemId
    include: list[IncludePart] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE),
        max_length=len(INCLUDES),
        description=f"What to add to the item: any of {', '.join(INCLUDES)}.",
    )


class ListWorkItemsArgs(ListWorkItemsQuery, ToolArgs):
    pass


class ReadyWorkArgs(ReadyQuery, ToolArgs):
    pass


class ClaimNextArgs(ClaimNextBody, Mutating):
    session_id: SessionId = None  # type: ignore[assignment]  # optional here: found if left out


class ClaimArgs(Mutating):
    id: ItemId
    session_id: SessionId = None
    expected_version: OptionalVersion = None


class HolderWrite(Mutating):
    id: ItemId
    fence: Fence | None = None
    expected_version: OptionalVersion = None


class ReleaseArgs(HolderWrite):
    pass


class TransitionArgs(Transition, HolderWrite):
    pass


class DependencyArgs(HolderWrite):
    depends_on: Annotated[LooseUUID, Field(description="The item that must be done first.")]


class ClaimNextOut(Strict):
    claimed: bool = Field(description="False when nothing was ready for you.")
    item: WorkItemWritten | None = Field(description="The item now yours, with claim.fence.")


@toolbox.tool(WorkItemWritten)
async def create_work_item(caller: Caller, args: CreateWorkItemArgs) -> object:
    """Create a work item (kind project, epic, task, research, session, or another slug) in a
    project, optionally under a parent (at most 5 levels deep) and routed to a role (to_role:
    only sessions acting in that role see and claim it). Errors: not-found (project or
    parent), cross-project (parent in another project), depth-exceeded, project-archived."""
    answer = await caller.write(
        "POST", "/v1/work-items", body(args, CreateWorkItem), idempotency_key=args.idempotency_key
    )
    return answer.body


@toolbox.tool(WorkItemWritten)
async def update_work_item(caller: Caller, args: UpdateWorkItemArgs) -> object:
    """Edit a work item: only the fields you give change (metadata is merged; a null value
    removes its key; parent_id null makes it a root). expected_version is the item's version
    you last saw; a stale one is refused with version-mismatch and current_version. If you
    hold the item, pass your claim's fence. Errors: claim-lost / fence-required (someone
    else holds it), dependency-cycle, cross-project, item-archived."""
    answer = await caller.write(
        "PATCH",
        f"/v1/work-items/{seg(args.id)}",
        body(args, PatchWorkItem),
        expected_version=args.expected_version,
        fence=args.fence,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(WorkItemDetail, read_only=True)
async def query_work_item(caller: Caller, args: QueryWorkItemArgs) -> object:
    """One work item with its surroundings: by default its ancestors (root first), children,
    dependencies and claim; also descendants or dependents if asked. Its approvals and
    latest entries always come with it. Errors: not-found."""
    include = ",".join(dict.fromkeys(args.include))
    return (await caller.get(f"/v1/work-items/{seg(args.id)}", include=include or None)).body


@toolbox.tool(WorkItemPage, read_only=True)
async def list_work_items(caller: Caller, args: ListWorkItemsArgs) -> object:
    """List work items, oldest first, filtered by project, kind, status, parent, assignee
    (the agent holding it), role, archived or trace id. Pass next_cursor back as cursor."""
    params = args.model_dump(mode="json", exclude_none=True)
    return (await caller.get("/v1/work-items", **params)).body


@toolbox.tool(ReadyOut, read_only=True)
async def ready_work(caller: Caller, args: ReadyWorkArgs) -> object:
    """The ready queue, best first (higher priority, then older): open, unclaimed items
    whose dependencies are all done. With session_id, only what that session may claim
    (items routed to its role, or to no role). Use claim_next to take the best one."""
    params = args.model_dump(mode="json", exclude_none=True)
    return (await caller.get("/v1/work-items/ready", **params)).body


@toolbox.tool(ClaimNextOut)
async def claim_next(caller: Caller, args: ClaimNextArgs) -> object:
    """Claim the best ready item for your session, atomically: two agents calling at once
    never get the same item. Filter by project, kind or role. claimed=false means nothing was
    ready for you (try again later, or ready_work to see the queue). Keep item.claim.fence:
    every write to the item needs it. The claim lasts while your session's lease does.
    Errors: session-not-active / session-expired (start_session), session-not-owned."""
    session = await caller.session_id(args.session_id)
    answer = await caller.write(
        "POST",
        "/v1/work-items/claim-next",
        body(args, ClaimNextBody, session_id=session),
        idempotency_key=args.idempotency_key,
    )
    return {"claimed": answer.body is not None, "item": answer.body}


@toolbox.tool(WorkItemWritten)
async def claim(caller: Caller, args: ClaimArgs) -> object:
    """Claim one particular ready item for your session. Keep claim.fence for later writes.
    Errors: already-claimed (holder names who has it), invalid-transition (not open),
    dependency not done (readiness reasons), role-required (routed to another role)."""
    session = await caller.session_id(args.session_id)
    answer = await caller.write(
        "POST",
        f"/v1/work-items/{seg(args.id)}/claim",
        {"session_id": session},
        expected_version=args.expected_version,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(WorkItemWritten)
async def release(caller: Caller, args: ReleaseArgs) -> object:
    """Give your claim back (with its fence) so another agent can take the item. Errors:
    claim-lost (it is no longer yours), fence-required."""
    return await _holder_write(caller, args, "release", {})


@toolbox.tool(WorkItemWritten)
async def transition(caller: Caller, args: TransitionArgs) -> object:
    """Move an item along its lifecycle: open, in_progress, in_review, done, blocked (give a
    reason), cancelled. Pass your claim's fence when you hold it. Errors: invalid-transition
    (lists the allowed ones), approval-required / approval-pending (done needs an approval),
    claim-lost, fence-required."""
    return await _holder_write(caller, args, "transition", body(args, Transition))


@toolbox.tool(DependenciesOut, idempotent=True)
async def add_dependency(caller: Caller, args: DependencyArgs) -> object:
    """Make the item wait for depends_on: it is not ready until depends_on is done. Adding one
    that is already there changes nothing. Errors: dependency-cycle (its path is given),
    cross-project, not-found."""
    answer = await caller.write(
        "PUT",
        f"/v1/work-items/{seg(args.id)}/dependencies/{seg(args.depends_on)}",
        expected_version=args.expected_version,
        fence=args.fence,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(DependenciesOut, idempotent=True)
async def remove_dependency(caller: Caller, args: DependencyArgs) -> object:
    """The item no longer waits for depends_on (e.g. the plan changed): once every other
    dependency is done it is ready again. Pass your claim's fence when you hold the item.
    Errors: not-found (no such dependency), claim-lost, fence-required."""
    answer = await caller.write(
        "DELETE",
        f"/v1/work-items/{seg(args.id)}/dependencies/{seg(args.depends_on)}",
        expected_version=args.expected_version,
        fence=args.fence,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


async def _holder_write(
    caller: Caller, args: HolderWrite, verb: str, sent: dict[str, object]
) -> object:
    answer = await caller.write(
        "POST",
        f"/v1/work-items/{seg(args.id)}/{verb}",
        sent,
        expected_version=args.expected_version,
        fence=args.fence,
        idempotency_key=args.idempotency_key,
    )
    return answer.body
