"""Runners as operators run them: killed mid-batch, faulted on one event, and fed by sixteen
concurrent writers while they run in another process. Both stores."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from agentledger.application.context import RequestContext
from agentledger.application.entries import NewEntry
from agentledger.application.readmodels import EntryFilter
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.app import create_app
from tests.conftest import issue_token
from tests.integration.test_background_work import held_elsewhere
from tests.support.figures import report
from tests.support.helpers import agent_context, run_threads, wait_until
from tests.support.processes import all_identical, entry_rows, seed_entries, start_cli

WRITERS = 16
ENTRIES_EACH = 20
SEEDED = 12_000


def _admin(rt: Runtime) -> RequestContext:
    return RequestContext(rt.access.authenticate(issue_token(rt, "user:admin", "admin")), "t")


def test_projections_run_killed_mid_batch_applies_each_event_once(
    settings: Settings, tmp_path: Path
) -> None:
    rt = build_runtime(settings)  # no runners here: `projections run` is the other process
    try:
        rt.projects.create(_admin(rt), "apollo")
        rt.catch_up()  # built once: the runner then follows the log batch by batch in place
        seed_entries(rt, "apollo", SEEDED)
        head = rt.ledger.head_position()
        entries = rt.read_models["entries_v2"]
        target = random.randint(head // 5, head // 2)
        first = start_cli(settings, "projections", "run", log=tmp_path / "first.log")
        wait_until(lambda: entries.recorded_position() >= target, timeout=120)
        os.killpg(first.pid, signal.SIGKILL)  # mid-way through the log, most likely mid-batch
        first.wait(10)
        killed_at = entries.recorded_position()
        assert killed_at < head
        restarted = time.monotonic()
        second = start_cli(settings, "projections", "run", log=tmp_path / "second.log")
        wait_until(lambda: entries.recorded_position() >= head, timeout=120)
        caught_up = time.monotonic() - restarted
        os.killpg(second.pid, signal.SIGTERM)  # a clean stop: it finishes its batch
        assert second.wait(30) == 0
        assert "stopping" in (tmp_path / "second.log").read_text()
        assert entry_rows(rt) == SEEDED  # each event applied exactly once
        all_identical(rt)
        report(
            f"projections run killed with SIGKILL at position {killed_at} of {head}",
            entries_written=SEEDED,
            rows_found=entry_rows(rt),
            lost=0,
            duplicated=0,
            caught_up_after_restart=caught_up,
        )
    finally:
        rt.close()


def test_a_projection_failing_on_one_event_is_faulted_there_and_resumes(
    runtime: Runtime, run: Any
) -> None:
    runner = runtime.runners.projections["entries_v2"]
    original = runner.worker.projection
    mended = threading.Event()

    class PoisonedUntilMended:
        follows = original.follows

        def handle(self, event: Any, position: int, writer: Any) -> None:
            if getattr(event, "message", None) == "poison" and not mended.is_set():
                raise ValueError("cannot digest this entry")
            original.handle(event, position, writer)

    runner.worker.projection = PoisonedUntilMended()
    alice = agent_context(runtime, "alice")
    runtime.projects.create(alice, "apollo")
    session = runtime.sessions.start(alice, ttl_seconds=600).value.id
    positions = {
        message: runtime.entries.append(alice, "apollo", NewEntry(message, session)).position
        for message in ("before", "poison", "after")
    }
    poison = positions["poison"]
    wait_until(lambda: runner.state == "faulted" and runner.restarts >= 2, timeout=30)
    (shown,) = [s for s in runtime.runners.statuses() if s.name == "entries_v2"]
    assert (shown.state, shown.faulted_at) == ("faulted", poison)
    assert "cannot digest this entry" in (shown.last_error or "")
    # It stopped right before the failing event: the one before is applied, none after.
    assert shown.position == poison - 1
    assert _messages(runtime) == {"before"}
    client = TestClient(create_app(runtime))
    ready = client.get("/readyz")
    assert ready.status_code == 503
    (entries,) = [r for r in ready.json()["runners"] if r["name"] == "entries_v2"]
    assert (entries["state"], entries["faulted_at"]) == ("faulted", poison)
    metrics = _samples(client.get("/metrics").text)
    assert metrics[("agentledger_projection_state", "entries_v2", "faulted")] == 1
    assert metrics[("agentledger_projection_faulted_at", "entries_v2", None)] == poison
    status = json.loads(run("projections", "status", "--json").output)
    (listed,) = [s for s in status if s["name"] == "entries_v2"]
    assert (listed["state"], listed["faulted_at"]) == ("faulted", poison)
    assert listed["holder"] is not None
    # Removing the cause: it resumes by itself, applies the event and the ones after.
    mended.set()
    runtime.consistency.timeout = 40  # it retries after a back-off of up to 5 s
    runtime.entries.list(EntryFilter(project="apollo"), consistent_with=positions["after"])
    wait_until(lambda: runner.state == "running", timeout=40)
    assert _messages(runtime) == {"before", "poison", "after"}
    assert runner.status().faulted_at is None and runner.status().last_error is None
    all_identical(runtime)


def _messages(rt: Runtime) -> set[str]:
    entries = rt.read_models["entries_v2"]
    with entries.reading() as cursor:
        cursor.execute(entries.sql("SELECT message FROM {entries}"))
        return {row["message"] for row in cursor.fetchall()}


def _samples(text: str) -> dict[tuple[str, str | None, str | None], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, sample.labels.get("name"), sample.labels.get("state"))
            found[key] = sample.value
    return found


def test_sixteen_writers_while_projections_run_in_another_process(
    settings: Settings, tmp_path: Path
) -> None:
    rt = build_runtime(settings)  # writes here; the projections run in the other process
    worker = start_cli(settings, "projections", "run", log=tmp_path / "run.log")
    try:
        wait_until(lambda: all(held_elsewhere(settings, r.name) for r in rt.runners.all()))
        rt.projects.create(_admin(rt), "apollo")
        agents = [agent_context(rt, f"writer{n}") for n in range(WRITERS)]
        spans: list[tuple[float, float]] = []

        def writer(agent: RequestContext) -> None:
            began = time.monotonic()
            session = rt.sessions.start(agent, ttl_seconds=600).value.id
            for n in range(ENTRIES_EACH):
                rt.entries.append(agent, "apollo", NewEntry(f"step {n}", session))
                if n % 5 == 0:
                    rt.sessions.heartbeat(agent, session)
            spans.append((began, time.monotonic()))

        run_threads([lambda a=a: writer(a) for a in agents])  # type: ignore[misc]
        # The writers really overlapped: the last to start began before the first ended.
        assert max(b for b, _ in spans) < min(e for _, e in spans)
        head = rt.ledger.head_position()
        wait_until(
            lambda: all(m.recorded_position() >= head for m in rt.read_models.values()),
            timeout=60,
        )
        # Nothing skipped, nothing twice: every entry and session is there once, and each read
        # model equals a replay of the log.
        assert entry_rows(rt) == WRITERS * ENTRIES_EACH
        sessions = rt.read_models["sessions_v3"]
        with sessions.reading() as cursor:
            cursor.execute(sessions.sql("SELECT count(*) AS n FROM {sessions}"))
            assert cursor.fetchone()["n"] == WRITERS
        all_identical(rt)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        rt.close()


def test_writers_to_the_postgres_log_take_its_table_lock(postgres_url: str, tmp_path: Path) -> None:
    """Why no runner skips an event: each transaction that writes the log holds the events
    table in EXCLUSIVE mode from its first insert to its commit (the library's recorder, not
    its database-functions path), so positions are issued in commit order and a reader past
    position N never sees a lower one committed later. Shown with a lock that conflicts with
    EXCLUSIVE but not with the ROW EXCLUSIVE a plain INSERT takes: the write waits for it."""
    schema = f"t_lock_{time.time_ns()}"
    settings = Settings(database_url=postgres_url, postgres_schema=schema, data_dir=tmp_path)
    rt = build_runtime(settings)
    try:
        table = f'"{schema}"."{rt.ledger.recorder.events_table_name}"'  # type: ignore[attr-defined]
        agent = agent_context(rt, "alice")
        done = threading.Event()
        with psycopg.connect(postgres_url) as holder:
            holder.execute(f"LOCK TABLE {table} IN ROW SHARE MODE")
            writer = threading.Thread(target=lambda: (rt.sessions.start(agent), done.set()))
            writer.start()
            wait_until(lambda: _waiting_for_exclusive(postgres_url, table))
            assert not done.is_set()
            holder.rollback()
        writer.join(30)
        assert done.is_set()
    finally:
        rt.close()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _waiting_for_exclusive(url: str, table: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass "
            "AND mode = 'ExclusiveLock' AND NOT granted",
            (table,),
        ).fetchone()
    return bool(row and row[0])
