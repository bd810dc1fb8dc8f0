"""AgentLedger as a competitor, three ways; on PostgreSQL each in its own throwaway schema:

- `agentledger-inproc`: the application services called directly, the runners (projections,
  policies) running in the same process, default settings;
- `agentledger-inproc-apart`: the same with the runners in one `agentledger projections run`
  process beside it, the layout recommended under load (1 and 16 clients);
- `agentledger-sqlite`: the same in process on the embedded SQLite store (1 and 16 clients);
- `agentledger-http`: a real `agentledger serve` on loopback, one HTTP client per load
  generator thread; the server's own time comes from `Server-Timing: app;dur=<ms>`.

Setup (tokens, projects, ready work items) goes through the application layer, untimed: for
the HTTP competitor a second runtime on the server's schema, without runners, writes it.
"""

from __future__ import annotations

import itertools
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from agentledger.application.context import RequestContext, local_operator
from agentledger.application.entries import NewEntry
from agentledger.application.preconditions import Precondition
from agentledger.application.work_items import NewWorkItem
from agentledger.infrastructure.bootstrap import Runtime, build_runtime, runner_lock
from agentledger.infrastructure.locks import AdvisoryLock
from agentledger.infrastructure.settings import Settings
from bench.core import Operation, Stop, latency_summary
from bench.harness import projections_running, served
from bench.http_client import Client, Reply
from bench.http_work_items import server_seconds
from bench.sql_competitors import throwaway_schema

PROJECTS = ("bench-a", "bench-b")
APART_PROJECTS = ("apart-a", "apart-b")
# Connection pools of each AgentLedger process (event store, and read models: two pools), set
# below the defaults (5 + 20 overflow) so that two processes, their runners' lock connections
# and the raw-SQL competitors fit in PostgreSQL's default max_connections of 100 (with
# fourteen runners, each holding a lock connection in the processes that run them, an overflow
# of 10 no longer did).
POOL = {"pool_size": 2, "pool_max_overflow": 6}
# The in-process competitor with its runners apart is one more process on the server, its
# pooled connections kept between cells: smaller pools keep a full run (64 clients) within
# the server's 100 connections. At 16 clients its commands share 4 connections per pool.
APART_POOL = {"pool_size": 1, "pool_max_overflow": 3}
CONSISTENT_WITH = "AgentLedger-Consistent-With"
POSITION = "AgentLedger-Position"
# Which read model shows each command's effect (for the lag measurement).
READ_MODEL_OF = {
    "heartbeat": "sessions_v3",
    "session_start": "sessions_v3",
    "append": "entries_v2",
    "claim_next": "work_items_v4",
    "switch": "selections_v1",
}


def _drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class _Setup:
    """Tokens, projects and ready items written through one runtime's application layer."""

    def __init__(self, rt: Runtime, prefix: str = "claims") -> None:
        self.rt = rt
        self._prefix = prefix
        operator = RequestContext(local_operator("bench"), "bench-setup")
        self.operator = operator
        self.boss = self.context("user:bench-coordinator", "coordinator")
        self._projects = itertools.count()

    def token(self, principal: str, role: str) -> str:
        return self.rt.access.issue(self.operator, principal, [role]).value.secret

    def context(self, principal: str, role: str) -> RequestContext:
        secret = self.token(principal, role)
        return RequestContext(self.rt.access.authenticate(secret), principal)

    def claim_project(self, items: int) -> tuple[str, int]:
        """A fresh project of `items` ready items; returns it and the last write's position."""
        project = f"{self._prefix}-{next(self._projects)}"
        last = self.rt.projects.create(self.boss, project).position
        rng = random.Random(len(project) + items)
        for n in range(items):
            new = NewWorkItem(
                project=project, kind="task", title=f"ready #{n}", priority=rng.randint(-5, 5)
            )
            last = self.rt.work_items.create(self.boss, new).position
        return project, last


class InProcess:
    name = "agentledger-inproc"
    projects = PROJECTS
    pool = POOL
    # The lag watcher polls every ~0.5 ms from a thread of the measured process: only where
    # its figures are reported.
    watches_lag = True

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.schema = throwaway_schema("al")

    def settings(self) -> Settings:
        return Settings(database_url=self.url, postgres_schema=self.schema, **self.pool)

    def open(self) -> None:
        self.rt = build_runtime(self.settings())
        self.rt.start_runners()
        runners = {runner.name: runner for runner in self.rt.runners.all()}
        self.lag = LagLog(
            "commit → visible in the read model showing it, runners in the process running the"
            " commands (in-process), every write of the mixed cells",
            lambda: {name: runner.progress() or 0 for name, runner in runners.items()},
        )
        self.setup = _Setup(self.rt)
        for project in PROJECTS:
            self.rt.projects.create(self.setup.boss, project)
        self.agents: list[dict[str, Any]] = []

    def _agent(self, index: int) -> dict[str, Any]:
        name = f"bench{index}"
        ctx = self.setup.context(f"agent:{name}", "agent")
        session = self.rt.sessions.start(ctx, ttl_seconds=600).value.id
        selected = self.rt.selections.select(ctx, name, PROJECTS[0], session, Precondition.absent())
        return {
            "name": name,
            "ctx": ctx,
            "session": session,
            "version": selected.value.version,
            "project": PROJECTS[0],
        }

    def prepare(self, scenario: str, clients: int, claimable: int) -> list[Operation]:
        while len(self.agents) < clients:
            self.agents.append(self._agent(len(self.agents)))
        project = None
        if scenario in ("claim_next", "mixed"):
            project, last = self.setup.claim_project(claimable)
            self.rt.work_items.ready(project=project, consistent_with=last)
        if self.watches_lag:
            self.lag.prepare(scenario, clients)
        self._head = self.rt.ledger.head_position()
        return [self._client(a, project) for a in self.agents[:clients]]

    def _client(self, agent: dict[str, Any], project: str | None) -> Operation:
        rt, ctx, session = self.rt, agent["ctx"], agent["session"]
        counter = itertools.count()

        def run(command: str) -> Any:
            if command == "session_start":
                return rt.sessions.start(ctx, ttl_seconds=600)
            if command == "heartbeat":
                return rt.sessions.heartbeat(ctx, session)
            if command == "switch":
                outcome = rt.selections.select(
                    ctx,
                    agent["name"],
                    _other(agent, self.projects),
                    session,
                    Precondition.at(agent["version"]),
                )
                agent["version"], agent["project"] = outcome.value.version, outcome.value.project
                return outcome
            if command == "append":
                i = next(counter)
                entry = NewEntry(message=f"step {i}", session_id=session, metadata={"i": i})
                return rt.entries.append(ctx, self.projects[0], entry)
            if command == "claim_next":
                outcome = rt.work_items.claim_next(ctx, session, project=project)
                if outcome is None:
                    raise Stop
                return outcome
            raise ValueError(command)

        def op(command: str) -> None:
            outcome = run(command)
            watcher = self.lag.watcher
            if watcher is not None and outcome.events_written:
                watcher.committed(outcome.position, READ_MODEL_OF[command])

        return op

    def cell_extra(self, scenario: str, ops: int) -> dict[str, Any]:
        writes = self.rt.ledger.head_position() - self._head
        return {"writes": writes, **self.lag.cell_extra()}

    def after_commands(self, args: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if (lag := self.lag.summary()) is not None:
            out["lag"] = lag
        if args.wanted is None or "rebuild" in args.wanted:
            out["rebuild"] = self.rebuild_rates()
        return out

    def rebuild_rates(self) -> dict[str, Any]:
        """Each projection emptied and rebuilt from the whole log the commands left behind
        (every event read; each projection applies the ones it follows)."""
        print("rebuild:", flush=True)
        head = self.rt.ledger.head_position()
        found = []
        for name, runner in self.rt.runners.projections.items():
            runner.stop()  # a running runner is not rebuilt under its feet
            try:
                report = runner.rebuild()
            finally:
                runner.start()
            if report is None:  # another process runs it: nothing to measure here
                continue
            found.append(
                {
                    "projection": name,
                    "events": report.events,
                    "applied": report.applied,
                    "seconds": round(report.seconds, 3),
                    "events_per_second": round(report.events_per_second),
                }
            )
            print(f"  {name}: {report.events_per_second:,.0f} events/s", flush=True)
        return {"what": "in-process rebuild, PostgreSQL", "log_events": head, "projections": found}

    def close(self) -> None:
        try:
            self.rt.close()
        finally:
            self.discard_store()

    def discard_store(self) -> None:
        _drop_schema(self.url, self.schema)


class InProcessRunnersApart(InProcess):
    """The application layer called directly, the runners in one `agentledger projections
    run` process beside it: what a command costs its caller when the projections' work is not
    done in the caller's interpreter. At 1 and 16 clients; lag and rebuild rates are measured
    with the runners in process. Beside the HTTP competitor it writes to that competitor's
    schema, whose projections process then runs its read models too (a second process with
    fourteen runner locks and its pools would not fit in PostgreSQL's default 100
    connections beside the others); alone it starts its own."""

    name = "agentledger-inproc-apart"
    projects = APART_PROJECTS
    concurrencies = (1, 16)
    watches_lag = False

    def __init__(self, database_url: str, beside: Http | None = None) -> None:
        super().__init__(database_url)
        self.pool = APART_POOL
        self._beside = beside
        self._stack = ExitStack()
        if beside is not None and beside.projections_process:
            self.schema = beside.schema

    def open(self) -> None:
        settings = self.settings()
        self.rt = build_runtime(settings)
        if self.schema != getattr(self._beside, "schema", None):
            env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
            env |= {"DATABASE_URL": self.url, "AGENTLEDGER_POSTGRES_SCHEMA": self.schema}
            env |= {f"AGENTLEDGER_{k.upper()}": str(v) for k, v in POOL.items()}
            locks = [runner_lock(settings, runner.name) for runner in self.rt.runners.all()]
            held = [lock.key for lock in locks if isinstance(lock, AdvisoryLock)]
            self._stack.enter_context(projections_running(env, held, self.url))
        self.lag = LagLog("", dict)  # not measured here
        self.setup = _Setup(self.rt, "apart-claims")
        for project in self.projects:
            self.rt.projects.create(self.setup.boss, project)
        self.agents = []

    def _agent(self, index: int) -> dict[str, Any]:
        # Its own agents and projects: the HTTP competitor's share the schema.
        name = f"apart{index}"
        ctx = self.setup.context(f"agent:{name}", "agent")
        session = self.rt.sessions.start(ctx, ttl_seconds=600).value.id
        first = self.projects[0]
        selected = self.rt.selections.select(ctx, name, first, session, Precondition.absent())
        return {
            "name": name,
            "ctx": ctx,
            "session": session,
            "version": selected.value.version,
            "project": first,
        }

    def after_commands(self, args: Any) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        try:
            self.rt.close()
            self._stack.close()
        finally:
            if self.schema != getattr(self._beside, "schema", None):
                self.discard_store()


class Embedded(InProcess):
    """The application layer in process on the embedded SQLite store, the zero-setup default;
    at 1 and 16 clients only (a full run has to fit in ten minutes). Lag and rebuild rates
    are measured on PostgreSQL."""

    name = "agentledger-sqlite"
    concurrencies = (1, 16)
    watches_lag = False

    def __init__(self) -> None:
        super().__init__("")
        self._data_dir = Path(tempfile.mkdtemp(prefix="agentledger-bench-"))

    def settings(self) -> Settings:
        return Settings(database_url=None, data_dir=self._data_dir)

    def after_commands(self, args: Any) -> dict[str, Any]:
        return {}

    def discard_store(self) -> None:
        shutil.rmtree(self._data_dir, ignore_errors=True)


class LagWatcher:
    """Read-model lag, commit → visible: each write is noted when its command returns; a
    thread polls (every ~0.5 ms) the position each read model has processed and committed,
    and records how long each write waited to be covered by its read model."""

    def __init__(self, progress: Callable[[], Mapping[str, int]]) -> None:
        self._progress = progress
        self._pending: list[tuple[int, float, str]] = []
        self._lock = threading.Lock()
        self._active = True
        self.lags: list[float] = []
        self.unresolved = 0
        self._thread = threading.Thread(target=self._watch, name="lag-watcher", daemon=True)
        self._thread.start()

    def committed(self, position: int, read_model: str) -> None:
        with self._lock:
            self._pending.append((position, time.perf_counter(), read_model))

    def _watch(self) -> None:
        drain_until = None
        while True:
            progress = self._progress()
            now = time.perf_counter()
            with self._lock:
                waiting = []
                for position, at, read_model in self._pending:
                    if progress.get(read_model, 0) >= position:
                        self.lags.append(max(0.0, now - at))
                    else:
                        waiting.append((position, at, read_model))
                self._pending = waiting
            if not self._active:
                drain_until = drain_until or now + 5.0
                if not waiting or now > drain_until:
                    self.unresolved = len(waiting)
                    return
            time.sleep(0.0005)

    def stop(self) -> None:
        self._active = False
        self._thread.join(10)


class LagLog:
    """Lag samples of the mixed cells, by the cell's number of clients."""

    def __init__(self, what: str, progress: Callable[[], Mapping[str, int]]) -> None:
        self.what = what
        self._progress = progress
        self.lags: dict[int, list[float]] = {}
        self._clients = 0
        self.watcher: LagWatcher | None = None

    def prepare(self, scenario: str, clients: int) -> None:
        self._clients = clients
        if scenario == "mixed":
            self.watcher = LagWatcher(self._progress)

    def cell_extra(self) -> dict[str, Any]:
        if self.watcher is None:
            return {}
        self.watcher.stop()
        self.lags.setdefault(self._clients, []).extend(self.watcher.lags)
        unresolved = self.watcher.unresolved
        self.watcher = None
        return {"lag_unresolved": unresolved}

    def summary(self) -> dict[str, Any] | None:
        if not self.lags:
            return None
        every = [lag for lags in self.lags.values() for lag in lags]
        return {
            "what": self.what,
            "samples": len(every),
            **latency_summary(every),
            "by_clients": [
                {"clients": clients, "samples": len(lags), **latency_summary(lags)}
                for clients, lags in sorted(self.lags.items())
            ],
        }


class Http:
    name = "agentledger-http"

    def __init__(
        self, database_url: str, workers: int = 1, projections_process: bool = True
    ) -> None:
        self.url = database_url
        self.workers = workers
        self.projections_process = projections_process
        self.schema = throwaway_schema("http")
        self._stack = ExitStack()

    def _built_elsewhere(self, timeout: float = 60.0) -> None:
        """Wait until the projections process has recorded every read model up to the setup's
        writes: a `serve` started before then finds one never built, and answers 503
        `read-model-building` until it looks again (a quick run once met that)."""
        head = self.rt.ledger.head_position()
        deadline = time.monotonic() + timeout
        while any(m.recorded_position() < head for m in self.rt.read_models.values()):
            assert time.monotonic() < deadline, "projections run did not build its read models"
            time.sleep(0.05)

    def open(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env |= {"DATABASE_URL": self.url, "AGENTLEDGER_POSTGRES_SCHEMA": self.schema}
        # The workers split one process's overflow between them, to stay within the budget.
        pool = {**POOL, "pool_max_overflow": max(2, POOL["pool_max_overflow"] // self.workers)}
        env |= {f"AGENTLEDGER_{k.upper()}": str(v) for k, v in pool.items()}
        # The same schema, no runners: writes setup data the server's runners then project.
        settings = Settings(
            database_url=self.url, postgres_schema=self.schema, pool_size=1, pool_max_overflow=1
        )
        self.rt = build_runtime(settings)
        if self.projections_process:
            locks = [runner_lock(settings, runner.name) for runner in self.rt.runners.all()]
            held = [lock.key for lock in locks if isinstance(lock, AdvisoryLock)]
            process_env = env | {f"AGENTLEDGER_{k.upper()}": str(v) for k, v in POOL.items()}
            self._stack.enter_context(projections_running(process_env, held, self.url))
            self._built_elsewhere()
        self.base = self._stack.enter_context(served(env, self.workers))
        read_models = {name: self.rt.read_models[name] for name in set(READ_MODEL_OF.values())}
        self.lag = LagLog(
            "commit → visible in the read model showing it, runners in "
            + ("one `projections run` process" if self.projections_process else "`serve`")
            + ", every write of the mixed cells but heartbeats (an answer does not say whether"
            " it wrote; almost none do), read-model positions polled from PostgreSQL",
            lambda: {name: model.position() for name, model in read_models.items()},
        )
        self.setup = _Setup(self.rt)
        for project in PROJECTS:
            self.rt.projects.create(self.setup.boss, project)
        self.agents: list[dict[str, Any]] = []

    def _agent(self, index: int) -> dict[str, Any]:
        name = f"bench{index}"
        token = self.setup.token(f"agent:{name}", "agent")
        client = Client(self.base, headers={"Authorization": f"Bearer {token}"})
        session = _ok(client.post("/v1/sessions", json={"ttl_seconds": 600}))["id"]
        selected = client.put(
            f"/v1/agents/{name}/project",
            json={"project": PROJECTS[0], "session_id": session},
            headers={"If-None-Match": "*"},
        )
        return {
            "name": name,
            "client": client,
            "session": session,
            "version": _ok(selected)["version"],
            "project": PROJECTS[0],
        }

    def prepare(self, scenario: str, clients: int, claimable: int) -> list[Operation]:
        while len(self.agents) < clients:
            self.agents.append(self._agent(len(self.agents)))
        project = None
        if scenario in ("claim_next", "mixed"):
            project, last = self.setup.claim_project(claimable)
            self._caught_up(self.agents[0]["client"], project, last)
        self.lag.prepare(scenario, clients)
        self._head = self.rt.ledger.head_position()
        return [self._client(a, project) for a in self.agents[:clients]]

    @staticmethod
    def _caught_up(client: Client, project: str, position: int) -> None:
        deadline = time.monotonic() + 60
        while True:
            response = client.get(
                "/v1/work-items/ready",
                params={"project": project},
                headers={CONSISTENT_WITH: str(position)},
            )
            if response.status_code == 200:
                return
            assert response.status_code == 503 and time.monotonic() < deadline, response.text

    def _client(self, agent: dict[str, Any], project: str | None) -> Operation:
        client, session, name = agent["client"], agent["session"], agent["name"]
        counter = itertools.count()

        def op(command: str) -> float | None:
            if command == "session_start":
                response = client.post("/v1/sessions", json={"ttl_seconds": 600})
            elif command == "heartbeat":
                response = client.post(f"/v1/sessions/{session}/heartbeat")
            elif command == "switch":
                response = client.put(
                    f"/v1/agents/{name}/project",
                    json={"project": _other(agent), "session_id": session},
                    headers={"If-Match": f'"{agent["version"]}"'},
                )
                body = _ok(response)
                agent["version"], agent["project"] = body["version"], body["project"]
            elif command == "append":
                i = next(counter)
                response = client.post(
                    f"/v1/projects/{PROJECTS[0]}/entries",
                    json={"message": f"step {i}", "session_id": session, "metadata": {"i": i}},
                )
            elif command == "claim_next":
                response = client.post(
                    "/v1/work-items/claim-next", json={"session_id": session, "project": project}
                )
                if response.status_code == 204:
                    raise Stop
            else:
                raise ValueError(command)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"{response.status_code} {response.text[:200]}")
            watcher = self.lag.watcher
            # A heartbeat's answer does not say whether it wrote (almost none do): counted
            # only in process, where the outcome says so.
            if watcher is not None and command != "heartbeat":
                watcher.committed(int(response.headers[POSITION]), READ_MODEL_OF[command])
            return server_seconds(response)

        return op

    def cell_extra(self, scenario: str, ops: int) -> dict[str, Any]:
        writes = self.rt.ledger.head_position() - self._head
        return {"writes": writes, **self.lag.cell_extra()}

    def after_commands(self, args: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if (lag := self.lag.summary()) is not None:
            out["lag_server"] = lag
        if args.wanted is None or "generator" in args.wanted:
            out["generator"] = self.generator_ceiling(args.concurrencies, args.duration)
        if args.wanted is None or "queries" in args.wanted:
            from bench import queries

            print("queries:", flush=True)
            out |= queries.measure(self, args.query_clients, args.rounds, args.duration)
        return out

    def generator_ceiling(self, concurrencies: list[int], duration: float) -> list[dict[str, Any]]:
        """What the load generator reaches against `GET /healthz` (no store work)."""
        from bench.core import run_cell

        out = []
        for clients in concurrencies:
            while len(self.agents) < clients:
                self.agents.append(self._agent(len(self.agents)))

            def ping(client: Client) -> Operation:
                def op(command: str) -> float | None:
                    return server_seconds(client.get("/healthz"))

                return op

            cell = run_cell([ping(a["client"]) for a in self.agents[:clients]], "ping", duration)
            out.append(
                {
                    "clients": clients,
                    "per_second": round(cell.per_second, 1),
                    **latency_summary(cell.latencies),
                }
            )
        return out

    def close(self) -> None:
        try:
            for agent in getattr(self, "agents", []):
                agent["client"].close()
            if hasattr(self, "rt"):
                self.rt.close()
            self._stack.close()
        finally:
            _drop_schema(self.url, self.schema)


def _other(agent: dict[str, Any], projects: tuple[str, str] = PROJECTS) -> str:
    """The project a switch moves the agent to: always a change, so always written."""
    return projects[1] if agent["project"] == projects[0] else projects[0]


def _ok(response: Reply) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


__all__ = ["UUID", "Http", "InProcess"]
