"""The progress log: agents append entries to a project (or to their selected one); queries."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import RequestContext
from agentledger.application.errors import Forbidden, NoProjectSelected, NotFound
from agentledger.application.projects import load_project, project_ids
from agentledger.application.readmodels import (
    MAX_PAGE,
    Cursors,
    EntriesReader,
    EntryFilter,
    Page,
    ProjectsReader,
)
from agentledger.application.shapes import by_name
from agentledger.domain.access import Role
from agentledger.domain.entries import LogEntry
from agentledger.domain.errors import CrossProject
from agentledger.domain.events import EventContext
from agentledger.domain.metadata import Metadata
from agentledger.domain.selections import ProjectSelection, selection_id
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem


@dataclass(frozen=True)
class EntryView:
    """An entry as callers see it. The entries read model stores exactly this (its table's
    columns are these fields, plus the folded text `q` searches), so it is its row too."""

    position: int  # the entry's place in the log (0 until saved)
    id: UUID
    project: str
    agent_id: str
    session_id: UUID
    status: str
    message: str
    metadata: Metadata
    created_at: datetime
    work_item_id: UUID | None = None  # the work item the entry reports on


@dataclass(frozen=True)
class NewEntry:
    message: str
    session_id: UUID
    status: str = "info"
    metadata: dict[str, Any] | None = None
    work_item_id: UUID | None = None


class EntryService:
    def __init__(
        self,
        commands: CommandRunner,
        reader: EntriesReader,
        projects: ProjectsReader,
        consistency: Consistency,
        cursors: Cursors,
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._projects = projects
        self._consistency = consistency
        self._cursors = cursors

    def append(
        self, request: RequestContext, project: str | None, entry: NewEntry
    ) -> Outcome[EntryView]:
        """Append to `project`, or (None) to the caller's selected project. Each entry is its
        own aggregate: appends never load or contend on a growing per-project stream."""
        request.principal.require_any_role(Role.AGENT)
        agent_id = request.principal.agent_id
        if agent_id is None:
            raise Forbidden("only agents (agent:NAME principals) write progress entries")

        def decide(uow: UnitOfWork, ctx: EventContext) -> EntryView:
            uow.preload(
                only_read=(
                    entry.session_id,
                    *project_ids(project),
                    *(() if project is not None else (selection_id(agent_id),)),
                    *(() if entry.work_item_id is None else (entry.work_item_id,)),
                )
            )
            target = project if project is not None else _selected_project(uow, agent_id)
            session = uow.get(AgentSession, entry.session_id, "session")
            session.ensure_active_for(agent_id, ctx.occurred_at)
            load_project(uow, target).ensure_open()
            if entry.work_item_id is not None:
                item = uow.get(WorkItem, entry.work_item_id, "work item")
                if item.project != target:
                    raise CrossProject("progress entry's work item", target, item.project)
            appended = LogEntry.append(
                ctx,
                project=target,
                agent_id=agent_id,
                session_id=entry.session_id,
                message=entry.message,
                status=entry.status,
                metadata=entry.metadata,
                work_item_id=entry.work_item_id,
            )
            uow.add(appended)
            return by_name(EntryView, appended, position=0)

        outcome = self._commands.run(request, "entries.append", decide, session=entry.session_id)
        # The entry is the only event written, so its position is the command's position.
        return replace(outcome, value=replace(outcome.value, position=outcome.position))

    def list(
        self,
        where: EntryFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[EntryView]:
        """Newest first. Keyset pages by log position: entries appended while paging land
        before the first page and never shift, duplicate or skip the later ones."""
        filters = _filter_key(where)
        before = self._cursors.decode(cursor, filters).position() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._reader, consistent_with)
        self._consistency.wait(self._projects, consistent_with)
        if self._projects.get(where.project) is None:
            raise NotFound("project", where.project)
        rows = self._reader.list(where, limit=limit + 1, before_position=before)
        return self._cursors.page(rows, limit, filters, position, lambda r: r.position, lambda r: r)


def _selected_project(uow: UnitOfWork, agent_id: str) -> str:
    selection = uow.find(ProjectSelection, selection_id(agent_id))
    if selection is None or selection.project is None:
        raise NoProjectSelected(agent_id)
    return selection.project


def _filter_key(where: EntryFilter) -> dict[str, Any]:
    return {
        "project": where.project,
        "agent_id": where.agent_id,
        "status": where.status,
        "since": where.since.isoformat() if where.since else None,
        "until": where.until.isoformat() if where.until else None,
        "q": where.text,
        "meta": [list(pair) for pair in where.metadata],
        "work_item_id": str(where.work_item_id) if where.work_item_id else None,
    }
