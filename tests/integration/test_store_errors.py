"""A store that cannot answer is an outage (503, retry); a query the store refuses is our
mistake (500, logged), never blamed on the store. Real driver errors from both stores."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest
from starlette.requests import Request

from agentledger.application.readmodels import EntryFilter
from agentledger.infrastructure.bootstrap import Runtime
from agentledger.infrastructure.store_errors import is_store_outage
from agentledger.interfaces.http.problems import to_problem


def request() -> Request:
    scope = {"type": "http", "method": "GET", "path": "/v1/x", "headers": [], "state": {}}
    return Request(scope)


def status_and_type(exc: Exception) -> tuple[int, str]:
    response = to_problem(request(), exc)
    body = json.loads(bytes(response.body))
    return response.status_code, str(body["type"]).rsplit("/", 1)[-1]


def refused_query(runtime: Runtime) -> Exception:
    """A statement the store itself refuses, raised through the library as any other."""
    view = runtime.read_models["entries_v2"]
    with pytest.raises(Exception) as raised:
        if runtime.settings.uses_postgres:
            # 54011 program_limit_exceeded: psycopg files it as an OperationalError.
            view.select("entries", "SELECT " + ", ".join(["1"] * 1700), {})
        else:
            # "too many SQL variables", an sqlite3.OperationalError.
            many = tuple((f"k{i}", "v") for i in range(40_000))
            view.list(EntryFilter(project="p", metadata=many), limit=1, before_position=None)
    return raised.value


def test_a_query_the_store_refuses_is_an_internal_error(runtime: Runtime) -> None:
    error = refused_query(runtime)
    assert not is_store_outage(error)
    assert status_and_type(error) == (500, "internal-error")


def test_an_unreachable_postgres_is_an_outage() -> None:
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)
    assert is_store_outage(raised.value)
    assert status_and_type(raised.value) == (503, "store-unavailable")


def test_a_locked_sqlite_file_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, timeout=0.05, isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError) as raised:
            other.execute("INSERT INTO t VALUES (1)")
    finally:
        holder.rollback()
        holder.close()
        other.close()
    assert is_store_outage(raised.value)
    assert status_and_type(raised.value) == (503, "store-unavailable")
