"""The composition root: build the ledger, read models, runners and use cases from settings."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import cast

import psycopg
from psycopg import sql

from agentledger.application.access import AccessService
from agentledger.application.agent_projections import AgentsProjection, TimelineProjection
from agentledger.application.agents import AgentService
from agentledger.application.approvals import ApprovalService
from agentledger.application.audit import AuditService
from agentledger.application.clock import Clock, SystemClock
from agentledger.application.commands import CommandRunner
from agentledger.application.consistency import Consistency
from agentledger.application.entries import EntryService
from agentledger.application.handovers import HandoverService
from agentledger.application.idempotency import IdempotencyService, IdempotencyStore
from agentledger.application.item_status import ItemStatusQuery
from agentledger.application.ledger import Ledger
from agentledger.application.messages import MessageService
from agentledger.application.past_status import PastStatus
from agentledger.application.policies import (
    ArchivedProjectClearsSelections,
    Policy,
    SessionEndReleasesClaims,
)
from agentledger.application.projections import (
    ApprovalsProjection,
    EntriesProjection,
    HandoversProjection,
    MessagesProjection,
    Projection,
    ProjectsProjection,
    SelectionsProjection,
    SessionsProjection,
    TokensProjection,
    WorkItemsProjection,
)
from agentledger.application.projects import ProjectService
from agentledger.application.readmodels import Cursors
from agentledger.application.refusals import RefusalLog
from agentledger.application.selections import SelectionService
from agentledger.application.sessions import SessionService
from agentledger.application.status import StatusService
from agentledger.application.work_items import WorkItemService
from agentledger.infrastructure.event_log import StoredAggregateLog
from agentledger.infrastructure.idempotency import PostgresIdempotentRecorder
from agentledger.infrastructure.locks import (
    AdvisoryLock,
    FileLock,
    RunnerLock,
    advisory_lock_held,
    file_lock_held,
)
from agentledger.infrastructure.metrics import count_conflict_retry, observe_batch_size
from agentledger.infrastructure.readmodels.agents import AgentsReadModel
from agentledger.infrastructure.readmodels.approvals import ApprovalsReadModel
from agentledger.infrastructure.readmodels.base import ReadModel
from agentledger.infrastructure.readmodels.entries import EntriesReadModel
from agentledger.infrastructure.readmodels.handovers import HandoversReadModel
from agentledger.infrastructure.readmodels.messages import MessagesReadModel
from agentledger.infrastructure.readmodels.projects import ProjectsReadModel
from agentledger.infrastructure.readmodels.seal import SealTables
from agentledger.infrastructure.readmodels.selections import SelectionsReadModel
from agentledger.infrastructure.readmodels.sessions import SessionsReadModel
from agentledger.infrastructure.readmodels.timeline import TimelineReadModel
from agentledger.infrastructure.readmodels.tokens import TokensReadModel
from agentledger.infrastructure.readmodels.work_items import WorkItemsTable
from agentledger.infrastructure.runners.log_tail import LogTail
from agentledger.infrastructure.runners.policy_worker import PolicyWorker
from agentledger.infrastructure.runners.projection_runner import ProjectionRunner
from agentledger.infrastructure.runners.projection_worker import ProjectionWorker
from agentledger.infrastructure.runners.registry import RunnerRegistry
from agentledger.infrastructure.runners.runner import Runner
from agentledger.infrastructure.runners.runner_set import RunnerSet
from agentledger.infrastructure.runners.seal_worker import SealWorker
from agentledger.infrastructure.runners.sweeper import Sweeper
from agentledger.infrastructure.scratch import ScratchReadModels
from agentledger.infrastructure.secrets import cursor_key
from agentledger.infrastructure.settings import Settings
from agentledger.infrastructure.storage import (
    ReadModelStores,
    apply_connection_environment,
    open_ledger,
    postgres_conninfo,
    probe_store,
)
from agentledger.infrastructure.store_errors import is_store_outage
from agentledger.infrastructure.wakeups import NotifyListener

# Policies wait this long for the read models they consult before failing (and retrying).
POLICY_READ_TIMEOUT_SECONDS = 30.0
# A process starting on a fresh store waits at most this long for another one creating its
# tables (which takes well under a second).
SCHEMA_LOCK_WAIT_SECONDS = 60.0


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    ledger: Ledger
    commands: CommandRunner
    consistency: Consistency
    sessions: SessionService
    access: AccessService
    projects: ProjectService
    selections: SelectionService
    entries: EntryService
    work_items: WorkItemService
    approvals: ApprovalService
    handovers: HandoverService
    messages: MessageService
    agents: AgentService
    item_status: ItemStatusQuery
    status: StatusService
    past_status: PastStatus
    audit: AuditService
    refusals: RefusalLog
    idempotency: IdempotencyService
    runners: RunnerSet
    sweeper: Sweeper
    read_models: dict[str, ReadModel]
    read_model_stores: ReadModelStores
    listener: NotifyListener | None = None

    def start_background(self) -> None:
        """Run projections, policies and the lease sweeper here (what `serve` does)."""
        self.start_runners()
        self.sweeper.start()

    def start_runners(self) -> None:
        """Run projections and policies here (standing by where another process runs them)."""
        self.runners.start()
        if self.listener is not None:
            self.listener.start()

    def catch_up(self) -> None:
        """Bring every read model to the head of the log (for one-shot CLI commands)."""
        for runner in self.runners.projections.values():
            runner.catch_up(self.consistency)
        if self.runners.seal is not None:
            self.runners.seal.catch_up(self.consistency)

    def is_store_reachable(self) -> bool:
        return probe_store(self.settings)

    def close(self) -> None:
        self.sweeper.stop(5)
        if self.listener is not None:
            self.listener.stop()
        self.runners.stop()
        self.read_model_stores.close()
        self.ledger.close()


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    if settings.uses_postgres:
        apply_connection_environment(settings)
    # Every process creates the tables it finds missing: one at a time, or two starting on a
    # fresh store at once both create them (duplicate types, a second migration record).
    with schema_lock(settings):
        if settings.uses_postgres:
            _ensure_schema(settings)
        ledger = open_ledger(settings)
        stores = ReadModelStores(settings)
        sessions = stores.open(SessionsReadModel)
        tokens = stores.open(TokensReadModel)
        projects = stores.open(ProjectsReadModel)
        selections = stores.open(SelectionsReadModel)
        entries = stores.open(EntriesReadModel)
        work_items = stores.open(WorkItemsTable)
        approvals = stores.open(ApprovalsReadModel)
        handovers = stores.open(HandoversReadModel)
        messages = stores.open(MessagesReadModel)
        agents = stores.open(AgentsReadModel)
        timeline = stores.open(TimelineReadModel)
        seal_tables = stores.open(SealTables)
        registry = stores.open(RunnerRegistry)
        cursors = Cursors(cursor_key(settings))
    commands = CommandRunner(
        ledger,
        clock,
        settings.group_commit_max,
        on_retry=count_conflict_retry,
        on_batch=observe_batch_size,
        is_outage=is_store_outage,
    )
    key_store = cast(IdempotencyStore, ledger.recorder)  # see infrastructure/idempotency.py
    commands.idempotency_store = key_store
    idempotency = IdempotencyService(
        key_store,
        clock,
        settings.idempotency_ttl_seconds,
        settings.idempotency_in_flight_seconds,
    )
    consistency = Consistency(
        timeout=settings.consistency_timeout_seconds, head=ledger.head_position
    )
    projections: list[tuple[ReadModel, Projection]] = [
        (sessions, SessionsProjection()),
        (tokens, TokensProjection()),
        (projects, ProjectsProjection()),
        (selections, SelectionsProjection()),
        (entries, EntriesProjection()),
        (work_items, WorkItemsProjection()),
        (approvals, ApprovalsProjection()),
        (handovers, HandoversProjection()),
        (messages, MessagesProjection()),
        (agents, AgentsProjection()),
        (timeline, TimelineProjection()),
    ]
    tail = LogTail(ledger)
    projection_runners = [
        ProjectionRunner(
            ledger,
            tail,
            ProjectionWorker(tail, read_model, projection),
            runner_lock(settings, read_model.name),
            settings.projection_poll_seconds,
            registry,
            rebuild_lock=runner_lock(settings, f"{read_model.name}.rebuild"),
        )
        for read_model, projection in projections
    ]
    policy_reads = Consistency(timeout=POLICY_READ_TIMEOUT_SECONDS, head=ledger.head_position)
    policies: list[Policy] = [
        ArchivedProjectClearsSelections(selections, projects, policy_reads),
        SessionEndReleasesClaims(work_items, policy_reads),
    ]
    policy_runners = [
        Runner(
            ledger,
            tail,
            PolicyWorker(ledger, tail, commands, policy),
            runner_lock(settings, policy.name),
            settings.projection_poll_seconds,
            registry,
        )
        for policy in policies
    ]
    seal_runner = Runner(
        ledger,
        tail,
        SealWorker(tail, seal_tables, clock, settings.seal_checkpoint_events),
        runner_lock(settings, seal_tables.name),
        settings.projection_poll_seconds,
        registry,
    )
    runners = RunnerSet(tail, projection_runners, policy_runners, seal_runner, registry)
    ledger.on_commit(runners.nudge)
    work_item_service = WorkItemService(commands, work_items, clock, consistency, cursors)
    session_service = SessionService(commands, sessions, clock, consistency, cursors)
    listener = None
    if isinstance(ledger.recorder, PostgresIdempotentRecorder):  # it NOTIFYs on each insert
        own = f"process-{uuid.uuid4()}"  # this runtime's commits nudge its runners directly
        ledger.recorder.sign_notifications(own)
        listener = NotifyListener(
            postgres_conninfo(settings),
            ledger.recorder.channel_name,
            runners.nudge,
            settings.connect_timeout_seconds,
            own,
        )
    return Runtime(
        settings=settings,
        clock=clock,
        ledger=ledger,
        commands=commands,
        consistency=consistency,
        sessions=session_service,
        access=AccessService(ledger, commands, tokens, consistency),
        projects=ProjectService(commands, projects, consistency, cursors),
        selections=SelectionService(commands, selections, consistency),
        entries=EntryService(commands, entries, projects, consistency, cursors),
        work_items=work_item_service,
        approvals=ApprovalService(commands, approvals, clock, consistency, cursors),
        handovers=HandoverService(commands, handovers, consistency, cursors),
        agents=AgentService(commands, agents, timeline, sessions, clock, consistency, cursors),
        messages=MessageService(
            commands,
            messages,
            agents,
            clock,
            consistency,
            cursors,
            settings.max_long_polls,
        ),
        item_status=ItemStatusQuery(work_item_service, approvals, entries, clock, consistency),
        status=StatusService(
            work_item_service, work_items, projects, sessions, selections, clock, consistency
        ),
        past_status=PastStatus(ledger, ScratchReadModels, cursors),
        audit=AuditService(ledger, StoredAggregateLog(ledger.recorder), seal_tables),
        refusals=RefusalLog(commands, clock),
        idempotency=idempotency,
        runners=runners,
        sweeper=Sweeper(
            session_service,
            settings.sweep_interval_seconds,
            idempotency,
            work_item_service.sweep_claims,
        ),
        read_models={read_model.name: read_model for read_model, _ in projections},
        read_model_stores=stores,
        listener=listener,
    )


def runner_lock(settings: Settings, name: str) -> RunnerLock:
    if settings.uses_postgres:
        return AdvisoryLock(
            postgres_conninfo(settings),
            f"agentledger:runner:{settings.postgres_schema}.{name}",
            settings.connect_timeout_seconds,
        )
    return FileLock(settings.data_dir / f"{name}.lock")


def schema_lock(settings: Settings) -> AbstractContextManager[None]:
    """Held while a process creates the store's schema and tables (or finds them made)."""
    if settings.uses_postgres:
        return advisory_lock_held(
            postgres_conninfo(settings),
            f"agentledger:schema:{settings.postgres_schema}",
            settings.connect_timeout_seconds,
            SCHEMA_LOCK_WAIT_SECONDS,
        )
    return file_lock_held(settings.data_dir / "schema.lock", SCHEMA_LOCK_WAIT_SECONDS)


def _ensure_schema(settings: Settings) -> None:
    with psycopg.connect(
        postgres_conninfo(settings),
        autocommit=True,
        connect_timeout=settings.connect_timeout_seconds,
    ) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(settings.postgres_schema)
            )
        )
