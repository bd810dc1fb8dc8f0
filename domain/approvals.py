"""Approvals: a person (or a reviewer agent) holding `approver:<role>` lets a work item be done.

An approval is requested for one item and one approver role, with a reason, and may expire.
It is decided once, by a principal holding the role who is not its requester (separation of
duties). Expiry is computed against the clock the caller passes in, as a session's lease is:
a pending approval whose time has passed is expired whether or not anyone has looked.

The item keeps, per approver role, the approval requested last; it may move to `done` only
when each of those is approved (`require_approved`). Requesting again for a role (after a
rejection or an expiry) replaces the earlier request for that role.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from agentledger.domain.errors import (
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalRequired,
    InvalidValue,
    SelfApproval,
)
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.text import clean_optional_text, clean_text

APPROVER_ROLE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")  # as in `approver:<role>`
MIN_EXPIRY_SECONDS = 60
MAX_EXPIRY_SECONDS = 30 * 24 * 3600
MAX_REASON = 2000
MAX_NOTES = 4000


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"  # never recorded: a pending approval past its time


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


def approver_role_of(role: str) -> str:
    """The token role that may decide approvals of `role`."""
    return f"approver:{role}"


def effective_status(status: str, expires_at: datetime | None, now: datetime) -> ApprovalStatus:
    recorded = ApprovalStatus(status)
    if recorded is ApprovalStatus.PENDING and expires_at is not None and now >= expires_at:
        return ApprovalStatus.EXPIRED
    return recorded


class Approval(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        work_item_id: UUID
        project: str
        approver_role: str
        reason: str
        requested_by: str
        expires_at: datetime | None
        state: str  # pending, approved or rejected (expired is computed)
        decided_by: str | None
        decided_at: datetime | None
        notes: str | None

    class ApprovalRequested(LedgerAggregate.Created):
        work_item_id: UUID
        project: str
        approver_role: str
        reason: str
        expires_at: datetime | None

        def apply(self, aggregate: Any) -> None:
            aggregate.work_item_id = self.work_item_id
            aggregate.project = self.project
            aggregate.approver_role = self.approver_role
            aggregate.reason = self.reason
            aggregate.requested_by = self.actor
            aggregate.expires_at = self.expires_at
            aggregate.state = ApprovalStatus.PENDING.value
            aggregate.decided_by = None
            aggregate.decided_at = None
            aggregate.notes = None

    class ApprovalDecided(LedgerAggregate.Event):
        decision: str
        notes: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.state = self.decision
            aggregate.decided_by = self.actor
            aggregate.decided_at = self.timestamp
            aggregate.notes = self.notes

    @classmethod
    def request(
        cls,
        ctx: EventContext,
        *,
        work_item_id: UUID,
        project: str,
        approver_role: str,
        reason: str,
        expires_in_seconds: int | None = None,
        approval_id: UUID | None = None,
    ) -> Approval:
        if not APPROVER_ROLE_PATTERN.fullmatch(approver_role):
            raise InvalidValue(
                "approver_role must be a lowercase slug (1-64 letters, digits, '_' or '-')",
                field="approver_role",
            )
        if not reason.strip():
            raise InvalidValue("reason must not be empty", field="reason")
        expires_at = None
        if expires_in_seconds is not None:
            if not MIN_EXPIRY_SECONDS <= expires_in_seconds <= MAX_EXPIRY_SECONDS:
                raise InvalidValue(
                    f"expires_in_seconds must be {MIN_EXPIRY_SECONDS}-{MAX_EXPIRY_SECONDS}",
                    field="expires_in_seconds",
                )
            expires_at = ctx.occurred_at + timedelta(seconds=expires_in_seconds)
        return cls._begin(
            cls.ApprovalRequested,
            ctx,
            approval_id or uuid4(),
            work_item_id=work_item_id,
            project=project,
            approver_role=approver_role,
            reason=clean_text(reason, "reason", MAX_REASON),
            expires_at=expires_at,
        )

    def status_at(self, now: datetime) -> ApprovalStatus:
        return effective_status(self.state, self.expires_at, now)

    def decide(self, ctx: EventContext, decision: str, notes: str | None = None) -> bool:
        """Decide as `ctx.actor` (whose approver role the caller has checked). Returns whether
        it wrote: the same decision again by the same principal answers as before."""
        try:
            chosen = Decision(decision)
        except ValueError:
            raise InvalidValue("decision must be approved or rejected", "decision") from None
        notes = clean_optional_text(notes, "notes", MAX_NOTES)
        if ctx.actor == self.requested_by:
            raise SelfApproval(str(self.id), self.requested_by)
        status = self.status_at(ctx.occurred_at)
        if status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED):
            if self.decided_by == ctx.actor and self.state == chosen.value:
                return False
            raise ApprovalAlreadyDecided(str(self.id), self.state, self.decided_by or "?")
        if status is ApprovalStatus.EXPIRED:
            assert self.expires_at is not None
            raise ApprovalExpired(str(self.id), self.expires_at)
        self._record(self.ApprovalDecided, ctx, decision=chosen.value, notes=notes)
        return True


def require_approved(approvals: Sequence[Approval], now: datetime) -> None:
    """The done gate: every approval the item waits for (its latest per role) approved."""
    standing = [(str(a.id), a.approver_role, a.status_at(now).value) for a in approvals]
    missing = [s for s in standing if s[2] != ApprovalStatus.APPROVED.value]
    if missing:
        raise ApprovalRequired(missing)
