"""Cells: what a second database adds, measured on this machine (`python -m bench.cells`).

A cell is one AgentLedger log on its own PostgreSQL database, with its own `serve` processes
and projections; a router sends each agent's commands to its cell (here the load generator
does it, by agent). Two measurements:

1. **What the log's table lock caps.** Every write transaction takes an EXCLUSIVE lock on the
   events table (so positions are committed in order); that serialises the writers of one
   database. The raw floor (`INSERT` + `COMMIT`) is run at 16 clients with and without that
   lock, on one database and split over two.
2. **Cells.** AgentLedger appends over HTTP at 16 clients: one cell served by two processes
   against two cells served by one process each (the same processes, the same cores: only the
   number of logs differs), then every acknowledged append is read back from its cell.

Databases `agentledger_cell_0` and `agentledger_cell_1` are created on the server and dropped
afterwards. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from agentledger.application.context import RequestContext, local_operator
from agentledger.application.readmodels import EntryFilter
from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from bench.core import Operation, latency_summary, run_cell
from bench.harness import DEFAULT_DATABASE_URL, served
from bench.http_client import Client
from bench.sql_competitors import EVENT_STATE

CLIENTS = 16
PROJECT = "cells"


@contextmanager
def databases(url: str, count: int) -> Iterator[list[str]]:
    """`count` fresh databases on the server of `url`; their URLs."""
    names = [f"agentledger_cell_{n}" for n in range(count)]
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield [make_conninfo(url, dbname=name) for name in names]
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _floor_clients(urls: list[str], locked: bool) -> list[Operation]:
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS floor_events (id bigserial UNIQUE, stream uuid,"
                " version int, topic text, state bytea, PRIMARY KEY (stream, version))"
            )
    operations = []
    for n in range(CLIENTS):
        conn = psycopg.connect(urls[n % len(urls)])
        stream, versions = uuid.uuid4(), itertools.count(1)

        def op(
            command: str,
            conn: psycopg.Connection[Any] = conn,
            stream: Any = stream,
            versions: Any = versions,
        ) -> None:
            if locked:
                conn.execute("LOCK TABLE floor_events IN EXCLUSIVE MODE")
            conn.execute(
                "INSERT INTO floor_events (stream, version, topic, state) VALUES (%s, %s, %s, %s)",
                (stream, next(versions), command, EVENT_STATE),
                prepare=True,
            )
            conn.commit()

        operations.append(op)
    return operations


def floor_lock(url: str, duration: float, rounds: int) -> list[dict[str, Any]]:
    out = []
    with databases(url, 2) as urls:
        for cells, locked in ((1, False), (1, True), (2, True)):
            rates = []
            for _ in range(rounds):
                operations = _floor_clients(urls[:cells], locked)
                rates.append(run_cell(operations, "append", duration).per_second)
            out.append(
                {
                    "databases": cells,
                    "table_lock": locked,
                    "commits_per_second": round(sorted(rates)[len(rates) // 2]),
                }
            )
            print(out[-1], flush=True)
    return out


class LogCell:
    """One log on its own database: setup through a runtime, served by `serve` processes."""

    def __init__(self, url: str, workers: int, stack: ExitStack) -> None:
        settings = Settings(database_url=url, pool_size=2, pool_max_overflow=6)
        self.rt = build_runtime(settings)
        stack.callback(self.rt.close)
        operator = RequestContext(local_operator("bench"), "bench")
        self.rt.projects.create(operator, PROJECT)
        self._operator = operator
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env |= {"DATABASE_URL": url, "AGENTLEDGER_POOL_SIZE": "2"}
        env |= {"AGENTLEDGER_POOL_MAX_OVERFLOW": "6"}
        self.base = stack.enter_context(served(env, workers))
        self.acknowledged: list[str] = []
        self._lock = threading.Lock()

    def agent(self, name: str) -> Operation:
        secret = self.rt.access.issue(self._operator, f"agent:{name}", ["agent"]).value.secret
        client = Client(self.base, headers={"Authorization": f"Bearer {secret}"})
        session = client.post("/v1/sessions", json={"ttl_seconds": 600}).json()["id"]
        counter = itertools.count()

        def op(command: str) -> None:
            response = client.post(
                f"/v1/projects/{PROJECT}/entries",
                json={"message": f"{name} {next(counter)}", "session_id": session},
            )
            if response.status_code != 201:
                raise RuntimeError(f"{response.status_code} {response.text[:200]}")
            with self._lock:
                self.acknowledged.append(response.json()["id"])

        return op

    def all_readable(self) -> bool:
        """Every acknowledged append is in this cell's entries read model, once."""
        self.rt.catch_up()
        found: list[str] = []
        cursor = None
        while True:
            page = self.rt.entries.list(EntryFilter(project=PROJECT), limit=500, cursor=cursor)
            found += [str(item.id) for item in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        return sorted(found) == sorted(self.acknowledged) and len(set(found)) == len(found)


def cells(url: str, duration: float, rounds: int) -> list[dict[str, Any]]:
    out = []
    for count, workers in ((1, 2), (2, 1)):
        with databases(url, count) as urls, ExitStack() as stack:
            made = [LogCell(u, workers, stack) for u in urls]
            operations = [made[n % count].agent(f"a{n}") for n in range(CLIENTS)]
            rates, latencies = [], []
            for _ in range(rounds):
                cell = run_cell(operations, "append", duration)
                rates.append(cell.per_second)
                latencies += cell.latencies
            out.append(
                {
                    "cells": count,
                    "serve_processes": count * workers,
                    "appends_per_second": round(sorted(rates)[len(rates) // 2]),
                    **latency_summary(latencies),
                    "acknowledged": sum(len(c.acknowledged) for c in made),
                    "every_append_readable_once": all(c.all_readable() for c in made),
                }
            )
            print(out[-1], flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    )
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    results = {
        "floor_lock": floor_lock(args.database_url, args.duration, args.rounds),
        "cells": cells(args.database_url, args.duration, args.rounds),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
