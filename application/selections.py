"""Each agent's current project: read, switch (with a version precondition), clear."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import Principal, RequestContext
from agentledger.application.errors import Forbidden, NotFound
from agentledger.application.preconditions import Precondition, required
from agentledger.application.projects import load_project, project_ids
from agentledger.application.readmodels import Read, SelectionsReader
from agentledger.application.shapes import by_name
from agentledger.domain.access import Role
from agentledger.domain.errors import InvalidValue
from agentledger.domain.events import EventContext
from agentledger.domain.names import validate_agent_id
from agentledger.domain.selections import CLEARED_BY_AGENT, ProjectSelection, selection_id
from agentledger.domain.sessions import AgentSession

_HOW = 'send If-Match: "<version>" (or If-None-Match: * for a first selection)'


@dataclass(frozen=True)
class SelectionView:
    agent_id: str
    project: str | None
    version: int
    session_id: UUID | None
    updated_at: datetime
    cleared_reason: str | None


class SelectionService:
    def __init__(
        self, commands: CommandRunner, reader: SelectionsReader, consistency: Consistency
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._consistency = consistency

    def get(self, agent_id: str, consistent_with: int | None = None) -> Read[SelectionView]:
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._reader.get(agent_id)
        if row is None:
            raise NotFound("selection", agent_id)
        return Read(by_name(SelectionView, row), position)

    def select(
        self,
        request: RequestContext,
        agent_id: str,
        project: str,
        session_id: UUID,
        precondition: Precondition | None,
    ) -> Outcome[SelectionView]:
        """Switch the agent's project. Refused unless the expected version matches, the session
        is the agent's own active lease, and the project exists and is not archived."""
        _authorise(request.principal, agent_id)
        expected = required(precondition, _HOW)

        def decide(uow: UnitOfWork, ctx: EventContext) -> SelectionView:
            uow.preload(selection_id(agent_id), only_read=(session_id, *project_ids(project)))
            selection = uow.find(ProjectSelection, selection_id(agent_id))
            _check(selection, expected)
            session = uow.get(AgentSession, session_id, "session")
            session.ensure_active_for(agent_id, ctx.occurred_at)
            load_project(uow, project).ensure_open()
            if selection is None:
                selection = ProjectSelection.start(ctx, agent_id, project, session_id)
                uow.add(selection)
            else:
                selection.select(ctx, project, session_id)
            return by_name(SelectionView, selection)

        return self._commands.run(request, "selections.select", decide, session=session_id)

    def clear(
        self, request: RequestContext, agent_id: str, precondition: Precondition | None
    ) -> Outcome[SelectionView]:
        _authorise(request.principal, agent_id)
        expected = required(precondition, _HOW)

        def decide(uow: UnitOfWork, ctx: EventContext) -> SelectionView:
            selection = uow.find(ProjectSelection, selection_id(agent_id))
            _check(selection, expected)
            if selection is None:
                raise NotFound("selection", agent_id)
            selection.clear(ctx, CLEARED_BY_AGENT)
            return by_name(SelectionView, selection)

        return self._commands.run(request, "selections.clear", decide)


def _authorise(principal: Principal, agent_id: str) -> None:
    """An agent changes only its own selection; coordinators may change anyone's."""
    principal.require_any_role(Role.AGENT, Role.COORDINATOR)
    try:
        validate_agent_id(agent_id)
    except InvalidValue:
        raise NotFound("selection", agent_id) from None
    if principal.agent_id != agent_id and not principal.may_act_for_other_agents:
        raise Forbidden(f"{principal.name} may not change the selection of agent '{agent_id}'")


def _check(selection: ProjectSelection | None, expected: Precondition) -> None:
    current_project = selection.project if selection else None
    expected.check(selection.version if selection else None, current_project=current_project)
