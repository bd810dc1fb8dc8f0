"""Project use cases: create (names unique even under racing creates), archive; queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from uuid import UUID

from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import RequestContext
from agentledger.application.errors import NotFound, ProjectExists
from agentledger.application.preconditions import Precondition, check
from agentledger.application.readmodels import (
    MAX_PAGE,
    Cursors,
    Page,
    ProjectsReader,
    Read,
)
from agentledger.application.shapes import by_name
from agentledger.domain.access import Role
from agentledger.domain.errors import InvalidValue
from agentledger.domain.events import EventContext
from agentledger.domain.projects import Project, project_id, validate_project_name


@dataclass(frozen=True)
class ProjectView:
    """A project as callers see it (from its read-model row or its aggregate, by name)."""

    name: str
    description: str | None
    archived: bool
    version: int
    created_at: datetime
    updated_at: datetime


class ProjectService:
    def __init__(
        self,
        commands: CommandRunner,
        reader: ProjectsReader,
        consistency: Consistency,
        cursors: Cursors,
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._consistency = consistency
        self._cursors = cursors

    def create(
        self, request: RequestContext, name: str, description: str | None = None
    ) -> Outcome[ProjectView]:
        request.principal.require_any_role(Role.AGENT, Role.COORDINATOR)
        name = validate_project_name(name)

        def decide(uow: UnitOfWork, ctx: EventContext) -> ProjectView:
            # Two racing creates build the same aggregate id: one save wins, the other
            # conflicts, re-runs, and finds the project here.
            if uow.find(Project, project_id(name)) is not None:
                raise ProjectExists(name)
            project = Project.create(ctx, name, description)
            uow.add(project)
            return by_name(ProjectView, project)

        return self._commands.run(request, "projects.create", decide)

    def archive(
        self,
        request: RequestContext,
        name: str,
        reason: str | None = None,
        precondition: Precondition | None = None,
    ) -> Outcome[ProjectView]:
        """Archive; with a `precondition`, only a project at exactly that version (an
        archive of an archived project writes nothing, but a stale version is still refused)."""
        request.principal.require_any_role(Role.COORDINATOR)

        def decide(uow: UnitOfWork, ctx: EventContext) -> ProjectView:
            project = load_project(uow, name)
            check(precondition, project.version)
            project.archive(ctx, reason)
            return by_name(ProjectView, project)

        return self._commands.run(request, "projects.archive", decide)

    def get(self, name: str, consistent_with: int | None = None) -> Read[ProjectView]:
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._reader.get(name)
        if row is None:
            raise NotFound("project", name)
        return Read(by_name(ProjectView, row), position)

    def list(
        self,
        *,
        archived: bool | None = None,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[ProjectView]:
        filters = {"archived": archived}
        after = self._cursors.decode(cursor, filters).text() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._reader, consistent_with)
        rows = self._reader.list(archived=archived, limit=limit + 1, after_name=after)
        return self._cursors.page(
            rows, limit, filters, position, lambda r: r.name, partial(by_name, ProjectView)
        )


def project_ids(name: str | None) -> tuple[UUID, ...]:
    """The id of the project of that name, to preload; none for a name that cannot exist."""
    if name is None:
        return ()
    try:
        validate_project_name(name)
    except InvalidValue:
        return ()
    return (project_id(name),)


def load_project(uow: UnitOfWork, name: str) -> Project:
    """The project of that name, or NotFound (a malformed name cannot exist either)."""
    try:
        validate_project_name(name)
        return uow.get(Project, project_id(name), "project")
    except (InvalidValue, NotFound):
        raise NotFound("project", name) from None
