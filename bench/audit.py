"""The audit trail's costs: replay/export of a large log (events/s and the exporting process'
peak memory), the seal (sealing and `audit verify` speed), `status?as_of` on a project of
1,200 items, and what recording refusals costs accepted commands. Not part of the test suite.

    .venv/bin/python -m bench.audit [--events N] [--store sqlite|postgres] [--database-url URL]

The log is filled with refused-command events written straight through the ledger in batches
of 1,000 (the cheapest real event to make a million of); the export and the verify run as the
CLI, in a child process, so its peak RSS is the command's own.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from agentledger.application.context import RequestContext, local_operator
from agentledger.application.refusals import Refusal
from agentledger.application.work_items import NewWorkItem
from agentledger.domain.events import EventContext
from agentledger.domain.refusals import CommandRefusal
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from bench.harness import DEFAULT_DATABASE_URL, one_store

CLI = str(Path(sys.executable).with_name("agentledger"))
BATCH = 1000


def agent_context(rt: Runtime, name: str) -> RequestContext:
    operator = RequestContext(local_operator("bench"), "bench-setup")
    secret = rt.access.issue(operator, f"agent:{name}", ["agent", "coordinator"]).value.secret
    return RequestContext(rt.access.authenticate(secret), f"bench-{name}")


def fill(rt: Runtime, events: int) -> float:
    """Write `events` refusal events, a batch per transaction; returns the seconds taken."""
    started = time.perf_counter()
    written = 0
    while written < events:
        now = datetime.now(UTC)
        batch = []
        for n in range(min(BATCH, events - written)):
            ctx = EventContext(
                actor=f"agent:bench{n % 7}",
                trace_id=f"bench-{written + n}",
                causation="patch_item",
                command_id=f"{random.getrandbits(128):032x}",
                occurred_at=now,
            )
            batch.append(
                CommandRefusal.record(
                    ctx,
                    UUID(int=random.getrandbits(128), version=4),
                    target="/v1/work-items/x",
                    target_id=None,
                    problem="version-mismatch",
                    status=412,
                    detail="expected version 1; current version is 2",
                )
            )
        events_ = [e for a in batch for e in a.collect_events()]
        rt.ledger.record_events(events_, batch)
        written += len(batch)
    return time.perf_counter() - started


def child(env: dict[str, str], *args: str) -> tuple[float, int, int]:
    """Run the CLI; seconds, exit code and its peak RSS in KiB (the child's own)."""
    script = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)\n"
    )
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", script, CLI, *args], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    rss, code = out.stdout.split()
    return seconds, int(code), int(rss)


def as_of_on_1200_items(rt: Runtime, runs: int = 5) -> dict[str, float]:
    boss = agent_context(rt, "boss")
    rt.projects.create(boss, "big")
    ids = []
    for n in range(1200):
        parent = ids[n // 10] if n >= 10 and n % 10 else None
        item = rt.work_items.create(
            boss, NewWorkItem(project="big", kind="task", title=f"item {n}", parent_id=parent)
        ).value
        ids.append(item.id)
    rt.catch_up()
    moment = datetime.now(UTC)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        rt.past_status.report("big", moment)
        timings.append(time.perf_counter() - started)
    return {"median_s": statistics.median(timings), "max_s": max(timings)}


def refusal_cost(rt: Runtime, calls: int, pause: float) -> dict[str, float]:
    """Accepted commands (a project created each), one caller: alone; beside four threads each
    refusing a command every `pause` seconds (0: as fast as they can) without recording it
    (the control: the same threads, the same event built, nothing stored); and beside the
    same threads recording each refusal as the service does."""
    boss = agent_context(rt, f"refusal-bench-{pause}")
    ctx = RequestContext(local_operator("bench"), "refusals")
    refusal = Refusal("patch_item", "/v1/work-items/x", None, "version-mismatch", 412, "x")

    def accepted(label: str) -> list[float]:
        timings = []
        for n in range(calls):
            started = time.perf_counter()
            rt.projects.create(boss, f"{label}-{pause}-{n}")
            timings.append((time.perf_counter() - started) * 1000)
        return timings

    def built_only(_ctx: RequestContext, _refusal: Refusal) -> None:
        event = EventContext(ctx.principal.name, "t", "patch_item", "c", datetime.now(UTC))
        aggregate = CommandRefusal.record(
            event,
            UUID(int=random.getrandbits(128), version=4),
            target="/x",
            target_id=None,
            problem="version-mismatch",
            status=412,
            detail="x",
        )
        aggregate.collect_events()

    def beside(label: str, refuse: Any) -> tuple[list[float], int]:
        stop = threading.Event()
        count = [0]

        def loop() -> None:
            while not stop.is_set():
                refuse(ctx, refusal)
                count[0] += 1
                if pause:
                    stop.wait(pause)

        threads = [threading.Thread(target=loop) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            return accepted(label), count[0]
        finally:
            stop.set()
            for t in threads:
                t.join()

    def p(values: list[float], share: float) -> float:
        return sorted(values)[max(0, int(len(values) * share) - 1)]

    alone = accepted("alone")
    figures = {"alone_p50_ms": p(alone, 0.5), "alone_p99_ms": p(alone, 0.99)}
    if pause:  # unpaced, the control's pure-Python loop would just hold the GIL
        control, _ = beside("control", built_only)
        figures |= {"control_p50_ms": p(control, 0.5), "control_p99_ms": p(control, 0.99)}
    recorded, count = beside("recorded", rt.refusals.record)
    return {
        **figures,
        "recorded_p50_ms": p(recorded, 0.5),
        "recorded_p99_ms": p(recorded, 0.99),
        "refusals_recorded": count,
    }


def report(results: dict[str, Any]) -> None:
    """Each phase's figures as soon as it ends (a million events take minutes)."""
    print(json.dumps(results), file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    results: dict[str, Any] = {"store": args.store, "events": args.events}
    with one_store(args.store, args.database_url) as (settings, env):
        rt = build_runtime(settings)
        results["fill_s"] = fill(rt, args.events)
        report(results)
        started = time.perf_counter()
        rt.catch_up()  # the projections, and the seal over every event
        results["catch_up_and_seal_s"] = time.perf_counter() - started
        rt.close()
        for fmt in ("jsonl", "csv"):
            seconds, code, rss = child(env, "audit", "replay", "--format", fmt)
            assert code == 0
            results[f"export_{fmt}"] = {
                "seconds": seconds,
                "events_per_s": args.events / seconds,
                "peak_rss_mib": rss / 1024,
            }
            report(results)
        seconds, code, rss = child(env, "audit", "verify")
        assert code == 0
        results["verify"] = {
            "seconds": seconds,
            "events_per_s": args.events / seconds,
            "peak_rss_mib": rss / 1024,
        }
        rt = build_runtime(settings)
        rt.start_runners()  # commands consult the read models the runners keep
        results["status_as_of_1200_items"] = as_of_on_1200_items(rt)
        # 4 x 25 refusals/s beside one caller, then refusals as fast as 4 threads go.
        results["refusal_cost_100_per_s"] = refusal_cost(rt, args.calls, 0.04)
        results["refusal_cost_saturated"] = refusal_cost(rt, args.calls, 0.0)
        rt.close()
    results["bench_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
