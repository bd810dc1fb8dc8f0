"""Request and response shapes of the approval endpoints."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from pydantic import Field

from agentledger.application.approvals import ApprovalView, RequestedApproval
from agentledger.domain.approvals import (
    APPROVER_ROLE_PATTERN,
    MAX_EXPIRY_SECONDS,
    MAX_NOTES,
    MAX_REASON,
    MIN_EXPIRY_SECONDS,
)
from agentledger.interfaces.http.schemas import (
    CursorToken,
    Integer,
    ProjectRef,
    Query,
    Strict,
    response_model,
    text,
)

ApproverRole = Annotated[
    str,
    Field(
        pattern=APPROVER_ROLE_PATTERN.pattern,
        description="Decided by principals holding the token role approver:<this>.",
    ),
]
ApprovalStatusName = Literal["pending", "approved", "rejected", "expired"]


class RequestApproval(Strict):
    approver_role: ApproverRole
    reason: str = text(MAX_REASON, required=True)
    expires_in_seconds: Integer | None = Field(
        default=None,
        ge=MIN_EXPIRY_SECONDS,
        le=MAX_EXPIRY_SECONDS,
        description="Undecided by then, the approval expires. Default: never.",
    )


class DecideApproval(Strict):
    decision: Literal["approved", "rejected"]
    notes: str | None = text(MAX_NOTES)


class ListApprovalsQuery(Query):
    status: ApprovalStatusName | None = Field(default=None, description="As of now.")
    approver_role: ApproverRole | None = None
    work_item_id: UUID | None = None
    project: ProjectRef | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: CursorToken | None = None


ApprovalOut = response_model(
    "ApprovalOut",
    ApprovalView,
    described={
        "status": "pending, approved, rejected, or expired (pending past expires_at).",
        "requested_by": "The principal who asked; it can never decide this approval.",
        "decided_by": "The principal who approved or rejected it.",
    },
)


class ApprovalWritten(ApprovalOut):
    position: int


class ApprovalRequested(ApprovalWritten):
    work_item_version: int = Field(
        description="The item's version after the request: the If-Match of its next write."
    )

    @classmethod
    def of_request(cls, requested: RequestedApproval, position: int) -> ApprovalRequested:
        approval = ApprovalOut.of(requested.approval)
        return cls(
            **approval.model_dump(),
            position=position,
            work_item_version=requested.work_item_version,
        )


class ApprovalPage(Strict):
    items: list[ApprovalOut]
    next_cursor: str | None
    position: int
