"""The agent directory: profiles agents write of themselves, statuses derived from their
sessions and claims, their metrics, and what each session did (its timeline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.agent_projections import CLAIM_TO_DONE, RESPONSE
from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import Principal, RequestContext
from agentledger.application.errors import Forbidden, NotFound
from agentledger.application.preconditions import Precondition, check
from agentledger.application.readmodels import (
    MAX_PAGE,
    AgentFilter,
    AgentRow,
    AgentsReader,
    Cursors,
    Page,
    Read,
    SessionsReader,
    TimelineReader,
    TimelineRow,
)
from agentledger.domain.access import Role
from agentledger.domain.agents import AgentProfile, Profile, profile_id
from agentledger.domain.events import EventContext
from agentledger.domain.names import validate_agent_id


@dataclass(frozen=True)
class ProfileDraft:
    display_name: str | None = None
    kind: str | None = None
    capabilities: Sequence[str] = ()
    workspace: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentView:
    agent_id: str
    status: str  # busy, active, error or inactive, as of the moment of reading
    registered: bool
    display_name: str | None
    kind: str | None
    capabilities: list[str]
    workspace: str | None
    endpoints: dict[str, str]
    config: dict[str, Any]
    version: int
    last_seen_at: datetime | None
    last_session_id: UUID | None

    @classmethod
    def of(cls, row: AgentRow, status: str) -> AgentView:
        names = [n for n in cls.__dataclass_fields__ if n != "status"]
        return cls(status=status, **{n: getattr(row, n) for n in names})

    @classmethod
    def of_profile(cls, profile: AgentProfile, listed: tuple[AgentRow, str] | None) -> AgentView:
        """The profile just written, with what the directory knew of the agent's sessions."""
        values = {n: getattr(profile, n) for n in ("display_name", "kind", "workspace")}
        row, status = listed if listed is not None else (None, "inactive")
        return cls(
            agent_id=profile.agent_id,
            status=status,
            registered=True,
            capabilities=list(profile.capabilities),
            endpoints=dict(profile.endpoints),
            config=dict(profile.config),
            version=profile.version,
            last_seen_at=None if row is None else row.last_seen_at,
            last_session_id=None if row is None else row.last_session_id,
            **values,
        )


@dataclass(frozen=True)
class AgentMetrics:
    agent_id: str
    items_completed: int
    median_claim_to_done_seconds: float | None
    messages_answered: int
    median_response_seconds: float | None
    sessions_total: int
    sessions_failed: int
    sessions_expired: int


@dataclass(frozen=True)
class Put:
    agent: AgentView
    created: bool


class AgentService:
    def __init__(
        self,
        commands: CommandRunner,
        reader: AgentsReader,
        timelines: TimelineReader,
        sessions: SessionsReader,
        clock: Clock,
        consistency: Consistency,
        cursors: Cursors,
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._timelines = timelines
        self._sessions = sessions
        self._clock = clock
        self._consistency = consistency
        self._cursors = cursors

    def put(
        self,
        request: RequestContext,
        agent_id: str,
        draft: ProfileDraft,
        precondition: Precondition | None = None,
    ) -> Outcome[Put]:
        """Write the agent's whole profile (registering it the first time): by the agent
        itself or a coordinator. The same profile again writes nothing."""
        principal = request.principal
        principal.require_any_role(Role.AGENT, Role.COORDINATOR)
        agent_id = validate_agent_id(agent_id)
        if principal.agent_id != agent_id and not principal.may_act_for_other_agents:
            raise Forbidden(f"{principal.name} may not write the profile of agent '{agent_id}'")
        profile = Profile(
            display_name=draft.display_name,
            kind=draft.kind,
            capabilities=draft.capabilities,
            workspace=draft.workspace,
            endpoints=draft.endpoints,
            config=draft.config,
        )
        listed = self._reader.get(agent_id, self._clock.now())

        def decide(uow: UnitOfWork, ctx: EventContext) -> Put:
            found = uow.find(AgentProfile, profile_id(agent_id))
            check(precondition, None if found is None else found.version)
            if found is None:
                found = AgentProfile.register(ctx, agent_id, profile)
                uow.add(found)
                return Put(AgentView.of_profile(found, listed), True)
            found.update(ctx, profile)
            return Put(AgentView.of_profile(found, listed), False)

        return self._commands.run(request, "agents.put", decide)

    # --- queries --------------------------------------------------------------------------

    def get(self, agent_id: str, consistent_with: int | None = None) -> Read[AgentView]:
        position = self._consistency.wait(self._reader, consistent_with)
        found = self._reader.get(validate_agent_id(agent_id), self._clock.now())
        if found is None:
            raise NotFound("agent", agent_id)
        return Read(AgentView.of(*found), position)

    def list(
        self,
        where: AgentFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[AgentView]:
        filters = {k: v for k, v in vars(where).items()}
        after = self._cursors.decode(cursor, filters).text() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._reader, consistent_with)
        rows = self._reader.list(where, now=self._clock.now(), limit=limit + 1, after=after)
        return self._cursors.page(
            rows, limit, filters, position, lambda r: r[0].agent_id, lambda r: AgentView.of(*r)
        )

    def metrics(self, agent_id: str, consistent_with: int | None = None) -> Read[AgentMetrics]:
        position = self._consistency.wait(self._reader, consistent_with)
        found = self._reader.get(validate_agent_id(agent_id), self._clock.now())
        if found is None:
            raise NotFound("agent", agent_id)
        row = found[0]
        metrics = AgentMetrics(
            agent_id=row.agent_id,
            items_completed=row.items_completed,
            median_claim_to_done_seconds=self._reader.median(row.agent_id, CLAIM_TO_DONE),
            messages_answered=row.messages_answered,
            median_response_seconds=self._reader.median(row.agent_id, RESPONSE),
            sessions_total=row.sessions_total,
            sessions_failed=row.sessions_failed,
            sessions_expired=row.sessions_expired,
        )
        return Read(metrics, position)

    def timeline(
        self,
        principal: Principal,
        session_id: UUID,
        *,
        limit: int = 100,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[TimelineRow]:
        """Everything the session did, in log order: its own agent, coordinators, auditors."""
        session = self._sessions.get(session_id)
        if session is None:
            raise NotFound("session", str(session_id))
        mine = principal.agent_id == session.agent_id
        if not (mine or principal.has_any_role(Role.COORDINATOR, Role.AUDITOR)):
            raise Forbidden(f"{principal.name} may not read the timeline of another agent")
        filters = {"session_id": str(session_id)}
        after = self._cursors.decode(cursor, filters).position() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._timelines, consistent_with)
        rows = self._timelines.of_session(session_id, limit=limit + 1, after_position=after)
        return self._cursors.page(rows, limit, filters, position, lambda r: r.position, lambda r: r)
