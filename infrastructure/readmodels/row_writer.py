"""How a projection's writes reach a read model's tables: queued in order, then sent in as few
round trips as the store allows, inside the batch's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for annotations: base.py and stores.py import this module
    from agentledger.infrastructure.readmodels.base import Table
    from agentledger.infrastructure.readmodels.stores import ReadModelStore


# Below this many rows an INSERT costs less than setting up a COPY; a batch's few inserts go
# in the same pipeline as its updates instead (a rebuild of the agent directory sent three
# round trips per session started: the agent's row, the session's, the counters).
COPY_FROM_ROWS = 8


class RowWriter:
    """What projections write through, inside the read model's transaction.

    Writes are queued in order and sent when the batch ends or before a read: runs of inserts
    together (`ReadModelStore.insert_rows`), runs of updates and deletes in one round trip
    where the store allows (`ReadModelStore.execute_each`), so a rebuild does not wait for one
    per event. Every statement still runs after the writes queued before it, and every read
    sees them."""

    def __init__(self, store: ReadModelStore, cursor: Any) -> None:
        self._store = store
        self._cursor = cursor
        self._queue: list[_Inserts | Statement] = []

    def insert(self, table: str, values: Mapping[str, Any]) -> None:
        spec = self._store.table(table)
        last = self._queue[-1] if self._queue else None
        if not isinstance(last, _Inserts):
            last = _Inserts()
            self._queue.append(last)
        last.add(spec, spec.encode_row(values))

    def insert_missing(self, table: str, values: Mapping[str, Any]) -> None:
        encoded = self._store.table(table).encode_row(values)
        template = self._store.insert_template(table, list(encoded)) + " ON CONFLICT DO NOTHING"
        self._write(table, template, encoded, expect_one=False)

    def update(self, table: str, key: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        """Update the one row with this key; the batch fails if there is none."""
        spec = self._store.table(table)
        encoded = spec.encode_row(changes)
        last = self._queue[-1] if self._queue else None
        if isinstance(last, _Inserts) and last.amend(spec, key, encoded):
            return
        self._write(table, *self._update(spec, key, encoded), expect_one=True)

    def update_all(self, table: str, where: Mapping[str, Any], changes: Mapping[str, Any]) -> None:
        """Update every row matching `where` (any number, none included)."""
        spec = self._store.table(table)
        self._write(table, *self._update(spec, where, spec.encode_row(changes)), expect_one=False)

    def delete(self, table: str, key: Mapping[str, Any]) -> None:
        spec = self._store.table(table)
        where = " AND ".join(f"{c} = %(key_{c})s" for c in key)
        params = {f"key_{c}": v for c, v in spec.encode_row(key).items()}
        self._write(table, f"DELETE FROM {{{table}}} WHERE {where}", params, expect_one=False)

    def add_to(self, table: str, key: Mapping[str, Any], column: str, delta: int) -> None:
        """Add `delta` to a counter of the one row with this key (a counter kept by
        increments need not be read first)."""
        spec = self._store.table(table)
        condition = " AND ".join(f"{c} = %(key_{c})s" for c in key)
        params = {"delta": delta, **{f"key_{c}": v for c, v in spec.encode_row(key).items()}}
        template = f"UPDATE {{{table}}} SET {column} = {column} + %(delta)s WHERE {condition}"
        self._write(table, template, params, expect_one=True)

    def get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        found = self.find(table, key)
        return found[0] if found else None

    def find(self, table: str, where: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row whose columns equal `where`'s values."""
        spec = self._store.table(table)
        condition = " AND ".join(f"{c} = %(key_{c})s" for c in where)
        params = {f"key_{c}": v for c, v in spec.encode_row(where).items()}
        self._read(f"SELECT * FROM {{{table}}} WHERE {condition}", params)
        return [spec.decode_row(r) for r in self._cursor.fetchall()]

    def with_prefix(self, table: str, column: str, prefix: str) -> list[dict[str, Any]]:
        """Rows whose text `column` starts with `prefix` (substr: no LIKE wildcards to escape)."""
        spec = self._store.table(table)
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
            elif queued.count() < COPY_FROM_ROWS:
                run += queued.statements(self._store)
            else:
                self._send(run)
                run = []
                queued.send(self._store, self._cursor)
        self._send(run)
        self._queue.clear()

    def _send(self, run: list[Statement]) -> None:
        if run:
            _check_counts(self._store.name, run, self._store.execute_each(self._cursor, run))

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
        self._cursor.execute(self._store.statement(template), params)


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

    def send(self, store: ReadModelStore, cursor: Any) -> None:
        for (table, columns), rows in self.rows.items():
            store.insert_rows(cursor, table, columns, rows)

    def count(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def statements(self, store: ReadModelStore) -> list[Statement]:
        """The same inserts as statements, to go with others in one round trip."""
        found = []
        for (table, columns), rows in self.rows.items():
            template = store.insert_template(table, columns)
            found += [Statement(table, template, row, expect_one=True) for row in rows]
        return found


@dataclass(frozen=True)
class Statement:
    """A queued statement: `expect_one` when it must change (or insert) exactly one row."""

    table: str
    template: str
    params: dict[str, Any]
    expect_one: bool


def _check_counts(read_model: str, statements: Sequence[Statement], counts: list[int]) -> None:
    for statement, count in zip(statements, counts, strict=True):
        if statement.expect_one and count != 1:
            # An event for a row the read model never saw: it is inconsistent with the log.
            # Fail loudly (the batch rolls back) rather than silently drop the change.
            params = statement.params.items()
            key = {k.removeprefix("key_"): v for k, v in params if k.startswith("key_")}
            raise LookupError(f"{read_model}.{statement.table}: no row for {key}")
