"""Is a read model right? Replay its projection from the log into scratch tables (in memory)
up to the position the live model reflects, then compare the two row by row.

The live model is read in one snapshot (REPEATABLE READ on PostgreSQL; a read transaction on
SQLite, which sees one snapshot in WAL mode), together with its tracking position: rows and
position agree even while a runner keeps writing, so `serve` need not stop.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.sqlite import SQLiteFactory, SQLiteTrackingRecorder
from eventsourcing.utils import Environment

from agentledger.application.ledger import Ledger
from agentledger.application.projections import Projection, followed_topics
from agentledger.infrastructure.readmodels.base import ReadModel
from agentledger.infrastructure.readmodels.stores import SQLiteReadModelStore

PAGE = 1000
SHOWN = 20  # differing rows listed per table


@dataclass(frozen=True)
class RowDifference:
    table: str
    key: dict[str, Any]
    live: dict[str, Any] | None  # None: missing from the live model
    replayed: dict[str, Any] | None  # None: the live model has a row the log does not make


@dataclass
class ReadModelCheck:
    name: str
    position: int  # both sides reflect the log up to here
    rows: int  # rows compared (the replay's)
    differences: int = 0
    shown: list[RowDifference] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.differences == 0


def open_scratch(read_model: type[ReadModel]) -> tuple[ReadModel, Any]:
    """An empty copy of `read_model` in memory; and its datastore, to close after."""
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": f"file:scratch-{uuid.uuid4().hex}?mode=memory&cache=shared",
        "CREATE_TABLE": "y",
    }
    datastore = SQLiteFactory(Environment(read_model.name, env)).datastore
    store = SQLiteReadModelStore(
        SQLiteTrackingRecorder(datastore), read_model.name, read_model.tables
    )
    store.create_tables()
    return read_model(store), datastore


def replay_into(ledger: Ledger, scratch: ReadModel, projection: Projection, upto: int) -> None:
    """Apply every event `projection` follows, up to position `upto`, to `scratch`."""
    topics = followed_topics(projection)
    position = 0
    while True:
        notifications = ledger.read_log(position, PAGE, topics, stop=upto)
        if notifications:
            batch = [(ledger.to_event(n), n.id) for n in notifications]
            scratch.process(batch, notifications[-1].id, projection)
        if len(notifications) < PAGE:
            return
        position = notifications[-1].id


def check(ledger: Ledger, live: ReadModel, projection: Projection) -> ReadModelCheck:
    position, live_rows = live.snapshot()
    scratch, datastore = open_scratch(type(live))
    try:
        replay_into(ledger, scratch, projection, position)
        _, replayed_rows = scratch.snapshot()
    finally:
        datastore.close()
    result = ReadModelCheck(live.name, position, sum(len(r) for r in replayed_rows.values()))
    for table in live.tables:
        _compare(table.name, table.key, live_rows[table.name], replayed_rows[table.name], result)
    return result


def _compare(
    table: str,
    key: tuple[str, ...],
    live: dict[tuple[Any, ...], dict[str, Any]],
    replayed: dict[tuple[Any, ...], dict[str, Any]],
    result: ReadModelCheck,
) -> None:
    for row_key in sorted(live.keys() | replayed.keys(), key=repr):
        mine, theirs = live.get(row_key), replayed.get(row_key)
        if mine == theirs:
            continue
        result.differences += 1
        if len(result.shown) < SHOWN:
            result.shown.append(
                RowDifference(table, dict(zip(key, row_key, strict=True)), mine, theirs)
            )
