"""Policies: reactions to events, each recorded exactly once.

A policy looks at each event of the log in order and may decide a command. The command's events
are saved together with the position of the event that caused them (the library's process
recorder), so a policy restarted at any moment neither skips a reaction nor repeats one.
"""

from __future__ import annotations

from typing import Any, Protocol

from application.commands import Decision, UnitOfWork
from application.consistency import Consistency
from application.readmodels import ProjectsReader, SelectionsReader
from domain.events import EventContext
from domain.projects import Project
from domain.selections import CLEARED_PROJECT_ARCHIVED, ProjectSelection, selection_id


class Policy(Protocol):
    name: str

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
