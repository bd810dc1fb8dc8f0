"""Approval use cases: request one for a work item, decide it, and read the approval queue.

A request writes the approval and, in the same transaction, the item's note of it (the item
waits for it before `done`), so a request and a concurrent move to `done` are ordered by the
item's version: the move either sees the approval or is re-run and does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid4

from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import Principal, RequestContext
from agentledger.application.errors import Forbidden, NotFound
from agentledger.application.preconditions import Precondition, check
from agentledger.application.projects import load_project
from agentledger.application.readmodels import (
    ApprovalFilter,
    ApprovalRow,
    ApprovalsReader,
    Cursors,
    Page,
    Read,
)
from agentledger.application.shapes import by_name
from agentledger.application.work_items.facts import holder_of, park_stands, writer
from agentledger.domain.approvals import Approval, approver_role_of, effective_status
from agentledger.domain.claims import check_write
from agentledger.domain.events import EventContext
from agentledger.domain.work_items import WorkItem


@dataclass(frozen=True)
class ApprovalView:
    """An approval as callers see it, with its status as of the moment of reading."""

    id: UUID
    work_item_id: UUID
    project: str
    approver_role: str
    reason: str
    status: str  # pending, approved, rejected or expired
    requested_by: str
    expires_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    notes: str | None
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of_aggregate(cls, approval: Approval, now: datetime) -> ApprovalView:
        return by_name(cls, approval, status=approval.status_at(now).value)

    @classmethod
    def of_row(cls, row: ApprovalRow, now: datetime) -> ApprovalView:
        return by_name(cls, row, status=effective_status(row.status, row.expires_at, now).value)


@dataclass(frozen=True)
class RequestedApproval:
    """A request's answer: the approval, and the item's version after the request (which it
    changed: the version a next `If-Match` on the item names)."""

    approval: ApprovalView
    work_item_version: int


@dataclass(frozen=True)
class NewApproval:
    approver_role: str
    reason: str
    expires_in_seconds: int | None = None


class ApprovalService:
    def __init__(
        self,
        commands: CommandRunner,
        reader: ApprovalsReader,
        clock: Clock,
        consistency: Consistency,
        cursors: Cursors,
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._clock = clock
        self._consistency = consistency
        self._cursors = cursors

    def request(
        self,
        request: RequestContext,
        item_id: UUID,
        new: NewApproval,
        *,
        fence: int | None = None,
        precondition: Precondition | None = None,
    ) -> Outcome[RequestedApproval]:
        """Ask the holders of `approver:<role>` to approve the item before it is done. It is a
        write to the item: its holder presents the fence, `If-Match` names the item's version."""
        caller = writer(request.principal)
        approval_id = uuid4()

        def decide(uow: UnitOfWork, ctx: EventContext) -> RequestedApproval:
            item = uow.get(WorkItem, item_id, "work item")
            now = ctx.occurred_at
            parked = park_stands(uow, item, now)
            check_write(item, caller, fence, holder_of(uow, item), now, parked=parked)
            check(precondition, item.version)
            load_project(uow, item.project).ensure_open()
            approval = Approval.request(
                ctx,
                work_item_id=item.id,
                project=item.project,
                approver_role=new.approver_role,
                reason=new.reason,
                expires_in_seconds=new.expires_in_seconds,
                approval_id=approval_id,
            )
            item.attach_approval(ctx, approval.id, approval.approver_role)
            uow.add(approval)
            view = ApprovalView.of_aggregate(approval, ctx.occurred_at)
            return RequestedApproval(view, item.version)

        return self._commands.run(request, "approvals.request", decide)

    def decide(
        self,
        request: RequestContext,
        approval_id: UUID,
        decision: str,
        notes: str | None = None,
    ) -> Outcome[ApprovalView]:
        """Approve or reject, as a principal holding `approver:<role>` who did not request it.
        The same decision again by the same principal writes nothing and answers as before."""
        principal = request.principal

        def decide(uow: UnitOfWork, ctx: EventContext) -> ApprovalView:
            approval = uow.get(Approval, approval_id, "approval")
            require_approver(principal, approval.approver_role)
            approval.decide(ctx, decision, notes)
            return ApprovalView.of_aggregate(approval, ctx.occurred_at)

        return self._commands.run(request, "approvals.decide", decide)

    def get(self, approval_id: UUID, consistent_with: int | None = None) -> Read[ApprovalView]:
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._reader.get(approval_id)
        if row is None:
            raise NotFound("approval", str(approval_id))
        return Read(ApprovalView.of_row(row, self._clock.now()), position)

    def for_item(self, item_id: UUID) -> list[ApprovalView]:
        """Every approval requested for the item, oldest first (the caller has waited for
        the read model's position)."""
        now = self._clock.now()
        return [ApprovalView.of_row(r, now) for r in self._reader.for_item(item_id)]

    def position(self) -> int:
        return self._reader.position()

    def list(
        self,
        where: ApprovalFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[ApprovalView]:
        """A queue: oldest request first. `status=expired` and `status=pending` are as of now."""
        return self._cursors.oldest_first(
            where,
            cursor,
            limit,
            wait=lambda: self._consistency.wait(self._reader, consistent_with),
            clock=self._clock,
            rows=lambda n, after, now: self._reader.list(
                where, limit=n, after_position=after, now=now
            ),
            output=ApprovalView.of_row,
        )


def require_approver(principal: Principal, approver_role: str) -> None:
    """The role itself, named on the token: an admin is not an approver by being an admin
    (a decision is someone's judgement; granting oneself the role is an audited event)."""
    role = approver_role_of(approver_role)
    if role not in principal.roles:
        raise Forbidden(f"{principal.name} needs the role {role} to decide this approval")
