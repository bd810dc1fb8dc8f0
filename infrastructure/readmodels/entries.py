"""The progress-log read model: entries by project, newest first, with an index per filter.

Metadata filters (`meta.<key>=<value>`) use a key/value side table rather than JSON operators,
so the same indexed query runs on PostgreSQL and SQLite.
"""

from __future__ import annotations

from typing import Any

from agentledger.application.entries import EntryView
from agentledger.application.readmodels import EntryFilter
from agentledger.infrastructure.readmodels.base import ReadModel, Table, to_micros

ENTRIES = Table.of(
    "entries",
    EntryView,
    key=("position",),
    indexes=(
        ("project", "position"),
        ("project", "agent_id", "position"),
        ("project", "status", "position"),
        ("project", "created_at"),
        ("work_item_id", "position"),
    ),
    not_null=("id", "project", "agent_id", "status", "message", "created_at"),
    # The message case-folded by Python, so `q` matches alike on both stores (SQLite's LOWER()
    # folds ASCII only).
    extra={"folded": "text"},
)
ENTRY_METADATA = Table(
    name="entry_metadata",
    columns={"position": "int", "project": "text", "key": "text", "value": "text"},
    key=("position", "key"),
    indexes=(("project", "key", "value", "position"),),
)


class EntriesReadModel(ReadModel):
    name = "entries_v2"
    tables = (ENTRIES, ENTRY_METADATA)

    def list(
        self, where: EntryFilter, *, limit: int, before_position: int | None
    ) -> list[EntryView]:
        clauses = ["e.project = %(project)s"]
        params: dict[str, Any] = {"project": where.project, "limit": limit}
        if where.agent_id is not None:
            clauses.append("e.agent_id = %(agent_id)s")
            params["agent_id"] = where.agent_id
        if where.status is not None:
            clauses.append("e.status = %(status)s")
            params["status"] = where.status
        if where.work_item_id is not None:
            clauses.append("e.work_item_id = %(work_item_id)s")
            params["work_item_id"] = str(where.work_item_id)
        if where.since is not None:
            clauses.append("e.created_at >= %(since)s")
            params["since"] = to_micros(where.since)
        if where.until is not None:
            clauses.append("e.created_at < %(until)s")
            params["until"] = to_micros(where.until)
        if where.text:
            # Case-insensitive substring on both stores; the client's % and _ match literally.
            clauses.append("e.folded LIKE %(text)s ESCAPE '!'")
            escaped = where.text.casefold().replace("!", "!!").replace("%", "!%").replace("_", "!_")
            params["text"] = f"%{escaped}%"
        for i, (key, value) in enumerate(where.metadata):
            clauses.append(
                "EXISTS (SELECT 1 FROM {entry_metadata} m WHERE m.position = e.position "
                f"AND m.project = e.project AND m.key = %(mk{i})s AND m.value = %(mv{i})s)"
            )
            params[f"mk{i}"] = key
            params[f"mv{i}"] = value
        if before_position is not None:
            clauses.append("e.position < %(before)s")
            params["before"] = before_position
        statement = (
            f"SELECT e.* FROM {{entries}} e WHERE {' AND '.join(clauses)} "
            "ORDER BY e.position DESC LIMIT %(limit)s"
        )
        return [EntryView(**_without_folded(r)) for r in self.select("entries", statement, params)]


def _without_folded(row: dict[str, Any]) -> dict[str, Any]:
    row.pop("folded", None)
    return row
