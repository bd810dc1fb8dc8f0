"""The sessions read model: one row per session, indexed for the list filters and the sweeper."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.readmodels import SessionRow
from agentledger.domain.sessions import SessionStatus
from agentledger.infrastructure.readmodels.base import ReadModel, Table, to_micros

SESSIONS = Table.of(
    "sessions",
    SessionRow,
    key=("id",),
    indexes=(
        ("created_position",),
        ("agent_id", "created_position"),
        ("status", "lease_expires_at"),
        ("archived", "ended_at"),
    ),
    not_null=("agent_id", "status", "lease_expires_at", "created_position"),
)
_LIVE = "('pending', 'active')"


class SessionsReadModel(ReadModel):
    name = "sessions_v3"
    tables = (SESSIONS,)

    def get(self, session_id: UUID) -> SessionRow | None:
        row = self.select_one(
            "sessions", "SELECT * FROM {sessions} WHERE id = %(id)s", {"id": str(session_id)}
        )
        return None if row is None else SessionRow(**row)

    def list(
        self,
        *,
        agent_id: str | None,
        status: str | None,
        now: datetime,
        limit: int,
        before_position: int | None,
        include_archived: bool = False,
    ) -> list[SessionRow]:
        clauses: list[str] = [] if include_archived else ["archived = 0"]
        params: dict[str, Any] = {"limit": limit, "now": to_micros(now)}
        if agent_id is not None:
            clauses.append("agent_id = %(agent_id)s")
            params["agent_id"] = agent_id
        if status is not None:
            clauses.append(_status_clause(SessionStatus(status)))
            params["status"] = status
        if before_position is not None:
            clauses.append("created_position < %(before)s")
            params["before"] = before_position
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        statement = (
            f"SELECT * FROM {{sessions}} {where} ORDER BY created_position DESC LIMIT %(limit)s"
        )
        return [SessionRow(**r) for r in self.select("sessions", statement, params)]

    def ended_before(self, moment: datetime, limit: int) -> list[UUID]:
        statement = (
            f"SELECT * FROM {{sessions}} WHERE archived = 0 AND status NOT IN {_LIVE} "
            "AND ended_at < %(moment)s ORDER BY ended_at LIMIT %(limit)s"
        )
        rows = self.select("sessions", statement, {"moment": to_micros(moment), "limit": limit})
        return [r["id"] for r in rows]

    def lapsed(self, now: datetime, limit: int) -> list[UUID]:
        statement = (
            f"SELECT * FROM {{sessions}} WHERE status IN {_LIVE} "
            "AND lease_expires_at <= %(now)s ORDER BY lease_expires_at LIMIT %(limit)s"
        )
        rows = self.select("sessions", statement, {"now": to_micros(now), "limit": limit})
        return [r["id"] for r in rows]

    def count(self, status: SessionStatus, now: datetime) -> int:
        """Sessions whose effective status (as `list` filters it) is `status` at `now`."""
        statement = f"SELECT COUNT(*) AS n FROM {{sessions}} WHERE {_status_clause(status)}"
        with self.reading() as cursor:
            cursor.execute(self.sql(statement), {"status": status.value, "now": to_micros(now)})
            return int(cursor.fetchone()["n"])


def _status_clause(status: SessionStatus) -> str:
    """The effective status, computed on read: a lapsed live lease counts as expired."""
    if status is SessionStatus.EXPIRED:
        return f"(status = 'expired' OR (status IN {_LIVE} AND lease_expires_at <= %(now)s))"
    if status in (SessionStatus.PENDING, SessionStatus.ACTIVE):
        return "(status = %(status)s AND lease_expires_at > %(now)s)"
    return "status = %(status)s"
