"""Handover documents: written by an agent in its session for whoever comes next, checked and
stored with the checks' results; read by the next session first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import Principal, RequestContext
from agentledger.application.errors import Forbidden, NotFound
from agentledger.application.preconditions import Precondition, check
from agentledger.application.projects import load_project
from agentledger.application.readmodels import (
    MAX_PAGE,
    Cursors,
    HandoverRow,
    HandoversReader,
    Page,
    Read,
)
from agentledger.domain.access import Role
from agentledger.domain.events import EventContext
from agentledger.domain.handovers import Document, Handover, handover_id
from agentledger.domain.handovers import check as check_handover
from agentledger.domain.names import validate_agent_id
from agentledger.domain.selections import ProjectSelection, selection_id
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem


@dataclass(frozen=True)
class HandoverView:
    id: UUID
    session_id: UUID
    agent_id: str
    project: str | None
    summary: str
    next_steps: list[str]
    files_to_read: list[str]
    open_questions: list[str]
    notes: str
    work_item_ids: list[UUID]
    passed: bool
    failures: list[dict[str, str]]  # each rule failed: {rule, detail}
    version: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, source: Handover | HandoverRow) -> HandoverView:
        values: dict[str, Any] = {
            name: getattr(source, name)
            for name in cls.__dataclass_fields__
            if name not in ("passed", "work_item_ids", "failures")
        }
        failures = [dict(f) for f in source.failures]
        ids = [UUID(str(i)) for i in source.work_item_ids]
        return cls(**values, passed=not failures, failures=failures, work_item_ids=ids)


@dataclass(frozen=True)
class HandoverDraft:
    """What the author sends: the document's sections, and the project it is for (default:
    the agent's selected project)."""

    summary: str = ""
    next_steps: Sequence[str] = ()
    files_to_read: Sequence[str] = ()
    open_questions: Sequence[str] = ()
    notes: str = ""
    work_item_ids: Sequence[UUID] = ()
    project: str | None = None


class HandoverService:
    def __init__(
        self,
        commands: CommandRunner,
        reader: HandoversReader,
        consistency: Consistency,
        cursors: Cursors,
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._consistency = consistency
        self._cursors = cursors

    def write(
        self,
        request: RequestContext,
        session_id: UUID,
        draft: HandoverDraft,
        precondition: Precondition | None = None,
    ) -> Outcome[tuple[HandoverView, bool]]:
        """Write (or revise) the session's handover document; answers it with whether it was
        new. Checked against the log as it is: a referenced item must exist."""
        principal = request.principal
        principal.require_any_role(Role.AGENT, Role.COORDINATOR)
        document = Document.of(
            summary=draft.summary,
            next_steps=draft.next_steps,
            files_to_read=draft.files_to_read,
            open_questions=draft.open_questions,
            notes=draft.notes,
            work_item_ids=draft.work_item_ids,
        )

        def decide(uow: UnitOfWork, ctx: EventContext) -> tuple[HandoverView, bool]:
            session = _authors_session(uow, session_id, principal, ctx)
            project = _project_of(uow, session.agent_id, draft.project)
            missing = [i for i in document.work_item_ids if uow.find(WorkItem, i) is None]
            failures = check_handover(document, missing)
            existing = uow.find(Handover, handover_id(session_id))
            check(precondition, existing.version if existing else None)
            if existing is None:
                written = Handover.write(
                    ctx,
                    session_id=session_id,
                    agent_id=session.agent_id,
                    project=project,
                    document=document,
                    failures=failures,
                )
                uow.add(written)
                return HandoverView.of(written), True
            existing.revise(ctx, project=project, document=document, failures=failures)
            return HandoverView.of(existing), False

        return self._commands.run(request, "handovers.write", decide, session=session_id)

    # --- queries --------------------------------------------------------------------------

    def get(self, handover: UUID, consistent_with: int | None = None) -> Read[HandoverView]:
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._reader.get(handover)
        if row is None:
            raise NotFound("handover", str(handover))
        return Read(HandoverView.of(row), position)

    def latest(self, agent_id: str, consistent_with: int | None = None) -> Read[HandoverView]:
        """What a new session of the agent reads first: its latest handover document."""
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._reader.latest(validate_agent_id(agent_id))
        if row is None:
            raise NotFound("handover of agent", agent_id)
        return Read(HandoverView.of(row), position)

    def for_project(
        self,
        project: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[HandoverView]:
        """The project's handover documents, newest first."""
        filters = {"project": project}
        before = self._cursors.decode(cursor, filters).position() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._reader, consistent_with)
        rows = self._reader.for_project(project, limit=limit + 1, before_position=before)
        return self._cursors.page(
            rows, limit, filters, position, lambda r: r.created_position, HandoverView.of
        )


def _authors_session(
    uow: UnitOfWork, session_id: UUID, principal: Principal, ctx: EventContext
) -> AgentSession:
    """An agent writes in its own active session; a coordinator for any session, ended ones
    too (an agent that crashed leaves no handover of its own)."""
    session = uow.get(AgentSession, session_id, "session")
    if principal.may_act_for_other_agents:
        return session
    if principal.agent_id != session.agent_id:
        raise Forbidden(f"only agent '{session.agent_id}' writes its session's handover")
    session.ensure_active_for(session.agent_id, ctx.occurred_at)
    return session


def _project_of(uow: UnitOfWork, agent_id: str, named: str | None) -> str | None:
    if named is not None:
        return load_project(uow, named).name
    selection = uow.find(ProjectSelection, selection_id(agent_id))
    return None if selection is None else selection.project
