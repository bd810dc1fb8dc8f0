"""Policies: reactions to events, each recorded exactly once.

A policy looks at each event of the log in order and may decide a command. The command's events
are saved together with the position of the event that caused them (the library's process
recorder), so a policy restarted at any moment neither skips a reaction nor repeats one.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from agentledger.application.commands import Decision, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.readmodels import ProjectsReader, SelectionsReader, WorkItemsReader
from agentledger.domain.events import EventContext
from agentledger.domain.projects import Project
from agentledger.domain.selections import CLEARED_PROJECT_ARCHIVED, ProjectSelection, selection_id
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem


class Policy(Protocol):
    name: str

    @property
    def follows(self) -> tuple[type, ...]:
        """The events it reacts to (subclasses included); it is shown no others."""

    def decision(self, event: Any, position: int) -> Decision[int] | None:
        """The command this event calls for (returning how many aggregates it changed)."""


class ArchivedProjectClearsSelections:
    """When a project is archived, every selection pointing at it is cleared, with the reason,
    as the archive's reaction (so the clearing carries the archive request's trace).

    A switch that checked the project just before the archive committed can land in the log
    after it; such a selection is cleared as the reaction to its own event. Which of the two
    reactions clears a selection depends only on the order in the log, never on timing.
    """

    name = "policy_archived_project_clears_selections"
    follows = (
        Project.ProjectArchived,
        ProjectSelection.SelectionStarted,
        ProjectSelection.ProjectSelected,
    )

    def __init__(
        self, selections: SelectionsReader, projects: ProjectsReader, consistency: Consistency
    ) -> None:
        self._selections = selections
        self._projects = projects
        self._consistency = consistency

    def decision(self, event: Any, position: int) -> Decision[int] | None:
        if isinstance(event, Project.ProjectArchived):
            # The read model must include everything up to the archive to list its agents.
            self._consistency.wait(self._selections, position)
            agents = self._selections.agents_on(event.name)
            return lambda uow, ctx: _clear(uow, ctx, event.name, agents)
        selected = ProjectSelection.SelectionStarted | ProjectSelection.ProjectSelected
        if isinstance(event, selected) and self._archived_before(event.project, position):
            return lambda uow, ctx: _clear_one(uow, ctx, event.project, event.originator_id)
        return None

    def _archived_before(self, project: str, position: int) -> bool:
        self._consistency.wait(self._projects, position)
        row = self._projects.get(project)
        return bool(row and row.archived_position is not None and row.archived_position < position)


def _clear(uow: UnitOfWork, ctx: EventContext, project: str, agents: list[str]) -> int:
    cleared = 0
    for agent_id in agents:
        selection = uow.get(ProjectSelection, selection_id(agent_id), "selection")
        if selection.project == project:
            cleared += selection.clear(ctx, CLEARED_PROJECT_ARCHIVED)
    return cleared


def _clear_one(uow: UnitOfWork, ctx: EventContext, project: str, selection: Any) -> int:
    chosen = uow.get(ProjectSelection, selection, "selection")
    return int(chosen.project == project and chosen.clear(ctx, CLEARED_PROJECT_ARCHIVED))


class SessionEndReleasesClaims:
    """When a session completes, fails or expires, the claims it holds are released (work in
    progress goes back to open, so the items are ready again), as the end's reaction.

    A claim that checked the lease just before the session ended can land in the log after the
    end; it is released as the reaction to its own event. A release only ends the claim the
    ended session still holds, so each claim is released once, whichever reaction sees it.
    """

    name = "policy_session_end_releases_claims"
    ENDS: ClassVar[dict[type, str]] = {
        AgentSession.SessionCompleted: "session completed",
        AgentSession.SessionFailed: "session failed",
        AgentSession.SessionExpired: "session expired",
    }
    follows = (*ENDS, WorkItem.WorkItemClaimed)

    def __init__(self, work_items: WorkItemsReader, consistency: Consistency) -> None:
        self._work_items = work_items
        self._consistency = consistency

    def decision(self, event: Any, position: int) -> Decision[int] | None:
        why = self.ENDS.get(type(event))
        if why is not None:
            # The read model must include everything up to the end to list the claims.
            self._consistency.wait(self._work_items, position)
            held = self._work_items.held_by(event.originator_id)
            if not held:
                return None
            return lambda uow, ctx: _release(uow, ctx, event.originator_id, held, why)
        if isinstance(event, WorkItem.WorkItemClaimed):
            return lambda uow, ctx: _release_if_ended(uow, ctx, event)
        return None


def _release(
    uow: UnitOfWork, ctx: EventContext, session_id: Any, items: list[Any], why: str
) -> int:
    return sum(
        uow.get(WorkItem, item_id, "work item").release_ended(ctx, why, session_id)
        for item_id in items
    )


def _release_if_ended(uow: UnitOfWork, ctx: EventContext, claimed: Any) -> int:
    session = uow.get(AgentSession, claimed.session_id, "session")
    why = {"completed": "session completed", "failed": "session failed"}.get(
        session.status.value, "session expired"
    )
    if not session.status.is_terminal:
        return 0
    item = uow.get(WorkItem, claimed.originator_id, "work item")
    return int(item.release_ended(ctx, why, claimed.session_id))
