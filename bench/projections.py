"""What projections cost: rebuild throughput (blue/green and in place) on a log of N events,
`projections verify`, and read-model lag under sustained writes. Not part of the test suite.

    .venv/bin/python -m bench.projections [--events N] [--store sqlite|postgres]
        [--database-url URL] [--lag-seconds S] [--rate R]

The log is filled with progress entries (what the entries read model follows, row for row)
written straight through the ledger a thousand per transaction. Rebuilds and verify run as the
CLI, in a child process, as an operator runs them; their reports give the seconds spent
rebuilding (the child's start-up excluded). Lag is measured as a client sees it: after each
write, how long until the entries read model reflects its position (`Consistent-With`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

from agentledger.application.context import RequestContext, local_operator
from agentledger.application.entries import NewEntry
from agentledger.domain.entries import LogEntry
from agentledger.domain.events import EventContext
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from bench.harness import DEFAULT_DATABASE_URL, one_store

CLI = str(Path(sys.executable).with_name("agentledger"))
BATCH = 1000
PROJECT = "bench"


def fill(rt: Runtime, events: int) -> float:
    """`events` progress entries, a thousand per transaction; returns the seconds taken."""
    started = time.perf_counter()
    written = 0
    while written < events:
        ctx = EventContext(
            actor="agent:bench",
            trace_id=f"bench-{written}",
            causation="bench.fill",
            command_id=uuid4().hex,
            occurred_at=datetime.now(UTC),
        )
        entries = [
            LogEntry.append(
                ctx,
                project=PROJECT,
                agent_id=f"bench{n % 7}",
                session_id=uuid4(),
                message=f"step {written + n}: ran the tests, 3 failures left",
                metadata={"step": written + n},
            )
            for n in range(min(BATCH, events - written))
        ]
        rt.ledger.record_events([e for x in entries for e in x.collect_events()], entries)
        written += len(entries)
    return time.perf_counter() - started


def cli(env: dict[str, str], *args: str) -> tuple[float, Any]:
    """Run the CLI with `--json`; wall seconds and its parsed output."""
    started = time.perf_counter()
    done = subprocess.run([CLI, *args, "--json"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def rebuilds(env: dict[str, str], events: int) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for label, extra in (("blue_green", ()), ("in_place", ("--in-place",))):
        wall, (report,) = cli(env, "projections", "rebuild", "entries_v2", *extra)
        found[label] = {
            "seconds": round(report["seconds"], 2),
            "events_per_s": round(events / report["seconds"]),
            "wall_seconds": round(wall, 2),
        }
        print(label, found[label], file=sys.stderr)
    found["blue_green_over_in_place"] = round(
        found["blue_green"]["seconds"] / found["in_place"]["seconds"], 2
    )
    wall, reports = cli(env, "projections", "rebuild", "--all")
    found["all_blue_green"] = {
        "seconds": round(sum(r["seconds"] for r in reports), 2),
        "wall_seconds": round(wall, 2),
        "each": {r["name"]: round(r["seconds"], 2) for r in reports},
    }
    return found


def lag(rt: Runtime, seconds: float, rate: float, writers: int = 4) -> dict[str, Any]:
    """`writers` threads appending entries at `rate` a second in all, for `seconds`; for each
    write, the milliseconds until the entries read model reflects it."""
    operator = RequestContext(local_operator("bench"), "bench-setup")
    entries = rt.read_models["entries_v2"]
    delays: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    pause = writers / rate

    def write(n: int) -> None:
        secret = rt.access.issue(operator, f"agent:lag{n}", ["agent"]).value.secret
        agent = RequestContext(rt.access.authenticate(secret), f"lag-{n}")
        session = rt.sessions.start(agent, ttl_seconds=600).value.id
        following = time.monotonic()
        while time.monotonic() < stop:
            written = rt.entries.append(agent, PROJECT, NewEntry("lag probe", session))
            committed = time.perf_counter()
            rt.consistency.wait(entries, written.position)
            with lock:
                delays.append((time.perf_counter() - committed) * 1000)
            following += pause
            time.sleep(max(0.0, following - time.monotonic()))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    delays.sort()
    return {
        "writes": len(delays),
        "writes_per_s": round(len(delays) / seconds, 1),
        "p50_ms": round(statistics.median(delays), 2),
        "p99_ms": round(delays[int(len(delays) * 0.99) - 1], 2),
        "max_ms": round(delays[-1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.projections")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--lag-seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=200.0, help="writes/s during the lag run")
    args = parser.parse_args()
    results: dict[str, Any] = {"store": args.store, "events": args.events}
    with one_store(args.store, args.database_url) as (settings, env):
        rt = build_runtime(settings)
        rt.projects.create(RequestContext(local_operator("bench"), "setup"), PROJECT)
        results["fill_s"] = round(fill(rt, args.events), 1)
        started = time.perf_counter()
        rt.catch_up()
        results["catch_up_s"] = round(time.perf_counter() - started, 1)
        rt.close()
        print(results, file=sys.stderr)
        results["rebuild"] = rebuilds(env, args.events)
        wall, checks = cli(env, "projections", "verify", "entries_v2")
        results["verify_entries"] = {"seconds": round(wall, 2), "rows": checks[0]["rows"]}
        print(results["verify_entries"], file=sys.stderr)
        rt = build_runtime(settings)
        rt.start_runners()
        rt.catch_up()
        results["lag_under_writes"] = lag(rt, args.lag_seconds, args.rate)
        rt.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
