"""What every read model shares on both stores: typed columns, portable SQL, and batched
exactly-once application of events.

A read model declares its tables once (`Table`), most of them as the row dataclass its readers
return (`Table.of`: a column per field, its kind from the field's type). Values are stored in
forms both stores compare the same way: times as integer microseconds since the epoch, ids and
JSON as text, booleans as 0/1. Statements are written once with `%(name)s` parameters, `{table}`
names and `{bytes}` for byte-order collation; its store (`stores.py`) makes them its dialect.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Self, get_args, get_origin, get_type_hints
from uuid import UUID

from agentledger.application.projections import Projection
from agentledger.infrastructure.readmodels.row_writer import RowWriter
from agentledger.infrastructure.readmodels.stores import PositionMoved

if TYPE_CHECKING:  # for annotations: stores.py reads the tables declared here
    from agentledger.infrastructure.readmodels.stores import ReadModelStore

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


# The column kind of each field type of a row (an optional field: its type's kind, nullable).
_KINDS: dict[Any, str] = {
    str: "text",
    int: "int",
    bool: "bool",
    datetime: "time",
    UUID: "uuid",
    dict: "json",
    list: "json",
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

    @classmethod
    def of(
        cls,
        name: str,
        row: type,
        *,
        key: tuple[str, ...],
        indexes: tuple[tuple[str, ...], ...] = (),
        not_null: tuple[str, ...] = (),
        extra: Mapping[str, str] | None = None,
    ) -> Table:
        """The table that stores `row` (a dataclass): a column per field, in field order,
        then the `extra` columns the rows do not carry. `not_null` stays declared (it is not
        derived from the types), so the tables of existing stores keep their definition."""
        hints = get_type_hints(row)
        columns = {f.name: column_kind(hints[f.name]) for f in fields(row)}
        return cls(name, {**columns, **(extra or {})}, key, indexes, not_null)

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
                f"CREATE INDEX IF NOT EXISTS {{read_model}}_{self.name}_{suffix}_idx "
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


class ProjectionFault(Exception):
    """A projection's handler failed on the event at `position`: its batch rolled back, and
    the read model stays before that event until the handler stops failing."""

    def __init__(self, name: str, position: int, event: Any, cause: Exception) -> None:
        super().__init__(
            f"{name} failed on event {position} ({type(event).__qualname__}): "
            f"{type(cause).__name__}: {cause}"
        )
        self.position = position


def column_kind(hint: Any) -> str:
    """The kind a field of this type is stored as: `UUID | None` is a nullable "uuid"."""
    if get_origin(hint) in (types.UnionType, typing.Union):
        present = [a for a in get_args(hint) if a is not type(None)]
        if len(present) != 1:
            raise TypeError(f"no column kind for {hint}: one type or None, please")
        hint = present[0]
    kind = _KINDS.get(get_origin(hint) or hint)
    if kind is None:
        raise TypeError(f"no column kind for {hint}")
    return kind


class ReadModel:
    """One read model: its tables in one store, the queries over them, and the projection's
    batches written with the tracking position in one transaction (exactly once).

    Subclasses declare `name` and `tables` and add queries, which read through `select`,
    `select_one` (rows decoded by the tables' column kinds) or `reading` with `sql`. The name
    is stable: it names the tables, the tracking position, the runner and its lock; a new
    version of a read model is a new name (`_v2`), built afresh from the log."""

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]] = ()

    def __init__(self, store: ReadModelStore) -> None:
        self._store = store
        self._passed: int | None = None

    def position(self) -> int:
        """The log position this read model reflects, as this process sees it: the recorded
        one, or further where the runner here has passed events its projection does not follow
        (it records that position only every so often, not per event)."""
        recorded = self.recorded_position()
        return recorded if self._passed is None else max(recorded, self._passed)

    def recorded_position(self) -> int:
        return self._store.position()

    def passed(self, position: int) -> None:
        """The runner in this process has handled the log up to `position`: every event the
        projection follows up to there is written, and the others need nothing."""
        self._passed = position if self._passed is None else max(self._passed, position)

    def building(self) -> Self:
        """This read model's rebuild, beside it in the same store (`ReadModelStore.building`)."""
        return type(self)(self._store.building())

    @property
    def store(self) -> ReadModelStore:
        return self._store

    def process(
        self,
        batch: Sequence[tuple[Any, int]],
        last_position: int,
        projection: Projection,
        after: int | None = None,
    ) -> None:
        """Apply events and advance tracking in one transaction: exactly once, or not at all.
        Given `after` (where the batch starts), the stored position is taken first and must
        not be past it (`PositionMoved` otherwise: a switch-over or another runner moved it)."""
        with self._store.transaction(commit=True) as cursor:
            if after is not None:
                stored = self._store.lock_position(cursor)
                if stored > after:
                    raise PositionMoved(self.name, stored)
                if not batch and stored >= last_position:
                    return
            self.apply_in(cursor, batch, projection)
            self._store.record_position(cursor, last_position)

    def apply_in(
        self, cursor: Any, batch: Sequence[tuple[Any, int]], projection: Projection
    ) -> None:
        """Apply events in the caller's transaction; a handler's failure names its event."""
        writer = RowWriter(self._store, cursor)
        for event, position in batch:
            try:
                projection.handle(event, position, writer)
            except Exception as exc:  # any handler bug: say which event, roll back the batch
                raise ProjectionFault(self.name, position, event, exc) from exc
        writer.flush()

    def reset(self) -> None:
        """Forget every row and the tracking position together, so a rebuild starts clean."""
        with self._store.transaction(commit=True) as cursor:
            for table in self.tables:
                cursor.execute(self.sql(f"DELETE FROM {{{table.name}}}"))
            self._store.forget_position(cursor)
        self._passed = None

    def snapshot(self) -> tuple[int, dict[str, dict[tuple[Any, ...], dict[str, Any]]]]:
        """The tracking position and every row of each table by primary key, all read in one
        snapshot of the store (for comparing a read model with a replay)."""
        fetched: list[tuple[Table, list[Any]]] = []
        with self._store.transaction(commit=False) as cursor:
            self._store.begin_snapshot(cursor)
            position = self._store.position_in(cursor)
            for table in self.tables:
                cursor.execute(self.sql(f"SELECT * FROM {{{table.name}}}"))
                fetched.append((table, cursor.fetchall()))
        # Decoded after the transaction: a million rows take longer than PostgreSQL lets a
        # session sit idle inside one (idle_in_transaction_session_timeout, 5 s).
        tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        for table, raw in fetched:
            rows = [table.decode_row(r) for r in raw]
            tables[table.name] = {tuple(r[k] for k in table.key): r for r in rows}
        return position, tables

    def table(self, name: str) -> Table:
        return self._store.table(name)

    def sql(self, template: str) -> str:
        return self._store.sql(template)

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self._store.transaction(commit=False) as cursor:
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
