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
    ClaimParked,
    HandoffForAnother,
    HandoffPending,
    InvalidTransition,
    InvalidValue,
    ItemArchived,
    NoHandoffOffered,
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
MAX_HANDOFF_REASON = 1000


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
        offered_to: str | None  # an open handoff offer: to whom, until when, with what
        offer_expires_at: datetime | None
        offer_handover: UUID | None
        parked_on: UUID | None  # the approval a parked claim waits on
        parked_successor: str | None

    # The approval the item waits for, per approver role: the one requested last.
    approvals = NO_APPROVALS
    # An open handoff offer of the claim (items stored before handoffs existed have none).
    # (Plain class attributes: annotated ones would become the aggregate's constructor's.)
    offered_to = offer_expires_at = offer_handover = None
    # A parked claim: the approval it waits on, who else may resume it, and for how long
    # after the approval is decided (or expires) it stays parked.
    parked_on = parked_successor = None
    parked_grace_seconds = 0

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
            _end_offer(aggregate)
            _unpark(aggregate)

    class ClaimReleased(LedgerAggregate.Event):
        session_id: UUID
        fence: int
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.holder_session = None
            aggregate.holder_agent = None
            _end_offer(aggregate)
            _unpark(aggregate)

    class HandoffOffered(LedgerAggregate.Event):
        """The holder offers its claim to another agent (with a handover document, perhaps)."""

        session_id: UUID
        from_agent: str
        to_agent: str
        fence: int
        expires_at: datetime
        handover_id: UUID | None
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.offered_to = self.to_agent
            aggregate.offer_expires_at = self.expires_at
            aggregate.offer_handover = self.handover_id

    class HandoffAccepted(LedgerAggregate.Event):
        """The named agent took the offer: the claim moves to its session (a new claim with
        a new fence follows)."""

        session_id: UUID
        agent_id: str
        from_session: UUID
        from_agent: str
        handover_id: UUID | None

        def apply(self, aggregate: Any) -> None:
            _end_offer(aggregate)

    class HandoffDeclined(LedgerAggregate.Event):
        """The named agent declined (or the offerer withdrew): the claim stays the offerer's."""

        to_agent: str
        declined_by: str
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            _end_offer(aggregate)

    class HandoffExpired(LedgerAggregate.Event):
        to_agent: str
        expired_at: datetime

        def apply(self, aggregate: Any) -> None:
            _end_offer(aggregate)

    class ClaimParked(LedgerAggregate.Event):
        """The holder parked its claim while the item waits on an approval: the claim
        outlives its session until the approval is decided or expires (and a grace after)."""

        session_id: UUID
        agent_id: str
        fence: int
        approval_id: UUID
        successor: str | None
        grace_seconds: int

        def apply(self, aggregate: Any) -> None:
            aggregate.parked_on = self.approval_id
            aggregate.parked_successor = self.successor
            aggregate.parked_grace_seconds = self.grace_seconds

    class ClaimResumed(LedgerAggregate.Event):
        """A session of the parking agent (or its successor) resumed the claim (a new claim
        with a new fence follows)."""

        session_id: UUID
        agent_id: str
        from_session: UUID
        approval_id: UUID

        def apply(self, aggregate: Any) -> None:
            _unpark(aggregate)

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
        fence = self._move_claim(ctx, session_id, agent_id, lease_expires_at)
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

    def release_ended(self, ctx: EventContext, reason: str, session_id: UUID) -> bool:
        """What a session's end does to its claim: released, unless the claim is parked (it
        outlives the session) or offered (the offer decides: accepted, it moves; declined or
        expired, it is released then)."""
        if self.parked_on is not None or self.offer_live(ctx.occurred_at):
            return False
        if self.holder_session != session_id:
            return False
        self.expire_offer(ctx, offerer_alive=True)  # one past its time, not yet recorded
        return self.release(ctx, reason, session_id=session_id)

    # --- handing the claim over -------------------------------------------------------------

    def offer_live(self, now: datetime) -> bool:
        """Whether an offer is open at `now` (one past its time is expired, recorded or not)."""
        return self.offer_expires_at is not None and now < self.offer_expires_at

    def ensure_not_offered(self, now: datetime) -> None:
        if (
            self.offered_to is not None
            and self.offer_expires_at is not None
            and self.offer_live(now)
        ):
            raise HandoffPending(self.id, self.offered_to, self.offer_expires_at)

    def offer(
        self,
        ctx: EventContext,
        to_agent: str,
        expires_at: datetime,
        handover_id: UUID | None,
        reason: str | None,
    ) -> None:
        """Offer the (live, checked by the caller) claim to `to_agent` until `expires_at`."""
        self._ensure_claimed_for("hand off")
        self.ensure_not_offered(ctx.occurred_at)
        if self.parked_on is not None:
            raise ClaimParked(self.id, self.holder_agent or "?", self.parked_successor)
        if to_agent == self.holder_agent:
            raise InvalidValue("a handoff goes to another agent than the holder", "to_agent")
        assert self.holder_session is not None and self.holder_agent is not None
        self._record(
            self.HandoffOffered,
            ctx,
            session_id=self.holder_session,
            from_agent=self.holder_agent,
            to_agent=to_agent,
            fence=self.fence,
            expires_at=expires_at,
            handover_id=handover_id,
            reason=clean_optional_text(reason, "reason", MAX_HANDOFF_REASON),
        )

    def accept_offer(
        self, ctx: EventContext, session_id: UUID, agent_id: str, lease_expires_at: datetime
    ) -> int:
        """The named agent's session takes the claim: a new claim, with a new fence, so the
        offerer's fence no longer writes. Returns the new fence."""
        self._ensure_offer_for(agent_id, ctx.occurred_at)
        assert self.holder_session is not None and self.holder_agent is not None
        self._record(
            self.HandoffAccepted,
            ctx,
            session_id=session_id,
            agent_id=agent_id,
            from_session=self.holder_session,
            from_agent=self.holder_agent,
            handover_id=self.offer_handover,
        )
        return self._move_claim(ctx, session_id, agent_id, lease_expires_at)

    def decline_offer(
        self, ctx: EventContext, declined_by: str, reason: str | None, offerer_alive: bool
    ) -> None:
        """The named agent declines (the caller checked who may): the claim stays with the
        offerer, or is released if the offerer's lease has lapsed."""
        if self.offered_to is None or not self.offer_live(ctx.occurred_at):
            raise NoHandoffOffered(self.id, "it was taken, declined or has expired")
        self._record(
            self.HandoffDeclined,
            ctx,
            to_agent=self.offered_to,
            declined_by=declined_by,
            reason=clean_optional_text(reason, "reason", MAX_HANDOFF_REASON),
        )
        if not offerer_alive:
            self.release(ctx, "handoff declined; the offerer's lease had lapsed")

    def expire_offer(self, ctx: EventContext, offerer_alive: bool) -> bool:
        """Record an offer past its time (False, writing nothing, if there is none such)."""
        if self.offered_to is None or self.offer_expires_at is None:
            return False
        if self.offer_live(ctx.occurred_at):
            return False
        self._record(
            self.HandoffExpired, ctx, to_agent=self.offered_to, expired_at=self.offer_expires_at
        )
        if not offerer_alive:
            self.release(ctx, "handoff expired; the offerer's lease had lapsed")
        return True

    # --- parking the claim while a person decides ---------------------------------------------

    def park(
        self, ctx: EventContext, approval_id: UUID, successor: str | None, grace_seconds: int
    ) -> None:
        """Park the (live, checked by the caller) claim on a pending approval of this item
        (checked by the caller too)."""
        self._ensure_claimed_for("park")
        self.ensure_not_offered(ctx.occurred_at)
        if self.parked_on is not None:
            raise ClaimParked(self.id, self.holder_agent or "?", self.parked_successor)
        if str(approval_id) not in self.approvals.values():
            raise InvalidValue(f"approval {approval_id} is not one of this item's", "approval_id")
        if successor == self.holder_agent:
            successor = None  # the agent itself may resume anyway
        assert self.holder_session is not None and self.holder_agent is not None
        self._record(
            self.ClaimParked,
            ctx,
            session_id=self.holder_session,
            agent_id=self.holder_agent,
            fence=self.fence,
            approval_id=approval_id,
            successor=successor,
            grace_seconds=grace_seconds,
        )

    def may_resume(self, agent_id: str) -> bool:
        return agent_id in (self.holder_agent, self.parked_successor)

    def resume(
        self, ctx: EventContext, session_id: UUID, agent_id: str, lease_expires_at: datetime
    ) -> int:
        """A session of the parking agent (or its successor) takes the parked claim back: a
        new claim with a new fence (the caller checked the approval is no longer pending and
        the park has not lapsed). Returns the new fence."""
        if self.parked_on is None or self.holder_session is None:
            raise InvalidTransition(self.state, "resume a parked claim", ())
        if not self.may_resume(agent_id):
            raise ClaimParked(self.id, self.holder_agent or "?", self.parked_successor)
        self._record(
            self.ClaimResumed,
            ctx,
            session_id=session_id,
            agent_id=agent_id,
            from_session=self.holder_session,
            approval_id=self.parked_on,
        )
        return self._move_claim(ctx, session_id, agent_id, lease_expires_at)

    def _move_claim(
        self, ctx: EventContext, session_id: UUID, agent_id: str, lease_expires_at: datetime
    ) -> int:
        """A new claim for `session_id`, replacing whatever claim there was; the new fence."""
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
        return fence

    def _ensure_claimed_for(self, attempted: str) -> None:
        self._ensure_not_archived()
        if self.is_final:
            raise InvalidTransition(self.state, attempted, ())
        if self.holder_session is None:
            raise ClaimLost(None, None)

    def _ensure_offer_for(self, agent_id: str | None, now: datetime) -> None:
        if self.offered_to is None or self.offer_expires_at is None:
            raise NoHandoffOffered(self.id, "none was made, or it was taken or declined")
        if not self.offer_live(now):
            raise NoHandoffOffered(self.id, f"it expired at {self.offer_expires_at.isoformat()}")
        if agent_id != self.offered_to:
            raise HandoffForAnother(self.id, self.offered_to, agent_id)

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


def _end_offer(aggregate: Any) -> None:
    aggregate.offered_to = None
    aggregate.offer_expires_at = None
    aggregate.offer_handover = None


def _unpark(aggregate: Any) -> None:
    aggregate.parked_on = None
    aggregate.parked_successor = None
    aggregate.parked_grace_seconds = 0


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
