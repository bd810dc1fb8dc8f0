"""The benchmark suite: AgentLedger against the floor (raw INSERT + COMMIT) and a CRUD baseline,
on the real PostgreSQL; prints tables, writes a JSON file, regenerates docs/performance.md.

    .venv/bin/python -m bench [--quick] [--database-url URL] [--out FILE] [--only a,b,...]

Not part of the test suite (`make bench`, `make bench-quick`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from bench import core, report
from bench.harness import DEFAULT_DATABASE_URL
from bench.machine import describe

RESULTS = Path(__file__).resolve().parent / "results"
# Competitors a command scenario runs, in this order on the first round.
COMPETITORS = (
    "floor",
    "http-floor",
    "crud",
    "agentledger-inproc",
    "agentledger-sqlite",
    "agentledger-http",
    "agentledger-inproc-apart",  # after the HTTP competitor, beside whose runners it writes
)
EXTRA_SECTIONS = ("queries", "generator", "lag", "rebuild", "growth", "profile")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter cells")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        help="PostgreSQL to measure (default: $DATABASE_URL or the local server)",
    )
    parser.add_argument("--out", type=Path, help="results JSON (default bench/results/<ts>.json)")
    parser.add_argument(
        "--only",
        help="comma-separated scenarios and sections: "
        + ",".join((*core.SCENARIOS, *EXTRA_SECTIONS)),
    )
    parser.add_argument("--competitors", help="comma-separated subset of " + ",".join(COMPETITORS))
    parser.add_argument("--rounds", type=int, help="rounds per cell (default 2)")
    parser.add_argument("--duration", type=float, help="seconds per cell (default 0.8, quick 0.3)")
    parser.add_argument("--clients", help="concurrencies (default 1,4,16,64; quick 1,16)")
    parser.add_argument(
        "--http-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="`serve --workers` for the HTTP competitor (default: one per CPU)",
    )
    parser.add_argument(
        "--runners-in-serve",
        action="store_true",
        help="the HTTP competitor's projections and policies run in the `serve` processes "
        "(default: in one `agentledger projections run` process beside them)",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/performance.md")
    parser.add_argument(
        "--doc-from", type=Path, help="only regenerate docs/performance.md from this results file"
    )
    args = parser.parse_args()
    # Two rounds, not three: with the million-event growth level a full run took 12.5 min
    # against its budget of 10. Rounds are interleaved, so every competitor still meets the
    # machine's drift alike.
    args.rounds = args.rounds or 2
    args.duration = args.duration or (0.3 if args.quick else 0.8)
    args.concurrencies = (
        [int(c) for c in args.clients.split(",")]
        if args.clients
        else ([1, 16] if args.quick else [1, 4, 16, 64])
    )
    args.query_clients = [1, 16]
    wanted = set(args.only.split(",")) if args.only else None
    known = {*core.SCENARIOS, *EXTRA_SECTIONS}
    if wanted and wanted - known:
        parser.error(f"unknown: {', '.join(sorted(wanted - known))}")
    args.wanted = wanted
    args.competitor_names = args.competitors.split(",") if args.competitors else list(COMPETITORS)
    return args


def wants(args: argparse.Namespace, name: str) -> bool:
    return args.wanted is None or name in args.wanted


def build_competitors(args: argparse.Namespace) -> list[core.Competitor]:
    from bench.sql_competitors import Crud, Floor

    built: dict[str, Any] = {}
    made: dict[str, Any] = {
        "floor": lambda: Floor(args.database_url),
        "crud": lambda: Crud(args.database_url),
    }
    try:
        from bench.agentledger_competitors import (
            POOL,
            Embedded,
            Http,
            InProcess,
            InProcessRunnersApart,
        )
        from bench.http_floor import HttpFloor

        made["http-floor"] = lambda: HttpFloor(args.database_url, args.http_workers, POOL)

        made["agentledger-inproc"] = lambda: InProcess(args.database_url)
        made["agentledger-sqlite"] = Embedded
        made["agentledger-http"] = lambda: Http(
            args.database_url, args.http_workers, projections_process=not args.runners_in_serve
        )
        # Beside the HTTP competitor (built before it), whose projections process it shares.
        made["agentledger-inproc-apart"] = lambda: InProcessRunnersApart(
            args.database_url, built.get("agentledger-http")
        )
    except ImportError:
        pass
    for name in args.competitor_names:
        if name in made:
            built[name] = made[name]()
    return list(built.values())


def claimable(args: argparse.Namespace, scenario: str) -> Any:
    """Ready items per claim cell: about what AgentLedger claims in a cell at the rates seen
    (a competitor that empties the queue stops early; its rate stays ops over elapsed time)."""
    per_second = 200 if scenario == "claim_next" else 60
    return lambda clients: int(per_second * args.duration) + 20


def main() -> None:
    args = parse_args()
    if args.doc_from:
        results = json.loads(args.doc_from.read_text())
        results["targets"] = report.targets(results)
        report.write_doc(results, args.doc_from)
        print(f"document: {report.DOC}")
        return
    started = time.perf_counter()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or RESULTS / f"{stamp}.json"
    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "quick": args.quick,
            "rounds": args.rounds,
            "duration": args.duration,
            "concurrencies": args.concurrencies,
            "competitors": args.competitor_names,
            "http_workers": args.http_workers,
            "http_projections_process": not args.runners_in_serve,
            "only": sorted(args.wanted) if args.wanted else None,
        },
        "machine": describe(args.database_url),
        "commands": [],
    }
    scenarios = [s for s in core.SCENARIOS if wants(args, s)]
    sections: dict[str, float] = {}  # where the run's time went
    if scenarios or any(wants(args, s) for s in ("queries", "generator", "lag", "rebuild")):
        competitors = build_competitors(args)
        try:
            for competitor in competitors:
                competitor.open()
            for scenario in scenarios:
                print(f"{scenario}:", flush=True)
                began = time.perf_counter()
                results["commands"] += core.run_scenario(
                    competitors,
                    scenario,
                    args.concurrencies,
                    args.rounds,
                    args.duration,
                    claimable(args, scenario),
                )
                sections[scenario] = round(time.perf_counter() - began, 1)
            results["heartbeat_events"] = {
                r["competitor"]: r["extra"]["writes_per_1000"]
                for r in results["commands"]
                if r["scenario"] == "heartbeat"
                and r["clients"] == args.concurrencies[-1]
                and "writes_per_1000" in r.get("extra", {})
            }
            began = time.perf_counter()
            for competitor in competitors:
                extra = getattr(competitor, "after_commands", None)
                if extra is not None:
                    results.update(extra(args))
            sections["queries, lag, rebuild"] = round(time.perf_counter() - began, 1)
        finally:
            for competitor in competitors:
                competitor.close()
    if wants(args, "profile"):
        from bench import profile

        print("profile:", flush=True)
        began = time.perf_counter()
        results.update(profile.measure(args.database_url, 50 if args.quick else 100))
        from bench import cpu

        print("cpu per command:", flush=True)
        results.update(cpu.measure(args.database_url, 1.0 if args.quick else 2.0))
        results.update(
            cpu.measure_http(args.database_url, 1.0 if args.quick else 2.0, args.http_workers)
        )
        sections["profile"] = round(time.perf_counter() - began, 1)
    if wants(args, "growth"):
        from bench import growth

        print("growth:", flush=True)
        began = time.perf_counter()
        results.update(growth.measure(args.database_url, args.quick, args.rounds, args.duration))
        sections["growth"] = round(time.perf_counter() - began, 1)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["section_seconds"] = sections
    results["targets"] = report.targets(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    report.print_results(results)
    print(f"\nresults: {out}")
    if not args.no_doc:
        report.write_doc(results, out)
        print(f"document: {report.DOC}")
    spent = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in sections.items())
    print(f"took {results['seconds']:.0f} s ({spent})")


if __name__ == "__main__":
    main()
