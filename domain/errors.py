"""Rule violations the domain refuses. Each names what the client got wrong."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:  # readiness imports the work items, which import these errors
    from agentledger.domain.readiness import Reason


class DomainError(Exception):
    """A command the current state does not allow."""


class InvalidValue(DomainError):
    """A value outside what the domain accepts (e.g. a malformed metadata object)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(DomainError):
    """A lifecycle move not allowed from the current state."""

    def __init__(self, current: str, attempted: str, allowed: tuple[str, ...]) -> None:
        self.current = current
        self.attempted = attempted
        self.allowed = allowed
        super().__init__(
            f"cannot {attempted} from status '{current}'"
            + (f"; allowed from here: {', '.join(allowed)}" if allowed else "")
        )


class SessionTerminated(InvalidTransition):
    """The session has ended (completed, failed or expired); terminal states are final."""


class LeaseLapsed(DomainError):
    """The session's lease has run out: it can no longer act, even before expiry is recorded."""

    def __init__(self, session_id: str, expired_at: str) -> None:
        self.session_id = session_id
        self.expired_at = expired_at
        super().__init__(f"session {session_id} lease lapsed at {expired_at}")


class SessionNotActive(DomainError):
    """The session exists and is live but has not been activated (it is pending)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"session {session_id} is pending: activate it first")


class SessionNotOwned(DomainError):
    """The session belongs to another agent."""

    def __init__(self, session_id: str, owner: str, agent_id: str) -> None:
        self.session_id = session_id
        self.owner = owner
        super().__init__(f"session {session_id} belongs to agent '{owner}', not '{agent_id}'")


class TokenRevoked(DomainError):
    """The access token has been revoked."""


class ProjectArchived(DomainError):
    """The project is archived: it takes no new entries and no selections."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"project '{name}' is archived")


class DependencyCycle(DomainError):
    def __init__(self, path: list[UUID]) -> None:
        self.path = path
        super().__init__("the edge would close a cycle: " + " -> ".join(map(str, path)))


class DepthExceeded(DomainError):
    def __init__(self, depth: int, max_depth: int) -> None:
        self.depth = depth
        self.max_depth = max_depth
        super().__init__(f"the item would sit {depth} levels below its root; at most {max_depth}")


class AlreadyClaimed(DomainError):
    def __init__(self, holder_session: UUID, holder_agent: str, expires_at: datetime) -> None:
        self.holder_session = holder_session
        self.holder_agent = holder_agent
        self.expires_at = expires_at
        super().__init__(
            f"claimed by agent '{holder_agent}' (session {holder_session}) "
            f"until its lease ends ({expires_at.isoformat()}) unless renewed"
        )


class ItemArchived(DomainError):
    def __init__(self, item_id: UUID) -> None:
        self.item_id = item_id
        super().__init__(f"work item {item_id} is archived; unarchive it first")


class ClaimLost(DomainError):
    """The writer's fence is not the current claim's: its claim was lost or superseded."""

    def __init__(self, presented: int | None, current: int | None) -> None:
        self.presented = presented
        self.current = current
        now = "the item has no live claim" if current is None else f"the current fence is {current}"
        shown = "no fence" if presented is None else f"fence {presented}"
        super().__init__(f"{shown} does not hold the claim: {now}")


class FenceRequired(DomainError):
    """The caller holds the item's claim but did not present its fence."""

    def __init__(self, item_id: str, fence: int) -> None:
        self.item_id = item_id
        self.fence = fence
        super().__init__(
            f"you hold work item {item_id}: present your claim's fence (AgentLedger-Fence)"
        )


class CrossProject(DomainError):
    """Parents and dependencies link items of one project only."""

    def __init__(self, link: str, item_project: str, other_project: str) -> None:
        super().__init__(
            f"a {link} must be in the same project ('{item_project}' and '{other_project}' differ)"
        )


class NotReady(DomainError):
    """Only a ready item may be claimed this way (claim-next), and this one is not: someone
    else won it since the queue was read, or a dependency moved back. claim-next moves on to
    its next candidate; the reasons say why this one was passed over."""

    def __init__(self, item_id: UUID, reasons: tuple[Reason, ...]) -> None:
        self.item_id = item_id
        self.reasons = reasons
        super().__init__(f"work item {item_id} is not ready: {', '.join(map(str, reasons))}")


class SelfApproval(DomainError):
    """Separation of duties: whoever requested an approval cannot decide it."""

    def __init__(self, approval_id: str, requester: str) -> None:
        self.approval_id = approval_id
        self.requester = requester
        super().__init__(
            f"{requester} requested approval {approval_id} and so cannot decide it: "
            "another principal holding the approver role must"
        )


class ApprovalAlreadyDecided(DomainError):
    def __init__(self, approval_id: str, decision: str, decided_by: str) -> None:
        self.approval_id = approval_id
        self.decision = decision
        self.decided_by = decided_by
        super().__init__(f"approval {approval_id} was already {decision} by {decided_by}")


class ApprovalExpired(DomainError):
    def __init__(self, approval_id: str, expired_at: datetime) -> None:
        self.approval_id = approval_id
        self.expired_at = expired_at
        super().__init__(
            f"approval {approval_id} expired at {expired_at.isoformat()} undecided; "
            "request a new one"
        )


class ApprovalRequired(DomainError):
    """The item waits for approvals that are not (yet) given: (id, role, status) of each."""

    def __init__(self, approvals: list[tuple[str, str, str]]) -> None:
        self.approvals = approvals
        named = ", ".join(f"{role} ({status}, {i})" for i, role, status in approvals)
        super().__init__(f"the work item cannot be done before its approvals: {named}")


class RoleRequired(DomainError):
    """A work item routed to a role is taken only by a session acting in that role."""

    def __init__(self, item_id: str, to_role: str, session_role: str | None) -> None:
        self.item_id = item_id
        self.to_role = to_role
        self.session_role = session_role
        acting = f"acts in role '{session_role}'" if session_role else "acts in no role"
        super().__init__(
            f"work item {item_id} is routed to role '{to_role}'; the session {acting}: "
            f'start a session with "role": "{to_role}" (the token needs worker:{to_role})'
        )


class HandoffPending(DomainError):
    """The item is offered to another agent: until the offer is accepted, declined or expires
    nobody writes or claims it (the offering holder included)."""

    def __init__(self, item_id: UUID, to_agent: str, expires_at: datetime) -> None:
        self.item_id = item_id
        self.to_agent = to_agent
        self.expires_at = expires_at
        super().__init__(
            f"work item {item_id} is offered to agent '{to_agent}' until "
            f"{expires_at.isoformat()}: it accepts or declines, or the offer expires"
        )


class NoHandoffOffered(DomainError):
    """Accepting or declining an offer that is not there (never made, taken, or expired)."""

    def __init__(self, item_id: UUID, why: str) -> None:
        self.item_id = item_id
        super().__init__(f"work item {item_id} has no open handoff offer: {why}")


class HandoffForAnother(DomainError):
    """Only the agent an offer names may accept or decline it."""

    def __init__(self, item_id: UUID, to_agent: str, agent_id: str | None) -> None:
        self.to_agent = to_agent
        super().__init__(
            f"work item {item_id} is offered to agent '{to_agent}', not to "
            f"{repr(agent_id) if agent_id else 'you'}"
        )


class ClaimParked(DomainError):
    """The claim is parked while the item waits on a person: only a session of its agent (or
    the named successor) resumes it, once the approval is decided or has expired."""

    def __init__(self, item_id: UUID, agent_id: str, successor: str | None) -> None:
        self.item_id = item_id
        self.agent_id = agent_id
        self.successor = successor
        also = f" or its successor '{successor}'" if successor else ""
        super().__init__(
            f"work item {item_id} is parked by agent '{agent_id}': only a session of it{also} "
            "resumes the claim"
        )


class ApprovalPending(DomainError):
    """A parked claim resumes once its approval is decided or has expired, not before."""

    def __init__(self, approval_id: UUID) -> None:
        self.approval_id = approval_id
        super().__init__(f"approval {approval_id} is still pending: the claim stays parked")


class NoPendingApproval(DomainError):
    """Only an item waiting on a pending approval may have its claim parked."""

    def __init__(self, item_id: UUID, why: str) -> None:
        self.item_id = item_id
        super().__init__(f"work item {item_id} cannot be parked: {why}")


class HandoverIncomplete(DomainError):
    """A handoff names a handover document that failed its validation."""

    def __init__(self, handover_id: UUID, failed: list[str]) -> None:
        self.handover_id = handover_id
        self.failed = failed
        super().__init__(
            f"handover {handover_id} failed validation ({', '.join(failed)}): "
            "revise it before handing work over with it"
        )
