"""The composition root: build the ledger, read models, runners and use cases from settings."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from agentledger.application.access import AccessService
from agentledger.application.clock import Clock, SystemClock
from agentledger.application.commands import CommandRunner
from agentledger.application.consistency import Consistency
from agentledger.application.entries import EntryService
from agentledger.application.ledger import Ledger
from agentledger.application.policies import (
    ArchivedProjectClearsSelections,
    SessionEndReleasesClaims,
)
from agentledger.application.projections import (
    EntriesProjection,
    ProjectsProjection,
    SelectionsProjection,
    SessionsProjection,
    TokensProjection,
    WorkItemsProjection,
)
from agentledger.application.projects import ProjectService
from agentledger.application.readmodels import Cursors
from agentledger.application.selections import SelectionService
from agentledger.application.sessions import SessionService
from agentledger.application.status import StatusService
from agentledger.application.work_items import WorkItemService
from agentledger.infrastructure.locks import AdvisoryLock, FileLock, RunnerLock
from agentledger.infrastructure.readmodels.entries import PostgresEntriesView, SQLiteEntriesView
from agentledger.infrastructure.readmodels.projects import PostgresProjectsView, SQLiteProjectsView
from agentledger.infrastructure.readmodels.selections import (
    PostgresSelectionsView,
    SQLiteSelectionsView,
)
from agentledger.infrastructure.readmodels.sessions import PostgresSessionsView, SQLiteSessionsView
from agentledger.infrastructure.readmodels.tokens import PostgresTokensView, SQLiteTokensView
from agentledger.infrastructure.readmodels.work_items import (
    PostgresWorkItemsView,
    SQLiteWorkItemsView,
)
from agentledger.infrastructure.runners import (
    LiveView,
    LogTail,
    PolicyWorker,
    ProjectionWorker,
    Runner,
    RunnerSet,
)
from agentledger.infrastructure.secrets import cursor_key
from agentledger.infrastructure.settings import Settings
from agentledger.infrastructure.storage import (
    apply_connection_environment,
    open_ledger,
    open_views,
    postgres_conninfo,
    probe_store,
)
from agentledger.infrastructure.wakeups import CommitListener

log = logging.getLogger("agentledger")

# Policies wait this long for the read models they consult before failing (and retrying).
POLICY_READ_TIMEOUT_SECONDS = 30.0


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
    status: StatusService
    runners: RunnerSet
    views: dict[str, Any]
    listener: CommitListener | None = None
    _sweeper_stop: threading.Event = field(default_factory=threading.Event)
    _sweeper: threading.Thread | None = None

    def start_background(self) -> None:
        """Run projections, policies and the lease sweeper here (what `serve` does)."""
        self.start_runners()
        self._sweeper_stop.clear()
        self._sweeper = threading.Thread(target=self._sweep_forever, name="sweeper", daemon=True)
        self._sweeper.start()

    def start_runners(self) -> None:
        """Run projections and policies here (standing by where another process runs them)."""
        self.runners.start()
        if self.listener is not None:
            self.listener.start()

    def catch_up(self) -> None:
        """Bring every read model to the head of the log (for one-shot CLI commands)."""
        for name in self.views:
            self.runners.runners[name].catch_up(self.consistency)

    def is_store_reachable(self) -> bool:
        return probe_store(self.settings)

    def close(self) -> None:
        self._sweeper_stop.set()
        if self._sweeper is not None:
            self._sweeper.join(5)
        if self.listener is not None:
            self.listener.stop()
        self.runners.stop()
        for datastore in {id(v.datastore): v.datastore for v in self.views.values()}.values():
            datastore.close()
        self.ledger.close()

    def _sweep_forever(self) -> None:
        while not self._sweeper_stop.wait(self.settings.sweep_interval_seconds):
            try:
                expired = self.sessions.sweep()
                if expired:
                    log.info("sweeper recorded %d expired session(s)", expired)
            except Exception:
                log.exception("sweep failed; will try again")


def build_runtime(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    if settings.uses_postgres:
        apply_connection_environment(settings)
        _ensure_schema(settings)
    ledger = open_ledger(settings)
    cursors = Cursors(cursor_key(settings))
    commands = CommandRunner(ledger, clock, settings.group_commit_max)
    consistency = Consistency(
        timeout=settings.consistency_timeout_seconds, head=ledger.head_position
    )
    views = open_views(
        settings,
        [
            (PostgresSessionsView, SQLiteSessionsView),
            (PostgresTokensView, SQLiteTokensView),
            (PostgresProjectsView, SQLiteProjectsView),
            (PostgresSelectionsView, SQLiteSelectionsView),
            (PostgresEntriesView, SQLiteEntriesView),
            (PostgresWorkItemsView, SQLiteWorkItemsView),
        ],
    )
    projections = {
        "sessions_v1": SessionsProjection(),
        "tokens_v1": TokensProjection(),
        "projects_v1": ProjectsProjection(),
        "selections_v1": SelectionsProjection(),
        "entries_v1": EntriesProjection(),
        "work_items_v1": WorkItemsProjection(),
    }
    tail = LogTail(ledger)
    projection_runners = [
        Runner(
            ledger,
            tail,
            ProjectionWorker(tail, views[name], projection),
            runner_lock(settings, name),
            settings.projection_poll_seconds,
        )
        for name, projection in projections.items()
    ]
    # Readers see a read model as this process does: past events it does not follow at once.
    live = {r.name: LiveView(views[r.name], r) for r in projection_runners}
    policy_reads = Consistency(timeout=POLICY_READ_TIMEOUT_SECONDS, head=ledger.head_position)
    policies = [
        ArchivedProjectClearsSelections(live["selections_v1"], live["projects_v1"], policy_reads),
        SessionEndReleasesClaims(live["work_items_v1"], policy_reads),
    ]
    policy_runners = [
        Runner(
            ledger,
            tail,
            PolicyWorker(ledger, tail, commands, policy),
            runner_lock(settings, policy.name),
            settings.projection_poll_seconds,
        )
        for policy in policies
    ]
    runners = RunnerSet([*projection_runners, *policy_runners])
    commands.on_commit(runners.nudge)
    work_items = WorkItemService(commands, live["work_items_v1"], clock, consistency, cursors)
    listener = None
    if settings.uses_postgres:
        channel = ledger.recorder.channel_name  # type: ignore[attr-defined]
        listener = CommitListener(
            postgres_conninfo(settings), channel, runners.nudge, settings.connect_timeout_seconds
        )
    return Runtime(
        settings=settings,
        clock=clock,
        ledger=ledger,
        commands=commands,
        consistency=consistency,
        sessions=SessionService(commands, live["sessions_v1"], clock, consistency, cursors),
        access=AccessService(ledger, commands, live["tokens_v1"], consistency),
        projects=ProjectService(commands, live["projects_v1"], consistency, cursors),
        selections=SelectionService(commands, live["selections_v1"], consistency),
        entries=EntryService(
            commands, live["entries_v1"], live["projects_v1"], consistency, cursors
        ),
        work_items=work_items,
        status=StatusService(
            work_items,
            live["work_items_v1"],
            live["projects_v1"],
            live["sessions_v1"],
            live["selections_v1"],
            clock,
            consistency,
        ),
        runners=runners,
        views=views,
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
