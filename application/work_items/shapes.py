"""The shapes work-item use cases take and give: a new item, an item as callers see it (from
the read model or from the aggregate just written), and the answers built around items."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.readmodels import WorkItemRow
from agentledger.application.shapes import by_name
from agentledger.domain.readiness import Readiness
from agentledger.domain.work_items import WorkItem

INCLUDES = ("ancestors", "children", "descendants", "dependencies", "dependents", "claim")


@dataclass(frozen=True)
class Claim:
    session_id: UUID
    agent_id: str
    fence: int
    expires_at: datetime | None  # the holder's lease end as last known
    live: bool


@dataclass(frozen=True)
class WorkItemView:
    """An item as callers see it, from its read-model row or its aggregate: fields of the
    same name are copied (`by_name`); the claim and its assignee are computed."""

    id: UUID
    project: str
    kind: str
    title: str
    description: str | None
    priority: int
    parent_id: UUID | None
    to_role: str | None
    metadata: dict[str, Any]
    status: str
    blocked_reason: str | None
    archived: bool
    assignee: str | None  # the agent holding a live claim
    version: int
    created_at: datetime
    updated_at: datetime
    trace_id: str  # the trace of the request that created it
    depth: int | None = None  # known on reads (from the read model's materialised path)
    finished_at: datetime | None = None
    claim: Claim | None = None
    offered_to: str | None = None  # an open handoff offer: the agent it goes to, and until
    offer_expires_at: datetime | None = None
    parked_on: UUID | None = None  # a parked claim: the approval it waits on

    @classmethod
    def of_row(cls, row: WorkItemRow, now: datetime) -> WorkItemView:
        holder = row.live_holder(now)
        claim = None
        if row.holder_session is not None and row.holder_agent is not None:
            live = holder is not None
            claim = Claim(
                row.holder_session, row.holder_agent, row.fence, row.claim_expires_at, live
            )
        return by_name(cls, row, assignee=holder, claim=claim)

    @classmethod
    def of_aggregate(cls, item: WorkItem, holder_lease: datetime | None) -> WorkItemView:
        """`holder_lease`: the holder's lease end while it is live (None otherwise)."""
        claim = None
        if item.holder_session is not None and item.holder_agent is not None:
            live = holder_lease is not None
            claim = Claim(item.holder_session, item.holder_agent, item.fence, holder_lease, live)
        assignee = item.holder_agent if holder_lease is not None else None
        return by_name(cls, item, status=item.state, assignee=assignee, claim=claim)


@dataclass(frozen=True)
class NewWorkItem:
    project: str
    kind: str
    title: str
    description: str | None = None
    priority: int = 0
    parent_id: UUID | None = None
    to_role: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemDetail:
    """One item and what `include=` asked for around it."""

    item: WorkItemView
    ancestors: list[WorkItemView] | None = None
    children: list[WorkItemView] | None = None
    descendants: list[WorkItemView] | None = None
    dependencies: list[WorkItemView] | None = None
    dependents: list[WorkItemView] | None = None


@dataclass(frozen=True)
class ItemReadiness:
    item_id: UUID
    readiness: Readiness


@dataclass(frozen=True)
class Dependencies:
    """An item's dependencies after an edit. `version` is the item's own: the version an
    edit's `If-Match` names, which dependency edits leave as it is (they change the plan)."""

    item_id: UUID
    depends_on: list[UUID]
    changed: bool
    version: int
