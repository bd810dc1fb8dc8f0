"""Several processes opening one fresh store at the same moment (`serve &` then at once
`tokens issue`): every one of them creates the schema, or finds it made, and none fails."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from agentledger.infrastructure.settings import Settings

PROCESSES = 5
ROUNDS = 6  # each on a fresh store; before the schema lock, most rounds had a failure

# Each process imports once, then for every round waits at a barrier (a file per process
# says it is ready; the test's `go` file releases them all) and builds a runtime on that
# round's fresh store. It reports, per round, when it started and ended and what failed.
OPENER = """
import json, sys, time, traceback
from pathlib import Path
from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings

stores, sync, me = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
report = []
for n, fields in enumerate(stores):
    (sync / f"ready-{n}-{me}").touch()
    while not (sync / f"go-{n}").exists():
        time.sleep(0.001)
    started, error = time.time(), None
    try:
        build_runtime(Settings(**fields)).close()
    except Exception:
        error = traceback.format_exc(limit=3)
    report.append({"started": started, "ended": time.time(), "error": error})
print(json.dumps(report))
"""


def fresh_stores(settings: Settings) -> list[dict[str, Any]]:
    if settings.uses_postgres:
        url, schema = settings.database_url, settings.postgres_schema
        return [{"database_url": url, "postgres_schema": f"{schema}_r{n}"} for n in range(ROUNDS)]
    return [
        {"database_url": None, "data_dir": str(settings.data_dir / f"round{n}")}
        for n in range(ROUNDS)
    ]


def test_processes_starting_together_on_a_fresh_store_all_open_it(
    settings: Settings, tmp_path: Path
) -> None:
    stores = fresh_stores(settings)
    sync = tmp_path / "sync"
    sync.mkdir()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, json.dumps(stores), str(sync), str(me)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for me in range(PROCESSES)
    ]
    try:
        for n in range(ROUNDS):
            deadline = time.monotonic() + 60
            while len(list(sync.glob(f"ready-{n}-*"))) < PROCESSES:
                assert time.monotonic() < deadline, "the processes did not reach the barrier"
                assert all(p.poll() is None for p in processes), "a process ended early"
                time.sleep(0.005)
            (sync / f"go-{n}").touch()
        outputs = [p.communicate(timeout=120) for p in processes]
    finally:
        for p in processes:
            p.kill()
        drop_schemas(settings, stores)
    assert [p.returncode for p in processes] == [0] * PROCESSES, [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    for n in range(ROUNDS):
        opened = [report[n] for report in reports]
        # All were in flight at once: the last to start began before the first had finished.
        assert max(o["started"] for o in opened) < min(o["ended"] for o in opened), n
    failures = [(n, o["error"]) for report in reports for n, o in enumerate(report) if o["error"]]
    assert failures == []


def drop_schemas(settings: Settings, stores: list[dict[str, Any]]) -> None:
    if not settings.uses_postgres:
        return
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        for store in stores:
            conn.execute(f'DROP SCHEMA IF EXISTS "{store["postgres_schema"]}" CASCADE')
