"""Work items: tasks and their kin, with a status lifecycle and a fenced, lease-bound claim.

(Issue 4 groundwork: the aggregate and its rules; commands, readiness and the HTTP API follow.)
A claim lives as long as its holder's session lease, which this aggregate cannot see: callers
say whether the current holder is still alive. Every claim takes the next `fence` number, and a
holder's writes must present it, so a holder that lost its claim cannot write over the next one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from domain.errors import DomainError, InvalidTransition, InvalidValue
from domain.events import EventContext, LedgerAggregate
from domain.text import clean_optional_text, clean_text


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
KINDS = ("project", "epic", "task", "research", "session")


class AlreadyClaimed(DomainError):
    def __init__(self, holder_session: UUID, holder_agent: str) -> None:
        self.holder_session = holder_session
        self.holder_agent = holder_agent
        super().__init__(f"claimed by agent '{holder_agent}' (session {holder_session})")


class ClaimLost(DomainError):
    """The writer's fence is not the current claim's: its claim was lost or superseded."""

    def __init__(self, presented: int | None, current: int | None) -> None:
        self.presented = presented
        self.current = current
        super().__init__(f"fence {presented} does not hold the claim (current fence {current})")


class WorkItem(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        project: str
        kind: str
        title: str
        description: str | None
        priority: int
        parent_id: UUID | None
        to_role: str | None
        state: str
        blocked_reason: str | None
        archived: bool
        holder_session: UUID | None
        holder_agent: str | None
        fence: int  # the last fence handed out (0: never claimed)

    class WorkItemCreated(LedgerAggregate.Created):
        project: str
        kind: str
        title: str
        description: str | None
        priority: int
        parent_id: UUID | None
        to_role: str | None

        def apply(self, aggregate: Any) -> None:
            for name in (
                "project",
                "kind",
                "title",
                "description",
                "priority",
                "parent_id",
                "to_role",
            ):
                setattr(aggregate, name, getattr(self, name))
            aggregate.state = WorkStatus.OPEN.value
            aggregate.blocked_reason = None
            aggregate.archived = False
            aggregate.holder_session = None
            aggregate.holder_agent = None
            aggregate.fence = 0

    class StatusChanged(LedgerAggregate.Event):
        from_status: str
        to_status: str
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.state = self.to_status
            aggregate.blocked_reason = self.reason if self.to_status == "blocked" else None

    class WorkItemClaimed(LedgerAggregate.Event):
        session_id: UUID
        agent_id: str
        fence: int

        def apply(self, aggregate: Any) -> None:
            aggregate.holder_session = self.session_id
            aggregate.holder_agent = self.agent_id
            aggregate.fence = self.fence

    class ClaimReleased(LedgerAggregate.Event):
        fence: int
        reason: str

        def apply(self, aggregate: Any) -> None:
            aggregate.holder_session = None
            aggregate.holder_agent = None

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
    ) -> WorkItem:
        if kind not in KINDS:
            raise InvalidValue(f"kind must be one of {', '.join(KINDS)}", field="kind")
        if not title.strip():
            raise InvalidValue("title must not be empty", field="title")
        return cls._begin(
            cls.WorkItemCreated,
            ctx,
            uuid4(),
            project=project,
            kind=kind,
            title=clean_text(title, "title", 300),
            description=clean_optional_text(description, "description", 10_000),
            priority=priority,
            parent_id=parent_id,
            to_role=to_role,
        )

    @property
    def status(self) -> WorkStatus:
        return WorkStatus(self.state)

    def transition(self, ctx: EventContext, to: str, reason: str | None = None) -> None:
        try:
            target = WorkStatus(to)
        except ValueError:
            raise InvalidValue(f"unknown status '{to}'", field="to") from None
        allowed = ALLOWED_TRANSITIONS[self.status]
        if target not in allowed:
            raise InvalidTransition(self.state, f"move to {to}", tuple(s.value for s in allowed))
        if target is WorkStatus.BLOCKED and not (reason and reason.strip()):
            raise InvalidValue("blocking needs a reason (what the item waits for)", field="reason")
        self._record(
            self.StatusChanged,
            ctx,
            from_status=self.state,
            to_status=target.value,
            reason=clean_optional_text(reason, "reason", 1000),
        )

    def claim(self, ctx: EventContext, session_id: UUID, agent_id: str, holder_alive: bool) -> int:
        """Claim for `session_id`; returns the new fence. A live holder keeps the item."""
        if self.archived:
            raise DomainError("an archived item cannot be claimed")
        if self.holder_session is not None and holder_alive:
            if self.holder_session == session_id:
                return self.fence  # claiming again with the same session changes nothing
            raise AlreadyClaimed(self.holder_session, self.holder_agent or "?")
        fence = self.fence + 1
        self._record(
            self.WorkItemClaimed, ctx, session_id=session_id, agent_id=agent_id, fence=fence
        )
        return fence

    def release(self, ctx: EventContext, reason: str) -> bool:
        if self.holder_session is None:
            return False
        self._record(self.ClaimReleased, ctx, fence=self.fence, reason=reason)
        return True

    def check_fence(self, presented: int | None) -> None:
        """A holder's write must present the current claim's fence."""
        current = self.fence if self.holder_session is not None else None
        if presented is None or current is None or presented != current:
            raise ClaimLost(presented, current)
