"""The handovers read model: one row per handover document, as last revised, indexed for an
agent's latest and a project's list."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agentledger.application.readmodels import HandoverRow
from agentledger.infrastructure.readmodels.base import ReadModel, Table

HANDOVERS = Table.of(
    "handovers",
    HandoverRow,
    key=("id",),
    indexes=(("agent_id", "position"), ("project", "created_position")),
    not_null=("session_id", "agent_id", "created_position", "position"),
)


class HandoversReadModel(ReadModel):
    name = "handovers_v1"
    tables = (HANDOVERS,)

    def get(self, handover_id: UUID) -> HandoverRow | None:
        return self._one("WHERE id = %(id)s", {"id": str(handover_id)})

    def latest(self, agent_id: str) -> HandoverRow | None:
        return self._one(
            "WHERE agent_id = %(agent)s ORDER BY position DESC LIMIT 1", {"agent": agent_id}
        )

    def for_project(
        self, project: str, *, limit: int, before_position: int | None
    ) -> list[HandoverRow]:
        params: dict[str, Any] = {"project": project, "limit": limit}
        before = ""
        if before_position is not None:
            before = "AND created_position < %(before)s "
            params["before"] = before_position
        rows = self.select(
            "handovers",
            "SELECT * FROM {handovers} WHERE project = %(project)s "
            f"{before}ORDER BY created_position DESC LIMIT %(limit)s",
            params,
        )
        return [HandoverRow(**r) for r in rows]

    def _one(self, condition: str, params: dict[str, Any]) -> HandoverRow | None:
        row = self.select_one("handovers", f"SELECT * FROM {{handovers}} {condition}", params)
        return None if row is None else HandoverRow(**row)
