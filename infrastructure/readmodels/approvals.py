"""The approvals read model: one row per approval, indexed for a role's queue and an item's."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.readmodels import ApprovalFilter, ApprovalRow
from agentledger.domain.approvals import ApprovalStatus
from agentledger.infrastructure.readmodels.base import ReadModel, Table, to_micros

APPROVALS = Table.of(
    "approvals",
    ApprovalRow,
    key=("id",),
    indexes=(
        ("approver_role", "status", "created_position"),
        ("status", "created_position"),
        ("work_item_id", "created_position"),
        ("project", "created_position"),
    ),
    not_null=("work_item_id", "project", "approver_role", "status", "created_position"),
)


class ApprovalsReadModel(ReadModel):
    name = "approvals_v1"
    tables = (APPROVALS,)

    def get(self, approval_id: UUID) -> ApprovalRow | None:
        row = self.select_one(
            "approvals", "SELECT * FROM {approvals} WHERE id = %(id)s", {"id": str(approval_id)}
        )
        return None if row is None else ApprovalRow(**row)

    def for_item(self, item_id: UUID) -> list[ApprovalRow]:
        statement = (
            "SELECT * FROM {approvals} WHERE work_item_id = %(item)s ORDER BY created_position"
        )
        return [
            ApprovalRow(**r) for r in self.select("approvals", statement, {"item": str(item_id)})
        ]

    def list(
        self, where: ApprovalFilter, *, limit: int, after_position: int | None, now: datetime
    ) -> list[ApprovalRow]:
        clauses: list[str] = []
        params: dict[str, Any] = {"limit": limit, "now": to_micros(now)}
        if where.status is not None:
            clauses.append(_status_clause(ApprovalStatus(where.status)))
            params["status"] = where.status
        for column in ("approver_role", "project"):
            value = getattr(where, column)
            if value is not None:
                clauses.append(f"{column} = %({column})s")
                params[column] = value
        if where.work_item_id is not None:
            clauses.append("work_item_id = %(work_item_id)s")
            params["work_item_id"] = str(where.work_item_id)
        if after_position is not None:
            clauses.append("created_position > %(after)s")
            params["after"] = after_position
        condition = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        statement = (
            f"SELECT * FROM {{approvals}} {condition} ORDER BY created_position LIMIT %(limit)s"
        )
        return [ApprovalRow(**r) for r in self.select("approvals", statement, params)]


def _status_clause(status: ApprovalStatus) -> str:
    """The status as of now: a pending approval past its expiry counts as expired."""
    if status is ApprovalStatus.EXPIRED:
        return "(status = 'pending' AND expires_at IS NOT NULL AND expires_at <= %(now)s)"
    if status is ApprovalStatus.PENDING:
        return "(status = 'pending' AND (expires_at IS NULL OR expires_at > %(now)s))"
    return "status = %(status)s"
