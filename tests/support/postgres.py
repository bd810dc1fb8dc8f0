"""Find a real PostgreSQL server for the test run, and give the run a fresh database.

Order: AGENTLEDGER_TEST_DATABASE_URL or DATABASE_URL; else the local server on 127.0.0.1:5432;
else a throwaway cluster started from the installed PostgreSQL binaries (stopped at the end).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

LOCAL_CANDIDATES = (
    "postgresql://postgres@127.0.0.1:5432/postgres",
    f"postgresql://{os.environ.get('USER', 'root')}@127.0.0.1:5432/postgres",
)


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A PostgreSQL cluster of this test run's own, in a temporary directory, from the
    installed binaries: it can be stopped and started again (the shared server never is)."""

    def __init__(self) -> None:
        initdb, pg_ctl = _find_binary("initdb"), _find_binary("pg_ctl")
        if not initdb or not pg_ctl:
            raise RuntimeError("no PostgreSQL server reachable and no initdb/pg_ctl installed")
        self._pg_ctl = pg_ctl
        self.directory = Path(tempfile.mkdtemp(prefix="agentledger-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        # PostgreSQL refuses to run as root: run the cluster as the 'postgres' user then.
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
            self._prefix = ["runuser", "-u", "postgres", "--"]
        command = [initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run(
            [*self._prefix, *command],
            check=True,
            capture_output=True,
        )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._ctl("status") == 0

    def start(self) -> None:
        if self.running:
            return
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-w", "-l", str(self.directory / "log"), "start", check=True)

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash (no checkpoint, connections cut); `fast` a clean stop."""
        self._ctl("-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _ctl(self, *args: str, check: bool = False) -> int:
        done = subprocess.run(
            [*self._prefix, self._pg_ctl, "-D", str(self.data), *args],
            check=check,
            capture_output=True,
        )
        return done.returncode


@contextmanager
def throwaway_cluster() -> Iterator[str]:
    cluster = Cluster()
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.remove()


@contextmanager
def server_url() -> Iterator[str]:
    configured = os.environ.get("AGENTLEDGER_TEST_DATABASE_URL") or os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    for candidate in LOCAL_CANDIDATES:
        if _reachable(candidate):
            yield candidate
            return
    with throwaway_cluster() as url:
        yield url


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new database for this test run, dropped afterwards."""
    name = f"agentledger_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    params = conninfo_to_dict(server)
    params["dbname"] = name
    url = make_conninfo(**params)
    try:
        yield _as_url(url)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_url(conninfo: str) -> str:
    """The service takes a URL-or-conninfo; keep it a URL so logs and settings read the same."""
    params = conninfo_to_dict(conninfo)
    auth = params.get("user", "")
    if params.get("password"):
        auth += f":{params['password']}"
    host = params.get("host", "127.0.0.1")
    port = params.get("port", 5432)
    return f"postgresql://{auth}@{host}:{port}/{params['dbname']}"
