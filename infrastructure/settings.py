"""The one settings object. Every knob is an environment variable; defaults run out of the box."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_", extra="ignore", frozen=True)

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "AGENTLEDGER_DATABASE_URL"),
        description="postgresql://... selects PostgreSQL; unset means embedded SQLite files.",
    )
    data_dir: Path = Field(default=Path(".agentledger"), description="Where SQLite files live.")
    postgres_schema: str = "public"
    # The library waits forever for its table lock by default and retries timeouts ten times:
    # small values keep a request's worst case to seconds, not minutes.
    lock_timeout_seconds: int = Field(default=2, ge=1)
    # A request's bound: by then it has committed or failed (503 store-unavailable), however
    # the store fails; group commit and the library's retries included (see deadlines.py).
    request_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    connect_timeout_seconds: int = Field(default=2, ge=1)
    statement_timeout_seconds: int = Field(default=30, ge=1)
    pool_size: int = Field(default=5, ge=1)
    pool_max_overflow: int = Field(default=20, ge=0)
    # Commands waiting while another transaction is written share the next one (1: no sharing).
    group_commit_max: int = Field(default=64, ge=1)
    # Aggregates kept in memory per process (0: none). A cached aggregate is still brought up
    # to date from the log on every load (one query instead of snapshot + events), so writes
    # from other processes are seen; it spares decoding and replaying what has not changed.
    aggregate_cache_size: int = Field(default=10_000, ge=0)
    consistency_timeout_seconds: float = Field(default=2.0, ge=0)
    projection_poll_seconds: float = Field(default=0.05, gt=0)
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    # How long a finished write's Idempotency-Key answers with its first response, and how
    # long a request still running holds its key (after that, its process is taken for dead).
    idempotency_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)
    # A request is bounded (request timeout + lock wait, 7 s by default): twice that is ample.
    idempotency_in_flight_seconds: float = Field(default=15.0, gt=0)
    # The seal writes a checkpoint (position and link, to publish) every this many events.
    seal_checkpoint_events: int = Field(default=1000, ge=1, le=1_000_000)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # The HTTP edge (interfaces/http/edge.py): what a client may send and how slowly.
    max_url_bytes: int = Field(default=8 * 1024, ge=256)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    max_headers: int = Field(default=64, ge=8)
    header_timeout_seconds: float = Field(default=10.0, gt=0)
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    keep_alive_seconds: int = Field(default=5, ge=1)
    # Connections and requests one process takes at once; beyond, uvicorn answers 503.
    max_connections: int = Field(default=1000, ge=1)
    # Inbox reads waiting for a message (`wait=`) at once per process: each holds a worker
    # thread, so beyond this many the next is answered 503 at once rather than queued.
    max_long_polls: int = Field(default=16, ge=1, le=1000)
    # Signs pagination cursors; unset, a key is made once and kept with the data.
    cursor_secret: SecretStr | None = Field(default=None, min_length=16)

    @property
    def uses_postgres(self) -> bool:
        return bool(self.database_url)

    @property
    def store_description(self) -> str:
        if self.uses_postgres:
            return f"PostgreSQL (schema {self.postgres_schema})"
        return f"SQLite in {self.data_dir.resolve()}"
