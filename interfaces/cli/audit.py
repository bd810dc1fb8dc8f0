"""`agentledger audit`: the log for compliance review, read from the store directly.

Output streams: a replay of a million events prints as it reads and holds one page of the log
in memory. Tables are for people; `jsonl` and `csv` for tools; `md` for a document to hand on.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TextIO
from uuid import UUID

import click

from agentledger.application.audit import AuditFilter, AuditRecord, plain, topics_of
from agentledger.application.audit_report import build_report, render_report
from agentledger.application.errors import InvalidRequest
from agentledger.application.seal import VerifyReport, parse_published
from agentledger.interfaces.cli.store import runtime

FORMATS = ("table", "jsonl", "csv", "md")
CSV_COLUMNS = (
    "position",
    "occurred_at",
    "actor",
    "aggregate_type",
    "aggregate_id",
    "version",
    "event",
    "summary",
    "trace_id",
    "causation",
    "command_id",
    "actor_token",
    "acting_session",
    "idempotency_key_sha256",
    "client",
    "changes",
)
EXIT_TAMPERED = 2
# Long enough that a bar is worth drawing.
PROGRESS_FROM_EVENTS = 5000


class ZonedTime(click.ParamType):
    """An ISO 8601 time with a zone (`2026-12-02T10:00:00Z`); a time without one is refused
    rather than guessed."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO 8601 time, e.g. 2026-12-02T10:00:00Z", param, ctx)
        if moment.tzinfo is None:
            self.fail(f"{value!r} has no zone: add Z (UTC) or an offset such as +01:00", param, ctx)
        return moment.astimezone(UTC)


TIME = ZonedTime()


@click.group()
def audit() -> None:
    """The audit trail: replay, past states, integrity and review reports."""


@audit.command("replay")
@click.option("--since", type=TIME, default=None, help="From this time (inclusive).")
@click.option("--until", type=TIME, default=None, help="Before this time (exclusive).")
@click.option("--actor", default=None, help="Only this principal, e.g. agent:alice.")
@click.option("--aggregate", "aggregate_id", type=click.UUID, default=None, help="One aggregate.")
@click.option("--type", "types", multiple=True, help="Event type, e.g. StatusChanged (repeatable).")
@click.option("--trace-id", default=None, help="One request's trace id.")
@click.option("--after", type=click.IntRange(min=0), default=0, help="After this log position.")
@click.option("--format", "output", type=click.Choice(FORMATS), default="table", show_default=True)
def audit_replay(
    since: datetime | None,
    until: datetime | None,
    actor: str | None,
    aggregate_id: UUID | None,
    types: tuple[str, ...],
    trace_id: str | None,
    after: int,
    output: str,
) -> None:
    """Print the events that match, in log order: position, time, actor, aggregate, event
    and what changed."""
    criteria = AuditFilter(since, until, actor, aggregate_id, types, trace_id)
    try:
        topics_of(types)
    except InvalidRequest as exc:
        raise click.BadParameter(str(exc), param_hint="--type") from None
    with runtime() as rt:
        head = rt.audit.head()
        with _progress(head - after, after) as scanned:
            records = rt.audit.timeline(criteria, after, head, scanned)
            WRITERS[output](records, sys.stdout)


@audit.command("state")
@click.argument("aggregate_id", type=click.UUID)
@click.option("--version", type=click.IntRange(min=1), default=None, help="After this version.")
@click.option("--at", type=TIME, default=None, help="As it was at this time.")
def audit_state(aggregate_id: UUID, version: int | None, at: datetime | None) -> None:
    """Print an aggregate's state as it was (now, at a version, or at a time), as JSON."""
    if version is not None and at is not None:
        raise click.UsageError("give --version or --at, not both")
    with runtime() as rt:
        state = rt.audit.state(aggregate_id, version=version, at=at)
    click.echo(json.dumps(plain(asdict(state)), indent=2, sort_keys=True))


@audit.command("verify")
@click.option(
    "--checkpoint",
    "published",
    default=None,
    help="A checkpoint published earlier (POSITION:LINK): the log must still reach it.",
)
@click.option("--json", "as_json", is_flag=True)
def audit_verify(published: str | None, as_json: bool) -> None:
    """Recompute the seal's hash chain from the stored events. Exit 0: intact; exit 2: an
    event was altered, removed, inserted or reordered after it was sealed (the first such
    position is named)."""
    try:
        checkpoint = None if published is None else parse_published(published)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--checkpoint") from None
    with runtime() as rt:
        rt.catch_up()
        head = rt.audit.head()
        with _progress(head, 0, "verifying") as scanned:
            report = rt.audit.verify(checkpoint, scanned)
    if as_json:
        click.echo(json.dumps(plain(asdict(report)), indent=2, sort_keys=True))
    else:
        click.echo(describe(report))
    if not report.ok:
        sys.exit(EXIT_TAMPERED)


def describe(report: VerifyReport) -> str:
    """The verdict in words, for a reviewer."""
    head = report.sealed_head
    if report.breach is not None:
        b = report.breach
        return f"FAILED at position {b.position}: {b.kind} — {b.detail}"
    if head is None:
        return "ok: nothing sealed yet (the log is empty)"
    lines = [
        f"ok: {report.checked} events verified; sealed head {head.position}:{head.link}",
        f"publish this checkpoint to verify against later: {head.position}:{head.link}",
    ]
    if report.published:
        lines.append(f"the published checkpoint {report.published} matches")
    if report.unsealed:
        lines.append(f"{report.unsealed} newer events are not sealed yet")
    return "\n".join(lines)


@audit.command("report")
@click.option("--since", type=TIME, default=None, help="From this time (inclusive).")
@click.option("--until", type=TIME, default=None, help="Before this time (exclusive).")
@click.option("--format", "output", type=click.Choice(("md", "json")), default="md")
def audit_report(since: datetime | None, until: datetime | None, output: str) -> None:
    """A review document for a period: actions by actor and type, approvals decided, refused
    commands, sessions opened and expired, tokens issued and revoked, and the seal's verdict."""
    with runtime() as rt:
        rt.catch_up()
        report = build_report(rt.audit, since, until, rt.clock.now())
    if output == "json":
        click.echo(json.dumps(plain(asdict(report)), indent=2, sort_keys=True))
    else:
        click.echo(render_report(report), nl=False)
    if not report.seal.ok:
        sys.exit(EXIT_TAMPERED)


@contextmanager
def _progress(total: int, start: int, label: str = "replaying") -> Iterator[Callable[[int], None]]:
    """A bar on the terminal's stderr (events read of the range, rate, time left) for long
    ranges; nothing when output goes to a pipe or a file, so it never mixes with the data."""
    if total < PROGRESS_FROM_EVENTS or not sys.stderr.isatty():
        yield lambda _position: None
        return
    with click.progressbar(
        length=total, label=label, file=sys.stderr, show_pos=True, show_eta=True
    ) as bar:
        done = [start]

        def scanned(position: int) -> None:
            bar.update(position - done[0])
            done[0] = position

        yield scanned
        bar.update(start + total - done[0])


def _row(record: AuditRecord) -> dict[str, Any]:
    values = plain(asdict(record))
    assert isinstance(values, dict)
    return values


def _jsonl(records: Iterable[AuditRecord], out: TextIO) -> None:
    for record in records:
        out.write(json.dumps(_row(record), sort_keys=True, ensure_ascii=False) + "\n")


def _csv(records: Iterable[AuditRecord], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        row = _row(record)
        row["changes"] = json.dumps(row["changes"], sort_keys=True, ensure_ascii=False)
        writer.writerow([_csv_safe(row[c]) for c in CSV_COLUMNS])


def _csv_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) is quoted with
    an apostrophe: a client's text must not become a formula in a reviewer's spreadsheet."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _markdown(records: Iterable[AuditRecord], out: TextIO) -> None:
    out.write("| position | time | actor | aggregate | event | what changed |\n")
    out.write("| ---: | --- | --- | --- | --- | --- |\n")
    for r in records:
        cells = (
            str(r.position),
            _time(r.occurred_at),
            r.actor,
            f"{r.aggregate_type} {r.aggregate_id}",
            r.event,
            r.summary,
        )
        out.write("| " + " | ".join(_md_cell(c) for c in cells) + " |\n")


def _md_cell(text: str) -> str:
    flat = " ".join(text.split())
    return flat.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")


def _table(records: Iterable[AuditRecord], out: TextIO) -> None:
    widths = (9, 20, 24, 22, 24)
    header = ("POSITION", "TIME", "ACTOR", "AGGREGATE", "EVENT", "WHAT CHANGED")
    out.write("  ".join(h.ljust(w) for h, w in zip(header, (*widths, 0), strict=True)).rstrip())
    out.write("\n")
    for r in records:
        cells = (
            str(r.position),
            _time(r.occurred_at),
            r.actor,
            f"{r.aggregate_type}:{str(r.aggregate_id)[:8]}",
            r.event,
        )
        line = "  ".join(_fit(c, w) for c, w in zip(cells, widths, strict=True))
        out.write(f"{line}  {r.summary}\n")


def _fit(text: str, width: int) -> str:
    return text.ljust(width) if len(text) <= width else text[: width - 1] + "…"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


WRITERS: dict[str, Callable[[Iterable[AuditRecord], TextIO], None]] = {
    "table": _table,
    "jsonl": _jsonl,
    "csv": _csv,
    "md": _markdown,
}
