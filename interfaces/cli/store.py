"""How a CLI command reaches the store: the configured runtime, and who the operator is."""

from __future__ import annotations

import getpass
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


@contextmanager
def runtime() -> Iterator[Runtime]:
    rt = open_runtime()
    try:
        yield rt
    except (ApplicationError, DomainError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        rt.close()


def open_runtime() -> Runtime:
    """Open the configured store, turning configuration and connection failures into one
    clear line (exit 1) rather than a traceback."""
    try:
        return build_runtime(Settings())
    except (ValidationError, OSError, psycopg.Error, PersistenceError) as exc:
        raise click.ClickException(f"cannot open the store: {exc}") from None


def operator(trace: str) -> RequestContext:
    return RequestContext(local_operator(getpass.getuser()), f"cli-{trace}-{uuid.uuid4().hex[:16]}")
