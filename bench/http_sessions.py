"""Latency of starting a session and of a heartbeat, on PostgreSQL and SQLite.

Over HTTP: a real server on loopback, N sequential calls from one client (heartbeats there are
answered from state: too early to be written). In process: the application layer on a manual
clock, so every renewal is written. Not part of the test suite.

    .venv/bin/python -m bench.http_sessions [--calls 2000] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import httpx2 as httpx
import psycopg

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext, local_operator
from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from bench.harness import DEFAULT_DATABASE_URL, issue_token, served, store_environments, summarise


def measure_http(env: dict[str, str], calls: int) -> dict[str, dict[str, float]]:
    with served(env) as base:
        token = issue_token(env, "agent:bench", "agent")
        headers = {"Authorization": f"Bearer {token}"}
        timings: dict[str, list[float]] = {"start": [], "heartbeat": []}
        with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
            session_id = None
            for _ in range(calls):
                t0 = time.perf_counter()
                response = client.post("/v1/sessions", json={"ttl_seconds": 600})
                timings["start"].append(time.perf_counter() - t0)
                assert response.status_code == 201, response.text
                session_id = response.json()["id"]
            for _ in range(calls):
                t0 = time.perf_counter()
                response = client.post(f"/v1/sessions/{session_id}/heartbeat")
                timings["heartbeat"].append(time.perf_counter() - t0)
                assert response.status_code == 200, response.text
        return summarise(timings)


def measure_in_process(settings: Settings, calls: int) -> dict[str, dict[str, float]]:
    """The application layer alone (no HTTP), with a manual clock so every renewal writes."""
    clock = ManualClock()
    rt = build_runtime(settings, clock=clock)
    rt.start_runners()
    try:
        operator = RequestContext(local_operator("bench"), "bench")
        secret = rt.access.issue(operator, "agent:bench", ["agent"]).value.secret
        agent = RequestContext(rt.access.authenticate(secret), "bench")
        timings: dict[str, list[float]] = {"start": [], "heartbeat_written": []}
        session_id = None
        for _ in range(calls):
            t0 = time.perf_counter()
            session_id = rt.sessions.start(agent, ttl_seconds=600).value.id
            timings["start"].append(time.perf_counter() - t0)
        assert session_id is not None
        for _ in range(calls):
            clock.advance(100)  # moves the expiry by more than a tenth of the TTL: written
            t0 = time.perf_counter()
            outcome = rt.sessions.heartbeat(agent, session_id)
            timings["heartbeat_written"].append(time.perf_counter() - t0)
            assert outcome.events_written == 1
        return summarise(timings)
    finally:
        rt.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    args = parser.parse_args()
    results: dict[str, dict[str, object]] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        store_environments(args.database_url, Path(tmp) / "http") as envs,
    ):
        for store, env in envs.items():
            results[store] = {"http": measure_http(env, args.calls)}
        inproc_schema = f"bench_{uuid.uuid4().hex[:8]}"
        results["sqlite"]["in_process"] = measure_in_process(
            Settings(data_dir=Path(tmp) / "inproc", database_url=None), args.calls
        )
        try:
            results["postgres"]["in_process"] = measure_in_process(
                Settings(database_url=args.database_url, postgres_schema=inproc_schema),
                args.calls,
            )
        finally:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{inproc_schema}" CASCADE')
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
