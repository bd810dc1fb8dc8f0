"""What every read-model table shares on both stores: typed columns, portable SQL, and batched
exactly-once application of events.

A view declares its tables once (`Table`: columns and their kinds). Values are stored in forms
both stores compare the same way: times as integer microseconds since the epoch, ids and JSON as
text, booleans as 0/1. Statements are written once with `%(name)s` parameters, `{table}` names
and `{bytes}` for byte-order collation; on SQLite the parameters become `:name`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder
from psycopg.sql import SQL

from agentledger.application.ledger import APPLICATION_NAME
from agentledger.application.projections import Projection

# Below this many rows an INSERT costs less than setting up a COPY.
COPY_FROM_ROWS = 8
_NAMED_PARAM = re.compile(r"%\((\w+)\)s")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_SQL_TYPES = {
    "text": "TEXT",
    "int": "BIGINT",
    "bool": "INTEGER",
    "time": "BIGINT",
    "json": "TEXT",
    "uuid": "TEXT",
}


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // _MICROSECOND


def _json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "time": to_micros,
    "json": _json_text,
    "uuid": str,
    "bool": lambda value: int(bool(value)),
}


def _json_value(text: str) -> Any:
    # Most rows' metadata is empty: a hierarchy of 1,200 items spent 4 ms in json.loads.
    return {} if text == "{}" else json.loads(text)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "time": lambda micros: EPOCH + micros * _MICROSECOND,
    "json": _json_value,
    "uuid": UUID,
    "bool": bool,
}


@dataclass(frozen=True)
class Table:
    """One read-model table: its columns (name -> kind), primary key and extra indexes."""

    name: str
    columns: Mapping[str, str]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    not_null: tuple[str, ...] = field(default_factory=tuple)

    def ddl(self) -> list[str]:
        columns = ", ".join(
            f"{c} {_SQL_TYPES[k]}{' NOT NULL' if c in self.not_null or c in self.key else ''}"
            for c, k in self.columns.items()
        )
        statements = [
            f"CREATE TABLE IF NOT EXISTS {{{self.name}}} ({columns}, "
            f"PRIMARY KEY ({', '.join(self.key)}))"
        ]
        for columns_of_index in self.indexes:
            suffix = "_".join(columns_of_index)
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {{view}}_{self.name}_{suffix}_idx "
                f"ON {{{self.name}}} ({', '.join(columns_of_index)})"
            )
        return statements

    def encode_row(self, values: Mapping[str, Any]) -> dict[str, Any]:
        # A rebuild encodes every row it writes: the column's encoder is looked up once per
        # table, and plain text and integers pass through.
        encoders = self._encoders
        encoded = {}
        for column, value in values.items():
            convert = encoders[column]
            encoded[column] = value if convert is None or value is None else convert(value)
        return encoded

    def decode_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        # Reads decode thousands of rows (a whole hierarchy, a page of 500): look each
        # column's decoder up once per table, and pass plain text and integers through.
        decoded = {}
        for column, convert in self._decoders:
            value = row[column]
            decoded[column] = value if convert is None or value is None else convert(value)
        return decoded

    @cached_property
    def _encoders(self) -> dict[str, Callable[[Any], Any] | None]:
        return {c: _ENCODERS.get(kind) for c, kind in self.columns.items()}

    @cached_property
    def _decoders(self) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
        return tuple((c, _DECODERS.get(kind)) for c, kind in self.columns.items())


class SqlView:
    """Mixin for a tracking recorder that also owns read-model tables.

    Subclasses set `name` and `tables`; the projection writes through `RowWriter`, and
    queries use `select` / `select_one`, which decode rows by the table's column kinds.
    """

    name: str
    tables: tuple[Table, ...] = ()

    def sql(self, statement: str) -> str:
        raise NotImplementedError

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def ddl(self) -> list[str]:
        return [self.sql(s) for t in self.tables for s in t.ddl()]

    def statement(self, template: str) -> str:
        """`sql(template)`, made once per template: projections write the same few statements
        thousands of times during a rebuild."""
        made: dict[str, str] = self.__dict__.setdefault("_statements", {})
        if template not in made:
            made[template] = self.sql(template)
        return made[template]

    def insert_rows(
        self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert encoded rows, all with the same columns, in as few round trips as the store
        allows."""
        names = ", ".join(columns)
        params = ", ".join(f"%({c})s" for c in columns)
        statement = self.statement(f"INSERT INTO {{{table}}} ({names}) VALUES ({params})")
        if len(rows) == 1:
            cursor.execute(statement, rows[0])
        else:
            cursor.executemany(statement, rows)

    def execute_each(self, cursor: Any, statements: Sequence[Statement]) -> list[int]:
        """Run statements in order; returns each one's row count."""
        counts = []
        for statement in statements:
            cursor.execute(self.statement(statement.template), statement.params)
            counts.append(_rowcount(cursor))
        return counts

    def position(self) -> int:
        return self.max_tracking_id(APPLICATION_NAME) or 0  # type: ignore[attr-defined]

    def process(
        self, batch: Sequence[tuple[Any, int]], last_position: int, projection: Projection
    ) -> None:
        """Apply events and advance tracking in one transaction: exactly once, or not at all."""
        with self.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
            writer = RowWriter(self, cursor)
            for event, position in batch:
                projection.handle(event, position, writer)
            writer.flush()
            self._insert_tracking(cursor, Tracking(APPLICATION_NAME, last_position))  # type: ignore[attr-defined]

    def reset(self) -> None:
        """Forget every row and the tracking position together, so a rebuild starts clean."""
        with self.datastore.transaction(commit=True) as cursor:  # type: ignore[attr-defined]
            for table in self.tables:
                cursor.execute(self.sql(f"DELETE FROM {{{table.name}}}"))
            cursor.execute(self.tracking_reset_statement())

    def tracking_reset_statement(self) -> Any:
        raise NotImplementedError

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            yield cursor

    def select(self, table: str, statement: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        with self.reading() as cursor:
            cursor.execute(self.sql(statement), dict(params))
            rows = cursor.fetchall()
        spec = self.table(table)
        return [spec.decode_row(r) for r in rows]

    def select_one(
        self, table: str, statement: str, params: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        rows = self.select(table, statement, params)
        return rows[0] if rows else None


class RowWriter:
    """What projections write through, inside the view's transaction.

    Writes are queued in order and sent when the batch ends or before a read: runs of inserts
    together (`SqlView.insert_rows`), runs of updates and deletes in one round trip where the
    store allows (`SqlView.execute_each`), so a rebuild does not wait for one per event. Every
    statement still runs after the writes queued before it, and every read sees them."""

    def __init__(self, view: SqlView, cursor: Any) -> None:
        self._view = view
        self._cursor = cursor
        self._queue: list[_Inserts | Statement] = []

    def insert(self, table: str, values: Mapping[str, Any]) -> None:
        spec = self._view.table(table)
        last = self._queue[-1] if self._queue else None
        if not isinstance(last, _Inserts):
            last = _Inserts()
            self._queue.append(last)
        last.add(spec, spec.encode_row(values))

    def update(self, table: str, key: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        """Update the one row with this key; the batch fails if there is none."""
        spec = self._view.table(table)
        encoded = spec.encode_row(changes)
        last = self._queue[-1] if self._queue else None
        if isinstance(last, _Inserts) and last.amend(spec, key, encoded):
            return
        self._write(table, *self._update(spec, key, encoded), expect_one=True)

    def update_all(self, table: str, where: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        """Update every row matching `where` (any number, none included)."""
        spec = self._view.table(table)
        self._write(table, *self._update(spec, where, spec.encode_row(changes)), expect_one=False)

    def delete(self, table: str, key: Mapping[str, Any]) -> None:
        spec = self._view.table(table)
        where = " AND ".join(f"{c} = %(key_{c})s" for c in key)
        params = {f"key_{c}": v for c, v in spec.encode_row(key).items()}
        self._write(table, f"DELETE FROM {{{table}}} WHERE {where}", params, expect_one=False)

    def get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        spec = self._view.table(table)
        condition = " AND ".join(f"{c} = %(key_{c})s" for c in key)
        params = {f"key_{c}": v for c, v in spec.encode_row(key).items()}
        self._read(f"SELECT * FROM {{{table}}} WHERE {condition}", params)
        row = self._cursor.fetchone()
        return None if row is None else spec.decode_row(row)

    def with_prefix(self, table: str, column: str, prefix: str) -> list[dict[str, Any]]:
        """Rows whose text `column` starts with `prefix` (substr: no LIKE wildcards to escape)."""
        spec = self._view.table(table)
        self._read(
            f"SELECT * FROM {{{table}}} WHERE substr({column}, 1, %(length)s) = %(prefix)s",
            {"length": len(prefix), "prefix": prefix},
        )
        return [spec.decode_row(r) for r in self._cursor.fetchall()]

    def flush(self) -> None:
        run: list[Statement] = []
        for queued in self._queue:
            if isinstance(queued, Statement):
                run.append(queued)
            else:
                self._send(run)
                run = []
                queued.send(self._view, self._cursor)
        self._send(run)
        self._queue.clear()

    def _send(self, run: list[Statement]) -> None:
        if run:
            _check_counts(self._view, run, self._view.execute_each(self._cursor, run))

    @staticmethod
    def _update(
        spec: Table, where: Mapping[str, Any], changes: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        """The UPDATE of `changes` (already encoded) on the rows matching `where`."""
        assignments = ", ".join(f"{c} = %({c})s" for c in changes)
        condition = " AND ".join(f"{c} = %(key_{c})s" for c in where)
        params = {**changes, **{f"key_{c}": v for c, v in spec.encode_row(where).items()}}
        return f"UPDATE {{{spec.name}}} SET {assignments} WHERE {condition}", params

    def _write(self, table: str, template: str, params: dict[str, Any], expect_one: bool) -> None:
        self._queue.append(Statement(table, template, params, expect_one))

    def _read(self, template: str, params: Mapping[str, Any]) -> None:
        self.flush()
        self._cursor.execute(self._view.statement(template), params)


@dataclass
class _Inserts:
    """Consecutive inserts, grouped by table and columns, each group in the order its rows came:
    read-model tables have no foreign keys, so only the order within a table can matter."""

    rows: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = field(default_factory=dict)
    by_key: dict[tuple[str, tuple[Any, ...]], dict[str, Any]] = field(default_factory=dict)

    def add(self, spec: Table, row: dict[str, Any]) -> None:
        self.rows.setdefault((spec.name, tuple(row)), []).append(row)
        if all(c in row for c in spec.key):
            self.by_key[spec.name, tuple(row[c] for c in spec.key)] = row

    def amend(self, spec: Table, key: Mapping[str, Any], changes: dict[str, Any]) -> bool:
        """Fold an update into a row not sent yet, when `key` is its primary key: a session
        started and activated in one command becomes one inserted row. Only the last queued
        block is amended, so no statement queued after the insert can see the difference."""
        if set(key) != set(spec.key):
            return False
        encoded = spec.encode_row(key)
        row = self.by_key.get((spec.name, tuple(encoded[c] for c in spec.key)))
        if row is None or not set(changes) <= set(row):
            return False
        row.update(changes)
        return True

    def send(self, view: SqlView, cursor: Any) -> None:
        for (table, columns), rows in self.rows.items():
            view.insert_rows(cursor, table, columns, rows)


@dataclass(frozen=True)
class Statement:
    """A queued UPDATE or DELETE: `expect_one` when it must change exactly one row."""

    table: str
    template: str
    params: dict[str, Any]
    expect_one: bool


def _check_counts(view: SqlView, statements: Sequence[Statement], counts: list[int]) -> None:
    for statement, count in zip(statements, counts, strict=True):
        if statement.expect_one and count != 1:
            # An event for a row the view never saw: the view is inconsistent with the log.
            # Fail loudly (the batch rolls back) rather than silently drop the change.
            params = statement.params.items()
            key = {k.removeprefix("key_"): v for k, v in params if k.startswith("key_")}
            raise LookupError(f"{view.name}.{statement.table}: no row for {key}")


def _rowcount(cursor: Any) -> int:
    # The library's SQLite cursor wraps sqlite3's and does not pass rowcount through.
    return int(getattr(cursor, "sqlite_cursor", cursor).rowcount)


class PostgresSqlView(SqlView, PostgresTrackingRecorder):
    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        for statement in self.ddl():
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]

    def sql(self, statement: str) -> str:
        schema = self.datastore.schema
        names = {t.name: f'"{schema}"."{self.name}_{t.name}"' for t in self.tables}
        return statement.format(view=self.name, bytes='COLLATE "C"', **names)

    def insert_rows(
        self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        # COPY: a runner caught up on 100,000 entries in 13 s instead of 39 s row by row;
        # executemany would still convert and send each row as its own statement.
        if len(rows) < COPY_FROM_ROWS:
            super().insert_rows(cursor, table, columns, rows)
            return
        names = ", ".join(columns)
        with cursor.copy(self.statement(f"COPY {{{table}}} ({names}) FROM STDIN")) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])

    def execute_each(self, cursor: Any, statements: Sequence[Statement]) -> list[int]:
        # One pipelined round trip for the lot instead of one per statement (a rebuild's
        # selections went from 29,900 to 45,200 events/s); a cursor each keeps each
        # statement's row count.
        if len(statements) == 1:
            return super().execute_each(cursor, statements)
        connection = cursor.connection
        cursors = []
        with connection.pipeline():
            for statement in statements:
                each = connection.cursor()
                each.execute(self.statement(statement.template), statement.params)
                cursors.append(each)
        return [each.rowcount for each in cursors]

    def tracking_reset_statement(self) -> Any:
        return SQL(
            f'DELETE FROM "{self.datastore.schema}"."{self.tracking_table_name}" '
            "WHERE application_name <> '__migration__'"
        )


class SQLiteSqlView(SqlView, SQLiteTrackingRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *self.ddl()]

    def sql(self, statement: str) -> str:
        names = {t.name: f"{self.name}_{t.name}" for t in self.tables}
        return _NAMED_PARAM.sub(
            r":\1", statement.format(view=self.name, bytes="COLLATE BINARY", **names)
        )

    def tracking_reset_statement(self) -> Any:
        return "DELETE FROM tracking WHERE application_name <> '__migration__'"
