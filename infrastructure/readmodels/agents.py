"""The agent directory: profiles, each agent's sessions and live claims (what its status is
derived from, on read), and the counts and samples of its metrics."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agentledger.application.readmodels import AgentFilter, AgentRow
from agentledger.infrastructure.readmodels.base import ReadModel, Table, to_micros

AGENTS = Table.of(
    "agents",
    AgentRow,
    key=("agent_id",),
    indexes=(("profile_id",), ("kind",)),
    not_null=("created_position",),
    extra={"profile_id": "uuid"},
)
CAPABILITIES = Table(
    name="capabilities",
    columns={"agent_id": "text", "capability": "text"},
    key=("agent_id", "capability"),
    indexes=(("capability",),),
)
SESSIONS = Table(
    name="sessions",
    columns={
        "session_id": "uuid",
        "agent_id": "text",
        "status": "text",
        "lease_expires_at": "time",
        "role": "text",
    },
    key=("session_id",),
    indexes=(("agent_id", "status", "lease_expires_at"),),
)
CLAIMS = Table(  # live claims: deleted when released
    name="claims",
    columns={"item_id": "uuid", "session_id": "uuid", "agent_id": "text"},
    key=("item_id",),
    indexes=(("agent_id",),),
)
LAST_CLAIMS = Table(  # every item's last claim, kept: whose work a done item was
    name="last_claims",
    columns={"item_id": "uuid", "session_id": "uuid", "agent_id": "text", "claimed_at": "time"},
    key=("item_id",),
)
REQUESTS = Table(
    name="requests",
    columns={"message_id": "uuid", "sent_at": "time", "recipients": "json", "answered": "bool"},
    key=("message_id",),
)
SAMPLES = Table(
    name="samples",
    columns={"agent_id": "text", "kind": "text", "position": "int", "millis": "int"},
    key=("agent_id", "kind", "position"),
    indexes=(("agent_id", "kind", "millis"),),
)
# The status, derived at `now`: busy (a live session holding a claim), active (a live
# session), error (its latest session failed), else inactive.
_LIVE = "s.status = 'active' AND s.lease_expires_at > %(now)s"
_STATUS = (
    "CASE WHEN EXISTS (SELECT 1 FROM {claims} c JOIN {sessions} s ON s.session_id = c.session_id "
    f"WHERE c.agent_id = a.agent_id AND {_LIVE}) THEN 'busy' "
    f"WHEN EXISTS (SELECT 1 FROM {{sessions}} s WHERE s.agent_id = a.agent_id AND {_LIVE}) "
    "THEN 'active' WHEN a.last_session_status = 'failed' THEN 'error' ELSE 'inactive' END"
)


class AgentsReadModel(ReadModel):
    name = "agents_v1"
    tables = (AGENTS, CAPABILITIES, SESSIONS, CLAIMS, LAST_CLAIMS, REQUESTS, SAMPLES)

    def get(self, agent_id: str, now: datetime) -> tuple[AgentRow, str] | None:
        found = self._agents("WHERE agent_id = %(agent)s", {"agent": agent_id}, now)
        return found[0] if found else None

    def list(
        self, where: AgentFilter, *, now: datetime, limit: int, after: str | None
    ) -> list[tuple[AgentRow, str]]:
        clauses: list[str] = []
        params: dict[str, Any] = {"limit": limit}
        if where.status is not None:
            clauses.append("status = %(status)s")
            params["status"] = where.status
        if where.kind is not None:
            clauses.append("kind = %(kind)s")
            params["kind"] = where.kind
        if where.capability is not None:
            clauses.append(
                "agent_id IN (SELECT agent_id FROM {capabilities} "
                "WHERE capability = %(capability)s)"
            )
            params["capability"] = where.capability
        if after is not None:
            clauses.append("agent_id > %(after)s")
            params["after"] = after
        condition = f"WHERE {' AND '.join(clauses)} " if clauses else ""
        return self._agents(f"{condition}ORDER BY agent_id {{bytes}} LIMIT %(limit)s", params, now)

    def known(self, agent_id: str) -> bool:
        """Whether the directory has the agent (registered, or seen in a session)."""
        with self.reading() as cursor:
            cursor.execute(
                self.sql("SELECT agent_id FROM {agents} WHERE agent_id = %(agent)s"),
                {"agent": agent_id},
            )
            return cursor.fetchone() is not None

    def acting_in(self, role: str, now: datetime) -> list[str]:
        """Agents with a live (active, unexpired) session acting in `role` at `now`."""
        statement = (
            "SELECT DISTINCT s.agent_id FROM {sessions} s WHERE s.role = %(role)s "
            f"AND {_LIVE} ORDER BY s.agent_id"
        )
        with self.reading() as cursor:
            cursor.execute(self.sql(statement), {"role": role, "now": to_micros(now)})
            return [row["agent_id"] for row in cursor.fetchall()]

    def median(self, agent_id: str, kind: str) -> float | None:
        params = {"agent": agent_id, "kind": kind}
        where = "WHERE agent_id = %(agent)s AND kind = %(kind)s"
        with self.reading() as cursor:
            cursor.execute(self.sql(f"SELECT COUNT(*) AS n FROM {{samples}} {where}"), params)
            count = int(cursor.fetchone()["n"])
            if count == 0:
                return None
            cursor.execute(
                self.sql(
                    f"SELECT millis FROM {{samples}} {where} ORDER BY millis "
                    "LIMIT 1 OFFSET %(middle)s"
                ),
                {**params, "middle": (count - 1) // 2},
            )
            return int(cursor.fetchone()["millis"]) / 1000

    def _agents(
        self, condition: str, params: dict[str, Any], now: datetime
    ) -> list[tuple[AgentRow, str]]:
        statement = (
            f"SELECT * FROM (SELECT a.*, {_STATUS} AS status FROM {{agents}} a) d {condition}"
        )
        with self.reading() as cursor:
            cursor.execute(self.sql(statement), {**params, "now": to_micros(now)})
            raw = cursor.fetchall()
        found = []
        for row in raw:
            values = AGENTS.decode_row(row)
            values.pop("profile_id")
            found.append((AgentRow(**values), str(row["status"])))
        return found
