"""Idempotency keys stored beside the event log, in its database, so a command's events and
its key's completion are one transaction: process recorders that also write the key rows.

Selected through the library's PROCESS_RECORDER_TOPIC; their tables are created with the
log's, under the schema lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteProcessRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier

from agentledger.application.idempotency import Completion, StoredKey
from agentledger.infrastructure.wakeups import commit_payload

TABLE = "agentledger_idempotency"
_COLUMNS = (
    "scope TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, token TEXT NOT NULL, "
    "state TEXT NOT NULL, in_flight_until DOUBLE PRECISION NOT NULL, "
    "expires_at DOUBLE PRECISION NOT NULL, outcome {blob}, event_id TEXT, event_version "
    "INTEGER, position BIGINT, response {blob}"
)
# A key is taken when new, when its record expired, or when the request holding it died
# (its in-flight mark ran out); a finished, unexpired record is left alone.
_CLAIM = (
    "INSERT INTO {t} (scope, fingerprint, token, state, in_flight_until, expires_at) "
    "VALUES ({p}, {p}, {p}, 'in_flight', {p}, {p}) ON CONFLICT (scope) DO UPDATE SET "
    "fingerprint = excluded.fingerprint, token = excluded.token, state = 'in_flight', "
    "in_flight_until = excluded.in_flight_until, expires_at = excluded.expires_at, "
    "outcome = NULL, event_id = NULL, event_version = NULL, position = NULL, response = NULL "
    "WHERE {t}.expires_at <= {p} OR ({t}.state = 'in_flight' AND {t}.in_flight_until <= {p}) "
    "RETURNING token"
)
_FOUND = (
    "SELECT fingerprint, state, in_flight_until, outcome, event_id, event_version, position, "
    "response FROM {t} WHERE scope = {p}"
)
# NOTIFY with its payload as a parameter: it names the commit's topics.
_NOTIFY = "SELECT pg_notify(%s, %s)"
_COMPLETE = (
    "UPDATE {t} SET state = 'done', outcome = {p}, event_id = {p}, event_version = {p}, "
    "position = {p} WHERE scope = {p} AND token = {p} AND state = 'in_flight'"
)
# The answer as rendered: a refusal's only record, or a success's beside its outcome (which
# its events' transaction wrote); the token is the holder's, whatever the state.
_RESPOND = "UPDATE {t} SET state = 'done', response = {p} WHERE scope = {p} AND token = {p}"
_RELEASE = "DELETE FROM {t} WHERE scope = {p} AND token = {p} AND state = 'in_flight'"
_EXPIRED = (
    "DELETE FROM {t} WHERE scope IN "
    "(SELECT scope FROM {t} WHERE expires_at <= {p} ORDER BY expires_at LIMIT {p})"
)


class ClaimLost(Exception):
    """The key was taken over (its in-flight mark ran out) before this command finished: its
    transaction is abandoned, so the key's new holder is the only one to write."""


def _completion_params(c: Completion) -> tuple[Any, ...]:
    event_id, version = c.last_event or (None, None)
    return (c.outcome, event_id, version, c.position, c.scope, c.token)


# The library's statements a command executes as they are (others it extends per call).
_RENDERED = (
    "lock_table_statements",
    "insert_events_statement",
    "sql_invoke_pg_function_insert_events",
    "max_notification_id_statement",
    "insert_tracking_statement",
    "max_tracking_id_statement",
)


def render_statements(recorder: Any) -> None:
    """Those statements of a library recorder (`sql.Composed`, of identifiers only) rendered
    once: psycopg composes a `Composed` again at every execution, a twentieth of a command's
    time and a fifth of a live runner's batch."""
    for name in _RENDERED:
        value = getattr(recorder, name, None)
        if isinstance(value, Composed):
            setattr(recorder, name, value.as_string())
        elif isinstance(value, list):
            setattr(
                recorder, name, [v.as_string() if isinstance(v, Composed) else v for v in value]
            )


class PostgresIdempotentRecorder(PostgresProcessRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self._table = SQL("{}.{}").format(Identifier(self.datastore.schema), Identifier(TABLE))
        columns = _COLUMNS.format(blob="BYTEA")
        self.sql_create_statements.append(
            SQL("CREATE TABLE IF NOT EXISTS {t} (" + columns + ")").format(t=self._table)
        )
        self.sql_create_statements.append(
            SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (expires_at)").format(
                i=Identifier(TABLE + "_expiry"), t=self._table
            )
        )
        self._events = SQL("{}.{}").format(
            Identifier(self.datastore.schema), Identifier(self.events_table_name)
        )
        self._origin: str | None = None  # the library's unsigned NOTIFY until signed
        # A command's completion, in the events' transaction: fails it if the claim was lost.
        self._complete_or_fail = (
            SQL(
                "WITH done AS (" + _COMPLETE.replace("{p}", "%s") + " RETURNING 1) "
                "SELECT 1 / (SELECT count(*) FROM done)"
            )
            .format(t=self._table)
            .as_string()
        )

    def _sql(self, template: str) -> Any:
        return SQL(template.replace("{p}", "%s")).format(t=self._table)

    def create_table(self) -> None:
        super().create_table()
        render_statements(self)

    def sign_notifications(self, origin: str) -> None:
        """Every commit's NOTIFY names `origin` from now on (what this process's listener
        recognises as a commit it was told of already, without the round trip), and the
        topics of the events it wrote (`commit_payload`)."""
        self._origin = origin

    def _notify_channel(self, curs: Cursor[DictRow]) -> None:
        if self._origin is None:
            super()._notify_channel(curs)
        # Signed, it is sent with the events' topics, which this call is not given.

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        super()._insert_stored_events(curs, stored_events, **kwargs)
        completions: list[Completion] = kwargs.get("idempotency") or []
        if self._origin is None and not completions:
            return
        # After the events, on a cursor of its own (the insert's cursor holds the ids the
        # library fetches next). In pipeline mode a row count is not known here, so a lost
        # claim fails the statement itself (division by zero), and with it the transaction.
        # Never prepared: behind an insert that fails (a conflict), the pipeline skips a
        # statement's PREPARE too, and psycopg, counting it prepared, would name a prepared
        # statement the server does not have at its next use.
        with curs.connection.cursor() as own:
            if self._origin is not None:
                payload = commit_payload(self._origin, (e.topic for e in stored_events))
                own.execute(_NOTIFY, (self.channel_name, payload), prepare=False)
            for completion in completions:
                own.execute(self._complete_or_fail, _completion_params(completion), prepare=False)

    def select_events_after(self, after: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """The events of several aggregates, each after a version, in one query (a command
        brings every aggregate it needs up to date in one round trip, not one each)."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                # LATERAL: one index range scan per aggregate whatever the plan. As a join,
                # the prepared statement's generic plan scanned the whole table (2.6 → 12.6 ms
                # for an append on a log of 100,000 events).
                SQL(
                    "SELECT e.originator_id, e.originator_version, e.topic, e.state"
                    " FROM unnest(%s::uuid[], %s::int[]) AS after(id, version),"
                    " LATERAL (SELECT * FROM {e} WHERE originator_id = after.id"
                    " AND originator_version > after.version ORDER BY originator_version) e"
                    " ORDER BY e.originator_id, e.originator_version"
                ).format(e=self._events),
                ([i for i, _ in after], [v for _, v in after]),
                prepare=True,
            )
            return [
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
                for row in curs.fetchall()
            ]

    # --- the key's own short transactions ------------------------------------------------

    def claim_key(
        self, scope: str, fingerprint: str, token: str, now: float, until: float, expires: float
    ) -> StoredKey | None:
        for _ in range(3):  # a row removed between the two statements: claim again
            with self.datastore.transaction(commit=True) as curs:
                curs.execute(
                    self._sql(_CLAIM), (scope, fingerprint, token, until, expires, now, now)
                )
                if curs.fetchone() is not None:
                    return None
                curs.execute(self._sql(_FOUND), (scope,))
                row = curs.fetchone()
                if row is not None:
                    return self._stored(curs, row)
        raise RuntimeError("idempotency key could be neither claimed nor found")

    def _stored(self, curs: Cursor[DictRow], row: DictRow) -> StoredKey:
        position = row["position"]
        if row["event_id"] is not None:
            curs.execute(
                SQL(
                    "SELECT notification_id FROM {} WHERE originator_id = %s "
                    "AND originator_version = %s"
                ).format(self._events),
                (
                    _originator(self.datastore.originator_id_type, row["event_id"]),
                    row["event_version"],
                ),
            )
            found = curs.fetchone()
            position = found["notification_id"] if found else None
        return _stored_key(row, position)

    def complete_key(self, completion: Completion) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._sql(_COMPLETE), _completion_params(completion))
            return curs.rowcount == 1

    def store_response(self, scope: str, token: str, response: bytes) -> bool:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._sql(_RESPOND), (response, scope, token))
            return curs.rowcount == 1

    def release_key(self, scope: str, token: str) -> None:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._sql(_RELEASE), (scope, token))

    def remove_expired_keys(self, now: float, limit: int) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._sql(_EXPIRED), (now, limit))
            return curs.rowcount


class SQLiteIdempotentRecorder(SQLiteProcessRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {TABLE} ({_COLUMNS.format(blob='BLOB')})",
            f"CREATE INDEX IF NOT EXISTS {TABLE}_expiry ON {TABLE} (expires_at)",
        ]

    def _sql(self, template: str) -> str:
        return template.replace("{p}", "?").replace("{t}", TABLE)

    def select_events_after(self, after: Sequence[tuple[UUID, int]]) -> list[StoredEvent]:
        """As on PostgreSQL: several aggregates' events, each after a version, in one query."""
        each = " OR ".join(["(originator_id = ? AND originator_version > ?)"] * len(after))
        params = [p for aggregate_id, version in after for p in (aggregate_id.hex, version)]
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT originator_id, originator_version, topic, state FROM"
                f" {self.events_table_name} WHERE {each}"
                " ORDER BY originator_id, originator_version",
                params,
            )
            return [
                StoredEvent(
                    originator_id=self.convert_originator_id(row["originator_id"]),
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=row["state"],
                )
                for row in c.fetchall()
            ]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        returning = super()._insert_events(c, stored_events, **kwargs)
        for completion in kwargs.get("idempotency") or []:
            c.execute(self._sql(_COMPLETE), _completion_params(completion))
            if c.sqlite_cursor.rowcount != 1:
                raise ClaimLost(completion.scope)
        return returning

    def claim_key(
        self, scope: str, fingerprint: str, token: str, now: float, until: float, expires: float
    ) -> StoredKey | None:
        for _ in range(3):
            with self.datastore.transaction(commit=True) as c:
                c.execute(self._sql(_CLAIM), (scope, fingerprint, token, until, expires, now, now))
                if c.fetchone() is not None:
                    return None
                c.execute(self._sql(_FOUND), (scope,))
                row = c.fetchone()
                if row is not None:
                    return self._stored(c, row)
        raise RuntimeError("idempotency key could be neither claimed nor found")

    def _stored(self, c: SQLiteCursor, row: Any) -> StoredKey:
        position = row["position"]
        if row["event_id"] is not None:
            c.execute(
                f"SELECT rowid FROM {self.events_table_name} WHERE originator_id = ? "
                "AND originator_version = ?",
                (UUID(row["event_id"]).hex, row["event_version"]),
            )
            found = c.fetchone()
            position = found[0] if found else None
        return _stored_key(row, position)

    def complete_key(self, completion: Completion) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._sql(_COMPLETE), _completion_params(completion))
            return bool(c.sqlite_cursor.rowcount == 1)

    def store_response(self, scope: str, token: str, response: bytes) -> bool:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._sql(_RESPOND), (response, scope, token))
            return bool(c.sqlite_cursor.rowcount == 1)

    def release_key(self, scope: str, token: str) -> None:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._sql(_RELEASE), (scope, token))

    def remove_expired_keys(self, now: float, limit: int) -> int:
        with self.datastore.transaction(commit=True) as c:
            c.execute(self._sql(_EXPIRED), (now, limit))
            return int(c.sqlite_cursor.rowcount)


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def _originator(id_type: str, event_id: str) -> UUID | str:
    return UUID(event_id) if id_type == "uuid" else event_id


def _stored_key(row: Any, position: int | None) -> StoredKey:
    """A key's row as both stores read it, with the position of the event it names."""
    return StoredKey(
        row["fingerprint"],
        row["state"],
        row["in_flight_until"],
        _bytes(row["outcome"]),
        position,
        _bytes(row["response"]),
    )
