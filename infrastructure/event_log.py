"""Reads of the stored events the library does not offer: one aggregate's events with their
log positions (its own per-aggregate read returns no positions), through the index the
primary key (originator_id, originator_version) gives on both stores."""

from __future__ import annotations

from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, Notification
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier


class StoredAggregateLog:
    def __init__(self, recorder: ApplicationRecorder) -> None:
        self._recorder = recorder

    def notifications_of(self, aggregate_id: UUID) -> list[Notification]:
        recorder = self._recorder
        if isinstance(recorder, PostgresApplicationRecorder):
            statement = SQL(
                "SELECT notification_id, originator_id, originator_version, topic, state "
                "FROM {}.{} WHERE originator_id = %s ORDER BY originator_version"
            ).format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
            with recorder.datastore.transaction(commit=False) as curs:
                curs.execute(statement, (aggregate_id,))
                rows = curs.fetchall()
            return [_notification(r, r["originator_id"], bytes(r["state"])) for r in rows]
        assert isinstance(recorder, SQLiteApplicationRecorder)
        with recorder.datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT rowid AS notification_id, originator_id, originator_version, topic, "
                f"state FROM {recorder.events_table_name} WHERE originator_id = ? "
                "ORDER BY originator_version",
                (aggregate_id.hex,),
            )
            rows = c.fetchall()
        return [_notification(r, UUID(r["originator_id"]), r["state"]) for r in rows]


def _notification(row: object, originator: UUID, state: bytes) -> Notification:
    get = row.__getitem__  # type: ignore[attr-defined]
    return Notification(
        id=get("notification_id"),
        originator_id=originator,
        originator_version=get("originator_version"),
        topic=get("topic"),
        state=state,
    )
