"""Work-item use cases: create and edit items, move them through their lifecycle, claim them
under a session lease with a fence, and edit the plan's structure; queries over the read model.

Structure edits (placing an item under a parent, adding a dependency) go through the project's
one `ProjectPlan` aggregate, saved in the same transaction as the item, so two concurrent edits
are ordered by the plan's version and can never both pass its cycle and depth checks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any
from uuid import UUID

from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import Principal, RequestContext
from agentledger.application.errors import (
    CrossProject,
    FenceRequired,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
)
from agentledger.application.projects import load_project
from agentledger.application.readmodels import (
    MAX_PAGE,
    Cursors,
    Page,
    Read,
    WorkItemFilter,
    WorkItemRow,
    WorkItemsReader,
)
from agentledger.domain.access import Role
from agentledger.domain.errors import AlreadyClaimed, ItemArchived, ProjectArchived
from agentledger.domain.events import EventContext
from agentledger.domain.metadata import merge_patch
from agentledger.domain.plans import ProjectPlan, plan_id
from agentledger.domain.projects import Project, project_id
from agentledger.domain.readiness import Readiness, readiness
from agentledger.domain.sessions import AgentSession, SessionStatus
from agentledger.domain.work_items import WorkItem

# Candidates judged per read-model query by the ready queue: a small first page serves
# claim-next and short queues, larger ones the rest.
FIRST_CANDIDATE_PAGE = 32
CANDIDATE_PAGE = 256
ARCHIVE_BATCH = 100  # items archived per transaction by archive-done
ARCHIVE_SCAN = 100_000  # items archive-done considers per run (run it again for more)


@dataclass(frozen=True)
class Claim:
    session_id: UUID
    agent_id: str
    fence: int
    expires_at: datetime | None  # the holder's lease end as last known
    live: bool


@dataclass(frozen=True)
class WorkItemView:
    id: UUID
    project: str
    kind: str
    title: str
    description: str | None
    priority: int
    parent_id: UUID | None
    to_role: str | None
    metadata: dict[str, Any]
    status: str
    blocked_reason: str | None
    archived: bool
    assignee: str | None  # the agent holding a live claim
    claim: Claim | None
    version: int
    created_at: datetime
    updated_at: datetime
    depth: int | None = None  # known on reads (from the read model's materialised path)
    finished_at: datetime | None = None

    @classmethod
    def of_row(cls, row: WorkItemRow, now: datetime) -> WorkItemView:
        claim = None
        if row.holder_session is not None and row.holder_agent is not None:
            live = row.live_holder(now) is not None
            claim = Claim(
                row.holder_session, row.holder_agent, row.fence, row.claim_expires_at, live
            )
        return cls(
            id=row.id,
            project=row.project,
            kind=row.kind,
            title=row.title,
            description=row.description,
            priority=row.priority,
            parent_id=row.parent_id,
            to_role=row.to_role,
            metadata=row.metadata,
            status=row.status,
            blocked_reason=row.blocked_reason,
            archived=row.archived,
            assignee=row.live_holder(now),
            claim=claim,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
            depth=row.depth,
            finished_at=row.finished_at,
        )

    @classmethod
    def of_aggregate(cls, item: WorkItem, holder_lease: datetime | None) -> WorkItemView:
        """`holder_lease`: the holder's lease end while it is live (None otherwise)."""
        claim = None
        if item.holder_session is not None and item.holder_agent is not None:
            live = holder_lease is not None
            claim = Claim(item.holder_session, item.holder_agent, item.fence, holder_lease, live)
        return cls(
            id=item.id,
            project=item.project,
            kind=item.kind,
            title=item.title,
            description=item.description,
            priority=item.priority,
            parent_id=item.parent_id,
            to_role=item.to_role,
            metadata=item.metadata,
            status=item.state,
            blocked_reason=item.blocked_reason,
            archived=item.archived,
            assignee=item.holder_agent if holder_lease is not None else None,
            claim=claim,
            version=item.version,
            created_at=item.created_on,
            updated_at=item.modified_on,
            finished_at=item.finished_at,
        )


@dataclass(frozen=True)
class NewWorkItem:
    project: str
    kind: str
    title: str
    description: str | None = None
    priority: int = 0
    parent_id: UUID | None = None
    to_role: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemDetail:
    """One item and what `include=` asked for around it."""

    item: WorkItemView
    ancestors: list[WorkItemView] | None = None
    children: list[WorkItemView] | None = None
    descendants: list[WorkItemView] | None = None
    dependencies: list[WorkItemView] | None = None
    dependents: list[WorkItemView] | None = None


@dataclass(frozen=True)
class ItemReadiness:
    item_id: UUID
    readiness: Readiness


@dataclass(frozen=True)
class Dependencies:
    item_id: UUID
    depends_on: list[UUID]
    changed: bool


INCLUDES = ("ancestors", "children", "descendants", "dependencies", "dependents", "claim")


class NotReady(Exception):
    """claim-next's candidate is no longer ready (someone else won it): try the next one."""


class ClaimBoard:
    """What this process's claim-next calls are taking, and took since the read model last
    caught up. Without it, concurrent callers all see the same best candidate: all but one
    lose the race, then all race for the next, and items already claimed stay candidates
    until the projection catches up. With it, callers here spread over the candidates, as
    `SKIP LOCKED` would; callers in other processes still meet the aggregates' checks."""

    def __init__(self, view: WorkItemsReader) -> None:
        self._view = view
        self._lock = threading.Lock()
        self._taking: set[UUID] = set()
        self._taken: dict[UUID, int] = {}  # item -> position of its claim

    def reserve(self, item_id: UUID, seen: int) -> bool:
        """Take `item_id` for one claim attempt, unless another caller here is taking it or
        took it after position `seen` (which the candidates were read at or after)."""
        with self._lock:
            if item_id in self._taking:
                return False
            position = self._taken.get(item_id)
            if position is not None and position > seen:
                return False
            self._taken.pop(item_id, None)
            self._taking.add(item_id)
            return True

    def drop(self, item_id: UUID) -> None:
        with self._lock:
            self._taking.discard(item_id)

    def taken(self, item_id: UUID, position: int) -> None:
        with self._lock:
            self._taking.discard(item_id)
            self._taken[item_id] = position
            crowded = len(self._taken) > 10_000
        if crowded:  # forget what the read model has long since seen
            seen = self._view.position()
            with self._lock:
                self._taken = {i: p for i, p in self._taken.items() if p > seen}


class WorkItemService:
    def __init__(
        self,
        commands: CommandRunner,
        view: WorkItemsReader,
        clock: Clock,
        consistency: Consistency,
        cursors: Cursors,
    ) -> None:
        self._commands = commands
        self._view = view
        self._clock = clock
        self._consistency = consistency
        self._cursors = cursors
        self._board = ClaimBoard(view)

    # --- commands -----------------------------------------------------------------------------

    def create(self, request: RequestContext, new: NewWorkItem) -> Outcome[WorkItemView]:
        _require_writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            project = load_project(uow, new.project)
            if project.archived:
                raise ProjectArchived(project.name)
            plan = _plan(uow, ctx, new.project)
            if new.parent_id is not None:
                _check_parent(uow, new.parent_id, new.project)
            item = WorkItem.create(
                ctx,
                project=new.project,
                kind=new.kind,
                title=new.title,
                description=new.description,
                priority=new.priority,
                parent_id=new.parent_id,
                to_role=new.to_role,
                metadata=new.metadata,
            )
            plan.place(ctx, item.id, new.parent_id)
            uow.add(item)
            return WorkItemView.of_aggregate(item, None)

        return self._commands.run(
            request, "work_items.create", decide, serialize_on=plan_id(new.project)
        )

    def update(
        self,
        request: RequestContext,
        item_id: UUID,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None,
        fence: int | None,
    ) -> Outcome[WorkItemView]:
        """Edit fields (and move under another parent): `If-Match` is required."""
        _require_writer(request.principal)
        if expected_version is None:
            raise PreconditionRequired('changing a work item needs If-Match: "<version>"')
        fields = dict(changes)
        move = "parent_id" in fields
        new_parent = fields.pop("parent_id", None)

        def act(uow: UnitOfWork, ctx: EventContext, item: WorkItem) -> None:
            _check_version(item, expected_version)
            if "metadata" in fields and fields["metadata"] is not None:
                fields["metadata"] = merge_patch(item.metadata, fields["metadata"])
            item.update(ctx, **fields)
            if move and new_parent != item.parent_id:
                plan = _plan(uow, ctx, item.project)
                if new_parent is not None:
                    _check_parent(uow, new_parent, item.project)
                plan.place(ctx, item.id, new_parent)
                item.move(ctx, new_parent)

        plan = self._plan_of(item_id) if move else None
        return self._write(request, "work_items.update", item_id, fence, act, serialize_on=plan)

    def transition(
        self,
        request: RequestContext,
        item_id: UUID,
        to: str,
        reason: str | None,
        *,
        fence: int | None,
        expected_version: int | None = None,
    ) -> Outcome[WorkItemView]:
        def act(uow: UnitOfWork, ctx: EventContext, item: WorkItem) -> None:
            _check_version(item, expected_version)
            item.transition(ctx, to, reason)

        return self._write(request, "work_items.transition", item_id, fence, act)

    def archive(
        self, request: RequestContext, item_id: UUID, *, fence: int | None
    ) -> Outcome[WorkItemView]:
        return self._write(
            request, "work_items.archive", item_id, fence, lambda uow, ctx, i: i.archive(ctx)
        )

    def unarchive(
        self, request: RequestContext, item_id: UUID, *, fence: int | None
    ) -> Outcome[WorkItemView]:
        return self._write(
            request, "work_items.unarchive", item_id, fence, lambda uow, ctx, i: i.unarchive(ctx)
        )

    def release(
        self, request: RequestContext, item_id: UUID, *, fence: int | None
    ) -> Outcome[WorkItemView]:
        """The holder gives its claim back (or a coordinator takes it away)."""

        def act(uow: UnitOfWork, ctx: EventContext, item: WorkItem) -> None:
            holder = request.principal.agent_id == item.holder_agent
            item.release(ctx, "released by holder" if holder else f"released by {ctx.actor}")

        return self._write(request, "work_items.release", item_id, fence, act)

    def claim(
        self, request: RequestContext, item_id: UUID, session_id: UUID
    ) -> Outcome[WorkItemView]:
        _require_writer(request.principal)
        return self._commands.run(
            request,
            "work_items.claim",
            lambda uow, ctx: self._claim(
                uow, ctx, request.principal, item_id, session_id, only_if_ready=False
            ),
        )

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
        Candidates come from the read model; each is re-checked against the aggregates in the
        claiming transaction, and one that another claimant won meanwhile is skipped."""
        _require_writer(request.principal)
        seen = self._view.position()  # before the candidates are read
        for row in self._ready_rows(project, kind, to_role, self._clock.now()):
            if not self._board.reserve(row.id, seen):
                continue  # another claim-next here is taking it, or took it since the read
            try:
                outcome = self._commands.run(
                    request, "work_items.claim_next", self._claiming(request, row.id, session_id)
                )
            except NotReady:
                self._board.drop(row.id)
                continue
            except BaseException:
                self._board.drop(row.id)
                raise
            self._board.taken(row.id, outcome.position)
            return outcome

        def check(uow: UnitOfWork, ctx: EventContext) -> None:
            _claimant(uow, request.principal, session_id, ctx.occurred_at)
            if project is not None:
                load_project(uow, project)

        # Nothing ready: still refuse a dead or foreign session, or an unknown project.
        self._commands.run(request, "work_items.claim_next", check)
        return None

    def _claiming(
        self, request: RequestContext, item_id: UUID, session_id: UUID
    ) -> Callable[[UnitOfWork, EventContext], WorkItemView]:
        return lambda uow, ctx: self._claim(
            uow, ctx, request.principal, item_id, session_id, only_if_ready=True
        )

    def add_dependency(
        self, request: RequestContext, item_id: UUID, depends_on: UUID, *, fence: int | None
    ) -> Outcome[Dependencies]:
        return self._edit_dependency(request, item_id, depends_on, fence, add=True)

    def remove_dependency(
        self, request: RequestContext, item_id: UUID, depends_on: UUID, *, fence: int | None
    ) -> Outcome[Dependencies]:
        return self._edit_dependency(request, item_id, depends_on, fence, add=False)

    def archive_done(self, request: RequestContext, older_than: timedelta) -> int:
        """Archive done and cancelled items finished more than `older_than` ago (as the read
        model knows them), a batch per transaction; returns how many it archived."""
        request.principal.require_any_role(Role.COORDINATOR)
        finished = self._view.finished_before(self._clock.now() - older_than, ARCHIVE_SCAN)
        archived = 0
        for start in range(0, len(finished), ARCHIVE_BATCH):

            def decide(uow: UnitOfWork, ctx: EventContext, at: int = start) -> int:
                items = [
                    uow.get(WorkItem, i, "work item") for i in finished[at : at + ARCHIVE_BATCH]
                ]
                return sum(i.archive(ctx) for i in items if i.is_final)

            archived += self._commands.run(request, "work_items.archive_done", decide).value
        return archived

    # --- queries ------------------------------------------------------------------------------

    def get(
        self,
        item_id: UUID,
        include: frozenset[str] = frozenset(),
        consistent_with: int | None = None,
    ) -> Read[ItemDetail]:
        position = self._consistency.wait(self._view, consistent_with)
        row = self._row(item_id)
        now = self._clock.now()

        def views(rows: list[WorkItemRow]) -> list[WorkItemView]:
            return [WorkItemView.of_row(r, now) for r in rows]

        detail = ItemDetail(WorkItemView.of_row(row, now))
        if "ancestors" in include:
            ids = [UUID(part) for part in row.path.split("/")[:-1]]
            by_id = {r.id: r for r in self._view.get_many(ids)}
            detail = _with(detail, ancestors=views([by_id[i] for i in ids if i in by_id]))
        if "children" in include:
            detail = _with(detail, children=views(self._view.children(item_id)))
        if "descendants" in include:
            detail = _with(detail, descendants=views(self._view.descendants(row)))
        if "dependencies" in include:
            ids = self._view.dependencies([item_id]).get(item_id, [])
            detail = _with(detail, dependencies=views(self._view.get_many(ids)))
        if "dependents" in include:
            dependents = self._view.dependents(item_id)
            detail = _with(detail, dependents=views(self._view.get_many(dependents)))
        return Read(detail, position)

    def ready(
        self,
        *,
        project: str | None = None,
        kind: str | None = None,
        to_role: str | None = None,
        limit: int = 50,
        consistent_with: int | None = None,
    ) -> Read[list[WorkItemView]]:
        """The ready queue, best first: higher priority, then older."""
        position = self._consistency.wait(self._view, consistent_with)
        now = self._clock.now()
        rows = list(
            islice(self._ready_rows(project, kind, to_role, now), max(1, min(MAX_PAGE, limit)))
        )
        return Read([WorkItemView.of_row(r, now) for r in rows], position)

    def readiness(self, item_id: UUID, consistent_with: int | None = None) -> Read[ItemReadiness]:
        position = self._consistency.wait(self._view, consistent_with)
        row = self._row(item_id)
        verdicts = self._readiness_of([row], self._clock.now())
        return Read(ItemReadiness(item_id, verdicts[item_id]), position)

    def tree(self, project: str, consistent_with: int | None = None) -> Read[list[WorkItemView]]:
        """Every unarchived item of the project, parents before children, siblings by age."""
        position = self._consistency.wait(self._view, consistent_with)
        now = self._clock.now()
        rows = self._view.in_project(project)
        children: dict[UUID | None, list[WorkItemRow]] = {}
        known = {r.id for r in rows}
        for row in rows:  # rows arrive oldest first, so siblings stay in age order
            parent = row.parent_id if row.parent_id in known else None
            children.setdefault(parent, []).append(row)
        ordered: list[WorkItemView] = []
        stack = list(reversed(children.get(None, [])))
        while stack:
            row = stack.pop()
            ordered.append(WorkItemView.of_row(row, now))
            stack.extend(reversed(children.get(row.id, [])))
        return Read(ordered, position)

    # --- the one readiness path behind the queue, the reasons and claim-next --------------------

    def _ready_rows(
        self, project: str | None, kind: str | None, to_role: str | None, now: datetime
    ) -> Iterator[WorkItemRow]:
        """Ready items, best first, read a page of candidates at a time (a caller that wants
        the first few reads no more than it needs)."""
        offset, page = 0, FIRST_CANDIDATE_PAGE
        while True:
            rows = self._view.candidates(
                project=project, kind=kind, to_role=to_role, limit=page, offset=offset
            )
            verdicts = self._readiness_of(rows, now)
            yield from (r for r in rows if verdicts[r.id].ready)
            if len(rows) < page:
                return
            offset, page = offset + page, CANDIDATE_PAGE

    def _readiness_of(self, rows: list[WorkItemRow], now: datetime) -> dict[UUID, Readiness]:
        edges = self._view.dependencies([r.id for r in rows])
        statuses = self._view.statuses([d for ds in edges.values() for d in ds])
        return {
            r.id: readiness(
                status=r.status,
                archived=r.archived,
                claimed_by=r.live_holder(now),
                dependencies={d: statuses.get(d, "unknown") for d in edges.get(r.id, [])},
                project_archived=r.project_archived,
            )
            for r in rows
        }

    # --- helpers ------------------------------------------------------------------------------

    def _row(self, item_id: UUID) -> WorkItemRow:
        row = self._view.get(item_id)
        if row is None:
            raise NotFound("work item", str(item_id))
        return row

    def _write(
        self,
        request: RequestContext,
        command: str,
        item_id: UUID,
        fence: int | None,
        act: Callable[[UnitOfWork, EventContext, WorkItem], object],
        serialize_on: UUID | None = None,
    ) -> Outcome[WorkItemView]:
        """Every write to an item: the caller's role, then the claim's fence, then the change."""
        _require_writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> WorkItemView:
            item = uow.get(WorkItem, item_id, "work item")
            lease = _holder_lease(uow, item, ctx.occurred_at)
            _guard(request.principal, item, fence, lease)
            act(uow, ctx, item)
            lease = _holder_lease(uow, item, ctx.occurred_at)
            return WorkItemView.of_aggregate(item, lease)

        return self._commands.run(request, command, decide, serialize_on=serialize_on)

    def _claim(
        self,
        uow: UnitOfWork,
        ctx: EventContext,
        principal: Principal,
        item_id: UUID,
        session_id: UUID,
        *,
        only_if_ready: bool,
    ) -> WorkItemView:
        if only_if_ready:  # cheapest checks first: most skipped candidates fail them
            item = uow.get(WorkItem, item_id, "work item")
            holder_lease = _holder_lease(uow, item, ctx.occurred_at)
            if not _ready_to_claim(uow, item, holder_lease):
                raise NotReady(item_id)
            session = _claimant(uow, principal, session_id, ctx.occurred_at)
        else:
            session = _claimant(uow, principal, session_id, ctx.occurred_at)
            item = uow.get(WorkItem, item_id, "work item")
            if uow.get(Project, project_id(item.project), "project").archived:
                raise ProjectArchived(item.project)
            holder_lease = _holder_lease(uow, item, ctx.occurred_at)
        try:
            item.claim(
                ctx,
                session.id,
                session.agent_id,
                lease_expires_at=session.lease_expires_at,
                holder_lease=holder_lease,
            )
        except AlreadyClaimed:
            if only_if_ready:
                raise NotReady(item_id) from None
            raise
        return WorkItemView.of_aggregate(item, session.lease_expires_at)

    def _edit_dependency(
        self,
        request: RequestContext,
        item_id: UUID,
        depends_on: UUID,
        fence: int | None,
        *,
        add: bool,
    ) -> Outcome[Dependencies]:
        _require_writer(request.principal)

        def decide(uow: UnitOfWork, ctx: EventContext) -> Dependencies:
            item = uow.get(WorkItem, item_id, "work item")
            _guard(request.principal, item, fence, _holder_lease(uow, item, ctx.occurred_at))
            if item.archived:
                raise ItemArchived(item.id)
            other = uow.get(WorkItem, depends_on, "work item")
            if other.project != item.project:
                raise CrossProject("dependency", item.project, other.project)
            plan = uow.get(ProjectPlan, plan_id(item.project), "plan")
            if add:
                changed = plan.add_dependency(ctx, item_id, depends_on)
            else:
                changed = plan.remove_dependency(ctx, item_id, depends_on)
                if not changed:
                    raise NotFound("dependency", f"{item_id} -> {depends_on}")
            current = [UUID(d) for d in plan.dependencies.get(str(item_id), [])]
            return Dependencies(item_id, current, changed)

        return self._commands.run(
            request, "work_items.dependencies", decide, serialize_on=self._plan_of(item_id)
        )

    def _plan_of(self, item_id: UUID) -> UUID | None:
        """The plan a structure edit of this item writes, as the read model knows it (the
        edit itself loads the item; this only lets edits of one plan take turns)."""
        row = self._view.get(item_id)
        return plan_id(row.project) if row is not None else None

    def list(
        self,
        where: WorkItemFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[WorkItemView]:
        filters = {k: (str(v) if v is not None else None) for k, v in vars(where).items()}
        after = self._cursors.decode(cursor, filters).position() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._view, consistent_with)
        now = self._clock.now()
        rows = self._view.list(where, limit=limit + 1, after_position=after, now=now)
        return self._cursors.page(
            rows,
            limit,
            filters,
            position,
            lambda r: r.created_position,
            lambda r: WorkItemView.of_row(r, now),
        )


# --- rules shared by the commands -----------------------------------------------------------


def _require_writer(principal: Principal) -> None:
    principal.require_any_role(Role.AGENT, Role.COORDINATOR)  # auditors only read


def _guard(principal: Principal, item: WorkItem, fence: int | None, lease: datetime | None) -> None:
    """Who may write a claimed item. A presented fence must be the live claim's, and only its
    holder (or a coordinator) may present it. The holder must present it, even once its lease
    has lapsed (then to learn the claim is lost); another agent is told who holds the item; a
    coordinator may override without one."""
    is_holder = item.holder_agent is not None and principal.agent_id == item.holder_agent
    if fence is not None:
        item.check_fence(fence, holder_alive=lease is not None)
        if is_holder or principal.may_act_for_other_agents:
            return
    elif item.holder_session is None:
        return
    elif is_holder:
        raise FenceRequired(str(item.id), item.fence)
    elif lease is None or principal.may_act_for_other_agents:
        return
    if item.holder_session is not None and lease is not None:  # a live claim of another
        raise AlreadyClaimed(item.holder_session, item.holder_agent or "?", lease)


def _holder_lease(uow: UnitOfWork, item: WorkItem, now: datetime) -> datetime | None:
    """The holder's lease end while its session is active and the lease has not lapsed."""
    if item.holder_session is None:
        return None
    holder = uow.find(AgentSession, item.holder_session)
    if holder is None or holder.effective_status(now) is not SessionStatus.ACTIVE:
        return None
    return holder.lease_expires_at


def _claimant(
    uow: UnitOfWork, principal: Principal, session_id: UUID, now: datetime
) -> AgentSession:
    """The claiming session: active, unexpired, and the caller's own (a coordinator may use
    any agent's). Its agent becomes the holder."""
    session = uow.get(AgentSession, session_id, "session")
    agent_id = session.agent_id if principal.may_act_for_other_agents else principal.agent_id
    session.ensure_active_for(agent_id or principal.name, now)
    return session


def _ready_to_claim(uow: UnitOfWork, item: WorkItem, holder_lease: datetime | None) -> bool:
    """Readiness against the aggregates themselves, inside the claiming transaction (the
    item's own state first: the plan and the dependencies are loaded only when it passes)."""
    claimed_by = item.holder_agent if holder_lease is not None else None
    if not readiness(
        status=item.state, archived=item.archived, claimed_by=claimed_by, dependencies={}
    ).ready:
        return False
    project_archived = uow.get(Project, project_id(item.project), "project").archived
    plan = uow.get(ProjectPlan, plan_id(item.project), "plan")
    dependencies = {
        UUID(d): uow.get(WorkItem, UUID(d), "work item").state
        for d in plan.dependencies.get(str(item.id), [])
    }
    return readiness(
        status=item.state,
        archived=item.archived,
        claimed_by=claimed_by,
        dependencies=dependencies,
        project_archived=project_archived,
    ).ready


def _plan(uow: UnitOfWork, ctx: EventContext, project: str) -> ProjectPlan:
    plan = uow.find(ProjectPlan, plan_id(project))
    if plan is None:  # racing first items both start it: one save wins, the other re-runs
        plan = ProjectPlan.start(ctx, project)
        uow.add(plan)
    return plan


def _check_parent(uow: UnitOfWork, parent_id: UUID, project: str) -> None:
    parent = uow.get(WorkItem, parent_id, "work item")
    if parent.project != project:
        raise CrossProject("parent", project, parent.project)
    if parent.archived:
        raise ItemArchived(parent.id)


def _check_version(item: WorkItem, expected_version: int | None) -> None:
    if expected_version is not None and expected_version != item.version:
        raise PreconditionFailed(expected_version, item.version)


def _with(detail: ItemDetail, **parts: list[WorkItemView]) -> ItemDetail:
    return ItemDetail(**{**vars(detail), **parts})
