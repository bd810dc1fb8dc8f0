"""The suite's building blocks: competitors doing the same commands, cells run by N client
threads for a fixed time, rounds interleaving the competitors, and the summaries of it all."""

from __future__ import annotations

import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

COMMANDS = ("session_start", "heartbeat", "switch", "append", "claim_next")
# The mixed agent workload: (command, weight in percent).
MIX = (("heartbeat", 60), ("append", 25), ("claim_next", 10), ("switch", 5))
SCENARIOS = (*COMMANDS, "mixed")


class Stop(Exception):
    """Raised by an operation when the cell has nothing left to do (claim-next: queue empty)."""


# One client's operation: perform `command` once; returns the server-side seconds when the
# competitor can tell them (HTTP: `Server-Timing`), else None.
Operation = Callable[[str], float | None]


class Competitor(Protocol):
    name: str

    def open(self) -> None:
        """Untimed, once: schemas, servers, runtimes."""

    def prepare(self, scenario: str, clients: int, claimable: int) -> list[Operation]:
        """Untimed, per cell: one operation per client; `claimable` ready items for claims."""

    def cell_extra(self, scenario: str, ops: int) -> dict[str, Any]:
        """Anything the competitor counted during the last cell: `writes` (events, or rows
        for the CRUD baseline) is turned into writes per 1,000 operations."""

    def close(self) -> None: ...


def commands_for(scenario: str, seed: int) -> Callable[[], str]:
    """The next command a client runs: the scenario's one command, or a draw from the mix
    (seeded per client, so every competitor gets the same sequence)."""
    if scenario != "mixed":
        return lambda: scenario
    rng = random.Random(seed)
    names = [n for n, _ in MIX]
    weights = [w for _, w in MIX]
    return lambda: rng.choices(names, weights)[0]


@dataclass
class Cell:
    """One competitor, one scenario, one concurrency, one round."""

    ops: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    by_command: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    first_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0


def run_cell(operations: Sequence[Operation], scenario: str, duration: float) -> Cell:
    """Every client loops its operation until the deadline (or Stop); all start together."""
    cell = Cell()
    lock = threading.Lock()
    barrier = threading.Barrier(len(operations) + 1)
    deadline = [0.0]

    def client(index: int, operation: Operation) -> None:
        pick = commands_for(scenario, seed=index)
        mine: list[float] = []
        server: list[float] = []
        by_command: dict[str, list[float]] = {}
        errors, first_error = 0, None
        barrier.wait()
        while time.perf_counter() < deadline[0]:
            command = pick()
            t0 = time.perf_counter()
            try:
                server_seconds = operation(command)
            except Stop:
                break
            except Exception as exc:  # counted and reported, never silently dropped
                errors += 1
                first_error = first_error or f"{command}: {type(exc).__name__}: {exc}"[:300]
                if errors > 50:
                    break
                continue
            elapsed = time.perf_counter() - t0
            mine.append(elapsed)
            by_command.setdefault(command, []).append(elapsed)
            if server_seconds is not None:
                server.append(server_seconds)
        with lock:
            cell.latencies.extend(mine)
            cell.server.extend(server)
            for name, values in by_command.items():
                cell.by_command.setdefault(name, []).extend(values)
            cell.errors += errors
            cell.first_error = cell.first_error or first_error

    threads = [
        threading.Thread(target=client, args=(i, op), daemon=True)
        for i, op in enumerate(operations)
    ]
    for t in threads:
        t.start()
    deadline[0] = time.perf_counter() + duration
    started = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join(duration + 120)
    cell.seconds = time.perf_counter() - started
    cell.ops = len(cell.latencies)
    return cell


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    """p50/p99/max in milliseconds (None when there is nothing to summarise)."""
    if not values:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": round(percentile(values, 0.50) * 1000, 3),
        "p99_ms": round(percentile(values, 0.99) * 1000, 3),
        "max_ms": round(max(values) * 1000, 3),
    }


def summarise_cells(cells: list[Cell]) -> dict[str, Any]:
    """Median throughput over rounds; latency percentiles over every op of every round."""
    latencies = [x for c in cells for x in c.latencies]
    server = [x for c in cells for x in c.server]
    summary: dict[str, Any] = {
        "per_second": round(statistics.median(c.per_second for c in cells), 1),
        "rounds_per_second": [round(c.per_second, 1) for c in cells],
        "ops": sum(c.ops for c in cells),
        **latency_summary(latencies),
        "errors": sum(c.errors for c in cells),
    }
    if server:
        summary["server"] = latency_summary(server)
    by_command: dict[str, list[float]] = {}
    for c in cells:
        for name, values in c.by_command.items():
            by_command.setdefault(name, []).extend(values)
    if len(by_command) > 1:
        summary["by_command"] = {n: latency_summary(v) for n, v in sorted(by_command.items())}
    first_error = next((c.first_error for c in cells if c.first_error), None)
    if first_error:
        summary["first_error"] = first_error
    extras = [c.extra for c in cells if c.extra]
    if extras:
        summary["extra"] = _merge_extras(extras)
        if "writes" in summary["extra"] and summary["ops"]:
            summary["extra"]["writes_per_1000"] = round(
                1000 * summary["extra"]["writes"] / summary["ops"], 1
            )
    return summary


def _merge_extras(extras: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for extra in extras:
        for key, value in extra.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                merged[key] = merged.get(key, 0) + value
            else:
                merged[key] = value
    return merged


def run_scenario(
    competitors: list[Competitor],
    scenario: str,
    concurrencies: Sequence[int],
    rounds: int,
    duration: float,
    claimable: Callable[[int], int],
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Each concurrency: `rounds` rounds, every competitor once per round, the order rotated
    each round so none always runs first (or last) on a noisy machine."""
    rows: list[dict[str, Any]] = []
    for clients in concurrencies:
        cells: dict[str, list[Cell]] = {c.name: [] for c in competitors}
        for r in range(rounds):
            order = competitors[r % len(competitors) :] + competitors[: r % len(competitors)]
            for competitor in order:
                if clients not in getattr(competitor, "concurrencies", (clients,)):
                    continue
                operations = competitor.prepare(scenario, clients, claimable(clients))
                cell = run_cell(operations, scenario, duration)
                cell.extra = competitor.cell_extra(scenario, cell.ops)
                cells[competitor.name].append(cell)
        for competitor in competitors:
            if not cells[competitor.name]:
                continue
            summary = summarise_cells(cells[competitor.name])
            rows.append(
                {"scenario": scenario, "clients": clients, "competitor": competitor.name} | summary
            )
            log(
                f"  {scenario:<14} {clients:>3} clients  {competitor.name:<18}"
                f" {summary['per_second']:>9.1f}/s  p50 {_ms(summary['p50_ms'])}"
                f"  p99 {_ms(summary['p99_ms'])}  errors {summary['errors']}"
            )
    add_ratios(rows)
    return rows


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Throughput as a share of the floor's, the HTTP floor's and the CRUD baseline's, same
    scenario and concurrency."""
    by_key = {(r["scenario"], r["clients"], r["competitor"]): r for r in rows}
    for row in rows:
        for base, key in (
            ("floor", "vs_floor"),
            ("http-floor", "vs_http_floor"),
            ("crud", "vs_crud"),
        ):
            other = by_key.get((row["scenario"], row["clients"], base))
            if other and other["per_second"]:
                row[key] = round(row["per_second"] / other["per_second"], 3)


def _ms(value: float | None) -> str:
    return f"{value:8.2f}ms" if value is not None else "       -  "
