"""Who may claim a work item, and who may write one that is claimed: the rules, over plain facts.

The application loads what a rule needs (the item, the claiming session, the session the item
names as its holder, whether the project is archived, the statuses of the item's dependencies)
and asks once; nothing here reads storage or the clock. A claim lives as long as its holder's
session lease: a holder whose session ended or whose lease ran out holds nothing any more,
although the item names it until the release lands.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from agentledger.domain.approvals import Approval, ApprovalStatus
from agentledger.domain.errors import (
    AlreadyClaimed,
    ApprovalPending,
    ClaimParked,
    FenceRequired,
    NoPendingApproval,
    NotReady,
    ProjectArchived,
    RoleRequired,
)
from agentledger.domain.events import EventContext
from agentledger.domain.readiness import readiness
from agentledger.domain.sessions import AgentSession, SessionStatus
from agentledger.domain.work_items import WorkItem


@dataclass(frozen=True)
class Caller:
    """Who asks: the principal's name, the agent it is (None for people and systems), and
    whether it may act for other agents (coordinators may)."""

    name: str
    agent_id: str | None
    may_act_for_others: bool

    def holds(self, item: WorkItem) -> bool:
        return item.holder_agent is not None and self.agent_id == item.holder_agent


def live_lease(item: WorkItem, holder: AgentSession | None, now: datetime) -> datetime | None:
    """The lease end of the item's holder while its session is active and unexpired (None
    when the item is unclaimed, or its holder is gone). `holder` is the session the item
    names, as loaded (None if it could not be found). A parked claim is no session's: it
    lives by its approval (`parked_until`), and no fence writes it until it is resumed."""
    if holder is None or item.holder_session is None or holder.id != item.holder_session:
        return None
    if item.parked_on is not None:
        return None
    if holder.effective_status(now) is not SessionStatus.ACTIVE:
        return None
    return holder.lease_expires_at


def parked_until(approval: Approval, grace_seconds: int) -> datetime | None:
    """When a claim parked on `approval` lapses: `grace_seconds` after the approval is decided
    or expires; None while it is pending with no expiry (parked until someone decides)."""
    if approval.decided_at is not None:
        return approval.decided_at + timedelta(seconds=grace_seconds)
    if approval.expires_at is not None:
        return approval.expires_at + timedelta(seconds=grace_seconds)
    return None


def parked_live(item: WorkItem, approval: Approval | None, now: datetime) -> bool:
    """Whether the item's parked claim still stands at `now` (False if it is not parked)."""
    if item.parked_on is None or approval is None or item.holder_session is None:
        return False
    until = parked_until(approval, item.parked_grace_seconds)
    return until is None or now < until


def check_parkable(item: WorkItem, approval: Approval, now: datetime) -> None:
    """A claim is parked only on a pending approval of the item, the one it waits for."""
    if approval.work_item_id != item.id or str(approval.id) not in item.approvals.values():
        raise NoPendingApproval(item.id, f"approval {approval.id} is not one it waits for")
    status = approval.status_at(now)
    if status is not ApprovalStatus.PENDING:
        raise NoPendingApproval(item.id, f"approval {approval.id} is {status.value}")


def check_resumable(
    item: WorkItem, session: AgentSession, caller: Caller, approval: Approval | None, now: datetime
) -> None:
    """A parked claim resumes in an active session of its agent or of the named successor,
    once the approval is no longer pending, and before the park lapses."""
    check_claimant(session, caller, now)
    if item.parked_on is None or approval is None:
        raise NoPendingApproval(item.id, "its claim is not parked")
    if not item.may_resume(session.agent_id):
        raise ClaimParked(item.id, item.holder_agent or "?", item.parked_successor)
    if approval.status_at(now) is ApprovalStatus.PENDING:
        raise ApprovalPending(approval.id)
    if not parked_live(item, approval, now):
        raise NoPendingApproval(item.id, "its parked claim lapsed (nobody resumed it in time)")


def check_write(
    item: WorkItem,
    caller: Caller,
    fence: int | None,
    holder: AgentSession | None,
    now: datetime,
    *,
    parked: bool = False,
) -> datetime | None:
    """May `caller` write `item` now? A presented fence must be the live claim's, and only its
    holder (or a coordinator) may present it. The holder must present it, even once its lease
    has lapsed (then to learn the claim is lost); another agent is told who holds the item; a
    coordinator may override without one. While the claim is offered to another agent, or
    parked (`parked`: the park still stands), only a coordinator writes. Returns the live
    claim's lease end (None if none)."""
    if not caller.may_act_for_others:
        item.ensure_not_offered(now)
        if parked:
            raise ClaimParked(item.id, item.holder_agent or "?", item.parked_successor)
    lease = live_lease(item, holder, now)
    if fence is not None:
        item.check_fence(fence, holder_alive=lease is not None)
        if caller.holds(item) or caller.may_act_for_others:
            return lease
    elif item.holder_session is None:
        return lease
    elif caller.holds(item):
        raise FenceRequired(str(item.id), item.fence)
    elif lease is None or caller.may_act_for_others:
        return lease
    if item.holder_session is not None and lease is not None:  # a live claim of another
        raise AlreadyClaimed(item.holder_session, item.holder_agent or "?", lease)
    return lease


def routed_to(to_role: str | None, session_role: str | None) -> bool:
    """Whether a session acting in `session_role` may take an item routed to `to_role`:
    an item routed to no role goes to anyone, one routed to a role only to that role."""
    return to_role is None or to_role == session_role


def check_claimant(session: AgentSession, caller: Caller, now: datetime) -> None:
    """The claiming session: active, unexpired, and the caller's own (a coordinator may use
    any agent's). Its agent becomes the holder."""
    agent_id = session.agent_id if caller.may_act_for_others else caller.agent_id
    session.ensure_active_for(agent_id or caller.name, now)


def claim(
    ctx: EventContext,
    item: WorkItem,
    session: AgentSession,
    caller: Caller,
    holder: AgentSession | None,
    *,
    project_archived: bool,
    parked: bool = False,
) -> int:
    """Claim the item named by the caller for `session`, in an open project; returns the
    fence. A live holder keeps the item (claiming again with its own session changes nothing);
    a lapsed one loses it. Undone dependencies do not stop a claim made by name; an item
    routed to a role is claimed only by a session acting in it. An offered item goes only to
    the agent named (by accepting), a parked one (`parked`: it still stands) only back to its
    agent (by resuming)."""
    check_claimant(session, caller, ctx.occurred_at)
    item.ensure_not_offered(ctx.occurred_at)
    if parked:
        raise ClaimParked(item.id, item.holder_agent or "?", item.parked_successor)
    if not routed_to(item.to_role, session.role):
        assert item.to_role is not None
        raise RoleRequired(str(item.id), item.to_role, session.role)
    if project_archived:
        raise ProjectArchived(item.project)
    return item.claim(
        ctx,
        session.id,
        session.agent_id,
        lease_expires_at=session.lease_expires_at,
        holder_lease=live_lease(item, holder, ctx.occurred_at),
    )


def claim_ready(
    ctx: EventContext,
    item: WorkItem,
    session: AgentSession,
    caller: Caller,
    holder: AgentSession | None,
    *,
    project_archived: bool,
    dependencies: Mapping[UUID, str],
    parked: bool = False,
) -> int:
    """claim-next's claim: the item only if it is ready now (`readiness`, over these facts),
    else `NotReady` and nothing is written; then as `claim`. `dependencies` maps each of the
    item's dependencies to its status."""
    lease = live_lease(item, holder, ctx.occurred_at)
    taken = lease is not None or parked or item.offer_live(ctx.occurred_at)
    verdict = readiness(
        status=item.state,
        archived=item.archived,
        claimed_by=item.holder_agent if taken else None,
        dependencies=dependencies,
        project_archived=project_archived,
    )
    if not verdict.ready:
        raise NotReady(item.id, verdict.reasons)
    return claim(ctx, item, session, caller, holder, project_archived=project_archived)
