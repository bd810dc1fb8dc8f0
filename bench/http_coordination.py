"""Latency of a project switch (PUT selection) and of a progress-log append, over HTTP, on
PostgreSQL and SQLite, with 1 and 16 concurrent clients (each client its own agent).

    .venv/bin/python -m bench.http_coordination [--calls 400] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx

from bench.harness import DEFAULT_DATABASE_URL, issue_token, served, store_environments, summarise


class Agent:
    """One client: its token, session, two projects to switch between, and its version."""

    def __init__(self, base: str, token: str, name: str) -> None:
        self.name = name
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.session = self._ok(self.client.post("/v1/sessions", json={"ttl_seconds": 3600}))["id"]
        self.projects = [f"{name}-a", f"{name}-b"]
        for project in self.projects:
            self._ok(self.client.post("/v1/projects", json={"name": project}))
        selected = self.client.put(
            f"/v1/agents/{name}/project",
            json={"project": self.projects[0], "session_id": self.session},
            headers={"If-None-Match": "*"},
        )
        self.version = self._ok(selected)["version"]

    def switch(self, i: int) -> float:
        project = self.projects[(i + 1) % 2]
        t0 = time.perf_counter()
        response = self.client.put(
            f"/v1/agents/{self.name}/project",
            json={"project": project, "session_id": self.session},
            headers={"If-Match": f'"{self.version}"'},
        )
        elapsed = time.perf_counter() - t0
        self.version = self._ok(response)["version"]
        return elapsed

    def append(self, i: int) -> float:
        t0 = time.perf_counter()
        response = self.client.post(
            "/v1/entries",
            json={"message": f"step {i}", "session_id": self.session, "metadata": {"i": i}},
        )
        elapsed = time.perf_counter() - t0
        self._ok(response)
        return elapsed

    @staticmethod
    def _ok(response: httpx.Response) -> Any:
        assert response.status_code in (200, 201), response.text
        return response.json()


def run_clients(agents: list[Agent], calls: int, operation: str) -> list[float]:
    timings: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(agents))

    def work(agent: Agent) -> None:
        mine = []
        barrier.wait()
        for i in range(calls):
            mine.append(getattr(agent, operation)(i))
        with lock:
            timings.extend(mine)

    threads = [threading.Thread(target=work, args=(a,)) for a in agents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return timings


def measure(env: dict[str, str], calls: int) -> dict[str, Any]:
    with served(env) as base:
        agents = [
            Agent(base, issue_token(env, f"agent:bench{i}", "agent"), f"bench{i}")
            for i in range(16)
        ]
        results: dict[str, Any] = {}
        for clients in (1, 16):
            per_client = calls if clients == 1 else max(1, calls // 4)
            group = agents[:clients]
            started = time.perf_counter()
            switch = run_clients(group, per_client, "switch")
            switch_rate = len(switch) / (time.perf_counter() - started)
            started = time.perf_counter()
            append = run_clients(group, per_client, "append")
            append_rate = len(append) / (time.perf_counter() - started)
            summary = summarise({"switch": switch, "append": append})
            summary["switch"]["per_second"] = round(switch_rate)
            summary["append"]["per_second"] = round(append_rate)
            results[f"{clients}_clients"] = summary
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="per client at 1 client")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        store_environments(args.database_url, Path(tmp)) as envs,
    ):
        results = {store: measure(env, args.calls) for store, env in envs.items()}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
