"""Where a command's CPU goes across the machine: `python -m bench.cpu`.

One client runs each command for a few seconds in process, the runners (projections,
policies) in one `agentledger projections run` process beside it, as they run under load. The
CPU time (user + system, from /proc) that the caller's process, the projections process and
PostgreSQL's server processes spent meanwhile, divided by the commands run, says what each
command costs the machine; the floor's `INSERT` + `COMMIT` is measured the same way. Where
every core is busy (over HTTP at 16 clients on this VM), throughput is this cost's inverse.

`make bench` runs it with the profile (`--only profile`); docs/performance.md shows its table.
Linux only (it reads /proc); elsewhere it reports nothing.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from agentledger.infrastructure.bootstrap import build_runtime, runner_lock
from agentledger.infrastructure.locks import AdvisoryLock
from agentledger.infrastructure.settings import Settings
from bench.agentledger_competitors import POOL, PROJECTS, _drop_schema, _Setup
from bench.harness import projections_running
from bench.profile import DEFAULT_URL, Agent
from bench.sql_competitors import throwaway_schema

PROC = Path("/proc")
COMMANDS = ("switch", "append", "claim_next", "heartbeat")
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (0 once it is gone)."""
    try:
        fields = (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _postgres_cpu() -> dict[int, float]:
    """Every PostgreSQL server process on this machine and its CPU time so far."""
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    found[int(entry.name)] = _cpu_seconds(int(entry.name))
            except OSError:
                continue
    return found


def _child_named(parent: int, words: str) -> int:
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(stat[1]) == parent and words in command:
            return int(entry.name)
    raise LookupError(f"no child process running {words!r}")


def _run_for(seconds: float, command: Callable[[], object]) -> tuple[int, float]:
    """Run `command` for about `seconds` (until it returns None: nothing left to claim)."""
    count, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds:
        if command() is None:
            break
        count += 1
    return count, time.perf_counter() - began


def _accounted(
    name: str, seconds: float, command: Callable[[], object], projections: int | None
) -> dict[str, Any]:
    me = os.getpid()
    caller, runners, server = _cpu_seconds(me), 0.0, _postgres_cpu()
    if projections is not None:
        runners = _cpu_seconds(projections)
    count, elapsed = _run_for(seconds, command)
    caller = _cpu_seconds(me) - caller
    if projections is not None:
        runners = _cpu_seconds(projections) - runners
    after = _postgres_cpu()
    postgres = sum(cpu - server.get(pid, 0.0) for pid, cpu in after.items())
    per = 1000 / max(count, 1)
    return {
        "command": name,
        "commands": count,
        "wall_ms": round(elapsed * per, 3),
        "caller_ms": round(caller * per, 3),
        "projections_ms": round(runners * per, 3) if projections is not None else None,
        "postgres_ms": round(postgres * per, 3),
        "total_ms": round((caller + runners + postgres) * per, 3),
    }


def _floor(url: str, schema: str) -> Callable[[], object]:
    """The floor's work: one event-shaped row inserted and committed."""
    conn = psycopg.connect(url)
    conn.execute(f'CREATE TABLE "{schema}".floor (id bigserial PRIMARY KEY, body bytea)')
    conn.commit()
    body = os.urandom(300)
    statement = f'INSERT INTO "{schema}".floor (body) VALUES (%s)'

    def insert() -> object:
        conn.execute(statement, (body,))
        conn.commit()
        return True

    return insert


def measure(database_url: str, seconds: float) -> dict[str, Any]:
    if not (PROC / "self" / "stat").exists():
        return {}
    schema = throwaway_schema("cpu")
    settings = Settings(database_url=database_url, postgres_schema=schema, **POOL)
    rt = build_runtime(settings)
    rows = []
    try:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env |= {"DATABASE_URL": database_url, "AGENTLEDGER_POSTGRES_SCHEMA": schema}
        env |= {f"AGENTLEDGER_{k.upper()}": str(v) for k, v in POOL.items()}
        locks = [runner_lock(settings, runner.name) for runner in rt.runners.all()]
        held = [lock.key for lock in locks if isinstance(lock, AdvisoryLock)]
        with projections_running(env, held, database_url):
            projections = _child_named(os.getpid(), "projections run")
            setup = _Setup(rt)
            for project in PROJECTS:
                rt.projects.create(setup.boss, project)
            agent = Agent(rt, setup, 0)
            project, last = setup.claim_project(int(600 * seconds))
            rt.work_items.ready(project=project, consistent_with=last)
            agent.claim_project = project
            for name in COMMANDS:
                command = agent.command(name)
                for _ in range(20):  # warm: caches, prepared statements
                    if name != "claim_next":
                        command()
                rows.append(_accounted(name, seconds, command, projections))
                print(f"  {rows[-1]}", flush=True)
            rows.append(_accounted("floor", seconds, _floor(database_url, schema), None))
            print(f"  {rows[-1]}", flush=True)
    finally:
        rt.close()
        _drop_schema(database_url, schema)
    return {"cpu": {"seconds": seconds, "rows": rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seconds", type=float, default=3.0, help="per command")
    args = parser.parse_args()
    measure(args.database_url, args.seconds)


if __name__ == "__main__":
    main()
