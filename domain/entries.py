"""Progress-log entries: what agents write as they work. One small aggregate per entry, so
appends never contend with each other (no ever-growing per-project stream to load)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from agentledger.domain.errors import InvalidValue
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.metadata import validate_metadata
from agentledger.domain.text import clean_text

MAX_MESSAGE = 4000


class EntryStatus(StrEnum):
    INFO = "info"
    SUCCESS = "success"
    WARN = "warn"
    ERROR = "error"
    BUG = "bug"
    PLAN = "plan"


class LogEntry(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        project: str
        agent_id: str
        session_id: UUID
        status: str
        message: str
        metadata: dict[str, Any]
        work_item_id: UUID | None

    class EntryAppended(LedgerAggregate.Created):
        project: str
        agent_id: str
        session_id: UUID
        status: str
        message: str
        metadata: dict[str, Any]
        work_item_id: UUID | None  # the work item the entry reports on

        # Version 2 added `work_item_id`: entries written before it name no item.
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            LedgerAggregate.Event.upcast_v1_v2(state)  # the context every event gained
            state.setdefault("work_item_id", None)

        def apply(self, aggregate: Any) -> None:
            aggregate.project = self.project
            aggregate.agent_id = self.agent_id
            aggregate.session_id = self.session_id
            aggregate.status = self.status
            aggregate.message = self.message
            aggregate.metadata = dict(self.metadata)
            aggregate.work_item_id = self.work_item_id

    @classmethod
    def append(
        cls,
        ctx: EventContext,
        *,
        project: str,
        agent_id: str,
        session_id: UUID,
        message: str,
        status: str = EntryStatus.INFO.value,
        metadata: dict[str, Any] | None = None,
        work_item_id: UUID | None = None,
    ) -> LogEntry:
        if not message.strip():
            raise InvalidValue("message must not be empty", field="message")
        clean_text(message, "message", MAX_MESSAGE)
        try:
            status = EntryStatus(status).value
        except ValueError:
            allowed = ", ".join(s.value for s in EntryStatus)
            raise InvalidValue(f"status must be one of {allowed}", field="status") from None
        return cls._begin(
            cls.EntryAppended,
            ctx,
            uuid4(),
            project=project,
            agent_id=agent_id,
            session_id=session_id,
            status=status,
            message=message,
            metadata=validate_metadata(metadata or {}),
            work_item_id=work_item_id,
        )
