"""What work-item commands load for the domain's rules: plain facts read from the aggregates
of one unit of work (who asks, the holder's session, the plan, the dependencies' statuses)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from agentledger.application.commands import UnitOfWork
from agentledger.application.context import Principal
from agentledger.domain.access import Role
from agentledger.domain.approvals import Approval
from agentledger.domain.claims import Caller, parked_live
from agentledger.domain.events import EventContext
from agentledger.domain.plans import ProjectPlan, plan_id
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem


def writer(principal: Principal) -> Caller:
    """The caller of a work-item write, which agents and coordinators may make (auditors
    only read)."""
    principal.require_any_role(Role.AGENT, Role.COORDINATOR)
    return Caller(principal.name, principal.agent_id, principal.may_act_for_other_agents)


def holder_of(uow: UnitOfWork, item: WorkItem) -> AgentSession | None:
    """The session the item names as its holder (None when unclaimed)."""
    if item.holder_session is None:
        return None
    return uow.find(AgentSession, item.holder_session)


def plan_for(uow: UnitOfWork, ctx: EventContext, project: str) -> ProjectPlan:
    """The project's plan, started with its first item."""
    plan = uow.find(ProjectPlan, plan_id(project))
    if plan is None:  # racing first items both start it: one save wins, the other re-runs
        plan = ProjectPlan.start(ctx, project)
        uow.add(plan)
    return plan


def dependency_ids(uow: UnitOfWork, item: WorkItem) -> list[UUID]:
    """The items `item` waits for, as its project's plan has them."""
    plan = uow.get(ProjectPlan, plan_id(item.project), "plan")
    return [UUID(d) for d in plan.dependencies.get(str(item.id), [])]


def dependency_statuses(uow: UnitOfWork, item: WorkItem) -> dict[UUID, str]:
    """The status of each item `item` waits for, from the aggregates themselves."""
    return {d: uow.get(WorkItem, d, "work item").state for d in dependency_ids(uow, item)}


def parked_approval(uow: UnitOfWork, item: WorkItem) -> Approval | None:
    """The approval the item's parked claim waits on (None when it is not parked)."""
    if item.parked_on is None:
        return None
    return uow.get(Approval, item.parked_on, "approval")


def park_stands(uow: UnitOfWork, item: WorkItem, now: datetime) -> bool:
    """Whether the item's claim is parked, and the park has not lapsed, at `now`."""
    return parked_live(item, parked_approval(uow, item), now)
