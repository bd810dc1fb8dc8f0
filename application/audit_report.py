"""The review document: what happened in a period, from the log, for a reviewer to hand on.

Actions by actor and by event type, approvals decided and by whom, refused commands, sessions
opened and expired, tokens issued and revoked, and the seal's verdict. Built in one pass over
the period's events; each list keeps its first LISTED lines and counts the rest.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from agentledger.application.audit import AuditFilter, AuditRecord, AuditService
from agentledger.application.seal import VerifyReport
from agentledger.application.status import markdown_text as text

LISTED = 500


@dataclass
class Listing:
    lines: list[AuditRecord] = field(default_factory=list)
    more: int = 0

    def add(self, record: AuditRecord) -> None:
        if len(self.lines) < LISTED:
            self.lines.append(record)
        else:
            self.more += 1


@dataclass
class AuditReport:
    since: datetime | None
    until: datetime | None
    generated_at: datetime
    events: int
    first_position: int | None
    last_position: int | None
    by_actor: Counter[str]
    by_type: Counter[str]
    approvals: Listing
    refusals: Listing
    sessions_opened: Listing
    sessions_expired: Listing
    tokens: Listing  # issued and revoked
    seal: VerifyReport


_LISTS = {
    "ApprovalDecided": "approvals",
    "CommandRefused": "refusals",
    "SessionStarted": "sessions_opened",
    "SessionExpired": "sessions_expired",
    "Issued": "tokens",
    "Revoked": "tokens",
}


def build_report(
    audit: AuditService, since: datetime | None, until: datetime | None, now: datetime
) -> AuditReport:
    report = AuditReport(
        since=since,
        until=until,
        generated_at=now,
        events=0,
        first_position=None,
        last_position=None,
        by_actor=Counter(),
        by_type=Counter(),
        approvals=Listing(),
        refusals=Listing(),
        sessions_opened=Listing(),
        sessions_expired=Listing(),
        tokens=Listing(),
        seal=audit.verify(),
    )
    for record in audit.timeline(AuditFilter(since=since, until=until)):
        report.events += 1
        if report.first_position is None:
            report.first_position = record.position
        report.last_position = record.position
        report.by_actor[record.actor] += 1
        report.by_type[f"{record.aggregate_type}.{record.event}"] += 1
        listing = _LISTS.get(record.event)
        if listing is not None:
            getattr(report, listing).add(record)
    return report


def render_report(report: AuditReport) -> str:
    """The report as markdown. Client-written text is escaped (`status.render_markdown`'s
    rules), so it renders as the text it is."""
    period = f"{_time(report.since) if report.since else 'the start'} to " + (
        _time(report.until) if report.until else "now"
    )
    lines = [
        "# Audit report",
        "",
        f"Period: {period}. Generated {_time(report.generated_at)}.",
        "",
        f"{report.events} events"
        + (
            f", log positions {report.first_position} to {report.last_position}."
            if report.events
            else "."
        ),
        "",
        "## Integrity",
        "",
        *_seal_lines(report.seal),
        "",
        "## Actions by actor",
        "",
        "| actor | events |",
        "| --- | ---: |",
        *(f"| {text(a)} | {n} |" for a, n in sorted(report.by_actor.items())),
        "",
        "## Actions by type",
        "",
        "| event | count |",
        "| --- | ---: |",
        *(f"| {t} | {n} |" for t, n in sorted(report.by_type.items())),
    ]

    def section(title: str, listing: Listing, line: Callable[[AuditRecord], str]) -> None:
        lines.extend(["", f"## {title}", ""])
        body = [f"- {line(r)}" for r in listing.lines]
        if listing.more:
            body.append(f"- … and {listing.more} more (see `audit replay`)")
        lines.extend(body or ["_none_"])

    section(
        "Approvals decided",
        report.approvals,
        lambda r: (
            f"{_time(r.occurred_at)} approval {r.aggregate_id}: "
            f"{text(str(r.changes.get('decision')))} by {text(r.actor)}"
        ),
    )
    section(
        "Refused commands",
        report.refusals,
        lambda r: (
            f"{_time(r.occurred_at)} {text(r.actor)}: {text(str(r.changes['command']))} "
            f"on {text(str(r.changes['target']))} refused ({r.changes['status']} "
            f"{text(str(r.changes['problem']))}), trace {text(r.trace_id)}"
        ),
    )
    section(
        "Sessions opened",
        report.sessions_opened,
        lambda r: (
            f"{_time(r.occurred_at)} {text(str(r.changes.get('agent_id')))} "
            f"session {r.aggregate_id} by {text(r.actor)}"
        ),
    )
    section(
        "Sessions expired",
        report.sessions_expired,
        lambda r: f"{_time(r.occurred_at)} session {r.aggregate_id}",
    )
    section(
        "Tokens issued and revoked",
        report.tokens,
        lambda r: (
            f"{_time(r.occurred_at)} token {r.aggregate_id} "
            + (
                f"issued to {text(str(r.changes.get('principal')))} with roles "
                f"{text(', '.join(r.changes.get('roles') or []))}"
                if r.event == "Issued"
                else "revoked"
            )
            + f" by {text(r.actor)}"
        ),
    )
    return "\n".join(lines) + "\n"


def _seal_lines(seal: VerifyReport) -> list[str]:
    if seal.breach is not None:
        b = seal.breach
        return [f"**FAILED** at log position {b.position}: {b.kind} — {b.detail}."]
    if seal.sealed_head is None:
        return ["Nothing sealed yet."]
    head = seal.sealed_head
    return [
        f"Intact: {seal.checked} sealed events recomputed and found as sealed.",
        "",
        f"Checkpoint to publish: `{head.position}:{head.link}`",
    ]


def _time(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")
