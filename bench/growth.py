"""How cost grows with the log: command and query latency with 10k, 100k and 1M events already
in the log (PostgreSQL, in process, one client, the runners running).

The log is grown between levels with progress-log entries from 40 agents across 100 projects,
one in every 100 of them to the project the entries page reads, so that project's share of
the log grows with it. Storing a million events one command at a time would take the whole
bench budget, so PostgreSQL writes them itself (`generate_series`), in transactions of 100,000
that take the event store's table lock and notify as the store does. Each row is an
`EntryAppended` event the domain built (`LogEntry.append`) and the library's mapper encoded,
with project, agent, session, command id, time and step filled in per row, so the library
decodes it like any other. The read models take them in through their runners, as any other
events, and each level is measured only once every runner has caught up.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from uuid import UUID

from agentledger.application.readmodels import EntryFilter
from agentledger.application.work_items import NewWorkItem
from agentledger.domain.entries import LogEntry
from agentledger.domain.events import EventContext
from bench.agentledger_competitors import PROJECTS, InProcess
from bench.core import Operation, run_cell, summarise_cells

FULL_LEVELS = (10_000, 100_000, 1_000_000)
QUICK_LEVELS = (10_000, 100_000)
SEED_BATCH = 100_000
SEED_PROJECTS = 99  # plus the measured project (PROJECTS[0])
SEED_AGENTS = 40
ITEMS = 200
MEASURED = ("append", "switch", "single_item", "entries_page")
# Row n: the measured project (projects[1]) if n is a multiple of 100, else one of the 99
# others; the agents and their sessions take turns.
SEED_SQL = """
INSERT INTO {table} (originator_id, originator_version, topic, state)
SELECT gen_random_uuid(), 1, %(topic)s, convert_to(
    replace(replace(replace(replace(replace(replace(%(template)s,
        '@P@', (%(projects)s::text[])[CASE WHEN n %% 100 = 0 THEN 1 ELSE 2 + n %% 99 END]),
        '@A@', (%(agents)s::text[])[1 + n %% 40]),
        '@S@', (%(sessions)s::text[])[1 + n %% 40]),
        '@C@', md5(n::text)),
        '@T@', to_char(clock_timestamp() AT TIME ZONE 'UTC',
                       'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')),
        '@N@', n::text),
    'UTF8')
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
ORDER BY n
"""


class Growth:
    def __init__(self, database_url: str) -> None:
        self.app = InProcess(database_url)

    def open(self) -> None:
        self.app.open()
        rt, setup = self.app.rt, self.app.setup
        self.projects = [PROJECTS[0]] + [f"grow-{n}" for n in range(SEED_PROJECTS)]
        for project in self.projects[1:]:
            rt.projects.create(setup.boss, project)
        self.writers = [self.app._agent(1000 + n) for n in range(SEED_AGENTS)]
        self.items = [
            rt.work_items.create(
                setup.boss, NewWorkItem(project=PROJECTS[0], kind="task", title=f"item {n}")
            ).value.id
            for n in range(ITEMS)
        ]
        self._seeded = 0

    def grow_to(self, events: int) -> float:
        """Add entries until the log holds `events`; returns how long the store took."""
        rt = self.app.rt
        recorder: Any = rt.ledger.recorder
        table = f'"{rt.settings.postgres_schema}"."{recorder.events_table_name}"'
        topic, template = self._template()
        started = time.perf_counter()
        head = rt.ledger.head_position()
        while head < events:
            count = min(SEED_BATCH, events - head)
            with recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
                cursor.execute(
                    SEED_SQL.format(table=table),
                    {
                        "topic": topic,
                        "template": template,
                        "projects": self.projects,
                        "agents": [w["name"] for w in self.writers],
                        "sessions": [w["session"].hex for w in self.writers],
                        "first": self._seeded,
                        "last": self._seeded + count - 1,
                    },
                )
                cursor.execute(f'NOTIFY "{recorder.channel_name}"')
            self._seeded += count
            head = rt.ledger.head_position()
        return time.perf_counter() - started

    def _template(self) -> tuple[str, str]:
        """An entry the domain built and the library's mapper encoded, with markers where
        SEED_SQL puts each row's values."""
        ctx = EventContext(
            actor="agent:@A@",
            trace_id="bench-growth",
            causation="bench.seed",
            command_id="@C@",
            occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        )
        entry = LogEntry.append(
            ctx,
            project="@P@",
            agent_id="@A@",
            session_id=UUID(int=0),
            message="seeded step @N@: ran the tests, 3 failures left",
            metadata={"step": "@N@"},
        )
        (event,) = entry.collect_events()
        state = self.app.rt.ledger.mapper.to_stored_event(event).state.decode()
        state = state.replace(UUID(int=0).hex, "@S@").replace('"step":"@N@"', '"step":@N@')
        state = state.replace("2026-01-01T00:00:00+00:00", "@T@")
        return self.app.rt.ledger.mapper.to_stored_event(event).topic, state

    def caught_up(self, timeout: float = 600.0) -> float:
        """Wait until every runner has processed the whole log; returns the wait."""
        rt = self.app.rt
        started = time.perf_counter()
        head = rt.ledger.head_position()
        for runner in rt.runners.all():
            while (runner.progress() or 0) < head:
                if time.perf_counter() - started > timeout:
                    raise TimeoutError(f"{runner.name} did not catch up")
                time.sleep(0.05)
        return time.perf_counter() - started

    def operations(self, measured: str) -> list[Operation]:
        rt = self.app.rt
        if measured in ("append", "switch"):
            return self.app.prepare(measured, 1, 0)
        items = iter(self.items * 1000)
        where = EntryFilter(project=PROJECTS[0])

        def op(_: str) -> None:
            if measured == "single_item":
                rt.work_items.get(next(items))
            else:
                rt.entries.list(where, limit=50)

        return [op]

    def close(self) -> None:
        self.app.close()


def measure(
    database_url: str, quick: bool, rounds: int, duration: float, log: Any = print
) -> dict[str, Any]:
    levels = QUICK_LEVELS if quick else FULL_LEVELS
    growth = Growth(database_url)
    rows: list[dict[str, Any]] = []
    seeding: list[dict[str, Any]] = []
    try:
        growth.open()
        for level in levels:
            stored = growth.grow_to(level)
            waited = growth.caught_up()
            seeding.append(
                {
                    "events": level,
                    "store_seconds": round(stored, 1),
                    "catch_up_seconds": round(waited, 1),
                }
            )
            log(
                f"  log at {level:,} events (stored in {stored:.1f} s, runners {waited:.1f} s more)"
            )
            # Two rounds whatever the mode: growing to a million events and letting the runners
            # catch up takes over two minutes of the ten the full run may take.
            for measured in MEASURED:
                cells = [
                    run_cell(growth.operations(measured), measured, duration)
                    for _ in range(min(rounds, 2))
                ]
                summary = summarise_cells(cells)
                rows.append({"events": level, "operation": measured} | summary)
                log(
                    f"    {measured:<13} p50 {summary['p50_ms']:.2f} ms"
                    f"  p99 {summary['p99_ms']:.2f} ms"
                )
    finally:
        growth.close()
    return {
        "growth": {
            "what": "in process, PostgreSQL, one client, runners running; between levels the log"
            " grows by progress-log entries (1 in 100 to the measured project)",
            "levels": list(levels),
            "seeding": seeding,
            "rows": rows,
            "ratios": _ratios(rows, levels),
        }
    }


def _ratios(rows: list[dict[str, Any]], levels: tuple[int, ...]) -> dict[str, float]:
    """p50 at the largest level over p50 at the smallest, per operation."""
    p50 = {(r["events"], r["operation"]): r["p50_ms"] for r in rows}
    out = {}
    for measured in MEASURED:
        low, high = p50.get((levels[0], measured)), p50.get((levels[-1], measured))
        if low and high:
            out[measured] = round(high / low, 2)
    return out
