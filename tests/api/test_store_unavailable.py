"""A store that cannot answer in time is a 503 with Retry-After, and nothing is written."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.infrastructure.storage import postgres_conninfo
from agentledger.interfaces.http.app import create_app
from tests.api.helpers import agent, assert_problem


def hold_the_write_lock(settings: Settings) -> Any:
    """Another writer holding the event store's lock (readers are not blocked by it)."""
    if settings.uses_postgres:
        blocker = psycopg.connect(postgres_conninfo(settings))
        blocker.execute(
            f'LOCK TABLE "{settings.postgres_schema}".agentledger_events IN EXCLUSIVE MODE'
        )
        return blocker
    blocker_sqlite = sqlite3.connect(settings.data_dir / "events.sqlite", isolation_level=None)
    blocker_sqlite.execute("BEGIN EXCLUSIVE")
    return blocker_sqlite


def test_a_locked_event_store_answers_503(settings: Settings) -> None:
    # One-second lock timeout: the library retries a timed-out insert ten times, so this
    # request takes about 10 x (1 s + 0.2 s) on PostgreSQL before it gives up.
    rt = build_runtime(settings.model_copy(update={"lock_timeout_seconds": 1}), ManualClock())
    try:
        rt.start_runners()
        client = TestClient(create_app(rt), raise_server_exceptions=False)
        token = agent(rt, "alice")
        head = rt.ledger.head_position()
        blocker = hold_the_write_lock(rt.settings)
        try:
            started = time.monotonic()
            response = client.post("/v1/sessions", json={}, headers=token)
            waited = time.monotonic() - started
        finally:
            blocker.rollback()
            blocker.close()
        assert_problem(response, 503, "store-unavailable")
        assert response.headers["Retry-After"] == "1"
        assert waited < 30
        assert rt.ledger.head_position() == head
        assert client.post("/v1/sessions", json={}, headers=token).status_code == 201
    finally:
        rt.close()


def test_a_sqlite_connection_that_could_not_write_is_not_used_again(tmp_path: Path) -> None:
    """SQLite opens a file it may not write read-only, and such a connection refuses writes
    even once the file is writable again (the cause of writes failing after a read-only spell
    until a restart). Every pooled connection of the log is put in that state here
    (`query_only`): the next write is refused as a 503, and the ones after it succeed on fresh
    connections."""
    rt = build_runtime(Settings(data_dir=tmp_path / "data", database_url=None), ManualClock())
    try:
        client = TestClient(create_app(rt), raise_server_exceptions=False)
        token = agent(rt, "alice")
        assert client.post("/v1/sessions", json={}, headers=token).status_code == 201
        pool = rt.ledger.recorder.datastore.pool  # type: ignore[attr-defined]
        pooled = list(pool._pool)
        assert pooled
        for connection in pooled:
            connection._sqlite_conn.execute("PRAGMA query_only = ON")
        head = rt.ledger.head_position()
        assert_problem(
            client.post("/v1/sessions", json={}, headers=token), 503, "store-unavailable"
        )
        assert rt.ledger.head_position() == head
        statuses = [
            client.post("/v1/sessions", json={}, headers=token).status_code for _ in range(5)
        ]
        assert statuses == [201] * 5
        assert all(connection.closed for connection in pooled)
    finally:
        rt.close()
