"""Does the ready queue's cost follow the page or the backlog? `ready(limit=1)` and the status
report of one project, with 0, 60, 150 and 1000 open items waiting for an unfinished blocker
behind 20 ready ones, on PostgreSQL and SQLite, in process.

Run: `python -m bench.ready_queue` (DATABASE_URL or the local server). Prints medians in ms.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from agentledger.application.work_items import NewWorkItem
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from bench.agentledger_competitors import _Setup
from bench.sql_competitors import throwaway_schema

WAITING = (0, 60, 150, 1000)
READY = 20
CALLS = 200


def median_ms(call: Callable[[], object], calls: int = CALLS) -> float:
    for _ in range(10):  # warm the caches and the prepared statements
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(rt: Runtime) -> list[tuple[int, float, float]]:
    setup = _Setup(rt)
    rows = []
    for level, waiting in enumerate(WAITING):
        project = f"backlog-{level}"
        rt.projects.create(setup.boss, project)
        task = NewWorkItem(project=project, kind="task", title="blocker")
        blocker = rt.work_items.create(setup.boss, task).value.id
        for n in range(READY):
            rt.work_items.create(
                setup.boss, NewWorkItem(project=project, kind="task", title=f"r{n}")
            )
        for n in range(waiting):
            new = NewWorkItem(project=project, kind="task", title=f"w{n}", priority=5)
            item = rt.work_items.create(setup.boss, new).value.id
            rt.work_items.add_dependency(setup.boss, item, blocker, fence=None)
        rt.catch_up()
        ready = median_ms(lambda p=project: rt.work_items.ready(project=p, limit=1))
        status = median_ms(lambda p=project: rt.status.report(p), calls=40)
        rows.append((waiting, ready, status))
    return rows


def main() -> None:
    url = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    with tempfile.TemporaryDirectory() as data:
        stores = {
            "postgres": Settings(database_url=url, postgres_schema=throwaway_schema("ready")),
            "sqlite": Settings(data_dir=Path(data)),
        }
        for store, settings in stores.items():
            rt = build_runtime(settings)
            rt.start_runners()
            try:
                print(f"{store}: waiting items -> ready(limit=1) ms, status report ms (medians)")
                for waiting, ready, status in measure(rt):
                    print(f"  {waiting:5d}  {ready:7.2f}  {status:7.2f}")
            finally:
                rt.close()


if __name__ == "__main__":
    main()
