"""Where a read model lives: its tables and tracking position in one store, through a tracking
recorder of the library (its datastore's transactions and its tracking table), and the store's
dialect (parameter style, table names, COPY and pipelined statements on PostgreSQL)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from functools import cached_property
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteTrackingRecorder

from agentledger.application.ledger import APPLICATION_NAME
from agentledger.infrastructure.readmodels.row_writer import COPY_FROM_ROWS

# Statements from which a batch's updates go in one pipeline rather than one by one.
PIPELINE_FROM_STATEMENTS = 4

if TYPE_CHECKING:  # for annotations: base.py imports this module
    from agentledger.infrastructure.readmodels.base import Table
    from agentledger.infrastructure.readmodels.row_writer import Statement

# PostgreSQL's longest identifier (NAMEDATALEN - 1): longer names are cut to it.
_MAX_IDENTIFIER = 63
_NAMED_PARAM = re.compile(r"%\((\w+)\)s")
# The tracking row of a read model being rebuilt beside the live one (blue/green): the same
# tracking table, a row of its own.
BUILDING_SUFFIX = "next"


class PositionMoved(Exception):
    """The store's tracking position is past the one a batch started from: a rebuild switched
    the read model over, or another runner got there. The batch rolled back; resume from
    `position`."""

    def __init__(self, name: str, position: int) -> None:
        super().__init__(f"{name} is already at position {position}")
        self.position = position


class ReadModelStore(ABC):
    """The tables `tables` of the read model `name` and its tracking position, in one store."""

    def __init__(
        self,
        recorder: PostgresTrackingRecorder | SQLiteTrackingRecorder,
        name: str,
        tables: Sequence[Table],
        building: bool = False,
    ) -> None:
        self._recorder = recorder
        self.name = name
        self.tables = tuple(tables)
        self.is_building = building
        # The live tables are `<name>_<table>`; a rebuild's, beside them, `<name>__next_<table>`.
        self.prefix = f"{name}__{BUILDING_SUFFIX}" if building else name
        self.application_name = (
            f"{APPLICATION_NAME}:{BUILDING_SUFFIX}" if building else APPLICATION_NAME
        )
        self._statements: dict[str, str] = {}

    def building(self) -> ReadModelStore:
        """The same read model's tables and position for a rebuild beside this (live) one, in
        the same database, so that one transaction can switch them over."""
        return type(self)(self._recorder, self.name, self.tables, building=True)

    @abstractmethod
    def sql(self, template: str) -> str:
        """A statement written with `%(name)s` parameters, `{table}` names and `{bytes}`
        collation, in this store's dialect."""

    @property
    @abstractmethod
    def tracking_table(self) -> str:
        """The tracking table's name, qualified, in this store's dialect."""

    @abstractmethod
    def lock_position(self, cursor: Any) -> int:
        """Read this generation's tracking position in the caller's (new) transaction and
        hold it until the transaction ends: batches, and a rebuild's switch-over, take it
        first, so they queue behind each other instead of interleaving."""

    @abstractmethod
    def _rename_indexes(self, cursor: Any) -> None:
        """After a switch-over: give the indexes of the promoted tables the live names."""

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
        """The tracking table (the library's) with this generation's row in it (at 0 until
        something is recorded, so that `lock_position` always has a row to lock), then the
        read model's tables and indexes."""
        self._recorder.create_table()
        with self.transaction(commit=True) as cursor:
            cursor.execute(self._insert_position_statement(ignore_existing=True), self._row(0))
            for table in self.tables:
                for statement in table.ddl():
                    cursor.execute(self.sql(statement))

    def drop_tables(self) -> None:
        """Drop this generation's tables and its tracking row (a rebuild started afresh)."""
        with self.transaction(commit=True) as cursor:
            for table in self.tables:
                cursor.execute(self.sql(f"DROP TABLE IF EXISTS {{{table.name}}}"))
            self._delete_position(cursor)

    def promote(self, building: ReadModelStore, cursor: Any, position: int) -> None:
        """Switch queries over to the rebuilt tables, in the caller's transaction (which holds
        both positions, see `lock_position`): drop the live tables, give the rebuilt ones
        their names, and move the rebuilt model's position to the live row. Queries name the
        tables, so every process reads the new model from the commit on."""
        for table in self.tables:
            cursor.execute(self.sql(f"DROP TABLE {{{table.name}}}"))
        for table in self.tables:
            cursor.execute(
                building.sql(f"ALTER TABLE {{{table.name}}} RENAME TO ")
                + self.bare_name(table.name)
            )
        self._rename_indexes(cursor)
        self.forget_position(cursor)
        if position > 0:
            self.record_position(cursor, position)
        building._delete_position(cursor)

    def bare_name(self, table: str) -> str:
        """A table's name without its schema (what ALTER TABLE … RENAME TO takes)."""
        return f"{self.prefix}_{table}"

    def forget_position(self, cursor: Any) -> None:
        """Set the tracking position back to 0, in the caller's transaction."""
        cursor.execute(
            f"UPDATE {self.tracking_table} SET notification_id = 0 "
            f"WHERE application_name = {self._placeholder}",
            (self.application_name,),
        )

    def _delete_position(self, cursor: Any) -> None:
        cursor.execute(
            f"DELETE FROM {self.tracking_table} WHERE application_name = {self._placeholder}",
            (self.application_name,),
        )

    @abstractmethod
    def _insert_position_statement(self, ignore_existing: bool) -> str: ...

    def _row(self, position: int) -> dict[str, Any]:
        return {"application_name": self.application_name, "notification_id": position}

    _placeholder = "%s"

    def transaction(self, commit: bool) -> AbstractContextManager[Any]:
        return self._recorder.datastore.transaction(commit=commit)

    def position(self) -> int:
        return self._recorder.max_tracking_id(self.application_name) or 0

    def position_in(self, cursor: Any) -> int:
        """The tracking position, read in the caller's transaction."""
        return self._recorder._max_tracking_id(self.application_name, cursor) or 0

    @abstractmethod
    def begin_snapshot(self, cursor: Any) -> None:
        """Make the caller's (new) transaction read one snapshot throughout."""

    def record_position(self, cursor: Any, position: int) -> None:
        """Record the position in the caller's transaction. The library's single-row tracking
        statement only moves forward: no row back means the store is already past `position`
        (another runner got there), and the batch must roll back."""
        cursor.execute(self._recorder.insert_tracking_statement, self._row(position))
        if cursor.fetchone() is None:
            raise IntegrityError(f"Failed to record tracking for {self.name} at {position}")

    def insert_rows(
        self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        """Insert encoded rows, all with the same columns, in as few round trips as the store
        allows."""
        statement = self.statement(self.insert_template(table, columns))
        if len(rows) == 1:
            cursor.execute(statement, rows[0])
        else:
            cursor.executemany(statement, rows)

    @staticmethod
    def insert_template(table: str, columns: Sequence[str]) -> str:
        names = ", ".join(columns)
        params = ", ".join(f"%({c})s" for c in columns)
        return f"INSERT INTO {{{table}}} ({names}) VALUES ({params})"

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
        self,
        recorder: PostgresTrackingRecorder,
        name: str,
        tables: Sequence[Table],
        building: bool = False,
    ) -> None:
        super().__init__(recorder, name, tables, building)
        self._schema = recorder.datastore.schema
        self._tracking_table = recorder.tracking_table_name

    def sql(self, statement: str) -> str:
        names = {t.name: f'"{self._schema}"."{self.prefix}_{t.name}"' for t in self.tables}
        return statement.format(read_model=self.prefix, bytes='COLLATE "C"', **names)

    def begin_snapshot(self, cursor: Any) -> None:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    @property
    def tracking_table(self) -> str:
        return f'"{self._schema}"."{self._tracking_table}"'

    def lock_position(self, cursor: Any) -> int:
        cursor.execute(self._lock_tracking, (self.application_name,))
        row = cursor.fetchone()
        return int(row["notification_id"]) if row else 0

    @cached_property
    def _lock_tracking(self) -> str:
        return (
            f"SELECT notification_id FROM {self.tracking_table} "
            "WHERE application_name = %s FOR UPDATE"
        )

    def _insert_position_statement(self, ignore_existing: bool) -> str:
        conflict = " ON CONFLICT DO NOTHING" if ignore_existing else ""
        return (
            f"INSERT INTO {self.tracking_table} (application_name, notification_id) "
            f"VALUES (%(application_name)s, %(notification_id)s){conflict}"
        )

    def insert_rows(
        self, cursor: Any, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> None:
        # COPY: a runner caught up on 100,000 entries in 13 s instead of 39 s row by row;
        # executemany, even pipelined, still sends and answers each row as a statement.
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
        # statement's row count. A pipeline costs more CPU than it saves below a few
        # statements (a live batch's usual one to three): 91 µs against 75 for two inserts,
        # 140 against 146 for five.
        if len(statements) < PIPELINE_FROM_STATEMENTS:
            return super().execute_each(cursor, statements)
        connection = cursor.connection
        cursors = []
        with connection.pipeline():
            for statement in statements:
                each = connection.cursor()
                each.execute(self.statement(statement.template), statement.params)
                cursors.append(each)
        return [each.rowcount for each in cursors]

    def _rename_indexes(self, cursor: Any) -> None:
        # The promoted tables' indexes (their primary keys' too) still carry the rebuild's
        # prefix; a later rebuild needs those names free, and a later start looks for the live
        # names. Both as PostgreSQL cut them (at 63 bytes), the way it made them.
        building = f"{self.name}__{BUILDING_SUFFIX}"
        for table in self.tables:
            names = [f"{table.name}_pkey"]
            names += [f"{table.name}_{'_'.join(columns)}_idx" for columns in table.indexes]
            for name in names:
                old = f"{building}_{name}"[:_MAX_IDENTIFIER]
                new = f"{self.name}_{name}"[:_MAX_IDENTIFIER]
                cursor.execute(f'ALTER INDEX "{self._schema}"."{old}" RENAME TO "{new}"')


class SQLiteReadModelStore(ReadModelStore):
    """A file of its own per read model (the library's SQLite recorders use fixed table names),
    tables named `<read model>_<table>`."""

    def sql(self, statement: str) -> str:
        names = {t.name: f"{self.prefix}_{t.name}" for t in self.tables}
        formatted = statement.format(read_model=self.prefix, bytes="COLLATE BINARY", **names)
        return _NAMED_PARAM.sub(r":\1", formatted)

    def begin_snapshot(self, cursor: Any) -> None:
        """Nothing to do: the library opens each transaction with BEGIN, and in WAL mode a
        read transaction sees one snapshot from its first read to its end."""

    tracking_table = "tracking"  # the library's fixed name (a file per read model)
    _placeholder = "?"

    def lock_position(self, cursor: Any) -> int:
        # A write first: the library opens transactions with a deferred BEGIN, and one that
        # reads before it writes fails at once (SQLITE_BUSY) if another connection committed
        # meanwhile, where a write first waits its turn for the file's one writer.
        cursor.execute(
            "UPDATE tracking SET notification_id = notification_id WHERE application_name = ?",
            (self.application_name,),
        )
        return self.position_in(cursor)

    def _insert_position_statement(self, ignore_existing: bool) -> str:
        verb = "INSERT OR IGNORE" if ignore_existing else "INSERT"
        return f"{verb} INTO tracking VALUES (:application_name, :notification_id)"

    def _rename_indexes(self, cursor: Any) -> None:
        # SQLite cannot rename an index: the promoted tables' own were made under the
        # rebuild's prefix; drop them and make the live ones (quick beside the rebuild).
        for table in self.tables:
            for columns in table.indexes:
                suffix = "_".join(columns)
                cursor.execute(
                    f"DROP INDEX IF EXISTS {self.name}__{BUILDING_SUFFIX}_{table.name}_{suffix}_idx"
                )
            for statement in table.ddl()[1:]:
                cursor.execute(self.sql(statement))

    def _rowcount(self, cursor: Any) -> int:
        # The library's SQLite cursor wraps sqlite3's and does not pass rowcount through.
        return int(cursor.sqlite_cursor.rowcount)
