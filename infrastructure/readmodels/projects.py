"""The projects read model: one row per project, listed by name."""

from __future__ import annotations

from typing import Any

from agentledger.application.readmodels import ProjectRow
from agentledger.infrastructure.readmodels.base import ReadModel, Table

PROJECTS = Table.of(
    "projects",
    ProjectRow,
    key=("name",),
    indexes=(("id",), ("archived", "name")),
    not_null=("id", "archived", "version"),
)


class ProjectsReadModel(ReadModel):
    name = "projects_v1"
    tables = (PROJECTS,)

    def get(self, name: str) -> ProjectRow | None:
        row = self.select_one(
            "projects", "SELECT * FROM {projects} WHERE name = %(name)s", {"name": name}
        )
        return None if row is None else ProjectRow(**row)

    def list(
        self, *, archived: bool | None, limit: int, after_name: str | None
    ) -> list[ProjectRow]:
        clauses: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if archived is not None:
            clauses.append("archived = %(archived)s")
            params["archived"] = int(archived)
        if after_name is not None:
            clauses.append("name {bytes} > %(after)s")
            params["after"] = after_name
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        statement = f"SELECT * FROM {{projects}} {where} ORDER BY name {{bytes}} LIMIT %(limit)s"
        return [ProjectRow(**r) for r in self.select("projects", statement, params)]
