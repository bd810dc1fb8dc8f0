"""Locks across processes: one runner per projection (held while it runs), and one process at
a time creating a store's tables. A PostgreSQL advisory lock, or a file lock for SQLite."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg import sql

# How often a process waiting for a file lock tries it again.
_FILE_LOCK_RETRY_SECONDS = 0.01


class RunnerLock(Protocol):
    def try_acquire(self) -> bool: ...
    def still_held(self) -> bool: ...
    def release(self) -> None: ...


class AdvisoryLock:
    """Held on a dedicated connection: if the process dies, PostgreSQL frees the lock."""

    def __init__(self, conninfo: str, key_name: str, connect_timeout: int) -> None:
        self._conninfo = conninfo
        self._key = advisory_key(key_name)
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    @property
    def key(self) -> int:
        """The advisory lock's bigint key (`pg_locks` shows it split: classid, objid)."""
        return self._key

    def try_acquire(self) -> bool:
        if self._conn is not None and not self._conn.closed:
            return True
        conn = psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=self._connect_timeout
        )
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except psycopg.Error:
            conn.close()
            raise
        if row and row[0]:
            self._conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        """A session-level advisory lock lives as long as its session: if the connection still
        answers, the lock is ours. A killed connection has lost it without us noticing, and
        another process may already run the worker."""
        if self._conn is None or self._conn.closed:
            return False
        try:
            self._conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                if not self._conn.closed:
                    self._conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
            except psycopg.Error:
                pass  # a broken connection has lost the lock already
            finally:
                self._conn.close()
                self._conn = None


class FileLock:
    """flock on a file beside the SQLite data: released by the kernel if the process dies."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None  # the kernel keeps a flock as long as the process lives

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def advisory_key(key_name: str) -> int:
    """The bigint an advisory lock is taken on, the same in every process for one name."""
    return int.from_bytes(hashlib.sha256(key_name.encode()).digest()[:8], "big", signed=True)


@contextmanager
def advisory_lock_held(
    conninfo: str, key_name: str, connect_timeout: int, wait_seconds: float
) -> Iterator[None]:
    """Wait (at most `wait_seconds`) for the advisory lock `key_name` and hold it for the block,
    on a connection of its own: the lock goes with the connection if the process dies."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=connect_timeout) as conn:
        # The process-wide lock_timeout (seconds) bounds row and table locks; this wait may
        # be longer, while another process creates the tables.
        timeout = sql.Literal(f"{int(wait_seconds * 1000)}ms")
        conn.execute(sql.SQL("SET lock_timeout = {}").format(timeout))
        key = advisory_key(key_name)
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):  # closing the connection frees it anyway
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


@contextmanager
def file_lock_held(path: Path, wait_seconds: float) -> Iterator[None]:
    """Wait (at most `wait_seconds`) for an flock on `path` and hold it for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} still locked after {wait_seconds:.0f}s") from None
                time.sleep(_FILE_LOCK_RETRY_SECONDS)
        yield
    finally:
        os.close(fd)  # releases the flock
