"""Other processes on the test's store (`agentledger serve`, `projections run`, `rebuild`),
a log filled quickly (events built by the domain, stored in large transactions), and what
the tests check of the read models afterwards."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpx2 as httpx

from agentledger.domain.entries import LogEntry
from agentledger.domain.events import EventContext
from agentledger.infrastructure.bootstrap import Runtime
from agentledger.infrastructure.readmodels.verify import check
from agentledger.infrastructure.settings import Settings
from tests.cli.shell import free_port
from tests.support.helpers import wait_until

CLI = str(Path(sys.executable).with_name("agentledger"))
SEED_BATCH = 1000


def cli_env(settings: Settings) -> dict[str, str]:
    """The environment a child process needs to open this test's store."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["AGENTLEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
        env["AGENTLEDGER_POSTGRES_SCHEMA"] = settings.postgres_schema
    return env


def start_cli(settings: Settings, *args: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [CLI, *args],
        env=cli_env(settings),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def serving(settings: Settings, workers: int = 1) -> Iterator[str]:
    """`agentledger serve` on a free port until the block ends; yields its base URL."""
    port = free_port()
    server = start_cli(settings, "serve", "--port", str(port), "--workers", str(workers))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/readyz"), timeout=60)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)


def seed_entries(rt: Runtime, project: str, count: int) -> None:
    """`count` progress entries on `project` (which the caller created), written straight to
    the log a thousand per transaction: what the entries projection follows, fast."""
    written = 0
    while written < count:
        ctx = EventContext(
            actor="agent:seed",
            trace_id=f"seed-{written}",
            causation="tests.seed",
            command_id=uuid4().hex,
            occurred_at=datetime.now(UTC),
        )
        entries = [
            LogEntry.append(
                ctx,
                project=project,
                agent_id="seed",
                session_id=uuid4(),
                message=f"seeded step {written + n}",
                metadata={"step": written + n},
            )
            for n in range(min(SEED_BATCH, count - written))
        ]
        events = [e for entry in entries for e in entry.collect_events()]
        rt.ledger.record_events(events, entries)
        written += len(entries)


def entry_rows(rt: Runtime) -> int:
    entries = rt.read_models["entries_v2"]
    with entries.reading() as cursor:
        cursor.execute(entries.sql("SELECT count(*) AS n FROM {entries}"))
        return int(cursor.fetchone()["n"])


def all_identical(rt: Runtime) -> None:
    """Every read model equals a replay of its projection from the log (`projections verify`)."""
    for runner in rt.runners.projections.values():
        result = check(rt.ledger, runner.worker.read_model, runner.worker.projection)
        assert result.identical, (result.name, result.shown)
