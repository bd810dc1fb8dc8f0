"""Direct SQL on the stored events, as someone with write access to the database would do:
for tests that tamper with the log (and for gaps a failed transaction leaves)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from agentledger.infrastructure.settings import Settings


class StoredLog:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        if settings.uses_postgres:
            self._table = f'"{settings.postgres_schema}".agentledger_events'
            self._id = "notification_id"
        else:
            self._table = "stored_events"
            self._id = "rowid"

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        if self._settings.uses_postgres:
            assert self._settings.database_url is not None
            with psycopg.connect(self._settings.database_url) as conn, conn.cursor() as cur:
                yield _Postgres(cur)
            return
        conn = sqlite3.connect(self._settings.data_dir / "events.sqlite")
        try:
            yield conn.cursor()
            conn.commit()
        finally:
            conn.close()

    def positions(self) -> list[int]:
        with self._cursor() as cur:
            cur.execute(f"SELECT {self._id} FROM {self._table} ORDER BY {self._id}")
            return [row[0] for row in cur.fetchall()]

    def row(self, position: int) -> tuple[Any, int, str, bytes]:
        with self._cursor() as cur:
            cur.execute(
                f"SELECT originator_id, originator_version, topic, state FROM {self._table} "
                f"WHERE {self._id} = ?",
                (position,),
            )
            originator, version, topic, state = cur.fetchone()
            return originator, version, topic, bytes(state)

    def alter(self, position: int, old: bytes, new: bytes) -> None:
        """Change the stored state of one event (`old` replaced by `new` in its bytes)."""
        state = self.row(position)[3]
        assert old in state, (old, state)
        with self._cursor() as cur:
            cur.execute(
                f"UPDATE {self._table} SET state = ? WHERE {self._id} = ?",
                (state.replace(old, new, 1), position),
            )

    def delete(self, position: int) -> None:
        with self._cursor() as cur:
            cur.execute(f"DELETE FROM {self._table} WHERE {self._id} = ?", (position,))

    def insert_after(self, position: int) -> int:
        """Forge an event right after `position` (a copy of that one under another aggregate
        id), moving every later event one position on; returns the forged event's position."""
        _, version, topic, state = self.row(position)
        forged = uuid.uuid4()
        with self._cursor() as cur:
            for later in sorted((p for p in self.positions() if p > position), reverse=True):
                cur.execute(
                    f"UPDATE {self._table} SET {self._id} = ? WHERE {self._id} = ?",
                    (later + 1, later),
                )
            forged_id: Any = forged if self._settings.uses_postgres else forged.hex
            cur.execute(
                f"INSERT INTO {self._table} ({self._id}, originator_id, originator_version, "
                "topic, state) VALUES (?, ?, ?, ?, ?)",
                (position + 1, forged_id, version, topic, state),
            )
        return position + 1

    def swap(self, first: int, second: int) -> None:
        """Exchange two events' positions."""
        with self._cursor() as cur:
            for frm, to in ((first, -1), (second, first), (-1, second)):
                cur.execute(
                    f"UPDATE {self._table} SET {self._id} = ? WHERE {self._id} = ?", (to, frm)
                )

    def fail_a_transaction(self) -> None:
        """Insert an event and roll back, as a transaction failing after its insert does. On
        PostgreSQL the position it took stays unused (sequences are not rolled back); SQLite
        gives it to the next event."""
        row = (uuid.uuid4(), 1, "agentledger.domain:Forged", b"{}")
        if self._settings.uses_postgres:
            assert self._settings.database_url is not None
            with psycopg.connect(self._settings.database_url) as conn:
                conn.execute(
                    f"INSERT INTO {self._table} (originator_id, originator_version, topic, "
                    "state) VALUES (%s, %s, %s, %s)",
                    row,
                )
                conn.rollback()
            return
        conn = sqlite3.connect(self._settings.data_dir / "events.sqlite")
        try:
            conn.execute(
                f"INSERT INTO {self._table} (originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?)",
                (row[0].hex, *row[1:]),
            )
            conn.rollback()
        finally:
            conn.close()


class _Postgres:
    """A psycopg cursor taking `?` placeholders, like sqlite3's."""

    def __init__(self, cursor: psycopg.Cursor[Any]) -> None:
        self._cursor = cursor

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        self._cursor.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()
