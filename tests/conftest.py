"""Shared fixtures: every storage test runs on real PostgreSQL and on SQLite.

One fresh PostgreSQL database per test run; each test gets its own schema in it (or its own
SQLite data directory), so tests never see each other's events.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock, SystemClock
from agentledger.application.context import RequestContext, local_operator
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.cli.main import cli
from agentledger.interfaces.http.app import create_app
from tests.support.postgres import fresh_database, server_url

BACKENDS = ("postgres", "sqlite")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with server_url() as server, fresh_database(server) as url:
        yield url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    if backend == "sqlite":
        yield Settings(data_dir=tmp_path / "data", database_url=None)
        return
    url = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield Settings(database_url=url, postgres_schema=schema, data_dir=tmp_path / "unused")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def runtime(settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """A runtime on the manual clock with projections running, as `serve` has them."""
    rt = build_runtime(settings, clock=clock)
    rt.start_runners()
    yield rt
    rt.close()


@pytest.fixture
def system_runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings, clock=SystemClock())
    rt.start_runners()
    yield rt
    rt.close()


@pytest.fixture
def operator() -> RequestContext:
    return RequestContext(local_operator("tester"), "test-setup")


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client


def issue_token(rt: Runtime, principal: str, *roles: str) -> str:
    ctx = RequestContext(local_operator("tester"), "test-setup")
    return rt.access.issue(ctx, principal, list(roles)).value.secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Invoke the CLI with the environment pointing at this test's store."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("AGENTLEDGER_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("DATABASE_URL", settings.database_url)
        monkeypatch.setenv("AGENTLEDGER_POSTGRES_SCHEMA", settings.postgres_schema)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    yield invoke
