"""Translate settings into the `eventsourcing` library's configuration, for the log and the
read models, and into the connection environment every PostgreSQL session of the process uses.
"""

from __future__ import annotations

import getpass
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
import psycopg_pool
from eventsourcing.postgres import PostgresDatastore, PostgresFactory, PostgresTrackingRecorder
from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteDatastore,
    SQLiteFactory,
    SQLiteTrackingRecorder,
)
from eventsourcing.utils import Environment, get_topic
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agentledger.application import deadlines
from agentledger.application.ledger import Ledger
from agentledger.infrastructure.idempotency import (
    PostgresIdempotentRecorder,
    SQLiteIdempotentRecorder,
    render_statements,
)
from agentledger.infrastructure.readmodels.base import ReadModel
from agentledger.infrastructure.readmodels.stores import (
    PostgresReadModelStore,
    ReadModelStore,
    SQLiteReadModelStore,
)
from agentledger.infrastructure.settings import Settings
from agentledger.infrastructure.store_errors import spoils_sqlite_connection

M = TypeVar("M", bound=ReadModel)

_CORE = ("dbname", "host", "port", "user", "password")
# DATABASE_URL parameters the library cannot take directly travel through libpq's own
# environment variables, which every connection of the process reads.
_LIBPQ_ENVIRONMENT = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
    "application_name": "PGAPPNAME",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}
_TIMEOUT_OPTION = re.compile(r"(-c\s*|--)(lock_timeout|statement_timeout)=\S+")


def open_ledger(settings: Settings) -> Ledger:
    env = ledger_environment(settings)
    if settings.aggregate_cache_size:
        env["AGGREGATE_CACHE_MAXSIZE"] = str(settings.aggregate_cache_size)
    ledger = Ledger(env=env)
    datastore = ledger.recorder.datastore  # type: ignore[attr-defined]
    bound_by_deadlines(datastore)
    if isinstance(datastore, SQLiteDatastore):
        discard_spoiled_connections(datastore)
    else:
        reconnect_promptly(datastore)
    return ledger


def bound_by_deadlines(datastore: Any) -> None:
    """A request's store calls give up at its deadline (`application.deadlines`): the wait
    for a pooled connection is cut to the time left, and once none is left no connection is
    handed out. The library retries a failed operation ten times, 0.2 s apart, each waiting
    for a connection (2 s while PostgreSQL is down): bounded here, those retries stop at the
    deadline instead of holding the request for 20 s or more."""
    pool = datastore.pool
    if isinstance(pool, psycopg_pool.ConnectionPool):
        getconn = pool.getconn

        def getconn_within_deadline(timeout: float | None = None) -> Any:
            left = deadlines.remaining()
            if left is not None:
                deadlines.check()
                timeout = min(pool.timeout if timeout is None else timeout, left)
            return getconn(timeout)

        pool.getconn = getconn_within_deadline  # type: ignore[method-assign]
        return
    get_connection = pool.get_connection  # the library's own pool (SQLite)

    def get_connection_within_deadline(*args: Any, **kwargs: Any) -> Any:
        deadlines.check()
        return get_connection(*args, **kwargs)

    pool.get_connection = get_connection_within_deadline


# How long psycopg's pool keeps trying to replace one lost connection before it lets the slot
# go (its default is five minutes, waiting 1, 2, 4, 8… s between tries, so a server back after
# an outage could wait half as long again for its first connection). A slot let go is filled
# again on the next demand, so a short chain means a connection within half a second of the
# server's return (with 2 s, a chain's second wait of up to a second made a 3 s outage's
# writes come back after 2.8 s where a 10 s outage's took 0.5 s).
RECONNECT_SECONDS = 0.5


def reconnect_promptly(datastore: PostgresDatastore) -> None:
    """Bound the pool's back-off in reconnecting (see `RECONNECT_SECONDS`)."""
    datastore.pool.reconnect_timeout = RECONNECT_SECONDS


def discard_spoiled_connections(datastore: SQLiteDatastore) -> None:
    """A pooled SQLite connection that failed because its file was read-only or gone is closed,
    not handed out again: SQLite opens a file it may not write read-only, and such a connection
    would refuse writes for ever after the file is writable again. (psycopg's pool already
    discards a PostgreSQL connection that broke.)"""
    get_connection = datastore.get_connection

    @contextmanager
    def get_connection_discarding_spoiled(*, commit: bool) -> Iterator[SQLiteConnection]:
        with get_connection(commit=commit) as connection:
            try:
                yield connection
            except BaseException as exc:
                if spoils_sqlite_connection(exc):
                    connection.close()  # the pool then opens a fresh one
                raise

    datastore.get_connection = get_connection_discarding_spoiled  # type: ignore[method-assign]


def ledger_environment(settings: Settings) -> dict[str, str]:
    if settings.uses_postgres:
        return _postgres_environment(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(settings.data_dir / "events.sqlite"),
        "SQLITE_LOCK_TIMEOUT": str(settings.lock_timeout_seconds),
        "CREATE_TABLE": "y",
        # The log's recorder also keeps the idempotency keys, in the log's transactions.
        "PROCESS_RECORDER_TOPIC": get_topic(SQLiteIdempotentRecorder),
    }


class ReadModelStores:
    """Opens read models on the configured store, creating their tables, and closes what they
    share: on PostgreSQL one connection pool for all and a tracking table each; on SQLite a
    file each (the library's SQLite recorders use fixed table names)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._postgres: PostgresDatastore | None = None
        self._sqlite: list[SQLiteDatastore] = []

    def open(self, read_model: type[M]) -> M:
        if self._settings.uses_postgres:
            store: ReadModelStore = self._on_postgres(read_model)
        else:
            store = self._on_sqlite(read_model)
        store.create_tables()
        return read_model(store)

    def close(self) -> None:
        if self._postgres is not None:
            self._postgres.close()
        for datastore in self._sqlite:
            datastore.close()

    def _on_postgres(self, read_model: type[ReadModel]) -> ReadModelStore:
        if self._postgres is None:
            env = {**ledger_environment(self._settings), "POSTGRES_POOL_SIZE": "2"}
            self._postgres = PostgresFactory(Environment("readmodels", env)).datastore
            bound_by_deadlines(self._postgres)
            reconnect_promptly(self._postgres)
        recorder = PostgresTrackingRecorder(
            self._postgres, tracking_table_name=f"{read_model.name}_tracking"
        )
        render_statements(recorder)
        return PostgresReadModelStore(recorder, read_model.name, read_model.tables)

    def _on_sqlite(self, read_model: type[ReadModel]) -> ReadModelStore:
        env = ledger_environment(self._settings)
        env["SQLITE_DBNAME"] = str(self._settings.data_dir / f"{read_model.name}.sqlite")
        datastore = SQLiteFactory(Environment(read_model.name, env)).datastore
        bound_by_deadlines(datastore)
        discard_spoiled_connections(datastore)
        self._sqlite.append(datastore)
        recorder = SQLiteTrackingRecorder(datastore)
        return SQLiteReadModelStore(recorder, read_model.name, read_model.tables)


def probe_store(settings: Settings) -> bool:
    """Can the store answer right now? A direct, bounded check (no library retries)."""
    try:
        if settings.uses_postgres:
            with psycopg.connect(
                postgres_conninfo(settings), connect_timeout=settings.connect_timeout_seconds
            ) as conn:
                conn.execute("SELECT 1")
        else:
            path = settings.data_dir / "events.sqlite"
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as conn:
                conn.execute("SELECT 1 FROM stored_events LIMIT 1")
    except (psycopg.Error, sqlite3.Error):
        return False
    return True


def postgres_parameters(settings: Settings) -> dict[str, str]:
    """The connection parts of DATABASE_URL (the library takes only these five), with the same
    defaults everywhere, so locks, listeners and the log reach the same server."""
    params = _url_parameters(settings)
    return {
        "dbname": str(params.get("dbname") or getpass.getuser()),
        "host": str(params.get("host") or "127.0.0.1"),
        "port": str(params.get("port") or 5432),
        "user": str(params.get("user") or getpass.getuser()),
        "password": str(params.get("password") or ""),
    }


def postgres_conninfo(settings: Settings) -> str:
    return make_conninfo(**postgres_parameters(settings))


def apply_connection_environment(settings: Settings) -> None:
    """Set what every PostgreSQL session of this process must carry, through libpq's
    environment (the library passes no connection options through):

    - lock_timeout and statement_timeout: the library sets a lock timeout only around its
      inserts, so a read queued behind ALTER TABLE or VACUUM FULL would wait for ever;
    - TLS and other DATABASE_URL parameters (sslmode=verify-full must not quietly become
      libpq's default).
    """
    params = _url_parameters(settings)
    for name, variable in _LIBPQ_ENVIRONMENT.items():
        if name in params:
            os.environ[variable] = str(params[name])
    options = _TIMEOUT_OPTION.sub("", os.environ.get("PGOPTIONS", "")).split()
    options += str(params.get("options", "")).split()
    options += [
        f"-c lock_timeout={settings.lock_timeout_seconds}s",
        f"-c statement_timeout={settings.statement_timeout_seconds}s",
    ]
    os.environ["PGOPTIONS"] = " ".join(options)


def _url_parameters(settings: Settings) -> dict[str, Any]:
    assert settings.database_url is not None
    params = conninfo_to_dict(settings.database_url)
    unsupported = (
        set(params) - set(_CORE) - set(_LIBPQ_ENVIRONMENT) - {"options", "connect_timeout"}
    )
    if unsupported:
        raise ValueError(
            f"DATABASE_URL parameter(s) not supported: {', '.join(sorted(unsupported))}"
        )
    return params


def _postgres_environment(settings: Settings) -> dict[str, str]:
    params = postgres_parameters(settings)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": params["dbname"],
        "POSTGRES_HOST": params["host"],
        "POSTGRES_PORT": params["port"],
        "POSTGRES_USER": params["user"],
        "POSTGRES_PASSWORD": params["password"],
        "POSTGRES_SCHEMA": settings.postgres_schema,
        "POSTGRES_LOCK_TIMEOUT": str(settings.lock_timeout_seconds),
        "POSTGRES_CONNECT_TIMEOUT": str(settings.connect_timeout_seconds),
        "POSTGRES_POOL_SIZE": str(settings.pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.pool_max_overflow),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "5",
        # The library's database-functions insert path skips the table lock and lets tailing
        # readers miss events under concurrent writers: keep it off, explicitly.
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "CREATE_TABLE": "y",
        "PROCESS_RECORDER_TOPIC": get_topic(PostgresIdempotentRecorder),
    }
