"""The shapes work-item use cases take and give: a new item, an item as callers see it (from
the read model or from the aggregate just written), and the answers built around items."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.readmodels import WorkItemRow
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
    claim: Claim | None
    version: int
    created_at: datetime
    updated_at: datetime
    depth: int | None = None  # known on reads (from the read model's materialised path)
    finished_at: datetime | None = None

    @classmethod
    def of_row(cls, row: WorkItemRow, now: datetime) -> WorkItemView:
        claim = None
        if row.holder_session is not None and row.holder_agent is not None:
            live = row.live_holder(now) is not None
            claim = Claim(
                row.holder_session, row.holder_agent, row.fence, row.claim_expires_at, live
            )
        return cls(
            id=row.id,
            project=row.project,
            kind=row.kind,
            title=row.title,
            description=row.description,
            priority=row.priority,
            parent_id=row.parent_id,
            to_role=row.to_role,
            metadata=row.metadata,
            status=row.status,
            blocked_reason=row.blocked_reason,
            archived=row.archived,
            assignee=row.live_holder(now),
            claim=claim,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            depth=row.depth,
            finished_at=row.finished_at,
        )

    @classmethod
    def of_aggregate(cls, item: WorkItem, holder_lease: datetime | None) -> WorkItemView:
        """`holder_lease`: the holder's lease end while it is live (None otherwise)."""
        claim = None
        if item.holder_session is not None and item.holder_agent is not None:
            live = holder_lease is not None
            claim = Claim(item.holder_session, item.holder_agent, item.fence, holder_lease, live)
        return cls(
            id=item.id,
            project=item.project,
            kind=item.kind,
            title=item.title,
            description=item.description,
            priority=item.priority,
            parent_id=item.parent_id,
            to_role=item.to_role,
            metadata=item.metadata,
            status=item.state,
            blocked_reason=item.blocked_reason,
            archived=item.archived,
            assignee=item.holder_agent if holder_lease is not None else None,
            claim=claim,
            version=item.version,
            created_at=item.created_on,
            updated_at=item.modified_on,
            finished_at=item.finished_at,
        )


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
