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

from application.ledger import APPLICATION_NAME
from application.projections import Projection

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


def encode(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "time":
        return to_micros(value)
    if kind == "json":
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if kind == "uuid":
        return str(value)
    if kind == "bool":
        return int(bool(value))
    return value


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "time": lambda micros: EPOCH + micros * _MICROSECOND,
    "json": json.loads,
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
        return {c: encode(self.columns[c], v) for c, v in values.items()}

    def decode_row(self, row: Mapping[str, Any]) -> dict[str, Any]:
        # Reads decode thousands of rows (a whole hierarchy, a page of 500): look each
        # column's decoder up once per table, and pass plain text and integers through.
        decoded = {}
        for column, convert in self._decoders:
            value = row[column]
            decoded[column] = value if convert is None or value is None else convert(value)
        return decoded

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

    Inserts are held back and sent together (`SqlView.insert_rows`) when the batch ends or
    before any other statement, so every statement still sees the rows inserted before it."""

    def __init__(self, view: SqlView, cursor: Any) -> None:
        self._view = view
        self._cursor = cursor
        self._inserts: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}

    def insert(self, table: str, values: Mapping[str, Any]) -> None:
        row = self._view.table(table).encode_row(values)
        self._inserts.setdefault((table, tuple(row)), []).append(row)

    def flush(self) -> None:
        # Grouped by table and columns, each group in the order its rows came: read-model
        # tables have no foreign keys, so only the order within a table can matter.
        for (table, columns), rows in self._inserts.items():
            self._view.insert_rows(self._cursor, table, columns, rows)
        self._inserts.clear()

    def _execute(self, template: str, params: Mapping[str, Any]) -> None:
        self.flush()
        self._cursor.execute(self._view.statement(template), params)

    def update(self, table: str, key: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        if self.update_all(table, key, changes) != 1:
            # An event for a row the view never saw: the view is inconsistent with the log.
            # Fail loudly (the batch rolls back) rather than silently drop the change.
            raise LookupError(f"{self._view.name}.{table}: no row for {dict(key)}")

    def delete(self, table: str, key: Mapping[str, Any]) -> None:
        spec = self._view.table(table)
        where = " AND ".join(f"{c} = %(key_{c})s" for c in key)
        params = {f"key_{c}": v for c, v in spec.encode_row(key).items()}
        self._execute(f"DELETE FROM {{{table}}} WHERE {where}", params)

    def update_all(self, table: str, where: Mapping[str, Any], changes: Mapping[str, Any]) -> int:
        """Update every row matching `where` (any number, none included); returns how many."""
        spec = self._view.table(table)
        assignments = ", ".join(f"{c} = %({c})s" for c in changes)
        condition = " AND ".join(f"{c} = %(key_{c})s" for c in where)
        params = spec.encode_row(changes)
        params.update({f"key_{c}": v for c, v in spec.encode_row(where).items()})
        self._execute(f"UPDATE {{{table}}} SET {assignments} WHERE {condition}", params)
        return _rowcount(self._cursor)

    def get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        spec = self._view.table(table)
        condition = " AND ".join(f"{c} = %(key_{c})s" for c in key)
        params = {f"key_{c}": v for c, v in spec.encode_row(key).items()}
        self._execute(f"SELECT * FROM {{{table}}} WHERE {condition}", params)
        row = self._cursor.fetchone()
        return None if row is None else spec.decode_row(row)

    def with_prefix(self, table: str, column: str, prefix: str) -> list[dict[str, Any]]:
        """Rows whose text `column` starts with `prefix` (substr: no LIKE wildcards to escape)."""
        spec = self._view.table(table)
        self._execute(
            f"SELECT * FROM {{{table}}} WHERE substr({column}, 1, %(length)s) = %(prefix)s",
            {"length": len(prefix), "prefix": prefix},
        )
        return [spec.decode_row(r) for r in self._cursor.fetchall()]


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
