"""How a CLI command reaches the store: the configured runtime, and who the operator is."""

from __future__ import annotations

import getpass
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import click
import psycopg
from eventsourcing.persistence import PersistenceError
from pydantic import ValidationError

from agentledger.application.context import RequestContext, local_operator
from agentledger.application.errors import ApplicationError
from agentledger.domain.errors import DomainError
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.infrastructure.store_problems import StoreProblem, check_writable, explain


@contextmanager
def runtime(*, writable: bool = False) -> Iterator[Runtime]:
    rt = open_runtime(writable=writable)
    try:
        yield rt
    except (ApplicationError, DomainError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        rt.close()


def open_runtime(*, writable: bool = False) -> Runtime:
    """Open the configured store (`writable`: and check that it takes writes, as the
    commands that run the service need), turning every store problem into one clear line,
    what is wrong and what to do, and exit 1 rather than a traceback (`--debug` shows it)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise click.ClickException(f"cannot open the store: {exc}") from None
    try:
        if writable:
            check_writable(settings)
        return build_runtime(settings)
    except (
        OSError,
        ValueError,
        sqlite3.Error,
        psycopg.Error,
        PersistenceError,
        StoreProblem,
    ) as exc:
        if debugging():
            raise
        raise click.ClickException(explain(exc, settings)) from None


def debugging() -> bool:
    """`agentledger --debug …`: tracebacks instead of one-line errors."""
    context = click.get_current_context(silent=True)
    root = context.find_root() if context is not None else None
    return bool(root is not None and (root.obj or {}).get("debug"))


def operator(trace: str) -> RequestContext:
    return RequestContext(local_operator(getpass.getuser()), f"cli-{trace}-{uuid.uuid4().hex[:16]}")
