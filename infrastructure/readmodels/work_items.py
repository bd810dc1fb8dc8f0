"""The work-items read model: items with their materialised path and claim expiry, and the
dependency edges between them (what the ready queue, trees and status reports read)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.readmodels import ReadyKey, WorkItemFilter, WorkItemRow
from agentledger.infrastructure.readmodels.base import (
    ReadModel,
    Table,
    to_micros,
)

WORK_ITEMS = Table.of(
    "work_items",
    WorkItemRow,
    key=("id",),
    indexes=(
        ("project", "created_position"),
        ("project", "status", "archived"),
        ("status", "archived", "waiting_on", "priority", "created_position"),
        ("parent_id",),
        ("holder_session",),
        ("path",),
        ("finished_at",),
        ("trace_id",),
        ("offer_expires_at",),
        ("parked_on",),
    ),
    not_null=("project", "kind", "title", "status", "path", "waiting_on", "created_position"),
)
DEPENDENCIES = Table(
    name="dependencies",
    columns={"item_id": "uuid", "depends_on": "uuid"},
    key=("item_id", "depends_on"),
    indexes=(("depends_on",),),
)
# The ready queue's rule (`domain.readiness`) as a condition on a work item row `w`; a claim
# is live while its holder's lease, as the row follows it, ends after `now` (`live_holder`);
# `waiting_on` counts the dependencies not done, kept by the projection; an item offered to an
# agent goes to it alone, a parked one back to its agent (by resuming) or, lapsed, by name.
_READY = (
    "w.status = 'open' AND w.archived = 0 AND w.project_archived = 0 "
    "AND (w.holder_agent IS NULL OR w.claim_expires_at IS NULL "
    "OR w.claim_expires_at <= %(now)s) "
    "AND w.waiting_on = 0 AND w.parked_on IS NULL "
    "AND (w.offered_to IS NULL OR w.offer_expires_at <= %(now)s)"
)
_FILTER_COLUMNS = ("project", "kind", "status", "parent_id", "to_role", "archived", "trace_id")
_CHUNK = 500  # ids per IN (...) list


class WorkItemsTable(ReadModel):
    name = "work_items_v4"
    tables = (WORK_ITEMS, DEPENDENCIES)

    def get(self, item_id: UUID) -> WorkItemRow | None:
        rows = self.get_many([item_id])
        return rows[0] if rows else None

    def get_many(self, ids: Sequence[UUID]) -> list[WorkItemRow]:
        found: list[WorkItemRow] = []
        for chunk in _chunks(ids):
            found += self._items(f"WHERE id IN ({_placeholders(chunk)})", _params(chunk))
        return found

    def list(
        self, where: WorkItemFilter, *, limit: int, after_position: int | None, now: datetime
    ) -> list[WorkItemRow]:
        clauses: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        for column in _FILTER_COLUMNS:
            value = getattr(where, column)
            if value is not None:
                clauses.append(f"{column} = %({column})s")
                params[column] = WORK_ITEMS.encode_row({column: value})[column]
        if where.assignee is not None:  # a live claim's holder, as `assignee` reads
            clauses.append("holder_agent = %(assignee)s AND claim_expires_at > %(now)s")
            params.update(assignee=where.assignee, now=to_micros(now))
        if after_position is not None:
            clauses.append("created_position > %(after)s")
            params["after"] = after_position
        condition = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        return self._items(f"{condition} ORDER BY created_position LIMIT %(limit)s", params)

    def children(self, item_id: UUID) -> list[WorkItemRow]:
        return self._items(
            "WHERE parent_id = %(id)s ORDER BY created_position", {"id": str(item_id)}
        )

    def descendants(self, row: WorkItemRow) -> list[WorkItemRow]:
        prefix = row.path + "/"
        return self._items(
            "WHERE substr(path, 1, %(length)s) = %(prefix)s ORDER BY depth, created_position",
            {"length": len(prefix), "prefix": prefix},
        )

    def counts(self, project: str) -> tuple[dict[str, int], dict[str, int]]:
        """Unarchived items of the project by status and by kind."""
        found: list[dict[str, int]] = []
        for column in ("status", "kind"):
            with self.reading() as cursor:
                cursor.execute(
                    self.sql(
                        f"SELECT {column} AS k, COUNT(*) AS n FROM {{work_items}} "
                        f"WHERE project = %(project)s AND archived = 0 GROUP BY {column}"
                    ),
                    {"project": project},
                )
                found.append({row["k"]: int(row["n"]) for row in cursor.fetchall()})
        return found[0], found[1]

    def with_status(
        self, project: str, status: str, limit: int, newest_finished_first: bool = False
    ) -> list[WorkItemRow]:
        order = (
            "finished_at DESC, created_position" if newest_finished_first else "created_position"
        )
        return self._items(
            "WHERE project = %(project)s AND status = %(status)s AND archived = 0 "
            f"ORDER BY {order} LIMIT %(limit)s",
            {"project": project, "status": status, "limit": limit},
        )

    def claims_in(self, project: str, now: datetime) -> dict[UUID, int]:
        """Live claims on the project's unarchived items, by holder session."""
        with self.reading() as cursor:
            cursor.execute(
                self.sql(
                    "SELECT holder_session AS s, COUNT(*) AS n FROM {work_items} "
                    "WHERE project = %(project)s AND archived = 0 AND holder_session IS NOT NULL "
                    "AND claim_expires_at > %(now)s GROUP BY holder_session"
                ),
                {"project": project, "now": to_micros(now)},
            )
            return {UUID(row["s"]): int(row["n"]) for row in cursor.fetchall()}

    def in_project(self, project: str) -> list[WorkItemRow]:
        return self._items(
            "WHERE project = %(project)s AND archived = 0 ORDER BY created_position",
            {"project": project},
        )

    def ready(
        self,
        *,
        project: str | None,
        kind: str | None,
        to_role: str | None,
        now: datetime,
        limit: int,
        after: ReadyKey | None = None,
        roles: Sequence[str] | None = None,
        excluding: Sequence[UUID] = (),
    ) -> list[WorkItemRow]:
        """`domain.readiness` in one query, the same text on both stores: open, unarchived
        items of unarchived projects whose claim is absent or lapsed at `now`, none of whose
        dependencies is missing or not done; best first, a keyset page after `after`."""
        clauses = [_READY]
        params: dict[str, Any] = {"limit": limit, "now": to_micros(now)}
        for column, value in (("project", project), ("kind", kind), ("to_role", to_role)):
            if value is not None:
                clauses.append(f"w.{column} = %({column})s")
                params[column] = value
        if roles is not None:  # `domain.claims.routed_to`: unrouted, or routed to these
            named = [f"%(role{i})s" for i in range(len(roles))]
            within = f" OR w.to_role IN ({', '.join(named)})" if roles else ""
            clauses.append(f"(w.to_role IS NULL{within})")
            params.update({f"role{i}": role for i, role in enumerate(roles)})
        if excluding:
            clauses.append(f"w.id NOT IN ({_placeholders(excluding, 'skip')})")
            params.update(_params(excluding, "skip"))
        if after is not None:
            clauses.append(
                "(w.priority < %(after_priority)s OR (w.priority = %(after_priority)s "
                "AND w.created_position > %(after_position)s))"
            )
            params.update(after_priority=after[0], after_position=after[1])
        rows = self.select(
            "work_items",
            f"SELECT w.* FROM {{work_items}} w WHERE {' AND '.join(clauses)} "
            "ORDER BY w.priority DESC, w.created_position LIMIT %(limit)s",
            params,
        )
        return [WorkItemRow(**r) for r in rows]

    def dependencies(self, item_ids: Sequence[UUID]) -> dict[UUID, list[UUID]]:
        edges: dict[UUID, list[UUID]] = {}
        for chunk in _chunks(item_ids):
            rows = self.select(
                "dependencies",
                f"SELECT * FROM {{dependencies}} WHERE item_id IN ({_placeholders(chunk)}) "
                "ORDER BY item_id, depends_on",
                _params(chunk),
            )
            for row in rows:
                edges.setdefault(row["item_id"], []).append(row["depends_on"])
        return edges

    def dependents(self, item_id: UUID) -> list[UUID]:
        rows = self.select(
            "dependencies",
            "SELECT * FROM {dependencies} WHERE depends_on = %(id)s ORDER BY item_id",
            {"id": str(item_id)},
        )
        return [r["item_id"] for r in rows]

    def statuses(self, item_ids: Sequence[UUID]) -> dict[UUID, str]:
        """Only the status of each item (an item's readiness reasons name its dependencies'),
        two columns rather than whole rows."""
        found: dict[UUID, str] = {}
        for chunk in _chunks(list(set(item_ids))):
            with self.reading() as cursor:
                cursor.execute(
                    self.sql(
                        "SELECT id, status FROM {work_items} "
                        f"WHERE id IN ({_placeholders(chunk)})"
                    ),
                    _params(chunk),
                )
                found.update({UUID(r["id"]): r["status"] for r in cursor.fetchall()})
        return found

    def held_by(self, session_id: UUID) -> list[UUID]:
        rows = self._items(
            "WHERE holder_session = %(session)s ORDER BY created_position",
            {"session": str(session_id)},
        )
        return [r.id for r in rows]

    def offers_expired(self, now: datetime, limit: int) -> list[UUID]:
        rows = self._items(
            "WHERE offered_to IS NOT NULL AND offer_expires_at <= %(now)s "
            "ORDER BY offer_expires_at LIMIT %(limit)s",
            {"now": to_micros(now), "limit": limit},
        )
        return [r.id for r in rows]

    def parked(self, limit: int) -> list[UUID]:
        rows = self._items(
            "WHERE parked_on IS NOT NULL ORDER BY created_position LIMIT %(limit)s",
            {"limit": limit},
        )
        return [r.id for r in rows]

    def finished_before(self, moment: datetime, limit: int) -> list[UUID]:
        rows = self._items(
            "WHERE archived = 0 AND finished_at IS NOT NULL AND finished_at < %(moment)s "
            "ORDER BY finished_at LIMIT %(limit)s",
            {"moment": to_micros(moment), "limit": limit},
        )
        return [r.id for r in rows]

    def _items(self, condition: str, params: dict[str, Any]) -> list[WorkItemRow]:
        rows = self.select("work_items", f"SELECT * FROM {{work_items}} {condition}", params)
        return [WorkItemRow(**r) for r in rows]


def _chunks(ids: Sequence[UUID]) -> list[Sequence[UUID]]:
    return [ids[i : i + _CHUNK] for i in range(0, len(ids), _CHUNK)]


def _placeholders(ids: Sequence[UUID], name: str = "id") -> str:
    return ", ".join(f"%({name}{i})s" for i in range(len(ids)))


def _params(ids: Sequence[UUID], name: str = "id") -> dict[str, Any]:
    return {f"{name}{i}": str(item_id) for i, item_id in enumerate(ids)}
