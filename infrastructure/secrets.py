"""The deployment's cursor key: what signs pagination cursors, the same for every process.

`AGENTLEDGER_CURSOR_SECRET` sets it. Unset, a random key is made once and kept with the data,
so every process on one store (servers, workers, restarts) agrees without configuration: on
SQLite a 0600 file in the data directory, on PostgreSQL a row in the configured schema. Both
are created so that racing processes end up reading the one key the first of them stored.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

import psycopg
from psycopg import sql

from agentledger.infrastructure.settings import Settings
from agentledger.infrastructure.storage import postgres_conninfo

KEY_BYTES = 32
KEY_FILE = "cursor.key"
SECRETS_TABLE = "agentledger_secrets"
CURSOR_KEY_NAME = "cursor"


def cursor_key(settings: Settings) -> bytes:
    if settings.cursor_secret is not None:
        return settings.cursor_secret.get_secret_value().encode()
    if settings.uses_postgres:
        return _postgres_key(settings)
    return _file_key(settings.data_dir / KEY_FILE)


def _file_key(path: Path) -> bytes:
    """Write a fresh key to a private temporary file, then hard-link it into place: the link
    fails if another process got there first, and everyone reads the linked file."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(secrets.token_bytes(KEY_BYTES))
                file.flush()
                os.fsync(file.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise OSError(f"{path} does not hold a {KEY_BYTES}-byte cursor key")
    return key


def _postgres_key(settings: Settings) -> bytes:
    table = sql.Identifier(settings.postgres_schema, SECRETS_TABLE)
    with psycopg.connect(
        postgres_conninfo(settings), connect_timeout=settings.connect_timeout_seconds
    ) as conn:
        # CREATE TABLE IF NOT EXISTS still races on the catalog: take turns, per schema.
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            (f"agentledger:secrets:{settings.postgres_schema}",),
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (name TEXT PRIMARY KEY, value BYTEA NOT NULL)"
            ).format(table)
        )
        conn.execute(
            sql.SQL("INSERT INTO {} (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING").format(
                table
            ),
            (CURSOR_KEY_NAME, secrets.token_bytes(KEY_BYTES)),
        )
        row = conn.execute(
            sql.SQL("SELECT value FROM {} WHERE name = %s").format(table), (CURSOR_KEY_NAME,)
        ).fetchone()
    assert row is not None  # inserted above, or by whoever inserted first
    return bytes(row[0])
