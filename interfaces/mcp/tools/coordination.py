"""Coordination: tasks routed to a role, a task's status, approvals and the status report."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from agentledger.interfaces.http.approval_schemas import (
    ApprovalRequested,
    ApprovalWritten,
    DecideApproval,
    RequestApproval,
)
from agentledger.interfaces.http.schemas import Kind, LooseUUID, ProjectRef, RoleName, Strict
from agentledger.interfaces.http.work_item_schemas import (
    CreateWorkItem,
    WorkItemDetail,
    WorkItemWritten,
)
from agentledger.interfaces.mcp.api import Caller, seg
from agentledger.interfaces.mcp.tools.base import (
    ExpectedVersion,
    Fence,
    ItemId,
    Mutating,
    ToolArgs,
    Toolbox,
    body,
)

toolbox = Toolbox()


class SendTaskArgs(CreateWorkItem, Mutating):
    to_role: RoleName = Field(description="The role whose agents may take the task.")
    kind: Kind = "task"


class FetchStatusArgs(ToolArgs):
    id: ItemId


class RequestApprovalArgs(RequestApproval, Mutating):
    id: ItemId
    fence: Fence | None = None
    expected_version: ExpectedVersion | None = None


class DecideApprovalArgs(DecideApproval, Mutating):
    approval_id: Annotated[LooseUUID, Field(description="The approval's id (approvals[].id).")]


class StatusReportArgs(ToolArgs):
    project: ProjectRef


class StatusReportOut(Strict):
    project: str
    markdown: str = Field(description="The report: counts, in progress, blocked, ready, done.")


@toolbox.tool(WorkItemWritten)
async def send_task(caller: Caller, args: SendTaskArgs) -> object:
    """Hand a task to whoever acts in a role: a work item routed to to_role, which only
    sessions started with that role see in their ready queue and may claim. Follow it with
    fetch_status. Errors: not-found (project or parent), project-archived."""
    answer = await caller.write(
        "POST",
        "/v1/work-items",
        body(args, CreateWorkItem, kind=args.kind),
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(WorkItemDetail, read_only=True)
async def fetch_status(caller: Caller, args: FetchStatusArgs) -> object:
    """A task's status: its lifecycle status, who holds it (claim, assignee), its approvals
    with their decisions, and its latest progress entries. Errors: not-found."""
    return (await caller.get(f"/v1/work-items/{seg(args.id)}", include="claim")).body


@toolbox.tool(ApprovalRequested)
async def request_approval(caller: Caller, args: RequestApprovalArgs) -> object:
    """Ask a person (or agent) acting as approver:<role> to approve the item: it cannot be
    done until approved. Give the reason they will read. Pass your claim's fence when you
    hold the item. While you wait you may park your claim (it then outlives your session).
    Errors: approval-pending (one is open already), claim-lost, fence-required."""
    answer = await caller.write(
        "POST",
        f"/v1/work-items/{seg(args.id)}/approvals",
        body(args, RequestApproval),
        expected_version=args.expected_version,
        fence=args.fence,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(ApprovalWritten)
async def decide_approval(caller: Caller, args: DecideApprovalArgs) -> object:
    """Approve or reject a pending approval, with notes (needs approver:<role>; never your
    own request). Errors: forbidden, separation-of-duties (you asked for it),
    approval-already-decided, approval-expired."""
    answer = await caller.write(
        "POST",
        f"/v1/approvals/{seg(args.approval_id)}/decision",
        body(args, DecideApproval),
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(StatusReportOut, read_only=True)
async def status_report(caller: Caller, args: StatusReportArgs) -> object:
    """A project's status report in markdown: counts by status and kind, what is in
    progress (and by whom), blocked, ready and recently done, and the live sessions. Also
    available as the resource agentledger://projects/{name}/status.md. Errors: not-found."""
    answer = await caller.get(f"/v1/projects/{seg(args.project)}/status.md")
    return {"project": args.project, "markdown": answer.body}
