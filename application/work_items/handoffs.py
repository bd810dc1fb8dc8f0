"""Passing a claim from one agent to another without letting it go: the two-step handoff
(offer, then accept, decline or expiry), and parking a claim while a person decides (it
outlives the session, and only its agent or the named successor resumes it).

Each step is an event on the item naming who handed what to whom and why; the sweeper records
offers past their time and releases parked claims nobody resumed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, Decision, Outcome, UnitOfWork
from agentledger.application.context import SYSTEM_SWEEPER, RequestContext
from agentledger.application.preconditions import Precondition, check
from agentledger.application.readmodels import WorkItemsReader
from agentledger.application.work_items.facts import (
    holder_of,
    park_stands,
    parked_approval,
    writer,
)
from agentledger.application.work_items.shapes import WorkItemView
from agentledger.domain.approvals import Approval, ApprovalStatus
from agentledger.domain.claims import (
    Caller,
    check_claimant,
    check_parkable,
    check_resumable,
    check_write,
    live_lease,
    parked_live,
)
from agentledger.domain.errors import (
    ClaimLost,
    FenceRequired,
    HandoffForAnother,
    HandoverIncomplete,
    InvalidValue,
    NoHandoffOffered,
    NoPendingApproval,
)
from agentledger.domain.events import EventContext
from agentledger.domain.handovers import Handover
from agentledger.domain.names import validate_agent_id
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem

DEFAULT_OFFER_SECONDS = 3600
OFFER_SECONDS = (60, 7 * 24 * 3600)
DEFAULT_PARK_GRACE_SECONDS = 3600
PARK_GRACE_SECONDS = (60, 7 * 24 * 3600)
SWEEP_LIMIT = 100  # offers and parked claims the sweeper looks at per pass


class WorkItemHandoffs:
    def __init__(self, commands: CommandRunner, reader: WorkItemsReader, clock: Clock) -> None:
        self._commands = commands
        self._reader = reader
        self._clock = clock

    def offer(
        self,
        request: RequestContext,
        item_id: UUID,
        to_agent: str,
        *,
        fence: int | None,
        handover_id: UUID | None = None,
        expires_in_seconds: int | None = None,
        reason: str | None = None,
        precondition: Precondition | None = None,
    ) -> Outcome[WorkItemView]:
        """The holder, presenting its fence, offers the claim to `to_agent` (with a handover
        document that passed its checks, if it names one)."""
        caller = writer(request.principal)
        to_agent = validate_agent_id(to_agent)
        seconds = _bounded(expires_in_seconds, DEFAULT_OFFER_SECONDS, OFFER_SECONDS, "offer")

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            item = uow.get(WorkItem, item_id, "work item")
            lease = _held_under_fence(uow, item, caller, fence, ctx)
            check(precondition, item.version)
            if handover_id is not None:
                handover = uow.get(Handover, handover_id, "handover")
                if not handover.passed:
                    raise HandoverIncomplete(handover.id, handover.failed_rules())
            expires_at = ctx.occurred_at + timedelta(seconds=seconds)
            item.offer(ctx, to_agent, expires_at, handover_id, reason)
            return WorkItemView.of_aggregate(item, lease)

        return self._commands.run(request, "work_items.handoff", decide)

    def accept(
        self, request: RequestContext, item_id: UUID, session_id: UUID
    ) -> Outcome[WorkItemView]:
        """A session of the agent the offer names takes the claim, with a new fence."""
        caller = writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            item = uow.get(WorkItem, item_id, "work item")
            session = uow.get(AgentSession, session_id, "session")
            check_claimant(session, caller, ctx.occurred_at)
            item.accept_offer(ctx, session.id, session.agent_id, session.lease_expires_at)
            return WorkItemView.of_aggregate(item, session.lease_expires_at)

        return self._commands.run(request, "work_items.handoff_accept", decide, session=session_id)

    def decline(
        self, request: RequestContext, item_id: UUID, reason: str | None = None
    ) -> Outcome[WorkItemView]:
        """The agent the offer names declines it (or the offerer withdraws it): the claim
        stays the offerer's, or is released if the offerer's lease has lapsed."""
        caller = writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            item = uow.get(WorkItem, item_id, "work item")
            if item.offered_to is None:
                raise NoHandoffOffered(item.id, "none was made, or it was taken or declined")
            party = caller.agent_id in (item.offered_to, item.holder_agent)
            if not (party or caller.may_act_for_others):
                raise HandoffForAnother(item.id, item.offered_to, caller.agent_id)
            lease = live_lease(item, holder_of(uow, item), ctx.occurred_at)
            item.decline_offer(ctx, ctx.actor, reason, offerer_alive=lease is not None)
            return WorkItemView.of_aggregate(item, lease if item.holder_session else None)

        return self._commands.run(request, "work_items.handoff_decline", decide)

    def park(
        self,
        request: RequestContext,
        item_id: UUID,
        *,
        fence: int | None,
        approval_id: UUID | None = None,
        successor: str | None = None,
        grace_seconds: int | None = None,
        precondition: Precondition | None = None,
    ) -> Outcome[WorkItemView]:
        """The holder, presenting its fence, parks the claim on a pending approval of the item
        (the only pending one, unless it names one)."""
        caller = writer(request.principal)
        grace = _bounded(grace_seconds, DEFAULT_PARK_GRACE_SECONDS, PARK_GRACE_SECONDS, "grace")
        heir = None if successor is None else validate_agent_id(successor)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            item = uow.get(WorkItem, item_id, "work item")
            lease = _held_under_fence(uow, item, caller, fence, ctx)
            check(precondition, item.version)
            approval = _approval_to_park_on(uow, item, approval_id, ctx)
            check_parkable(item, approval, ctx.occurred_at)
            item.park(ctx, approval.id, heir, grace)
            return WorkItemView.of_aggregate(item, lease)

        return self._commands.run(request, "work_items.park", decide)

    def resume(
        self, request: RequestContext, item_id: UUID, session_id: UUID
    ) -> Outcome[WorkItemView]:
        """A session of the parking agent (or its successor) takes the claim back, with a new
        fence, once the approval is decided or has expired."""
        caller = writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            item = uow.get(WorkItem, item_id, "work item")
            session = uow.get(AgentSession, session_id, "session")
            approval = parked_approval(uow, item)
            check_resumable(item, session, caller, approval, ctx.occurred_at)
            item.resume(ctx, session.id, session.agent_id, session.lease_expires_at)
            return WorkItemView.of_aggregate(item, session.lease_expires_at)

        return self._commands.run(request, "work_items.resume", decide, session=session_id)

    def sweep_claims(self, request: RequestContext | None = None) -> int:
        """Record offers past their time and release parked claims whose grace has run out,
        as the sweeper (or an operator); returns how many items it changed."""
        now = self._clock.now()
        request = request or RequestContext(SYSTEM_SWEEPER, f"sweep-claims-{now.timestamp()}")
        changed = 0
        for item_id in self._reader.offers_expired(now, SWEEP_LIMIT):
            changed += self._commands.run(
                request, "work_items.expire_offer", _expire(item_id)
            ).value
        for item_id in self._reader.parked(SWEEP_LIMIT):
            outcome = self._commands.run(request, "work_items.release_parked", _lapse(item_id))
            changed += outcome.value
        return changed


def _held_under_fence(
    uow: UnitOfWork, item: WorkItem, caller: Caller, fence: int | None, ctx: EventContext
) -> datetime:
    """The live claim's lease end, when the caller writes under the claim's fence (only the
    holder, or a coordinator presenting it, hands over or parks a claim)."""
    if fence is None:
        raise FenceRequired(str(item.id), item.fence)
    now = ctx.occurred_at
    lease = check_write(
        item, caller, fence, holder_of(uow, item), now, parked=park_stands(uow, item, now)
    )
    if lease is None:
        raise ClaimLost(fence, None)
    return lease


def _approval_to_park_on(
    uow: UnitOfWork, item: WorkItem, approval_id: UUID | None, ctx: EventContext
) -> Approval:
    if approval_id is not None:
        return uow.get(Approval, approval_id, "approval")
    pending = [
        a
        for a in (uow.get(Approval, i, "approval") for i in item.approval_ids)
        if a.status_at(ctx.occurred_at) is ApprovalStatus.PENDING
    ]
    if not pending:
        raise NoPendingApproval(item.id, "it waits on no pending approval")
    if len(pending) > 1:
        raise InvalidValue("the item waits on several approvals: name one", "approval_id")
    return pending[0]


def _expire(item_id: UUID) -> Decision[int]:
    def decide(uow: UnitOfWork, ctx: EventContext) -> int:
        item = uow.get(WorkItem, item_id, "work item")
        alive = live_lease(item, holder_of(uow, item), ctx.occurred_at) is not None
        return int(item.expire_offer(ctx, offerer_alive=alive))

    return decide


def _lapse(item_id: UUID) -> Decision[int]:
    def decide(uow: UnitOfWork, ctx: EventContext) -> int:
        item = uow.get(WorkItem, item_id, "work item")
        approval = parked_approval(uow, item)
        if item.parked_on is None or parked_live(item, approval, ctx.occurred_at):
            return 0
        return int(item.release(ctx, "parked claim not resumed within its grace period"))

    return decide


def _bounded(value: int | None, default: int, bounds: tuple[int, int], what: str) -> int:
    if value is None:
        return default
    low, high = bounds
    if not low <= value <= high:
        field = "expires_in_seconds" if what == "offer" else "grace_seconds"
        raise InvalidValue(f"{field} must be {low}-{high}", field)
    return value
