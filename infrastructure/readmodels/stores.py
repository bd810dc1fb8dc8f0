"""Where a read model lives: its tables and tracking position in one store, through a tracking
recorder of the library (its datastore's transactions and its tracking table), and the store's
dialect (parameter style, table names, COPY and pipelined statements on PostgreSQL)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from agentledger.application.ledger import APPLICATION_NAME

if TYPE_CHECKING:  # for annotations: base.py and row_writer.py import this module
    from agentledger.infrastructure.readmodels.base import Table
    from agentledger.infrastructure.readmodels.row_writer import Statement

# Below this many rows an INSERT costs less than setting up a COPY.
COPY_FROM_ROWS = 8
_NAMED_PARAM = re.compile(r"%\((\w+)\)s")
# The library's own row in every tracking table (its schema version): a reset keeps it.
_MIGRATION_ROW = "__migration__"


class ReadModelStore(ABC):
    """The tables `tables` of the read model `name` and its tracking position, in one store."""

    def __init__(
        self,
        recorder: PostgresTrackingRecorder | SQLiteTrackingRecorder,
        name: str,
        tables: Sequence[Table],
    ) -> None:
        self._recorder = recorder
        self.name = name
        self.tables = tuple(tables)
        self._statements: dict[str, str] = {}

    @abstractmethod
    def sql(self, template: str) -> str:
        """A statement written with `%(name)s` parameters, `{table}` names and `{bytes}`
        collation, in this store's dialect."""

    @abstractmethod
    def forget_position(self, cursor: Any) -> None:
        """Delete the tracking position, in the caller's transaction."""

    def table(self, name: str) -> Table:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)

    def statement(self, template: str) -> str:
        """`sql(template)`, made once per template: projections write the same few statements
        thousands of times during a rebuild."""
        made = self._statements.get(template)
        if made is None:
            made = self._statements[template] = self.sql(template)
        return made

    def create_tables(self) -> None:
        """The tracking table (the library's), then the read model's tables and indexes."""
        self._recorder.create_table()
        with self.transaction(commit=True) as cursor:
            for table in self.tables:
                for statement in table.ddl():
                    cursor.execute(self.sql(statement))

    def transaction(self, commit: bool) -> AbstractContextManager[Any]:
        return self._recorder.datastore.transaction(commit=commit)

    def position(self) -> int:
        return self._recorder.max_tracking_id(APPLICATION_NAME) or 0

    def position_in(self, cursor: Any) -> int:
        """The tracking position, read in the caller's transaction."""
        return self._recorder._max_tracking_id(APPLICATION_NAME, cursor) or 0

    @abstractmethod
    def begin_snapshot(self, cursor: Any) -> None:
        """Make the caller's (new) transaction read one snapshot throughout."""

    def record_position(self, cursor: Any, position: int) -> None:
        """Record the position in the caller's transaction. The library's single-row tracking
        statement only moves forward: no row back means the store is already past `position`
        (another runner got there), and the batch must roll back."""
        params = {"application_name": APPLICATION_NAME, "notification_id": position}
        cursor.execute(self._recorder.insert_tracking_statement, params)
        if cursor.fetchone() is None:
            raise IntegrityError(f"Failed to record tracking for {self.name} at {position}")

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
            counts.append(self._rowcount(cursor))
        return counts

    def _rowcount(self, cursor: Any) -> int:
        return int(cursor.rowcount)


class PostgresReadModelStore(ReadModelStore):
    """Tables named `<read model>_<table>` in the configured schema, a tracking table each."""

    def __init__(
        self, recorder: PostgresTrackingRecorder, name: str, tables: Sequence[Table]
    ) -> None:
        super().__init__(recorder, name, tables)
        self._schema = recorder.datastore.schema
        self._tracking_table = recorder.tracking_table_name

    def sql(self, statement: str) -> str:
        names = {t.name: f'"{self._schema}"."{self.name}_{t.name}"' for t in self.tables}
        return statement.format(read_model=self.name, bytes='COLLATE "C"', **names)

    def begin_snapshot(self, cursor: Any) -> None:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def forget_position(self, cursor: Any) -> None:
        cursor.execute(
            f'DELETE FROM "{self._schema}"."{self._tracking_table}" '
            f"WHERE application_name <> '{_MIGRATION_ROW}'"
        )

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


class SQLiteReadModelStore(ReadModelStore):
    """A file of its own per read model (the library's SQLite recorders use fixed table names),
    tables named `<read model>_<table>`."""

    def sql(self, statement: str) -> str:
        names = {t.name: f"{self.name}_{t.name}" for t in self.tables}
        formatted = statement.format(read_model=self.name, bytes="COLLATE BINARY", **names)
        return _NAMED_PARAM.sub(r":\1", formatted)

    def begin_snapshot(self, cursor: Any) -> None:
        """Nothing to do: the library opens each transaction with BEGIN, and in WAL mode a
        read transaction sees one snapshot from its first read to its end."""

    def forget_position(self, cursor: Any) -> None:
        cursor.execute(f"DELETE FROM tracking WHERE application_name <> '{_MIGRATION_ROW}'")

    def _rowcount(self, cursor: Any) -> int:
        # The library's SQLite cursor wraps sqlite3's and does not pass rowcount through.
        return int(cursor.sqlite_cursor.rowcount)
