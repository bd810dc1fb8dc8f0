"""Where a command's time goes, in process on PostgreSQL: `python -m bench.profile`.

For each command (switch, append, claim-next, a heartbeat that writes nothing) it runs N of
them from one client and then from sixteen with the runners (projections, policies) in the
process, then from one client with them stopped, and reports
- p50 / p99 latency;
- round trips to the store per command (every statement psycopg sends, counted by wrapping
  its cursor and connection `execute` for this run only), split into reads and writes;
- a cProfile of the one-client loop, its time grouped by where it was spent: the event-store
  library (loading, decoding, recording), psycopg (including waiting for the server),
  pydantic, our own code, and the rest.

`make bench` runs it (`--only profile`) and docs/performance.md shows its table.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from agentledger.application.context import RequestContext
from agentledger.application.entries import NewEntry
from agentledger.application.preconditions import Precondition
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from bench.agentledger_competitors import PROJECTS, _drop_schema, _Setup
from bench.sql_competitors import throwaway_schema

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
GROUPS = (
    ("eventsourcing", "/eventsourcing/"),
    ("psycopg (driver, and waiting for the server)", "/psycopg"),
    ("pydantic", "/pydantic"),
    ("agentledger", "/agentledger/"),
    ("threading/queue (waiting for a turn)", "/threading.py"),
)


class StatementCounter:
    """Counts the statements psycopg sends (and commits), per thread, with the time each kind
    took from sending to its answer, while installed."""

    def __init__(self) -> None:
        self.local = threading.local()

    def counts(self) -> Counter[str]:
        if not hasattr(self.local, "counts"):
            self.local.counts = Counter()
        return self.local.counts  # type: ignore[no-any-return]

    def seconds(self) -> Counter[str]:
        if not hasattr(self.local, "seconds"):
            self.local.seconds = Counter()
        return self.local.seconds  # type: ignore[no-any-return]

    @contextmanager
    def installed(self) -> Iterator[None]:
        targets = [
            (psycopg.Cursor, "execute"),
            (psycopg.Cursor, "executemany"),
            (psycopg.Connection, "execute"),
            (psycopg.Connection, "commit"),
        ]
        originals = [getattr(cls, name) for cls, name in targets]
        counter = self

        def kind(query: Any) -> str:
            if not isinstance(query, str | bytes):
                query = getattr(query, "as_string", lambda: "")()
            if isinstance(query, bytes):
                query = query.decode()
            text = str(query).lstrip().upper()
            return "SELECT" if text.startswith(("SELECT", "WITH")) else text.split(" ", 1)[0]

        def timed(original: Any, label: Callable[..., str]) -> Any:
            def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
                name = label(*args, **kwargs)
                began = time.perf_counter()
                try:
                    return original(self, *args, **kwargs)
                finally:
                    counter.counts()[name] += 1
                    counter.seconds()[name] += time.perf_counter() - began

            return wrapper

        for (cls, name), original in zip(targets, originals, strict=True):
            label = (
                (lambda *a, **k: "COMMIT")
                if name == "commit"
                else (lambda *a, **k: kind(a[0] if a else k.get("query", "")))
            )
            setattr(cls, name, timed(original, label))
        try:
            yield
        finally:
            for (cls, name), original in zip(targets, originals, strict=True):
                setattr(cls, name, original)


class Agent:
    def __init__(self, rt: Runtime, setup: _Setup, index: int) -> None:
        self.rt = rt
        self.name = f"prof{index}"
        self.ctx: RequestContext = setup.context(f"agent:{self.name}", "agent")
        self.session = rt.sessions.start(self.ctx, ttl_seconds=600).value.id
        selected = rt.selections.select(
            self.ctx, self.name, PROJECTS[0], self.session, Precondition.absent()
        )
        self.version, self.project = selected.value.version, PROJECTS[0]
        self.entries = itertools.count()
        self.claim_project: str | None = None

    def command(self, name: str) -> Callable[[], object]:
        rt = self.rt

        def switch() -> object:
            other = PROJECTS[1] if self.project == PROJECTS[0] else PROJECTS[0]
            out = rt.selections.select(
                self.ctx, self.name, other, self.session, Precondition.at(self.version)
            )
            self.version, self.project = out.value.version, out.value.project
            return out

        def append() -> object:
            i = next(self.entries)
            entry = NewEntry(message=f"step {i}", session_id=self.session, metadata={"i": i})
            return rt.entries.append(self.ctx, PROJECTS[0], entry)

        def claim_next() -> object:
            return rt.work_items.claim_next(self.ctx, self.session, project=self.claim_project)

        def heartbeat() -> object:
            return rt.sessions.heartbeat(self.ctx, self.session)

        def session_start() -> object:
            return rt.sessions.start(self.ctx, ttl_seconds=600)

        return {
            "switch": switch,
            "append": append,
            "claim_next": claim_next,
            "heartbeat": heartbeat,
            "session_start": session_start,  # not in COMMANDS: one INSERT, nothing loaded
        }[name]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_one(
    agents: list[Agent], command: str, per_client: int, counter: StatementCounter, profile: bool
) -> dict[str, Any]:
    latencies: list[float] = []
    statements: Counter[str] = Counter()
    statement_seconds: Counter[str] = Counter()
    lock = threading.Lock()
    profiler = cProfile.Profile() if profile else None

    def client(agent: Agent) -> None:
        do = agent.command(command)
        mine: list[float] = []
        counts, seconds = counter.counts(), counter.seconds()
        counts.clear()
        seconds.clear()
        for _ in range(per_client):
            began = time.perf_counter()
            do()
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)
            statements.update(counts)
            statement_seconds.update(seconds)

    if profiler is not None:
        profiler.enable()
        client(agents[0])
        profiler.disable()
    else:
        threads = [threading.Thread(target=client, args=(a,)) for a in agents]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    commands = len(latencies)
    result: dict[str, Any] = {
        "command": command,
        "clients": len(agents) if profiler is None else 1,
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "statements_per_command": {k: round(v / commands, 2) for k, v in statements.items()},
        "statement_ms_per_command": {
            k: round(1000 * v / commands, 3) for k, v in statement_seconds.items()
        },
    }
    if profiler is not None:
        result["time_by_group"] = _grouped(profiler)
    return result


def _grouped(profiler: cProfile.Profile) -> dict[str, float]:
    """Each function's own time (not its callees'), summed by where the function lives."""
    stats = pstats.Stats(profiler)
    totals: Counter[str] = Counter()
    for (filename, _, _), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        group = next((g for g, marker in GROUPS if marker in filename), "other (stdlib, C calls)")
        totals[group] += own
    whole = sum(totals.values()) or 1.0
    return {g: round(100 * t / whole, 1) for g, t in totals.most_common()}


def top_functions(profiler: cProfile.Profile, count: int = 25) -> None:
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(count)


COMMANDS = ("switch", "append", "claim_next", "heartbeat")


def measure(database_url: str, per_client: int, commands: tuple[str, ...] = COMMANDS) -> dict:
    """Each command at 1 client (profiled) and at 16, runners running in the process, then
    at 1 client with them stopped: what `make bench` puts in docs/performance.md."""
    schema = throwaway_schema("prof")
    rt = build_runtime(Settings(database_url=database_url, postgres_schema=schema))
    counter = StatementCounter()
    rows: list[dict[str, Any]] = []
    try:
        rt.start_runners()
        setup = _Setup(rt)
        for project in PROJECTS:
            rt.projects.create(setup.boss, project)
        agents = [Agent(rt, setup, n) for n in range(16)]
        with counter.installed():
            for runners in (True, False):
                if not runners:
                    rt.runners.stop()
                for command in commands:
                    if command == "claim_next" and not runners:
                        continue  # without its projection the ready queue never moves on
                    if command == "claim_next":
                        project, last = setup.claim_project(per_client * 17 + 10)
                        rt.work_items.ready(project=project, consistent_with=last)
                        for a in agents:
                            a.claim_project = project
                    for profile in (True, False) if runners else (True,):
                        row = run_one(agents, command, per_client, counter, profile)
                        row["runners"] = runners
                        rows.append(row)
                        print(f"  {row}", flush=True)
    finally:
        rt.close()
        _drop_schema(database_url, schema)
    return {"profile": {"per_client": per_client, "rows": rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--commands", type=int, default=300, help="per client")
    parser.add_argument("--only", default=",".join(COMMANDS))
    args = parser.parse_args()
    measure(args.database_url, args.commands, tuple(args.only.split(",")))


if __name__ == "__main__":
    main()
