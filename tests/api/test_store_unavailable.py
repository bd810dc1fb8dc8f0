"""A store that cannot answer in time is a 503 with Retry-After, and nothing is written."""

from __future__ import annotations

import sqlite3
import time
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
