"""Request and response shapes of the work-item and status endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BeforeValidator, ConfigDict, Field

from agentledger.application.item_status import ItemStatus
from agentledger.application.status import SessionSummary, StatusReport
from agentledger.application.work_items import (
    INCLUDES,
    Claim,
    Dependencies,
    WorkItemView,
)
from agentledger.domain.metadata import MAX_KEYS
from agentledger.domain.readiness import Readiness
from agentledger.domain.work_items import MAX_PRIORITY, MIN_PRIORITY
from agentledger.interfaces.http.approval_schemas import ApprovalOut
from agentledger.interfaces.http.schemas import (
    NON_BLANK_TEXT_PATTERN,
    AgentId,
    CursorToken,
    EntryOut,
    Integer,
    Kind,
    LooseUUID,
    MetadataKey,
    ProjectRef,
    Query,
    RoleName,
    Strict,
    TraceId,
    metadata_schema,
    response_model,
    text,
)

StatusName = Literal["open", "in_progress", "in_review", "done", "blocked", "cancelled"]
IncludePart = Literal[INCLUDES]  # type: ignore[valid-type]


def _comma_separated(value: object) -> object:
    """`include=children,claim` arrives as one string: its parts, blanks dropped."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


# Known kinds take structured values (`domain.work_item_metadata`), checked there.
ItemMetadata = Annotated[dict[MetadataKey, Any], Field(max_length=MAX_KEYS), metadata_schema({})]


# --- requests --------------------------------------------------------------------------------


class CreateWorkItem(Strict):
    project: ProjectRef
    kind: Kind
    title: str = text(300, required=True)
    description: str | None = text(10_000)
    priority: Integer = Field(
        default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="Higher first."
    )
    parent_id: LooseUUID | None = Field(default=None, description="At most 5 levels below a root.")
    to_role: RoleName | None = Field(
        default=None, description="Route the item to agents of a role."
    )
    metadata: ItemMetadata = Field(
        default_factory=dict, description="Checked per kind; other kinds: a flat object."
    )


class PatchWorkItem(Strict):
    """Only the fields sent change; `metadata` is a JSON merge patch (null removes a key)."""

    title: str | None = Field(
        default=None, min_length=1, max_length=300, pattern=NON_BLANK_TEXT_PATTERN
    )
    description: str | None = text(10_000)
    priority: Integer | None = Field(default=None, ge=MIN_PRIORITY, le=MAX_PRIORITY)
    parent_id: LooseUUID | None = Field(default=None, description="null makes the item a root.")
    to_role: RoleName | None = None
    metadata: ItemMetadata | None = None


class Transition(Strict):
    # Blocking says what the item waits for (`WorkItem.transition`): the document says so too.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"to": {"const": "blocked"}}, "required": ["to"]},
            "then": {
                "required": ["reason"],
                "properties": {"reason": {"type": "string", "pattern": NON_BLANK_TEXT_PATTERN}},
            },
        }
    )

    to: StatusName
    reason: str | None = text(1000)


class ClaimBody(Strict):
    session_id: LooseUUID = Field(description="An active session of the claiming agent.")


class ClaimNextBody(Strict):
    session_id: LooseUUID
    project: ProjectRef | None = None
    kind: Kind | None = None
    to_role: RoleName | None = None


class ListWorkItemsQuery(Query):
    project: ProjectRef | None = None
    kind: Kind | None = None
    status: StatusName | None = None
    parent_id: UUID | None = None
    assignee: AgentId | None = Field(default=None, description="Agent holding the claim.")
    to_role: RoleName | None = None
    archived: bool | None = None
    trace_id: TraceId | None = Field(
        default=None, description="Items created by the request of this trace id."
    )
    limit: int = Field(default=50, ge=1, le=500)
    cursor: CursorToken | None = None


class ReadyQuery(Query):
    session_id: UUID | None = Field(
        default=None, description="The queue as this session would claim from it (its role)."
    )
    project: ProjectRef | None = None
    kind: Kind | None = None
    to_role: RoleName | None = None
    limit: int = Field(default=50, ge=1, le=500)


class GetWorkItemQuery(Query):
    include: Annotated[list[IncludePart], BeforeValidator(_comma_separated)] = Field(
        default_factory=list, description=f"Comma-separated: {', '.join(INCLUDES)}"
    )

    def parts(self) -> frozenset[str]:
        return frozenset(self.include)


# --- responses -------------------------------------------------------------------------------


ClaimOut = response_model(
    "ClaimOut",
    Claim,
    described={
        "fence": "Send as AgentLedger-Fence with every write you make.",
        "expires_at": "The holder's lease end: heartbeats extend it.",
    },
)
_WorkItemFields = response_model(
    "WorkItemFields",
    WorkItemView,
    described={
        "assignee": "The agent holding a live claim.",
        "depth": "Levels below its root (reads only).",
        "claim": "On writes, and with include=claim.",
    },
    types={"claim": ClaimOut | None},
)


class WorkItemOut(_WorkItemFields):
    @classmethod
    def of(cls, value: object, with_claim: bool = True) -> WorkItemOut:
        item = cls.model_validate(value, from_attributes=True)
        if not with_claim:  # lists leave claims out (`include=claim` asks for one)
            item.claim = None
        return item


class WorkItemWritten(WorkItemOut):
    position: int


class WorkItemDetail(WorkItemOut):
    ancestors: list[WorkItemOut] | None = Field(default=None, description="Root first.")
    children: list[WorkItemOut] | None = None
    descendants: list[WorkItemOut] | None = None
    dependencies: list[WorkItemOut] | None = None
    dependents: list[WorkItemOut] | None = None
    approvals: list[ApprovalOut] = Field(
        description="Every approval requested for the item, oldest first, with its decision."
    )
    entries: list[EntryOut] = Field(
        description="The latest progress entries reporting on the item (work_item_id), "
        "newest first (at most 10)."
    )

    @classmethod
    def of_status(cls, status: ItemStatus, include: frozenset[str]) -> WorkItemDetail:
        detail = status.detail
        item = WorkItemOut.of(detail.item, with_claim="claim" in include)

        def many(views: list[WorkItemView] | None) -> list[WorkItemOut] | None:
            return None if views is None else [WorkItemOut.of(v, with_claim=False) for v in views]

        return cls(
            **item.model_dump(),
            ancestors=many(detail.ancestors),
            children=many(detail.children),
            descendants=many(detail.descendants),
            dependencies=many(detail.dependencies),
            dependents=many(detail.dependents),
            approvals=[ApprovalOut.of(a) for a in status.approvals],
            entries=[EntryOut.of(e) for e in status.entries],
        )


class WorkItemPage(Strict):
    items: list[WorkItemOut]
    next_cursor: str | None
    position: int


class ReadyOut(Strict):
    items: list[WorkItemOut] = Field(description="Best first: higher priority, then older.")
    position: int


class ReasonOut(Strict):
    code: Literal["status", "archived", "project_archived", "claimed_by", "blocked_by"]
    status: str | None = None
    agent_id: str | None = None
    item_id: UUID | None = None


class ReadinessOut(Strict):
    item_id: UUID
    ready: bool
    reasons: list[ReasonOut]
    position: int

    @classmethod
    def of(cls, item_id: UUID, readiness: Readiness, position: int) -> ReadinessOut:
        reasons = [ReasonOut(**vars(r)) for r in readiness.reasons]
        return cls(item_id=item_id, ready=readiness.ready, reasons=reasons, position=position)


class DependenciesOut(Strict):
    item_id: UUID
    depends_on: list[UUID]
    position: int

    @classmethod
    def of(cls, dependencies: Dependencies, position: int) -> DependenciesOut:
        return cls(
            item_id=dependencies.item_id, depends_on=dependencies.depends_on, position=position
        )


SessionSummaryOut = response_model(
    "SessionSummaryOut",
    SessionSummary,
    described={"holds": "Live claims on this project's items."},
)


class StatusOut(Strict):
    project: str
    generated_at: datetime
    total: int
    by_status: dict[str, int]
    by_kind: dict[str, int]
    in_progress: list[WorkItemOut]
    blocked: list[WorkItemOut]
    ready: list[WorkItemOut]
    recently_done: list[WorkItemOut]
    active_sessions: list[SessionSummaryOut]
    position: int

    @classmethod
    def of(cls, report: StatusReport, position: int) -> StatusOut:
        def items(views: list[WorkItemView]) -> list[WorkItemOut]:
            return [WorkItemOut.of(v) for v in views]

        return cls(
            project=report.project,
            generated_at=report.generated_at,
            total=report.total,
            by_status=report.by_status,
            by_kind=report.by_kind,
            in_progress=items(report.in_progress),
            blocked=items(report.blocked),
            ready=items(report.ready),
            recently_done=items(report.recently_done),
            active_sessions=[SessionSummaryOut.of(s) for s in report.active_sessions],
            position=position,
        )
