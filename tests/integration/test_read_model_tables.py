"""Read-model tables are derived from their row types (`Table.of`), so a field added to a row
adds a column. Stores create a table only if it is absent: an existing store would keep the
old table under the same read-model name. So each name stands for one set of columns, checked
here on both stores; a changed table needs a new name (`work_items_v4`, rebuilt from the log)
and its fingerprint recorded below."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg

from agentledger.infrastructure.bootstrap import Runtime
from agentledger.infrastructure.readmodels.base import ReadModel
from agentledger.infrastructure.settings import Settings

# sha256 of each table's columns ("name TYPE[ NOT NULL]" a line, in order), first 16 digits.
FINGERPRINTS = {
    "sessions_v3": {"sessions": "5866ff5b647f3f42"},
    "tokens_v1": {"tokens": "811cbdf4bf9a233c"},
    "projects_v1": {"projects": "d7d229d05ec1c9d6"},
    "selections_v1": {"selections": "4d8fef4899e91bd0"},
    "entries_v2": {"entries": "b67d0524ce2fb4ff", "entry_metadata": "5d64d3abcaf7410c"},
    "work_items_v4": {"work_items": "a0bcfe7567fd2ff7", "dependencies": "33a5f3aee9025b10"},
    "approvals_v1": {"approvals": "9eee58df9afb7d4c"},
    "handovers_v1": {"handovers": "c42992fa4007c013"},
    "messages_v1": {"messages": "77894a9916f38750", "inbox": "42f4d29b5ad684db"},
    "agents_v1": {
        "agents": "29d56f2f398d13a0",
        "capabilities": "e46e3ed8443b9021",
        "sessions": "ae465685d7a7a015",
        "claims": "e088eca2d1fd2cc3",
        "last_claims": "dc37f710303027f4",
        "requests": "9f08bef6588793bd",
        "samples": "2cfb7137d973fb1a",
    },
    "timeline_v1": {"timeline": "cd414852417abe7b", "holders": "e088eca2d1fd2cc3"},
}


def test_each_read_model_name_keeps_its_columns_on_both_stores(
    runtime: Runtime, backend: str, settings: Settings
) -> None:
    found: dict[str, dict[str, str]] = {}
    listings = []
    for name, read_model in runtime.read_models.items():
        for table in read_model.tables:
            if backend == "sqlite":
                columns = _sqlite_columns(read_model, table.name)
            else:
                columns = _postgres_columns(settings, f"{name}_{table.name}")
            listing = "\n".join(columns)
            found.setdefault(name, {})[table.name] = _fingerprint(listing)
            listings.append(f"{name}.{table.name}:\n{listing}")
    assert found == FINGERPRINTS, "\n\n".join(listings)


def test_a_table_has_a_column_for_each_field_of_its_row(runtime: Runtime) -> None:
    sessions = runtime.read_models["sessions_v3"].table("sessions")
    assert sessions.columns["id"] == "uuid"
    assert sessions.columns["lease_expires_at"] == "time"
    assert sessions.columns["ended_at"] == "time"  # `datetime | None`: nullable, same kind
    assert sessions.columns["metadata"] == "json"
    items = runtime.read_models["work_items_v4"].table("work_items")
    assert items.columns["archived"] == "bool"
    assert items.columns["fence"] == "int"
    entries = runtime.read_models["entries_v2"].table("entries")
    assert list(entries.columns)[-1] == "folded"  # declared: the rows do not carry it


def _fingerprint(listing: str) -> str:
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


def _sqlite_columns(read_model: ReadModel, table: str) -> list[str]:
    with read_model.reading() as cursor:
        cursor.execute(f"PRAGMA table_info({read_model.sql('{' + table + '}')})")
        rows: list[Any] = cursor.fetchall()
    return [_column(r["name"], r["type"], bool(r["notnull"])) for r in rows]


def _postgres_columns(settings: Settings, table: str) -> list[str]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (settings.postgres_schema, table),
        ).fetchall()
    return [_column(name, kind, nullable == "NO") for name, kind, nullable in rows]


def _column(name: str, sql_type: str, not_null: bool) -> str:
    return f"{name} {sql_type.upper()}{' NOT NULL' if not_null else ''}"
