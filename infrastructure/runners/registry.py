"""Where every process says what its runners and rebuilds are doing, so that any process
(`projections status`, `GET /v1/projections` on another `serve`) can show who holds which
projection, in what state, and how far a rebuild has come.

A row per (runner, role): the process running a runner writes its row when its state changes
and every HEARTBEAT_SECONDS while it runs; a rebuild writes its progress about once a second.
A row not refreshed for STALE_SECONDS, or whose process on this host has gone, reads as
`stopped`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from agentledger.infrastructure.readmodels.base import ReadModel, Table

HEARTBEAT_SECONDS = 5.0
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

    def put(self, record: RunnerRecord) -> None:
        row = RECORDS.encode_row(asdict(record))
        with self._store.transaction(commit=True) as cursor:
            # Delete-then-insert: one portable statement pair on both stores.
            cursor.execute(
                self.sql("DELETE FROM {records} WHERE name = %(name)s AND role = %(role)s"),
                {"name": record.name, "role": record.role},
            )
            self._store.insert_rows(cursor, "records", list(RECORDS.columns), [row])

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
