"""Project selection: each agent's own current project, versioned for optimistic concurrency.

One aggregate per agent (its id derives from the agent id), so agents never overwrite each
other's choice, and a stale writer of the same agent's selection is refused by version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import NAMESPACE_URL, UUID, uuid5

from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.names import validate_agent_id

CLEARED_BY_AGENT = "cleared"
CLEARED_PROJECT_ARCHIVED = "project_archived"


def selection_id(agent_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"agentledger:selection:{agent_id}")


class ProjectSelection(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        agent_id: str
        project: str | None
        session_id: UUID | None
        cleared_reason: str | None

    class SelectionStarted(LedgerAggregate.Created):
        agent_id: str
        project: str
        session_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate.agent_id = self.agent_id
            aggregate.project = self.project
            aggregate.session_id = self.session_id
            aggregate.cleared_reason = None

    class ProjectSelected(LedgerAggregate.Event):
        project: str
        session_id: UUID
        previous_project: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.project = self.project
            aggregate.session_id = self.session_id
            aggregate.cleared_reason = None

    class SelectionCleared(LedgerAggregate.Event):
        reason: str
        previous_project: str
        session_id: UUID | None

        def apply(self, aggregate: Any) -> None:
            aggregate.project = None
            aggregate.session_id = self.session_id
            aggregate.cleared_reason = self.reason

    @classmethod
    def start(
        cls, ctx: EventContext, agent_id: str, project: str, session_id: UUID
    ) -> ProjectSelection:
        return cls._begin(
            cls.SelectionStarted,
            ctx,
            selection_id(validate_agent_id(agent_id)),
            agent_id=agent_id,
            project=project,
            session_id=session_id,
        )

    def select(self, ctx: EventContext, project: str, session_id: UUID) -> bool:
        """Switch to `project`; choosing the current project with the same session writes
        nothing."""
        if project == self.project and session_id == self.session_id:
            return False
        self._record(
            self.ProjectSelected,
            ctx,
            project=project,
            session_id=session_id,
            previous_project=self.project,
        )
        return True

    def clear(self, ctx: EventContext, reason: str, session_id: UUID | None = None) -> bool:
        if self.project is None:
            return False
        self._record(
            self.SelectionCleared,
            ctx,
            reason=reason,
            previous_project=self.project,
            session_id=session_id,
        )
        return True
