"""Where every process says what its runners and rebuilds are doing, so that any process
(`projections status`, `GET /v1/projections` on another `serve`) can show who holds which
projection, in what state, and how far a rebuild has come.

A row per (runner, role): the process running a runner notes its state when it changes, and a
thread of the process writes what was noted (every runner's in one transaction, at most every
NOTE_DELAY_SECONDS, so that starting ten runners is one write, not twenty) and writes it again
every HEARTBEAT_SECONDS; a rebuild writes its progress about once a second.
A row not refreshed for STALE_SECONDS, or whose process on this host has gone, reads as
`stopped`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from agentledger.infrastructure.readmodels.base import ReadModel, Table
from agentledger.infrastructure.readmodels.stores import ReadModelStore

HEARTBEAT_SECONDS = 5.0
NOTE_DELAY_SECONDS = 0.1
STALE_SECONDS = 3 * HEARTBEAT_SECONDS
RUNNER = "runner"
REBUILD = "rebuild"


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RunnerRecord:
    name: str
    role: str  # RUNNER or REBUILD
    holder: str  # host:pid of the process
    state: str
    position: int
    updated_at: datetime
    faulted_at: int | None = None  # the event a projection's handler failed on
    error: str | None = None
    done: int | None = None  # a rebuild's progress: position reached, of `total`
    total: int | None = None

    def fresh(self, now: datetime) -> bool:
        """Written lately by a process that is still there (one on this host is looked up)."""
        if now - self.updated_at >= timedelta(seconds=STALE_SECONDS):
            return False
        host, _, pid = self.holder.rpartition(":")
        return host != socket.gethostname() or not pid.isdigit() or _alive(int(pid))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: there, at least
        return True
    return True


RECORDS = Table.of("records", RunnerRecord, key=("name", "role"), not_null=("holder", "state"))


class RunnerRegistry(ReadModel):
    """Not a projection of the log (nothing here is rebuilt): the runners' own notes."""

    name = "runners_v1"
    tables = (RECORDS,)

    def __init__(self, store: ReadModelStore) -> None:
        super().__init__(store)
        self._noted: dict[tuple[str, str], RunnerRecord] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._closing = threading.Event()
        self._writer: threading.Thread | None = None

    def note(self, record: RunnerRecord) -> None:
        """Keep `record` as its runner's latest; the writer thread stores it shortly."""
        with self._lock:
            self._noted[(record.name, record.role)] = record
            if self._writer is None or not self._writer.is_alive():
                self._closing.clear()
                self._writer = threading.Thread(
                    target=self._write_noted, name="runner-registry", daemon=True
                )
                self._writer.start()
        self._changed.set()

    def forget(self, name: str, role: str) -> None:
        """This process no longer runs it: stop writing its row (the new holder writes it)."""
        with self._lock:
            self._noted.pop((name, role), None)

    def close(self) -> None:
        """Store what was noted, and stop the writer (a later note starts it again)."""
        self._closing.set()
        self._changed.set()
        if self._writer is not None:
            self._writer.join(10)
            self._writer = None

    def _write_noted(self) -> None:
        while not self._closing.is_set():
            self._changed.wait(HEARTBEAT_SECONDS)
            self._closing.wait(NOTE_DELAY_SECONDS)  # let the other runners' changes join in
            self._changed.clear()
            self._flush()
        self._flush()

    def _flush(self) -> None:
        now = datetime.now(UTC)
        with self._lock:
            records = [replace(r, updated_at=now) for r in self._noted.values()]
        with contextlib.suppress(Exception):  # the store is failing: the runners show it
            self.put(*records)

    def put(self, *records: RunnerRecord) -> None:
        with self._store.transaction(commit=True) as cursor:
            for record in records:
                # Delete-then-insert: one portable statement pair on both stores.
                cursor.execute(
                    self.sql("DELETE FROM {records} WHERE name = %(name)s AND role = %(role)s"),
                    {"name": record.name, "role": record.role},
                )
            rows = [RECORDS.encode_row(asdict(r)) for r in records]
            if rows:
                self._store.insert_rows(cursor, "records", list(RECORDS.columns), rows)

    def remove(self, name: str, role: str, holder: str) -> None:
        """Forget a row this process wrote (not one another process took over since)."""
        with self._store.transaction(commit=True) as cursor:
            cursor.execute(
                self.sql(
                    "DELETE FROM {records} WHERE name = %(name)s AND role = %(role)s "
                    "AND holder = %(holder)s"
                ),
                {"name": name, "role": role, "holder": holder},
            )

    def records(self) -> dict[tuple[str, str], RunnerRecord]:
        """Every fresh row, by (name, role); stale ones read as their runner stopped."""
        now = datetime.now(UTC)
        rows = self.select("records", "SELECT * FROM {records}", {})
        found = (RunnerRecord(**r) for r in rows)
        return {(r.name, r.role): r if r.fresh(now) else stopped(r) for r in found}


def stopped(record: RunnerRecord) -> RunnerRecord:
    return replace(record, state="stopped", holder="")
