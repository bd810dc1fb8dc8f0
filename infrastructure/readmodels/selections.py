"""The selections read model: each agent's current project (the policy asks who is on one)."""

from __future__ import annotations

from agentledger.application.readmodels import SelectionRow
from agentledger.infrastructure.readmodels.base import ReadModel, Table

SELECTIONS = Table.of(
    "selections",
    SelectionRow,
    key=("agent_id",),
    indexes=(("selection_id",), ("project",)),
    not_null=("selection_id", "version"),
)


class SelectionsReadModel(ReadModel):
    name = "selections_v1"
    tables = (SELECTIONS,)

    def get(self, agent_id: str) -> SelectionRow | None:
        row = self.select_one(
            "selections",
            "SELECT * FROM {selections} WHERE agent_id = %(agent)s",
            {"agent": agent_id},
        )
        return None if row is None else SelectionRow(**row)

    def agents_on(self, project: str) -> list[str]:
        rows = self.select(
            "selections",
            "SELECT * FROM {selections} WHERE project = %(project)s ORDER BY agent_id",
            {"project": project},
        )
        return [r["agent_id"] for r in rows]
