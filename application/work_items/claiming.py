"""Claiming work items: one by name, or the best ready one (claim-next), for the caller's
session. A claim lives as long as the session's lease; the domain's claim rules decide, once
per item tried, over the facts each decision loads."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import UUID

from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.context import Principal, RequestContext
from agentledger.application.preconditions import Precondition, check
from agentledger.application.projects import load_project
from agentledger.application.readmodels import WorkItemRow, WorkItemsReader
from agentledger.application.work_items.claim_board import ClaimBoard
from agentledger.application.work_items.facts import (
    dependency_ids,
    dependency_statuses,
    holder_of,
    park_stands,
    writer,
)
from agentledger.application.work_items.shapes import WorkItemView
from agentledger.domain.access import WORKER_PREFIX, Role
from agentledger.domain.claims import Caller, check_claimant, claim, claim_ready
from agentledger.domain.errors import NotReady, RoleRequired
from agentledger.domain.events import EventContext
from agentledger.domain.plans import plan_id
from agentledger.domain.projects import project_id
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem

# Ready items claim-next reads per read-model query: most calls take the first.
FIRST_READY_PAGE = 8
READY_PAGE = 64
# Sessions whose role claim-next remembers: a session's role is fixed when it starts, so
# only a session's first claim-next reads it (a round trip each, a tenth of the command).
KNOWN_ROLES = 50_000


class WorkItemClaims:
    def __init__(self, commands: CommandRunner, reader: WorkItemsReader, clock: Clock) -> None:
        self._commands = commands
        self._reader = reader
        self._clock = clock
        self._board = ClaimBoard(reader)
        self._roles: dict[UUID, tuple[str, ...]] = {}

    def claim(
        self,
        request: RequestContext,
        item_id: UUID,
        session_id: UUID,
        *,
        precondition: Precondition | None = None,
    ) -> Outcome[WorkItemView]:
        """Claim the item by name for the caller's session."""
        caller = writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            session = uow.get(AgentSession, session_id, "session")
            item = uow.get(WorkItem, item_id, "work item")
            check(precondition, item.version)
            project = load_project(uow, item.project)
            holder = holder_of(uow, item)
            claim(
                ctx,
                item,
                session,
                caller,
                holder,
                project_archived=project.archived,
                parked=park_stands(uow, item, ctx.occurred_at),
            )
            return WorkItemView.of_aggregate(item, session.lease_expires_at)

        return self._commands.run(request, "work_items.claim", decide, session=session_id)

    def claim_next(
        self,
        request: RequestContext,
        session_id: UUID,
        *,
        project: str | None = None,
        kind: str | None = None,
        to_role: str | None = None,
    ) -> Outcome[WorkItemView] | None:
        """Claim the best ready item (priority, then age), or None when nothing is ready.
        Candidates come from the read model's ready queue; each is judged once more against
        the aggregates in the claiming transaction, and one another claimant won meanwhile is
        skipped."""
        caller = writer(request.principal)
        # A session's role never changes: the candidates are read for it, and each claim
        # checks it again against the item as the claim finds it.
        roles = self._roles_of(session_id)
        seen = self._reader.position()  # before the candidates are read
        for row in self._ready_rows(project, kind, to_role, roles, self._board.unseen(seen)):
            if not self._board.reserve(row.id, seen):
                continue  # another claim-next here is taking it, or took it since the read
            try:
                outcome = self._commands.run(
                    request,
                    "work_items.claim_next",
                    _claim_if_ready(caller, row.id, session_id, row.project),
                    session=session_id,
                )
            except (NotReady, RoleRequired):  # taken, or routed elsewhere, since the read
                self._board.drop(row.id)
                continue
            except BaseException:
                self._board.drop(row.id)
                raise
            self._board.taken(row.id, outcome.position)
            return outcome

        def check(uow: UnitOfWork, ctx: EventContext) -> None:
            session = uow.get(AgentSession, session_id, "session")
            check_claimant(session, caller, ctx.occurred_at)
            if project is not None:
                load_project(uow, project)

        # Nothing ready: still refuse a dead or foreign session, or an unknown project.
        self._commands.run(request, "work_items.claim_next", check, session=session_id)
        return None

    def visible_roles(
        self, principal: Principal, session_id: UUID | None = None
    ) -> tuple[str, ...] | None:
        """The roles whose routed items a reader of the ready queue sees (None: all). With a
        session, the queue as that session would claim from it; without one, the roles the
        caller's token lets it act in, while coordinators and auditors see every item."""
        if session_id is not None:
            return self._roles_of(session_id)
        if principal.has_any_role(Role.COORDINATOR, Role.AUDITOR):
            return None
        return tuple(sorted(r.removeprefix(WORKER_PREFIX) for r in principal.roles_granted()))

    def _roles_of(self, session_id: UUID) -> tuple[str, ...]:
        roles = self._roles.get(session_id)
        if roles is None:
            role = self._commands.read(AgentSession, session_id, "session").role
            roles = () if role is None else (role,)
            if len(self._roles) >= KNOWN_ROLES:
                self._roles.clear()
            self._roles[session_id] = roles
        return roles

    def _ready_rows(
        self,
        project: str | None,
        kind: str | None,
        to_role: str | None,
        roles: tuple[str, ...] | None,
        excluding: list[UUID],
    ) -> Iterator[WorkItemRow]:
        """The ready queue, best first, a page at a time: the read model decides readiness,
        so each page costs what it holds, however many items wait. Items claimed here since
        the read model's position are left out: under load the projection trails the claims,
        and a first page of them sent every claim-next on to a second query."""
        after, page = None, FIRST_READY_PAGE
        while True:
            rows = self._reader.ready(
                project=project,
                kind=kind,
                to_role=to_role,
                roles=roles,
                now=self._clock.now(),
                limit=page,
                after=after,
                excluding=excluding,
            )
            yield from rows
            if len(rows) < page:
                return
            after, page = rows[-1].ready_key, READY_PAGE


def _claim_if_ready(
    caller: Caller, item_id: UUID, session_id: UUID, listed_in: str
) -> Callable[[UnitOfWork, EventContext], WorkItemView]:
    """claim-next's decision for one candidate: load the facts, ask the domain once. The
    facts come in two round trips: the item, the session, and the project and plan of the
    project the queue listed it in; then the items it depends on, if any."""

    def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
        uow.preload(item_id, only_read=(session_id, project_id(listed_in), plan_id(listed_in)))
        item = uow.get(WorkItem, item_id, "work item")
        uow.preload(only_read=tuple(dependency_ids(uow, item)))
        session = uow.get(AgentSession, session_id, "session")
        project = load_project(uow, item.project)
        claim_ready(
            ctx,
            item,
            session,
            caller,
            holder_of(uow, item),
            project_archived=project.archived,
            dependencies=dependency_statuses(uow, item),
            parked=park_stands(uow, item, ctx.occurred_at),
        )
        return WorkItemView.of_aggregate(item, session.lease_expires_at)

    return decide
