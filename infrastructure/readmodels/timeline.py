"""Session timelines: a row per event a session did, in log order; and which session holds
each item's claim (to attribute writes made under its fence)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agentledger.application.readmodels import TimelineRow
from agentledger.infrastructure.readmodels.base import ReadModel, Table

TIMELINE = Table.of(
    "timeline",
    TimelineRow,
    key=("position", "session_id"),
    indexes=(("session_id", "position"),),
    not_null=("event", "aggregate_id"),
)
HOLDERS = Table(
    name="holders",
    columns={"item_id": "uuid", "session_id": "uuid", "agent_id": "text"},
    key=("item_id",),
)


class TimelineReadModel(ReadModel):
    name = "timeline_v1"
    tables = (TIMELINE, HOLDERS)

    def of_session(
        self, session_id: UUID, *, limit: int, after_position: int | None
    ) -> list[TimelineRow]:
        params: dict[str, Any] = {"session": str(session_id), "limit": limit}
        after = ""
        if after_position is not None:
            after = "AND position > %(after)s "
            params["after"] = after_position
        rows = self.select(
            "timeline",
            "SELECT * FROM {timeline} WHERE session_id = %(session)s "
            f"{after}ORDER BY position LIMIT %(limit)s",
            params,
        )
        return [TimelineRow(**r) for r in rows]
