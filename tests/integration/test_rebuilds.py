"""Rebuilding read models without downtime: blue/green beside a live `serve`, and a rebuild
killed mid-way that leaves the live model untouched and resumes. Both stores, the other
processes real."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from agentledger.application.context import RequestContext
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.readmodels.entries import EntriesReadModel
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.app import create_app
from tests.conftest import bearer, issue_token
from tests.support.helpers import wait_until
from tests.support.processes import (
    CLI,
    all_identical,
    cli_env,
    entry_rows,
    seed_entries,
    serving,
    start_cli,
)

SEEDED = 8_000  # enough for a rebuild that queries and commands overlap
MID_WAY = 12_000  # enough for a rebuild that the test can kill part-way


def _admin(rt: Runtime) -> RequestContext:
    return RequestContext(rt.access.authenticate(issue_token(rt, "user:admin", "admin")), "t")


@dataclass
class _Seen:
    at: float
    status: int
    newest: int | None  # the position of the newest entry listed


def test_blue_green_rebuild_of_every_projection_while_serve_serves(settings: Settings) -> None:
    rt = build_runtime(settings)  # writes the history; `serve` runs the projections
    token = issue_token(rt, "agent:alice", "agent")
    rt.projects.create(_admin(rt), "apollo")
    seed_entries(rt, "apollo", SEEDED)
    seeded_head = rt.ledger.head_position()
    rt.close()
    with serving(settings) as base:
        client = httpx.Client(base_url=base, headers=bearer(token), timeout=30)
        session = client.post("/v1/sessions", json={"ttl_seconds": 600}).json()["id"]
        listed = client.get(
            "/v1/projects/apollo/entries",
            params={"limit": 1},
            headers={"AgentLedger-Consistent-With": str(seeded_head)},
        )
        newest_seeded = listed.json()["items"][0]["position"]
        stop = threading.Event()
        seen: list[_Seen] = []
        written: list[int] = []
        failures: list[str] = []

        def read() -> None:
            # Every query answers from a whole model: the seeded entries stay listed, the
            # token keeps authenticating, the session stays found.
            with httpx.Client(base_url=base, headers=bearer(token), timeout=30) as c:
                while not stop.is_set():
                    page = c.get("/v1/projects/apollo/entries", params={"limit": 1})
                    found = c.get(f"/v1/sessions/{session}")
                    items = page.json().get("items") if page.status_code == 200 else None
                    newest = items[0]["position"] if items else None
                    seen.append(_Seen(time.monotonic(), page.status_code, newest))
                    if page.status_code != 200 or newest is None or newest < newest_seeded:
                        failures.append(f"entries: {page.status_code} {page.text[:200]}")
                    if found.status_code != 200:
                        failures.append(f"session: {found.status_code} {found.text[:200]}")

        def write() -> None:
            with httpx.Client(base_url=base, headers=bearer(token), timeout=30) as c:
                n = 0
                while not stop.is_set():
                    body = {"session_id": session, "message": f"during the rebuild {n}"}
                    answer = c.post("/v1/projects/apollo/entries", json=body)
                    if answer.status_code != 201:
                        failures.append(f"append: {answer.status_code} {answer.text[:200]}")
                    else:
                        written.append(int(answer.headers["AgentLedger-Position"]))
                    n += 1

        threads = [threading.Thread(target=t) for t in (read, read, write, write)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # queries and commands under way before the rebuild starts
        began = time.monotonic()
        rebuild = subprocess.run(
            [CLI, "projections", "rebuild", "--all", "--json"],
            env=cli_env(settings),
            capture_output=True,
            timeout=300,
        )
        ended = time.monotonic()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
        assert rebuild.returncode == 0, rebuild.stderr.decode()[-2000:]
        reports = json.loads(rebuild.stdout)
        assert {r["name"] for r in reports} == set(_projection_names())
        assert all(r["blue_green"] for r in reports)
        assert failures == []
        # The queries and commands really ran while the rebuild did.
        during = [s for s in seen if began <= s.at <= ended]
        assert len(during) >= 20, len(during)
        assert written, "no command ran"
        # After the switch every acknowledged write is in the rebuilt model.
        last = client.get(
            "/v1/projects/apollo/entries",
            params={"limit": 1},
            headers={"AgentLedger-Consistent-With": str(max(written))},
        )
        assert last.json()["items"][0]["position"] == max(written)
        # The live runners went on across the switch without a fault (their batch after it
        # found the position moved on and resumed from there).
        runners = httpx.get(f"{base}/readyz", timeout=10).json()["runners"]
        assert [(r["name"], r["restarts"]) for r in runners if r["restarts"]] == []
        client.close()
    verify = subprocess.run(
        [CLI, "projections", "verify", "--all"], env=cli_env(settings), capture_output=True
    )
    assert verify.returncode == 0, verify.stdout.decode()
    rt = build_runtime(settings)
    try:
        assert entry_rows(rt) == SEEDED + len(written)
    finally:
        rt.close()


def test_a_rebuild_killed_midway_leaves_the_live_model_and_resumes(
    settings: Settings, tmp_path: Path
) -> None:
    rt = build_runtime(settings)
    try:
        rt.projects.create(_admin(rt), "apollo")
        seed_entries(rt, "apollo", MID_WAY)
        rt.catch_up()
        entries = rt.read_models["entries_v2"]
        live_before = entries.snapshot()
        building = entries.building()
        head = rt.ledger.head_position()
        # A point chosen by the test, so that the rebuild is really mid-way when killed.
        target = random.randint(head // 10, head // 2)
        proc = start_cli(settings, "projections", "rebuild", "entries_v2", log=tmp_path / "a.log")
        wait_until(lambda: building.store.position() >= target, timeout=120)
        (shown,) = [s for s in rt.runners.statuses() if s.name == "entries_v2"]
        assert shown.state == "rebuilding" and shown.rebuild is not None
        assert shown.rebuild.running and 0 < shown.rebuild.done <= head
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        reached = building.store.position()
        assert target <= reached < head
        # The status says the rebuild was interrupted, and that it can be resumed.
        (shown,) = [s for s in rt.runners.statuses() if s.name == "entries_v2"]
        assert shown.state != "rebuilding" and shown.rebuild is not None
        assert not shown.rebuild.running
        assert entries.snapshot() == live_before  # the live model is untouched
        again = subprocess.run(
            [CLI, "projections", "rebuild", "entries_v2", "--json"],
            env=cli_env(settings),
            capture_output=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stderr.decode()[-2000:]
        (report,) = json.loads(again.stdout)
        # --json: progress as JSON lines on stderr, ending at the head.
        lines = again.stderr.decode().splitlines()
        progress = [json.loads(line) for line in lines if line.startswith("{")]
        assert progress and progress[-1]["done"] == progress[-1]["total"] == head
        assert {"events_per_second", "eta_seconds"} <= set(progress[-1])
        assert report["resumed_from"] == reached
        assert report["events"] == head
        assert entries.snapshot() == live_before  # rebuilt equal, now the live one
        assert building.store.position() == 0  # the rebuild's tracking row is gone
        all_identical(rt)
    finally:
        rt.close()


def _projection_names() -> list[str]:
    return [
        "sessions_v3",
        "tokens_v1",
        "projects_v1",
        "selections_v1",
        "entries_v2",
        "work_items_v4",
        "approvals_v1",
        "handovers_v1",
        "messages_v1",
        "agents_v1",
        "timeline_v1",
    ]


def test_a_new_version_is_built_beside_before_anything_answers_from_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = build_runtime(settings)
    token = issue_token(rt, "agent:alice", "agent")
    rt.projects.create(_admin(rt), "apollo")
    seed_entries(rt, "apollo", SEEDED)
    head = rt.ledger.head_position()
    rt.catch_up()
    rt.close()
    # The entries read model's schema changed: a new version, so a new name and new tables.
    monkeypatch.setattr(EntriesReadModel, "name", "entries_v9")
    rt = build_runtime(settings)
    try:
        runner = rt.runners.projections["entries_v9"]
        client = TestClient(create_app(rt), headers=bearer(token))
        answers: list[tuple[str, int, str]] = []
        rt.start_runners()
        while runner.state != "running":
            page = client.get("/v1/projects/apollo/entries", params={"limit": 1})
            answers.append((runner.state, page.status_code, page.text))
        building = [a for a in answers if a[1] == 503]
        assert building, "never seen building"
        assert all("/read-model-building" in text for _, _, text in building), building[-3:]
        # Nothing was answered from the part-built model: every 200 lists the newest entry.
        newest = [json.loads(text)["items"][0]["position"] for _, s, text in answers if s == 200]
        assert all(position == head for position in newest)
        final = client.get("/v1/projects/apollo/entries", params={"limit": 1})
        assert final.json()["items"][0]["position"] == head
        assert rt.read_models["entries_v9"].building().store.position() == 0
        all_identical(rt)
    finally:
        rt.close()


def test_a_switch_over_leaves_tables_and_indexes_as_a_fresh_start_makes_them(
    settings: Settings,
) -> None:
    rt = build_runtime(settings)
    try:
        rt.projects.create(_admin(rt), "apollo")
        seed_entries(rt, "apollo", 50)
        rt.catch_up()
        before = _schema(rt, settings)
        for _ in range(2):  # the second finds every name the first used free again
            for runner in rt.runners.projections.values():
                assert runner.rebuild() is not None
        assert _schema(rt, settings) == before
        all_identical(rt)
    finally:
        rt.close()


def _schema(rt: Runtime, settings: Settings) -> set[tuple[str, str]]:
    """Every table and index of the read models: (kind, name)."""
    found: set[tuple[str, str]] = set()
    for model in rt.read_models.values():
        with model.reading() as cursor:
            if settings.uses_postgres:
                cursor.execute(
                    "SELECT 'index' AS kind, indexname AS name FROM pg_indexes "
                    "WHERE schemaname = %s UNION SELECT 'table', tablename FROM pg_tables "
                    "WHERE schemaname = %s",
                    (settings.postgres_schema, settings.postgres_schema),
                )
            else:
                cursor.execute("SELECT type AS kind, name FROM sqlite_master")
            found |= {(row["kind"], row["name"]) for row in cursor.fetchall()}
    return found
