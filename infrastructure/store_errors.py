"""Which store errors are outages: the store was locked, unreachable or out of connections.

Only those deserve "unavailable, retry later" (503). The drivers file query mistakes under the
same classes (SQLite's "too many SQL variables" is an `OperationalError`, and so is psycopg's
`ProgramLimitExceeded`), so the decision reads the driver's own error code: a query error
stays an internal error, logged with its traceback, and is never blamed on the store.
"""

from __future__ import annotations

import sqlite3

import psycopg
from eventsourcing.persistence import ConnectionUnavailableError
from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from psycopg_pool import PoolTimeout

from agentledger.application.deadlines import DeadlineExceeded

# SQLite primary result codes: busy and locked (a lock not granted in time), a file that
# cannot be opened or read (the disk went away), read-only files and a full disk.
_SQLITE_OUTAGES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_READONLY,  # the files became read-only
        sqlite3.SQLITE_FULL,  # the disk filled up
    }
)
# Of those, the one after which a connection stays wrong when the file is right again: SQLite
# opens a file it may not write read-only, and that connection refuses writes for ever. (Not
# I/O errors: closing a connection then writes to the shared-memory file, and where the kernel
# refuses that write the process dies of SIGBUS.)
_SQLITE_SPOILERS = frozenset({sqlite3.SQLITE_READONLY})
# PostgreSQL SQLSTATE classes: connection exception, insufficient resources (e.g. too many
# connections), operator intervention (shutdown, statement timeout), system error (I/O) and
# transaction rollback (deadlock, serialization failure); plus lock_not_available.
_POSTGRES_OUTAGE_CLASSES = frozenset({"08", "53", "57", "58", "40"})
_POSTGRES_OUTAGE_STATES = frozenset({"55P03"})


def is_store_outage(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) says the store could not be reached in time."""
    chain = list(causes(exc))
    if any(
        isinstance(e, PoolTimeout | ConnectionUnavailableError | DeadlineExceeded) for e in chain
    ):
        return True
    driver = next((e for e in chain if isinstance(e, sqlite3.Error | psycopg.Error)), None)
    if isinstance(driver, sqlite3.Error):
        code = getattr(driver, "sqlite_errorcode", None)
        return code is not None and (code & 0xFF) in _SQLITE_OUTAGES
    if isinstance(driver, psycopg.Error):
        if not isinstance(driver, psycopg.OperationalError | psycopg.InterfaceError):
            return False
        state = driver.sqlstate
        # No SQLSTATE: the server never answered (refused, lost, timed out connecting).
        return (
            state is None
            or state[:2] in _POSTGRES_OUTAGE_CLASSES
            or (state in _POSTGRES_OUTAGE_STATES)
        )
    # The library's own interface errors (e.g. a connection it could not open) carry no
    # driver error; its other errors without one are its own checks failing.
    return isinstance(exc, StoreInterfaceError)


def spoils_sqlite_connection(exc: BaseException) -> bool:
    """Whether the SQLite connection that raised `exc` must be closed rather than reused."""
    driver = next((e for e in causes(exc) if isinstance(e, sqlite3.Error)), None)
    code = getattr(driver, "sqlite_errorcode", None)
    return code is not None and (code & 0xFF) in _SQLITE_SPOILERS


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from (or during), outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
