"""Request and response shapes of the agent directory, agent metrics and session timelines."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from agentledger.application.agents import AgentMetrics, AgentView
from agentledger.application.readmodels import TimelineRow
from agentledger.domain.agents import (
    MAX_CAPABILITIES,
    MAX_DISPLAY_NAME,
    MAX_ENDPOINTS,
    MAX_URL_LENGTH,
    MAX_WORKSPACE,
    SLUG_PATTERN,
)
from agentledger.interfaces.http.schemas import (
    CursorToken,
    Query,
    Strict,
    response_model,
    text,
)

Slug = Annotated[
    str, Field(pattern=SLUG_PATTERN.pattern, description="1-64 of a-z, 0-9, '.', '_', '-'.")
]
Url = Annotated[str, Field(max_length=MAX_URL_LENGTH, description="An http(s) URL.")]
AgentStatus = Literal["busy", "active", "error", "inactive"]


class PutAgent(Strict):
    """The whole profile: fields left out are cleared."""

    display_name: str | None = text(MAX_DISPLAY_NAME)
    kind: Slug | None = Field(default=None, description="e.g. coding, reviewer, orchestrator")
    capabilities: list[Slug] = Field(default_factory=list, max_length=MAX_CAPABILITIES)
    workspace: str | None = text(MAX_WORKSPACE)
    endpoints: dict[Slug, Url] = Field(
        default_factory=dict, max_length=MAX_ENDPOINTS, description='e.g. {"mcp": "https://…"}'
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="Free-form JSON: at most 16 KiB, 8 levels deep."
    )


class ListAgentsQuery(Query):
    capability: Slug | None = None
    status: AgentStatus | None = None
    kind: Slug | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: CursorToken | None = None


class TimelineQuery(Query):
    limit: int = Field(default=100, ge=1, le=500)
    cursor: CursorToken | None = None


AgentOut = response_model(
    "AgentOut",
    AgentView,
    described={
        "status": "Derived, never set: busy (a live session holding a claim), active (a live "
        "session), error (its latest session failed), inactive.",
        "registered": "false for an agent seen only through its sessions.",
        "last_seen_at": "Its latest recorded session event (heartbeats moving the lease by less "
        "than a tenth of the TTL are not recorded).",
        "version": "The profile's version (0: never registered); If-Match it.",
    },
)


class AgentWritten(AgentOut):
    position: int


class AgentPage(Strict):
    items: list[AgentOut]
    next_cursor: str | None
    position: int


MetricsOut = response_model("MetricsOut", AgentMetrics)
TimelineEntryOut = response_model("TimelineEntryOut", TimelineRow)


class TimelinePage(Strict):
    items: list[TimelineEntryOut]
    next_cursor: str | None
    position: int
