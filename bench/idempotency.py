"""The cost of `Idempotency-Key`: a write (create a work item) with and without the header,
and a replay, over HTTP on SQLite and PostgreSQL; one client, one request at a time, so the
figures are latency, not throughput. Not part of the test suite.

    .venv/bin/python -m bench.idempotency [--calls N] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.harness import DEFAULT_DATABASE_URL, issue_token, served, store_environments, summarise
from bench.http_client import Client
from bench.http_work_items import server_seconds


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
    for store, rows in results.items():
        print(f"\n{store}: p50 / p99 ms ({args.calls} calls each)")
        for name, row in rows.items():
            print(f"  {name:14} {row['p50_ms']:7.2f} {row['p99_ms']:7.2f}")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
