"""The messages read model: each message once, and an inbox row per recipient (read and
acknowledged there), indexed for inboxes, threads, conversations and what waits."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from agentledger.application.readmodels import MessageFilter, MessageRow
from agentledger.infrastructure.readmodels.base import ReadModel, Table

MESSAGES = Table.of(
    "messages",
    MessageRow,
    key=("id",),
    indexes=(("thread_id", "created_position"), ("sender_agent", "created_position")),
    not_null=("sender", "addressed_to", "type", "thread_id", "created_position"),
)
INBOX = Table(
    name="inbox",
    columns={
        "message_id": "uuid",
        "recipient": "text",
        "sender_agent": "text",
        "type": "text",
        "thread_id": "uuid",
        "ack_required": "bool",
        "answered": "bool",
        "read_at": "time",
        "acked_at": "time",
        "created_position": "int",
    },
    key=("message_id", "recipient"),
    indexes=(
        ("recipient", "created_position"),
        ("sender_agent", "recipient", "created_position"),
    ),
    not_null=("created_position",),
)
# Every message column as the message has it, its recipient's marks from the inbox row.
_OWN = ", ".join(f"m.{c}" for c in MESSAGES.columns if c not in ("read_at", "acked_at"))
_WITH_MARKS = (
    f"SELECT {_OWN}, i.read_at, i.acked_at "
    "FROM {inbox} i JOIN {messages} m ON m.id = i.message_id"
)


class MessagesReadModel(ReadModel):
    name = "messages_v1"
    tables = (MESSAGES, INBOX)

    def get(self, message_id: UUID) -> MessageRow | None:
        rows = self._messages("WHERE id = %(id)s", {"id": str(message_id)})
        return rows[0] if rows else None

    def inbox(
        self, where: MessageFilter, *, limit: int, after_position: int | None
    ) -> list[MessageRow]:
        clauses = ["i.recipient = %(agent)s"]
        params: dict[str, Any] = {"agent": where.agent_id, "limit": limit}
        if where.unread is not None:
            clauses.append("i.read_at IS NULL" if where.unread else "i.read_at IS NOT NULL")
        if where.type is not None:
            clauses.append("i.type = %(type)s")
            params["type"] = where.type
        if where.thread_id is not None:
            clauses.append("i.thread_id = %(thread)s")
            params["thread"] = str(where.thread_id)
        if after_position is not None:
            clauses.append("i.created_position > %(after)s")
            params["after"] = after_position
        return self._marked(
            f"WHERE {' AND '.join(clauses)} ORDER BY i.created_position LIMIT %(limit)s", params
        )

    def thread(self, thread_id: UUID, limit: int) -> list[MessageRow]:
        return self._messages(
            "WHERE thread_id = %(thread)s ORDER BY created_position LIMIT %(limit)s",
            {"thread": str(thread_id), "limit": limit},
        )

    def conversation(
        self, agent_id: str, other: str, *, limit: int, before_position: int | None
    ) -> list[MessageRow]:
        params: dict[str, Any] = {"a": agent_id, "b": other, "limit": limit}
        before = ""
        if before_position is not None:
            before = "AND created_position < %(before)s "
            params["before"] = before_position
        return self._messages(
            "WHERE id IN (SELECT message_id FROM {inbox} WHERE "
            "(sender_agent = %(a)s AND recipient = %(b)s) "
            "OR (sender_agent = %(b)s AND recipient = %(a)s)) "
            f"{before}ORDER BY created_position DESC LIMIT %(limit)s",
            params,
        )

    def waiting(self, agent_id: str, what: str, side: str, limit: int) -> list[MessageRow]:
        condition = (
            "i.type = 'request' AND i.answered = 0"
            if what == "reply"
            else "i.ack_required = 1 AND i.acked_at IS NULL"
        )
        params = {"agent": agent_id, "limit": limit}
        if side == "received":  # with the agent's own marks
            return self._marked(
                f"WHERE i.recipient = %(agent)s AND {condition} "
                "ORDER BY i.created_position LIMIT %(limit)s",
                params,
            )
        return self._messages(  # each message once, however many recipients it waits on
            f"WHERE id IN (SELECT i.message_id FROM {{inbox}} i WHERE i.sender_agent = %(agent)s "
            f"AND {condition}) ORDER BY created_position LIMIT %(limit)s",
            params,
        )

    def _messages(self, condition: str, params: dict[str, Any]) -> list[MessageRow]:
        rows = self.select("messages", f"SELECT * FROM {{messages}} {condition}", params)
        return [MessageRow(**r) for r in rows]

    def _marked(self, condition: str, params: dict[str, Any]) -> list[MessageRow]:
        rows = self.select("messages", f"{_WITH_MARKS} {condition}", params)
        return [MessageRow(**r) for r in rows]
