"""A project's status report, from the read models: what is being done, by whom, what is
blocked and why, what is ready next, what was finished lately, and which sessions are live.

The same report is served as JSON and as markdown. The markdown is for people, and stable
enough to diff: every list has a fixed order and nothing in it depends on the reader. What
clients wrote (titles, reasons, names, kinds) is escaped, so it renders as the text it is and
can never add a heading, a list or a link of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from agentledger.application.clock import Clock
from agentledger.application.consistency import Consistency
from agentledger.application.errors import NotFound
from agentledger.application.readmodels import (
    ProjectsReader,
    Read,
    SelectionsReader,
    SessionsReader,
    WorkItemsReader,
)
from agentledger.application.work_items import WorkItemQueries, WorkItemView
from agentledger.domain.sessions import SessionStatus
from agentledger.domain.work_items import WorkStatus

# Line breaks and other control characters (C0, DEL, C1, Unicode line separators): collapsed.
_BREAKS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Characters that open inline markdown (emphasis, code, links, HTML, entities, tables) or, as
# `#`, a heading: escaped wherever they are.
_INLINE = re.compile(r"([\\`*_{}\[\]<>|~&#!])")
# What would open a block at the start of a list item's text: a list marker (or, as `---`, a
# rule); quotes and headings start with characters escaped everywhere.
_BLOCK_START = re.compile(r"^(?:([-+])|(\d{1,9})([.)]))")

READY_SHOWN = 20
DONE_SHOWN = 10
LISTED = 200  # items in progress, and blocked ones, listed at most


@dataclass(frozen=True)
class SessionSummary:
    id: UUID
    agent_id: str
    lease_expires_at: datetime
    holds: int  # claims on this project's items


@dataclass(frozen=True)
class StatusReport:
    project: str
    generated_at: datetime
    total: int
    by_status: dict[str, int]
    by_kind: dict[str, int]
    in_progress: list[WorkItemView]
    blocked: list[WorkItemView]
    ready: list[WorkItemView]
    recently_done: list[WorkItemView]
    active_sessions: list[SessionSummary]


class StatusService:
    def __init__(
        self,
        work_items: WorkItemQueries,
        items: WorkItemsReader,
        projects: ProjectsReader,
        sessions: SessionsReader,
        selections: SelectionsReader,
        clock: Clock,
        consistency: Consistency,
    ) -> None:
        self._work_items = work_items
        self._items = items
        self._projects = projects
        self._sessions = sessions
        self._selections = selections
        self._clock = clock
        self._consistency = consistency

    def report(self, project: str, consistent_with: int | None = None) -> Read[StatusReport]:
        position = min(
            self._consistency.wait(reader, consistent_with)
            for reader in (self._items, self._sessions, self._selections, self._projects)
        )
        if self._projects.get(project) is None:
            raise NotFound("project", project)
        now = self._clock.now()
        by_status, by_kind = self._items.counts(project)

        def listed(
            status: WorkStatus, limit: int = LISTED, newest: bool = False
        ) -> list[WorkItemView]:
            rows = self._items.with_status(project, status.value, limit, newest)
            return [WorkItemView.of_row(r, now) for r in rows]

        report = StatusReport(
            project=project,
            generated_at=now,
            total=sum(by_status.values()),
            by_status=dict(sorted(by_status.items())),
            by_kind=dict(sorted(by_kind.items())),
            in_progress=listed(WorkStatus.IN_PROGRESS),
            blocked=listed(WorkStatus.BLOCKED),
            ready=self._work_items.ready(project=project, limit=READY_SHOWN).value,
            recently_done=listed(WorkStatus.DONE, DONE_SHOWN, newest=True),
            active_sessions=self._active_sessions(project, now),
        )
        return Read(report, position)

    def _active_sessions(self, project: str, now: datetime) -> list[SessionSummary]:
        """Sessions live now that hold a claim here or whose agent has this project selected."""
        holds = self._items.claims_in(project, now)
        candidates = set(holds)
        for agent_id in self._selections.agents_on(project):
            selection = self._selections.get(agent_id)
            if selection is not None and selection.session_id is not None:
                candidates.add(selection.session_id)
        summaries = []
        for session_id in candidates:
            row = self._sessions.get(session_id)
            if row is not None and row.status_at(now) == SessionStatus.ACTIVE:
                summaries.append(
                    SessionSummary(row.id, row.agent_id, row.lease_expires_at, holds.get(row.id, 0))
                )
        return sorted(summaries, key=lambda s: (s.agent_id, s.lease_expires_at, str(s.id)))


def render_markdown(report: StatusReport) -> str:
    """The report for people: headings, one line per item, times in UTC to the second."""
    lines = [
        f"# Status of project {_code(report.project)}",
        "",
        f"Generated {_time(report.generated_at)}; {report.total} items (archived ones left out).",
        "",
        "## Counts",
        "",
        "| status | items |",
        "| --- | ---: |",
        *(f"| {status} | {count} |" for status, count in report.by_status.items()),
        "",
        "| kind | items |",
        "| --- | ---: |",
        *(f"| {markdown_text(kind)} | {count} |" for kind, count in report.by_kind.items()),
    ]
    lines += _section(
        "In progress",
        report.in_progress,
        lambda v: f"{_item(v)} — {_holder(v)}",
    )
    lines += _section(
        "Blocked",
        report.blocked,
        lambda v: f"{_item(v)} — waiting for: {markdown_text(v.blocked_reason or '')}",
    )
    lines += _section("Ready next", report.ready, lambda v: f"{_item(v)} — priority {v.priority}")
    lines += _section(
        "Recently done",
        report.recently_done,
        lambda v: f"{_item(v)} — done {_time(v.finished_at)}",
    )
    lines += ["", "## Active sessions", ""]
    lines += [
        f"- {markdown_text(s.agent_id)} — lease until {_time(s.lease_expires_at)}, holds {s.holds}"
        for s in report.active_sessions
    ] or ["_none_"]
    return "\n".join(lines) + "\n"


def _section(
    title: str, views: list[WorkItemView], line: Callable[[WorkItemView], str]
) -> list[str]:
    body = [f"- {line(v)}" for v in views] if views else ["_none_"]
    return ["", f"## {title}", "", *body]


def _item(view: WorkItemView) -> str:
    return f"{markdown_text(view.title)} ({markdown_text(view.kind)})"


def _holder(view: WorkItemView) -> str:
    if view.claim is None:
        return "unclaimed"
    state = "" if view.claim.live else ", lease lapsed"
    return f"{markdown_text(view.claim.agent_id)}, fence {view.claim.fence}{state}"


def _time(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%SZ")


def markdown_text(value: str) -> str:
    """Client-written text as markdown that renders as exactly that text, on one line."""
    flat = _BREAKS.sub(" ", value).strip()
    escaped = _INLINE.sub(r"\\\1", flat)
    return _BLOCK_START.sub(_escape_marker, escaped, count=1)


def _escape_marker(marker: re.Match[str]) -> str:
    bullet, number, delimiter = marker.groups()
    return f"\\{bullet}" if bullet else f"{number}\\{delimiter}"


def _code(value: str) -> str:
    """Text as an inline code span: fenced by more backticks than any run inside it."""
    flat = _BREAKS.sub(" ", value).strip()
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    padded = f" {flat} " if flat.startswith("`") or flat.endswith("`") else flat
    return f"{fence}{padded}{fence}"
