"""Agent session use cases: start, heartbeat, activate, update, complete, fail, expire; queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import SYSTEM_SWEEPER, Principal, RequestContext
from agentledger.application.errors import Forbidden, NotFound
from agentledger.application.preconditions import Precondition, check
from agentledger.application.readmodels import (
    MAX_PAGE,
    Cursors,
    Page,
    Read,
    SessionRow,
    SessionsReader,
)
from agentledger.application.shapes import by_name
from agentledger.domain.access import Role, worker_role
from agentledger.domain.errors import InvalidValue
from agentledger.domain.events import EventContext
from agentledger.domain.metadata import Metadata
from agentledger.domain.sessions import AgentSession, heartbeat_interval

ARCHIVE_BATCH = 100  # sessions archived per transaction
ARCHIVE_SCAN = 100_000  # sessions one archive run considers


@dataclass(frozen=True)
class SessionView:
    """A session as clients see it, with its status as of the moment of reading."""

    id: UUID
    agent_id: str
    status: str
    ttl_seconds: int
    lease_expires_at: datetime
    heartbeat_interval_seconds: int
    metadata: Metadata
    version: int
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    role: str | None = None  # the role it acts in (routed tasks)
    archived: bool = False  # out of the default lists (`agentledger sessions archive`)

    @classmethod
    def of_aggregate(cls, session: AgentSession, now: datetime) -> SessionView:
        return by_name(
            cls,
            session,
            status=session.effective_status(now).value,
            heartbeat_interval_seconds=session.heartbeat_interval_seconds(),
        )

    @classmethod
    def of_row(cls, row: SessionRow, now: datetime) -> SessionView:
        return by_name(
            cls,
            row,
            status=row.status_at(now),
            heartbeat_interval_seconds=heartbeat_interval(row.ttl_seconds),
        )


@dataclass(frozen=True)
class Heartbeat:
    session: SessionView
    renewed: bool


class SessionService:
    def __init__(
        self,
        commands: CommandRunner,
        reader: SessionsReader,
        clock: Clock,
        consistency: Consistency,
        cursors: Cursors,
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._clock = clock
        self._consistency = consistency
        self._cursors = cursors

    # --- commands -------------------------------------------------------------------------

    def start(
        self,
        request: RequestContext,
        *,
        agent_id: str | None = None,
        ttl_seconds: int | None = None,
        pending: bool = False,
        metadata: dict[str, Any] | None = None,
        role: str | None = None,
    ) -> Outcome[SessionView]:
        """`role`: the role the session acts in; the agent's token must grant it
        (`worker:<role>`), or a coordinator assigns it."""
        principal = request.principal
        principal.require_any_role(Role.AGENT, Role.COORDINATOR)
        target = _target_agent(principal, agent_id)
        if role is not None:
            principal.require_any_role(worker_role(role), Role.COORDINATOR)
        session_id = uuid4()

        def decide(uow: UnitOfWork, ctx: EventContext) -> SessionView:
            session = AgentSession.start(
                ctx,
                agent_id=target,
                ttl_seconds=ttl_seconds,
                pending=pending,
                metadata=metadata,
                session_id=session_id,
                role=role,
            )
            uow.add(session)
            return SessionView.of_aggregate(session, ctx.occurred_at)

        return self._commands.run(request, "sessions.start", decide, session=session_id)

    def heartbeat(
        self, request: RequestContext, session_id: UUID, precondition: Precondition | None = None
    ) -> Outcome[Heartbeat]:
        def decide(uow: UnitOfWork, ctx: EventContext) -> Heartbeat:
            session = self._load(uow, session_id, request.principal, own_only=True)
            check(precondition, session.version)
            renewed = session.renew_lease(ctx)
            return Heartbeat(SessionView.of_aggregate(session, ctx.occurred_at), renewed)

        return self._commands.run(request, "sessions.heartbeat", decide, session=session_id)

    def activate(
        self, request: RequestContext, session_id: UUID, precondition: Precondition | None = None
    ) -> Outcome[SessionView]:
        return self._change(
            request,
            "sessions.activate",
            session_id,
            precondition,
            True,
            lambda s, ctx: s.activate(ctx),
        )

    def complete(
        self,
        request: RequestContext,
        session_id: UUID,
        reason: str | None = None,
        precondition: Precondition | None = None,
    ) -> Outcome[SessionView]:
        return self._change(
            request,
            "sessions.complete",
            session_id,
            precondition,
            False,
            lambda s, ctx: s.complete(ctx, reason),
        )

    def fail(
        self,
        request: RequestContext,
        session_id: UUID,
        reason: str | None = None,
        precondition: Precondition | None = None,
    ) -> Outcome[SessionView]:
        return self._change(
            request,
            "sessions.fail",
            session_id,
            precondition,
            False,
            lambda s, ctx: s.fail(ctx, reason),
        )

    def update_metadata(
        self,
        request: RequestContext,
        session_id: UUID,
        patch: dict[str, Any],
        precondition: Precondition | None = None,
    ) -> Outcome[SessionView]:
        return self._change(
            request,
            "sessions.update_metadata",
            session_id,
            precondition,
            False,
            lambda s, ctx: s.update_metadata(ctx, patch),
        )

    def expire(
        self, session_id: UUID, trace_id: str, request: RequestContext | None = None
    ) -> Outcome[bool]:
        """Record a lapsed lease. Decided against the version it loads, so a heartbeat that
        commits first makes this attempt conflict, reload, and find nothing to expire."""
        request = request or RequestContext(SYSTEM_SWEEPER, trace_id)
        request.principal.require_any_role(Role.ADMIN)  # the sweeper and operators only

        def decide(uow: UnitOfWork, ctx: EventContext) -> bool:
            session = uow.get(AgentSession, session_id, "session")
            return session.expire(ctx)

        return self._commands.run(request, "sessions.expire", decide, session=session_id)

    def sweep(self, request: RequestContext | None = None, limit: int = 500) -> int:
        """Expire every lapsed session the read model knows of; returns how many were expired.
        Recorded as the background sweeper unless an operator's request is given."""
        trace_id = request.trace_id if request else f"sweep-{uuid4().hex}"
        expired = 0
        for session_id in self._reader.lapsed(self._clock.now(), limit):
            if self.expire(session_id, trace_id, request).value:
                expired += 1
        return expired

    def archive(self, request: RequestContext, older_than: timedelta) -> int:
        """Put sessions ended more than `older_than` ago (as the read model knows them) out
        of the default lists, a batch per transaction; they stay in the log and the audit.
        Returns how many it archived (run it again for more than ARCHIVE_SCAN)."""
        request.principal.require_any_role(Role.COORDINATOR)
        cutoff = self._clock.now() - older_than
        ended = self._reader.ended_before(cutoff, ARCHIVE_SCAN)
        archived = 0
        for start in range(0, len(ended), ARCHIVE_BATCH):

            def decide(uow: UnitOfWork, ctx: EventContext, at: int = start) -> int:
                batch = ended[at : at + ARCHIVE_BATCH]
                return sum(uow.get(AgentSession, i, "session").archive(ctx, cutoff) for i in batch)

            archived += self._commands.run(request, "sessions.archive", decide).value
        return archived

    # --- queries --------------------------------------------------------------------------

    def get(self, session_id: UUID, consistent_with: int | None = None) -> Read[SessionView]:
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._reader.get(session_id)
        if row is None:
            raise NotFound("session", str(session_id))
        return Read(SessionView.of_row(row, self._clock.now()), position)

    def list(
        self,
        *,
        agent_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
        include_archived: bool = False,
    ) -> Page[SessionView]:
        """Newest first; archived sessions only with `include_archived`."""
        filters = {"agent_id": agent_id, "status": status, "archived": include_archived}
        before = self._cursors.decode(cursor, filters).position() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._reader, consistent_with)
        now = self._clock.now()
        rows = self._reader.list(
            agent_id=agent_id,
            status=status,
            now=now,
            limit=limit + 1,
            before_position=before,
            include_archived=include_archived,
        )
        return self._cursors.page(
            rows,
            limit,
            filters,
            position,
            lambda r: r.created_position,
            lambda r: SessionView.of_row(r, now),
        )

    # --- helpers --------------------------------------------------------------------------

    def _change(
        self,
        request: RequestContext,
        command: str,
        session_id: UUID,
        precondition: Precondition | None,
        own_only: bool,
        act: Any,
    ) -> Outcome[SessionView]:
        def decide(uow: UnitOfWork, ctx: EventContext) -> SessionView:
            session = self._load(uow, session_id, request.principal, own_only=own_only)
            check(precondition, session.version)
            act(session, ctx)
            return SessionView.of_aggregate(session, ctx.occurred_at)

        return self._commands.run(request, command, decide, session=session_id)

    @staticmethod
    def _load(
        uow: UnitOfWork, session_id: UUID, principal: Principal, *, own_only: bool
    ) -> AgentSession:
        principal.require_any_role(Role.AGENT, Role.COORDINATOR)  # auditors only read
        session = uow.get(AgentSession, session_id, "session")
        if principal.agent_id == session.agent_id:
            return session
        if own_only:
            raise Forbidden(f"only agent '{session.agent_id}' may do this with its session")
        if not principal.may_act_for_other_agents:
            raise Forbidden(f"{principal.name} may not act on a session of '{session.agent_id}'")
        return session


def _target_agent(principal: Principal, requested: str | None) -> str:
    """An agent opens sessions for itself; coordinators may open them for any agent."""
    own = principal.agent_id
    if requested is None or requested == own:
        if own is None:
            raise InvalidValue("agent_id is required when the caller is not an agent", "agent_id")
        return own
    if not principal.may_act_for_other_agents:
        raise Forbidden(f"{principal.name} may not open a session for agent '{requested}'")
    return requested
