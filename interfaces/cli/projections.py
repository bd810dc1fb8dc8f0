"""`agentledger projections`: run, inspect, verify and rebuild the read models."""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from types import FrameType
from typing import Any

import click

from agentledger.infrastructure.readmodels.verify import check
from agentledger.infrastructure.runners.projection_runner import ProjectionRunner, RebuildReport
from agentledger.interfaces.cli.output import EXIT_BUSY, EXIT_REFUSED, emit
from agentledger.interfaces.cli.store import runtime

STATUS_COLUMNS = [
    "name",
    "version",
    "kind",
    "state",
    "position",
    "head",
    "lag",
    "lag_seconds",
    "holder",
    "detail",
]
# How often `--json` prints a rebuild's progress (a line of JSON on stderr).
JSON_PROGRESS_SECONDS = 1.0


@click.group()
def projections() -> None:
    """Read-model projections: run, inspect, verify, rebuild."""


@projections.command("run")
def projections_run() -> None:
    """Run every projection, the seal and the policies in this process until interrupted
    (Ctrl-C or SIGTERM). One runner per projection across processes: others stand by and
    take over when this one stops. On stopping, each runner finishes the batch it is writing
    (a batch is one transaction: it lands whole or not at all)."""
    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with runtime(writable=True) as rt:
        rt.start_runners()
        click.echo("projections running; Ctrl-C or SIGTERM to stop")
        reported: dict[str, str | None] = {}
        while not stopping.wait(1.0):
            for s in rt.runners.statuses():
                if s.state == "faulted" and reported.get(s.name) != s.last_error:
                    where = f" at event {s.faulted_at}" if s.faulted_at else ""
                    click.echo(f"{s.name}: faulted{where} ({s.last_error}); retrying", err=True)
                reported[s.name] = s.last_error if s.state == "faulted" else None
        click.echo("stopping")


@projections.command("status")
@click.option("--json", "as_json", is_flag=True)
def projections_status(as_json: bool) -> None:
    """Version, state, position, head, lag (events and seconds) and holding process of each
    read model, the seal and each policy, as the whole deployment sees them."""
    with runtime() as rt:
        statuses = [s.as_json() for s in rt.runners.statuses()]
    if as_json:
        click.echo(json.dumps(statuses, indent=2))
        return
    emit([{**s, "detail": _detail(s)} for s in statuses], STATUS_COLUMNS, as_json=False)


def _detail(status: dict[str, Any]) -> str | None:
    rebuild = status["rebuild"]
    if status["state"] == "faulted":
        where = f"at event {status['faulted_at']}: " if status["faulted_at"] else ""
        return f"{where}{status['last_error']}"
    if rebuild is not None:
        done, total = rebuild["done"], rebuild["total"]
        if rebuild["running"]:
            return f"rebuilding {done}/{total} in {rebuild['holder']}"
        return f"rebuild interrupted at {done}/{total}: run it again to resume"
    return None


@projections.command("verify")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Every read model.")
@click.option("--json", "as_json", is_flag=True)
def projections_verify(name: str | None, every: bool, as_json: bool) -> None:
    """Replay a read model's projection from the log into scratch tables, up to the position
    the live model reflects, and compare the two row by row. Exit 0 only if identical."""
    with runtime() as rt:
        chosen = _chosen(rt.runners.projections, name, every)
        checks = [check(rt.ledger, r.worker.read_model, r.worker.projection) for r in chosen]
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], default=str, indent=2))
    for c in checks if not as_json else ():
        verdict = "identical" if c.identical else f"{c.differences} rows differ"
        click.echo(f"{c.name}: {verdict} at position {c.position} ({c.rows} rows replayed)")
        for d in c.shown:
            click.echo(f"  {d.table} {d.key}:\n    live:     {d.live}\n    replayed: {d.replayed}")
    if not all(c.identical for c in checks):
        sys.exit(EXIT_REFUSED)


@projections.command("rebuild")
@click.argument("name", required=False)
@click.option("--all", "every", is_flag=True, help="Every read model, one after another.")
@click.option(
    "--in-place",
    is_flag=True,
    help="Empty the live model and refill it (queries see it partly built): only with the "
    "projection stopped everywhere.",
)
@click.option(
    "--fresh", is_flag=True, help="Start afresh instead of resuming an interrupted rebuild."
)
@click.option("--json", "as_json", is_flag=True, help="Progress and results as JSON.")
def projections_rebuild(
    name: str | None, every: bool, in_place: bool, fresh: bool, as_json: bool
) -> None:
    """Rebuild read models from the whole log. Blue/green by default: the new model is built
    beside the live one, which keeps serving (also while `serve` runs), then queries switch
    over to it in one transaction and the old tables are dropped. Interrupted, it leaves the
    live model untouched; run it again to resume."""
    if in_place and fresh:
        raise click.UsageError("--fresh applies to blue/green rebuilds; --in-place always is")
    with runtime() as rt:
        reports = []
        for runner in _chosen(rt.runners.projections, name, every):
            with _progress(runner.name, as_json) as progress:
                if in_place:
                    report = runner.rebuild_in_place(progress)
                else:
                    report = runner.rebuild(progress, fresh=fresh)
            if report is None:
                why = (
                    "is being run by another process; stop it first"
                    if in_place
                    else "is being rebuilt by another process"
                )
                click.echo(f"{runner.name} {why}", err=True)
                sys.exit(EXIT_BUSY)
            reports.append((runner.name, report))
            if not as_json:
                click.echo(_summary(runner.name, report))
    if as_json:
        click.echo(json.dumps([_report_json(n, r) for n, r in reports], indent=2))


def _chosen(
    runners: dict[str, ProjectionRunner], name: str | None, every: bool
) -> list[ProjectionRunner]:
    if (name is None) == (not every):
        raise click.UsageError("name one read model, or give --all")
    if name is None:
        return list(runners.values())
    if name not in runners:
        raise click.ClickException(f"unknown projection {name}; known: {', '.join(runners)}")
    return [runners[name]]


def _summary(name: str, report: RebuildReport) -> str:
    how = "blue/green" if report.blue_green else "in place"
    resumed = f", resumed from {report.resumed_from}" if report.resumed_from else ""
    return (
        f"rebuilt {name} {how}: {report.events} events in {report.seconds:.2f}s "
        f"({report.events_per_second:,.0f} events/s; {report.applied} of them applied{resumed})"
    )


def _report_json(name: str, report: RebuildReport) -> dict[str, Any]:
    return {
        "name": name,
        **asdict(report),
        "events_per_second": round(report.events_per_second, 1),
    }


@contextmanager
def _progress(name: str, as_json: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on a terminal (events done/total, rate, time left); JSON lines on
    stderr with --json; nothing otherwise (a log file gets the summary line)."""
    if as_json:
        yield _json_progress(name)
    elif sys.stderr.isatty():
        with _bar(name) as update:
            yield update
    else:
        yield lambda _done, _total: None


def _json_progress(name: str) -> Callable[[int, int], None]:
    started = time.monotonic()
    last = [0.0]

    def report(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < JSON_PROGRESS_SECONDS and done < total:
            return
        last[0] = now
        rate = done / (now - started) if now > started else 0.0
        eta = (total - done) / rate if rate > 0 else None
        line = {"name": name, "done": done, "total": total, "events_per_second": round(rate)}
        click.echo(json.dumps({**line, "eta_seconds": eta and round(eta, 1)}), err=True)

    return report


@contextmanager
def _bar(name: str) -> Iterator[Callable[[int, int], None]]:
    started = time.monotonic()
    with click.progressbar(
        length=1,
        label=name,
        file=sys.stderr,
        show_pos=True,
        show_eta=True,
        item_show_func=lambda rate: rate,
    ) as bar:
        shown = [0]

        def update(done: int, total: int) -> None:
            bar.length = max(total, 1)
            elapsed = time.monotonic() - started
            rate = f"{done / elapsed:,.0f} events/s" if elapsed > 0 else None
            bar.update(done - shown[0], rate)
            shown[0] = done

        yield update
