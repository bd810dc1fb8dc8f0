"""The cost of `Idempotency-Key`: a write (create a work item) with and without a key, and a
replay, on SQLite and PostgreSQL; over HTTP (a real `agentledger serve`) and in process (the
application service called directly, with and without an idempotency attempt around it, as
the HTTP layer makes one). One caller, one write at a time, so the figures are latency, not
throughput. Not part of the test suite.

    .venv/bin/python -m bench.idempotency [--calls N] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import psycopg

from agentledger.application.context import RequestContext
from agentledger.application.idempotency import current_claim, scope_of
from agentledger.application.idempotency_codec import encode_outcome
from agentledger.application.work_items import NewWorkItem
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.idempotency import fingerprint
from bench.agentledger_competitors import POOL, _Setup
from bench.harness import DEFAULT_DATABASE_URL, issue_token, served, store_environments, summarise
from bench.http_client import Client
from bench.http_work_items import server_seconds
from bench.sql_competitors import throwaway_schema


def measure(base_url: str, token: str, calls: int) -> dict[str, dict[str, float]]:
    client = Client(base_url, {"Authorization": f"Bearer {token}"})
    reply = client.post("/v1/projects", json={"name": "bench"})
    assert reply.status_code == 201, reply.text
    server: dict[str, list[float]] = {"plain": [], "keyed": [], "replay": []}
    wall: dict[str, list[float]] = {name: [] for name in server}
    for n in range(calls):  # interleaved, so drift in the machine hits both alike
        for name, headers in (("plain", {}), ("keyed", {"Idempotency-Key": f"key-{n}"})):
            body = {"project": "bench", "kind": "task", "title": f"{name} {n}"}
            started = time.perf_counter()
            reply = client.post("/v1/work-items", json=body, headers=headers)
            wall[name].append(time.perf_counter() - started)
            assert reply.status_code == 201, reply.text
            server[name].append(server_seconds(reply) or 0.0)
        body = {"project": "bench", "kind": "task", "title": f"keyed {n}"}
        started = time.perf_counter()
        reply = client.post("/v1/work-items", json=body, headers={"Idempotency-Key": f"key-{n}"})
        wall["replay"].append(time.perf_counter() - started)
        assert reply.headers.get("Idempotent-Replayed") == "true", reply.text
        server["replay"].append(server_seconds(reply) or 0.0)
    client.close()
    return {
        **{f"{k} server": v for k, v in summarise(server).items()},
        **{f"{k} wall": v for k, v in summarise(wall).items()},
    }


def measure_in_process(settings: Settings, calls: int) -> dict[str, dict[str, float]]:
    """The key's own cost, no HTTP: claim the key, run the command (its outcome stored with
    its events), store the answer; against the same command without a key, and a replay."""
    rt = build_runtime(settings)
    rt.start_runners()  # as `serve` has them: they compete for the same cores
    try:
        boss = _Setup(rt).boss
        rt.projects.create(boss, "bench")
        timings: dict[str, list[float]] = {"plain": [], "keyed": [], "replay": []}
        for n in range(calls):  # interleaved, so drift in the machine hits both alike
            new = NewWorkItem(project="bench", kind="task", title=f"plain {n}")
            started = time.perf_counter()
            rt.work_items.create(boss, new)
            timings["plain"].append(time.perf_counter() - started)
            for name in ("keyed", "replay"):
                started = time.perf_counter()
                _keyed_create(rt, boss, n)
                timings[name].append(time.perf_counter() - started)
        return summarise(timings)
    finally:
        rt.close()


def _keyed_create(rt: Runtime, boss: RequestContext, n: int) -> None:
    new = NewWorkItem(project="bench", kind="task", title=f"keyed {n}")
    scope = scope_of(boss.principal.name, "POST", "/v1/work-items", f"key-{n}")
    with rt.idempotency.attempt(scope, fingerprint(json.dumps(vars(new)).encode(), {})) as stored:
        if stored is not None:
            return  # a replay: the stored answer is what the caller gets
        outcome = rt.work_items.create(boss, new)
        # What the HTTP layer stores as its rendered answer, of about the same size.
        claim = current_claim()
        assert claim is not None
        rt.idempotency.store_answer(claim, encode_outcome(outcome.value, 1))


def in_process_settings(database_url: str, data_dir: Path) -> dict[str, Settings]:
    return {
        "sqlite": Settings(database_url=None, data_dir=data_dir / "inproc"),
        "postgres": Settings(
            database_url=database_url, postgres_schema=throwaway_schema("idem"), **POOL
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        store_environments(args.database_url, Path(tmp)) as envs,
    ):
        for store, env in envs.items():
            token = issue_token(env, "user:bench", "coordinator")
            with served(env) as url:
                results[store] = measure(url, token, args.calls)
        for store, settings in in_process_settings(args.database_url, Path(tmp)).items():
            try:
                rows = measure_in_process(settings, args.calls)
            finally:
                if settings.uses_postgres:
                    with psycopg.connect(args.database_url, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{settings.postgres_schema}" CASCADE')
            results[store] |= {f"{k} in-process": v for k, v in rows.items()}
    for store, rows in results.items():
        print(f"\n{store}: p50 / p99 ms ({args.calls} calls each)")
        for name, row in rows.items():
            print(f"  {name:18} {row['p50_ms']:7.2f} {row['p99_ms']:7.2f}")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
