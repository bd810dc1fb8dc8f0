"""Where a command's CPU goes across the machine: `python -m bench.cpu`.

In process: one client runs each command for a few seconds, the runners (projections,
policies) in one `agentledger projections run` process beside it, as they run under load. The
CPU time (user + system, from /proc) that the caller's process, the projections process and
PostgreSQL's server processes spent meanwhile, divided by the commands run, says what each
command costs the machine; the floor's `INSERT` + `COMMIT` is measured the same way.

Over HTTP: 16 clients of the bench's load generator against `agentledger serve` (its workers,
a projections process beside it) and against the http-floor competitor, the same accounting
with the load generator and the server processes apart. Where every core is busy (at 16
clients on this VM), throughput is the inverse of this cost.

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


def _process_running(words: str) -> int:
    """The process below this one whose command line holds `words`."""
    found = [pid for pid, command in _descendants(os.getpid()).items() if words in command]
    if not found:
        raise LookupError(f"no child process running {words!r}")
    return found[0]


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
            projections = _process_running("projections run")
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


def _descendants(root: int) -> dict[int, str]:
    """Every process below `root`, with its command line."""
    children: dict[int, list[int]] = {}
    commands: dict[int, str] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        children.setdefault(parent, []).append(int(entry.name))
        commands[int(entry.name)] = command
    found, pending = {}, list(children.get(root, []))
    while pending:
        pid = pending.pop()
        found[pid] = commands.get(pid, "")
        pending += children.get(pid, [])
    return found


def _by_role() -> dict[str, float]:
    """CPU so far of the load generator (this process), the HTTP server's processes, the
    projections process and PostgreSQL."""
    roles = {"generator": _cpu_seconds(os.getpid()), "server": 0.0, "projections": 0.0}
    for pid, command in _descendants(os.getpid()).items():
        role = "projections" if "projections run" in command else "server"
        roles[role] += _cpu_seconds(pid)
    roles["postgres"] = sum(_postgres_cpu().values())
    return roles


def _http_row(competitor: Any, command: str, seconds: float) -> dict[str, Any]:
    from bench.core import run_cell

    operations = competitor.prepare(command, 16, 0)
    run_cell(operations, command, 0.3)  # warm
    before = _by_role()
    cell = run_cell(operations, command, seconds)
    after = _by_role()
    per = 1000 / max(cell.ops, 1)
    spent = {role: (after[role] - before[role]) * per for role in after}
    return {
        "competitor": competitor.name,
        "command": command,
        "per_second": round(cell.ops / cell.seconds) if cell.seconds else 0,
        **{f"{role}_ms": round(ms, 3) for role, ms in spent.items()},
        "total_ms": round(sum(spent.values()), 3),
    }


def measure_http(database_url: str, seconds: float, workers: int) -> dict[str, Any]:
    """16 HTTP clients per command against `serve` and the http-floor, CPU by process."""
    if not (PROC / "self" / "stat").exists():
        return {}
    from bench.agentledger_competitors import Http
    from bench.http_floor import HttpFloor

    rows = []
    for competitor in (HttpFloor(database_url, workers, POOL), Http(database_url, workers)):
        competitor.open()
        try:
            for command in ("append", "switch", "heartbeat"):
                rows.append(_http_row(competitor, command, seconds))
                print(f"  {rows[-1]}", flush=True)
        finally:
            competitor.close()
    return {"cpu_http": {"seconds": seconds, "clients": 16, "workers": workers, "rows": rows}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--seconds", type=float, default=3.0, help="per command")
    parser.add_argument("--http-workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    measure(args.database_url, args.seconds)
    measure_http(args.database_url, args.seconds, args.http_workers)


if __name__ == "__main__":
    main()
