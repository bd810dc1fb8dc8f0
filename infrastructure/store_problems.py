"""What is wrong with a store that cannot be opened (or written), in one line an operator can
act on: unreachable, refused credentials, a missing database, read-only, full, or tables that
are not this version's. Used at start-up, where a traceback helps nobody (`--debug` shows it).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import uuid

import psycopg

from agentledger.infrastructure.settings import Settings
from agentledger.infrastructure.storage import postgres_conninfo, postgres_parameters
from agentledger.infrastructure.store_errors import causes


class StoreProblem(Exception):
    """The store cannot be used as configured: `str()` says what is wrong and what to do."""


def explain(exc: BaseException, settings: Settings) -> str:
    """One line for `exc`, raised while opening or probing the store."""
    for cause in causes(exc):
        if isinstance(cause, StoreProblem):
            return str(cause)
        if isinstance(cause, OSError) and not isinstance(cause, psycopg.Error):
            found = _os_problem(cause, settings)
            if found:
                return found
        if isinstance(cause, sqlite3.Error):
            return _sqlite_problem(cause, settings)
        if isinstance(cause, psycopg.ProgrammingError) and cause.sqlstate is None:
            return f"cannot open the store: DATABASE_URL is not valid ({_one_line(cause)})"
        if isinstance(cause, psycopg.Error):
            return _postgres_problem(cause, settings)
    return f"cannot open the store: {_one_line(exc)}"


def check_writable(settings: Settings) -> None:
    """Raise `StoreProblem` unless the store takes writes: what `serve` and the runners need
    (reading commands may run on a read-only copy)."""
    if settings.uses_postgres:
        with psycopg.connect(
            postgres_conninfo(settings), connect_timeout=settings.connect_timeout_seconds
        ) as conn:
            row = conn.execute("SHOW transaction_read_only").fetchone()
            if row and row[0] == "on":
                raise StoreProblem(
                    f"PostgreSQL at {_where(settings)} is read-only (a standby, or "
                    "default_transaction_read_only): point DATABASE_URL at the primary"
                )
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # a fresh store starts here
    probe = settings.data_dir / f".write-probe-{uuid.uuid4().hex}"
    try:
        with open(probe, "wb") as handle:
            handle.write(b"\0" * 4096)
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        probe.unlink(missing_ok=True)
    for path in sorted(settings.data_dir.glob("*.sqlite*")):
        # Opened for writing, nothing written: refused for a read-only or immutable file.
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        except FileNotFoundError:  # a -wal or -shm file another process just removed
            continue


def _os_problem(exc: OSError, settings: Settings) -> str | None:
    where = exc.filename or settings.data_dir
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"the store in {settings.data_dir.resolve()} is read-only ({exc.strerror}: {where}): "
            "make it writable for this user, or set AGENTLEDGER_DATA_DIR"
        )
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"the disk holding {settings.data_dir.resolve()} is full: free some space"
    return None


def _sqlite_problem(exc: sqlite3.Error, settings: Settings) -> str:
    code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
    where = settings.data_dir.resolve()
    if code == sqlite3.SQLITE_READONLY or "readonly" in str(exc):
        return (
            f"the store in {where} is read-only ({exc}): make it writable for this user, or "
            "set AGENTLEDGER_DATA_DIR"
        )
    if code == sqlite3.SQLITE_FULL:
        return f"the disk holding {where} is full ({exc}): free some space"
    if code == sqlite3.SQLITE_CORRUPT or code == sqlite3.SQLITE_NOTADB:
        return f"a file in {where} is not an AgentLedger store ({exc}): restore it from a backup"
    return f"cannot open the store in {where}: {_one_line(exc)}"


def _postgres_problem(exc: psycopg.Error, settings: Settings) -> str:
    text = _one_line(exc)
    where = _where(settings)
    state = exc.sqlstate or ""
    lowered = text.lower()
    refused = "password authentication failed" in lowered
    if refused or ("role" in lowered and "does not exist" in lowered):
        return (
            f"PostgreSQL at {where} refused the credentials ({text}): check the user and "
            "password in DATABASE_URL"
        )
    if "database" in lowered and "does not exist" in lowered:
        return (
            f"PostgreSQL at {where} has no such database ({text}): create it, or fix DATABASE_URL"
        )
    if state == "25006":
        return f"PostgreSQL at {where} is read-only ({text}): point DATABASE_URL at the primary"
    if state.startswith("42"):  # a table or column not as this version made them
        return (
            f"the tables in schema {settings.postgres_schema!r} are not this version's "
            f"AgentLedger store ({text}): use another schema (AGENTLEDGER_POSTGRES_SCHEMA) "
            "or the version that made them"
        )
    if state == "53100":
        return f"PostgreSQL at {where} is out of disk space ({text}): free some space"
    if isinstance(exc, psycopg.OperationalError):
        return (
            f"PostgreSQL at {where} is unreachable ({text}): start it, or fix the host and "
            "port in DATABASE_URL"
        )
    return f"cannot open the store on PostgreSQL at {where}: {text}"


def _where(settings: Settings) -> str:
    try:
        params = postgres_parameters(settings)
    except (ValueError, psycopg.Error):  # the URL itself is what is wrong
        return "DATABASE_URL"
    return f"{params['host']}:{params['port']}/{params['dbname']}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400] or type(exc).__name__
