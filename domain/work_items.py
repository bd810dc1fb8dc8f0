"""Work items: tasks and their kin, with a status lifecycle and a fenced, lease-bound claim.

A claim lives as long as its holder's session lease, which this aggregate cannot see: callers
say whether the current holder is still alive. Every claim takes the next `fence` number, and a
holder's writes must present it, so a holder that lost its claim cannot write over the next one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from agentledger.domain.errors import (
    AlreadyClaimed,
    ClaimLost,
    InvalidTransition,
    InvalidValue,
    ItemArchived,
)
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.text import clean_optional_text, clean_text
from agentledger.domain.work_item_metadata import validate_item_metadata


class WorkStatus(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    IN_REVIEW = "in_review"
    DONE = "done"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


ALLOWED_TRANSITIONS: dict[WorkStatus, tuple[WorkStatus, ...]] = {
    WorkStatus.OPEN: (WorkStatus.IN_PROGRESS, WorkStatus.BLOCKED, WorkStatus.CANCELLED),
    WorkStatus.IN_PROGRESS: (
        WorkStatus.IN_REVIEW,
        WorkStatus.OPEN,
        WorkStatus.BLOCKED,
        WorkStatus.CANCELLED,
    ),
    WorkStatus.IN_REVIEW: (
        WorkStatus.DONE,
        WorkStatus.IN_PROGRESS,
        WorkStatus.BLOCKED,
        WorkStatus.CANCELLED,
    ),
    WorkStatus.BLOCKED: (WorkStatus.OPEN, WorkStatus.IN_PROGRESS, WorkStatus.CANCELLED),
    WorkStatus.DONE: (),  # final: follow-up work is a new item
    WorkStatus.CANCELLED: (),
}
FINAL = (WorkStatus.DONE, WorkStatus.CANCELLED)
KINDS = ("project", "epic", "task", "research", "session")  # known kinds; others may be used
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
ROLE_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"  # what items are routed to, sessions act in
ROLE_PATTERN = re.compile(f"^{ROLE_NAME}$")
MIN_PRIORITY, MAX_PRIORITY = -1000, 1000
EDITABLE = ("title", "description", "priority", "to_role", "metadata")
# Items created before approvals existed have none: the default of every item until one is
# requested (replaced, never mutated, by `ApprovalAttached`).
NO_APPROVALS: Mapping[str, str] = MappingProxyType({})


class WorkItem(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        project: str
        kind: str
        title: str
        description: str | None
        priority: int
        parent_id: UUID | None
        to_role: str | None
        metadata: dict[str, Any]
        state: str
        blocked_reason: str | None
        archived: bool
        holder_session: UUID | None
        holder_agent: str | None
        fence: int  # the last fence handed out (0: never claimed)
        finished_at: datetime | None  # when it became done or cancelled
        trace_id: str  # the trace of the request that created it: how a caller finds it

    # The approval the item waits for, per approver role: the one requested last.
    approvals = NO_APPROVALS

    class WorkItemCreated(LedgerAggregate.Created):
        project: str
        kind: str
        title: str
        description: str | None
        priority: int
        parent_id: UUID | None
        to_role: str | None
        metadata: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            for name in ("project", "kind", "parent_id", *EDITABLE):
                setattr(aggregate, name, getattr(self, name))
            aggregate.state = WorkStatus.OPEN.value
            aggregate.blocked_reason = None
            aggregate.archived = False
            aggregate.holder_session = None
            aggregate.holder_agent = None
            aggregate.fence = 0
            aggregate.finished_at = None
            aggregate.trace_id = self.trace_id

    class WorkItemUpdated(LedgerAggregate.Event):
        changes: dict[str, Any]  # only the fields that changed, with their new values

        def apply(self, aggregate: Any) -> None:
            for name, value in self.changes.items():
                setattr(aggregate, name, value)

    class ParentChanged(LedgerAggregate.Event):
        parent_id: UUID | None

        def apply(self, aggregate: Any) -> None:
            aggregate.parent_id = self.parent_id

    class StatusChanged(LedgerAggregate.Event):
        from_status: str
        to_status: str
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.state = self.to_status
            aggregate.blocked_reason = self.reason if self.to_status == "blocked" else None
            finished = WorkStatus(self.to_status) in FINAL
            aggregate.finished_at = self.timestamp if finished else None

    class WorkItemClaimed(LedgerAggregate.Event):
        session_id: UUID
        agent_id: str
        fence: int
        lease_expires_at: datetime  # the holder's lease when claimed; heartbeats extend it
        previous_session: UUID | None  # a lapsed holder this claim replaced

        def apply(self, aggregate: Any) -> None:
            aggregate.holder_session = self.session_id
            aggregate.holder_agent = self.agent_id
            aggregate.fence = self.fence

    class ClaimReleased(LedgerAggregate.Event):
        session_id: UUID
        fence: int
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.holder_session = None
            aggregate.holder_agent = None

    class ApprovalAttached(LedgerAggregate.Event):
        approval_id: UUID
        approver_role: str

        def apply(self, aggregate: Any) -> None:
            aggregate.approvals = {**aggregate.approvals, self.approver_role: str(self.approval_id)}

    class WorkItemArchived(LedgerAggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.archived = True

    class WorkItemUnarchived(LedgerAggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.archived = False

    @classmethod
    def create(
        cls,
        ctx: EventContext,
        *,
        project: str,
        kind: str,
        title: str,
        description: str | None = None,
        priority: int = 0,
        parent_id: UUID | None = None,
        to_role: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        item_id: UUID | None = None,
    ) -> WorkItem:
        if not KIND_PATTERN.fullmatch(kind):
            raise InvalidValue(
                f"kind must be a lowercase slug such as {', '.join(KINDS)}", field="kind"
            )
        return cls._begin(
            cls.WorkItemCreated,
            ctx,
            item_id or uuid4(),
            project=project,
            kind=kind,
            parent_id=parent_id,
            **_editable(
                kind,
                title=title,
                description=description,
                priority=priority,
                to_role=to_role,
                metadata=metadata or {},
            ),
        )

    @property
    def status(self) -> WorkStatus:
        return WorkStatus(self.state)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    # --- commands -------------------------------------------------------------------------

    def update(self, ctx: EventContext, **fields: Any) -> bool:
        """Change editable fields; unchanged values write nothing. Returns whether it wrote."""
        unknown = set(fields) - set(EDITABLE)
        if unknown:
            raise InvalidValue(f"cannot change {', '.join(sorted(unknown))}", field=min(unknown))
        self._ensure_not_archived()
        clean = _editable(self.kind, **fields)
        changes = {k: v for k, v in clean.items() if getattr(self, k) != v}
        if not changes:
            return False
        self._record(self.WorkItemUpdated, ctx, changes=changes)
        return True

    def move(self, ctx: EventContext, parent_id: UUID | None) -> bool:
        """Record a new parent (the project's plan has already checked the structure)."""
        self._ensure_not_archived()
        if parent_id == self.parent_id:
            return False
        self._record(self.ParentChanged, ctx, parent_id=parent_id)
        return True

    def check_transition(self, to: str, reason: str | None = None) -> WorkStatus:
        """The status `to` names, if the item may move there now (else the error why not)."""
        try:
            target = WorkStatus(to)
        except ValueError:
            raise InvalidValue(f"unknown status '{to}'", field="to") from None
        self._ensure_not_archived()
        allowed = ALLOWED_TRANSITIONS[self.status]
        if target not in allowed:
            raise InvalidTransition(self.state, f"move to {to}", tuple(s.value for s in allowed))
        if target is WorkStatus.BLOCKED and not (reason and reason.strip()):
            raise InvalidValue("blocking needs a reason (what the item waits for)", field="reason")
        return target

    def transition(self, ctx: EventContext, to: str, reason: str | None = None) -> None:
        """Move along the lifecycle. Moving to `done` needs the item's approvals given, which
        the caller checks (`domain.approvals.require_approved`) with the approvals loaded."""
        target = self.check_transition(to, reason)
        self._change_status(ctx, target, reason)
        if self.is_final:  # finished work holds nobody: the claim ends with it
            self.release(ctx, f"item {target.value}")

    def claim(
        self,
        ctx: EventContext,
        session_id: UUID,
        agent_id: str,
        *,
        lease_expires_at: datetime,
        holder_lease: datetime | None,
    ) -> int:
        """Claim for `session_id` (whose lease ends at `lease_expires_at`); returns the fence.
        `holder_lease` is the current holder's lease end while it is live (None once lapsed):
        a live holder keeps the item. An open item goes in progress. Claiming again with the
        same session changes nothing."""
        self._ensure_not_archived()
        if self.is_final:
            raise InvalidTransition(self.state, "claim", ())
        if self.holder_session is not None and holder_lease is not None:
            if self.holder_session == session_id:
                return self.fence
            raise AlreadyClaimed(self.holder_session, self.holder_agent or "?", holder_lease)
        fence = self.fence + 1
        self._record(
            self.WorkItemClaimed,
            ctx,
            session_id=session_id,
            agent_id=agent_id,
            fence=fence,
            lease_expires_at=lease_expires_at,
            previous_session=self.holder_session,
        )
        if self.status is WorkStatus.OPEN:
            self._change_status(ctx, WorkStatus.IN_PROGRESS, "claimed")
        return fence

    def release(self, ctx: EventContext, reason: str, session_id: UUID | None = None) -> bool:
        """End the claim (only if `session_id`, when given, still holds it). Work in progress
        goes back to open, so the item is ready for someone else."""
        if self.holder_session is None:
            return False
        if session_id is not None and self.holder_session != session_id:
            return False
        self._record(
            self.ClaimReleased, ctx, session_id=self.holder_session, fence=self.fence, reason=reason
        )
        if self.status is WorkStatus.IN_PROGRESS:
            self._change_status(ctx, WorkStatus.OPEN, f"claim released: {reason}")
        return True

    def attach_approval(self, ctx: EventContext, approval_id: UUID, approver_role: str) -> None:
        """From now on the item waits for this approval (for its role) before it is done."""
        self._ensure_not_archived()
        if self.is_final:
            raise InvalidTransition(self.state, "request an approval", ())
        self._record(
            self.ApprovalAttached, ctx, approval_id=approval_id, approver_role=approver_role
        )

    @property
    def approval_ids(self) -> list[UUID]:
        return [UUID(i) for i in self.approvals.values()]

    def archive(self, ctx: EventContext) -> bool:
        if self.archived:
            return False
        self.release(ctx, "archived")
        self._record(self.WorkItemArchived, ctx)
        return True

    def unarchive(self, ctx: EventContext) -> bool:
        if not self.archived:
            return False
        self._record(self.WorkItemUnarchived, ctx)
        return True

    # --- rules callers check ----------------------------------------------------------------

    def check_fence(self, presented: int | None, holder_alive: bool = True) -> None:
        """A holder's write must present the fence of the current, live claim."""
        current = self.fence if self.holder_session is not None and holder_alive else None
        if presented is None or current is None or presented != current:
            raise ClaimLost(presented, current)

    def _ensure_not_archived(self) -> None:
        if self.archived:
            raise ItemArchived(self.id)

    def _change_status(self, ctx: EventContext, target: WorkStatus, reason: str | None) -> None:
        self._record(
            self.StatusChanged,
            ctx,
            from_status=self.state,
            to_status=target.value,
            reason=clean_optional_text(reason, "reason", 1000),
        )


def _editable(kind: str, **fields: Any) -> dict[str, Any]:
    """Validate editable fields (only those given), in the form events store."""
    clean: dict[str, Any] = {}
    if "title" in fields:
        if not str(fields["title"] or "").strip():
            raise InvalidValue("title must not be empty", field="title")
        clean["title"] = clean_text(fields["title"].strip(), "title", 300)
    if "description" in fields:
        clean["description"] = clean_optional_text(fields["description"], "description", 10_000)
    if "priority" in fields:
        priority = fields["priority"]
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise InvalidValue("priority must be an integer", field="priority")
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidValue(
                f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}", field="priority"
            )
        clean["priority"] = priority
    if "to_role" in fields:
        role = fields["to_role"]
        if role is not None and not ROLE_PATTERN.fullmatch(role):
            raise InvalidValue("to_role must be a role name (letters, digits, ._-)", "to_role")
        clean["to_role"] = role
    if "metadata" in fields:
        clean["metadata"] = validate_item_metadata(kind, fields["metadata"] or {})
    return clean
