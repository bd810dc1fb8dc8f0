"""What the figures were measured on: cores, kernel, Python, PostgreSQL and its durability
settings (the figures mean little without them)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from typing import Any

import psycopg


def describe(database_url: str) -> dict[str, Any]:
    machine: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "nproc": _run(["nproc"]),
        "uname": _run(["uname", "-srmo"]),
        "python": platform.python_version(),
    }
    try:
        with open("/proc/meminfo") as f:
            machine["memory"] = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            for setting in (
                "server_version",
                "fsync",
                "synchronous_commit",
                "wal_sync_method",
                "shared_buffers",
                "max_connections",
            ):
                row = conn.execute(f"SHOW {setting}").fetchone()
                machine[f"postgres_{setting}"] = row[0] if row else None
            row = conn.execute(
                "SELECT count(*) - 1 FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).fetchone()
            machine["postgres_other_clients"] = row[0] if row else None
    except psycopg.Error as exc:
        machine["postgres_error"] = str(exc)
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        machine["eventsourcing"] = importlib.metadata.version("eventsourcing")
    return machine


def _run(argv: list[str]) -> str | None:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
