"""Shared bench plumbing: a real `agentledger serve` on loopback, tokens, timing summaries."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import psycopg

from agentledger.infrastructure.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name("agentledger"))
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def summarise(timings: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "calls": len(values),
            "p50_ms": round(percentile(values, 0.50) * 1000, 2),
            "p99_ms": round(percentile(values, 0.99) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2),
            "mean_ms": round(statistics.fmean(values) * 1000, 2),
        }
        for name, values in timings.items()
        if values
    }


@contextmanager
def one_store(store: str, database_url: str) -> Iterator[tuple[Settings, dict[str, str]]]:
    """Settings for this process and the environment for CLI children, on one store: SQLite in
    a temporary directory, or a throwaway schema on PostgreSQL (dropped after)."""
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        if store != "postgres":
            env = {**base, "AGENTLEDGER_DATA_DIR": str(data_dir)}
            yield Settings(data_dir=data_dir, database_url=None), env
            return
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        env = {**base, "DATABASE_URL": database_url, "AGENTLEDGER_POSTGRES_SCHEMA": schema}
        try:
            yield Settings(database_url=database_url, postgres_schema=schema), env
        finally:
            with psycopg.connect(database_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def store_environments(database_url: str, data_dir: Path) -> Iterator[dict[str, dict[str, str]]]:
    """Environments for one server on SQLite and one on PostgreSQL (a throwaway schema)."""
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        yield {
            "sqlite": {**base, "AGENTLEDGER_DATA_DIR": str(data_dir)},
            "postgres": {
                **base,
                "DATABASE_URL": database_url,
                "AGENTLEDGER_POSTGRES_SCHEMA": schema,
            },
        }
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def served(env: dict[str, str], workers: int = 1) -> Iterator[str]:
    """Run `agentledger serve` with this environment; yield its base URL."""
    port = free_port()
    command = [CLI, "serve", "--port", str(port), "--workers", str(workers)]
    with server_process(command, env, port, lambda base: httpx.get(f"{base}/healthz", timeout=1)):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def server_process(
    command: list[str], env: dict[str, str], port: int, probe: Callable[[str], object]
) -> Iterator[str]:
    """Run an HTTP server on `port` until the block ends; yield its base URL once `probe`
    (called with it) gets an answer, within 30 s."""
    server = subprocess.Popen(
        command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                probe(base)
                break
            except (httpx.TransportError, OSError):
                assert server.poll() is None, f"{command[0]} exited"
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(10)


@contextmanager
def projections_running(env: dict[str, str], lock_keys: list[int], url: str) -> Iterator[None]:
    """Run `agentledger projections run` with this environment, once it holds every runner's
    lock (so that `serve` processes started next stand by)."""
    process = subprocess.Popen(
        [CLI, "projections", "run"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while _advisory_locks_held(url, lock_keys) < len(lock_keys):
            assert process.poll() is None, "agentledger projections run exited"
            assert time.monotonic() < deadline, "projections run did not take its runners"
            time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(10)


def _advisory_locks_held(url: str, keys: list[int]) -> int:
    # PostgreSQL shows a bigint advisory key as two 32-bit halves: classid high, objid low.
    halves = [((k & 0xFFFFFFFFFFFFFFFF) >> 32, k & 0xFFFFFFFF) for k in keys]
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT classid::bigint, objid::bigint FROM pg_locks "
            "WHERE locktype = 'advisory' AND granted AND objsubid = 1"
        ).fetchall()
    return len(set(halves) & {(int(c), int(o)) for c, o in rows})


def issue_token(env: dict[str, str], principal: str, role: str) -> str:
    return subprocess.run(
        [CLI, "tokens", "issue", "--principal", principal, "--role", role],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
