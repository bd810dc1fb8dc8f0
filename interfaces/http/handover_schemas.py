"""Request and response shapes of handover documents and of handing claims over."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from agentledger.application.handovers import HandoverView
from agentledger.application.work_items.handoffs import OFFER_SECONDS, PARK_GRACE_SECONDS
from agentledger.domain.handovers import (
    MAX_ITEM_TEXT,
    MAX_LIST,
    MAX_NOTES,
    MAX_SUMMARY,
    MAX_WORK_ITEMS,
)
from agentledger.interfaces.http.schemas import (
    TEXT_PATTERN,
    AgentId,
    CursorToken,
    Integer,
    LooseUUID,
    ProjectRef,
    Query,
    Strict,
    response_model,
    text,
)

Entry = Annotated[str, Field(max_length=MAX_ITEM_TEXT, pattern=TEXT_PATTERN)]


def _entries(description: str) -> Any:
    return Field(default_factory=list, max_length=MAX_LIST, description=description)


class WriteHandover(Strict):
    """Sections may be sent empty: the checks report what is missing rather than refusing."""

    summary: str = Field(
        default="", max_length=MAX_SUMMARY, pattern=TEXT_PATTERN, description="Mandatory."
    )
    next_steps: list[Entry] = _entries("Mandatory: at least one.")
    files_to_read: list[Entry] = _entries("Paths or URLs the successor reads first.")
    open_questions: list[Entry] = _entries("What is not settled yet.")
    notes: str = Field(default="", max_length=MAX_NOTES, pattern=TEXT_PATTERN)
    work_item_ids: list[LooseUUID] = Field(
        default_factory=list, max_length=MAX_WORK_ITEMS, description="Each must exist."
    )
    project: ProjectRef | None = Field(
        default=None, description="Default: the agent's selected project."
    )


class HandoffBody(Strict):
    to_agent: AgentId = Field(description="The agent offered the claim (bare agent id).")
    handover_id: LooseUUID | None = Field(
        default=None, description="A handover document that passed its checks."
    )
    expires_in_seconds: Integer | None = Field(
        default=None,
        ge=OFFER_SECONDS[0],
        le=OFFER_SECONDS[1],
        description="Default 3600: then the claim returns to the offerer.",
    )
    reason: str | None = text(1000)


class SessionBody(Strict):
    session_id: LooseUUID = Field(description="An active session of the agent taking the claim.")


class DeclineBody(Strict):
    reason: str | None = text(1000)


class ParkBody(Strict):
    approval_id: LooseUUID | None = Field(
        default=None, description="Default: the one pending approval the item waits on."
    )
    successor: AgentId | None = Field(
        default=None, description="Another agent that may resume the claim."
    )
    grace_seconds: Integer | None = Field(
        default=None,
        ge=PARK_GRACE_SECONDS[0],
        le=PARK_GRACE_SECONDS[1],
        description="How long after the approval is decided (or expires) the claim waits "
        "to be resumed before it is released. Default 3600.",
    )


class HandoversQuery(Query):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: CursorToken | None = None


HandoverOut = response_model(
    "HandoverOut",
    HandoverView,
    described={
        "passed": "Whether every check passed.",
        "failures": "Each check failed: {rule, detail}. Rules: summary-present, "
        "next-steps-present, no-placeholders, work-items-exist.",
        "version": "Revised in place: If-Match this version.",
    },
)


class HandoverWritten(HandoverOut):
    position: int


class HandoverPage(Strict):
    items: list[HandoverOut]
    next_cursor: str | None
    position: int
