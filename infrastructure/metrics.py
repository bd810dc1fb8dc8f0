"""Counters for Prometheus, kept by `prometheus_client` in a registry of the product's own
(not the library's global one, which also collects the process' own metrics twice when
several apps share a process, as tests do)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from eventsourcing.persistence import ConnectionPool as LibraryPool
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from psycopg_pool import ConnectionPool as PsycopgPool

from agentledger.domain.sessions import SessionStatus
from agentledger.infrastructure.readmodels.sessions import SessionsReadModel
from agentledger.infrastructure.runners.status import RunnerStatus

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST

UNAUTHENTICATED = Counter(
    "agentledger_unauthenticated_requests",
    "Requests answered 401: no token, or one that is unknown or revoked (not recorded in the log).",
    registry=REGISTRY,
)
REFUSED_COMMANDS = Counter(
    "agentledger_refused_commands",
    "Commands refused (403, 409, 412, 422 by a rule, 428) and recorded in the log, by problem.",
    ["problem"],
    registry=REGISTRY,
)
EDGE_REFUSALS = Counter(
    "agentledger_http_edge_refusals",
    "Connections the HTTP edge refused or closed before the application saw a request, by "
    "reason: url-too-long (414), too-many-headers and headers-too-large (431), header-timeout "
    "and body-timeout (408), idle-timeout (closed, nothing to answer), evicted-idle (closed to "
    "make room at the connection cap), over-capacity (503).",
    ["reason"],
    registry=REGISTRY,
)
REFUSALS_NOT_RECORDED = Counter(
    "agentledger_refusals_not_recorded",
    "Refusals answered but not written to the log because the store failed at that moment.",
    registry=REGISTRY,
)

# Labels take bounded values only: operationIds, the application's command names and problem
# slugs are fixed sets (never ids or free text, each of which would make a series).
COMMANDS = Counter(
    "agentledger_commands",
    "Authenticated writes answered, by operationId and outcome: accepted, or refused:<problem "
    "type> for a 4xx. Replays of an Idempotency-Key and 5xx answers are not counted.",
    ["command", "outcome"],
    registry=REGISTRY,
)
CONFLICT_RETRIES = Counter(
    "agentledger_command_conflict_retries",
    "Commands re-run against fresh state after losing an optimistic-concurrency conflict, by "
    "the application's command name.",
    ["command"],
    registry=REGISTRY,
)
GROUP_COMMIT_BATCH_SIZE = Histogram(
    "agentledger_group_commit_batch_size",
    "Commands held by each transaction group commit wrote (1: a command written alone).",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
STORE_POOL = Gauge(
    "agentledger_store_pool_connections",
    "The event log's connection pool when scraped: in_use, idle, and max (the most it opens). "
    "On SQLite the library's pool of file connections, where writers still take turns.",
    ["state"],
    registry=REGISTRY,
)
SESSIONS_ACTIVE = Gauge(
    "agentledger_sessions_active",
    "Sessions active with an unlapsed lease, as the sessions read model has them when scraped.",
    registry=REGISTRY,
)

HTTP_REQUESTS = Histogram(
    "agentledger_http_request_duration_seconds",
    "HTTP requests by method, route template and status, with the time the server spent.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
RUNNER_POSITION = Gauge(
    "agentledger_projection_position",
    "The log position each projection, the seal and each policy has processed.",
    ["name", "kind"],
    registry=REGISTRY,
)
RUNNER_LAG = Gauge(
    "agentledger_projection_lag_events",
    "Events between each runner's position and the head of the log.",
    ["name", "kind"],
    registry=REGISTRY,
)
RUNNER_STATE = Gauge(
    "agentledger_projection_state",
    "1 for each runner's current state (catching-up, running, rebuilding, faulted, standby, "
    "stopped), else 0.",
    ["name", "state"],
    registry=REGISTRY,
)
RUNNER_STATES = ("catching-up", "running", "rebuilding", "faulted", "standby", "stopped")
RUNNER_LAG_SECONDS = Gauge(
    "agentledger_projection_lag_seconds",
    "Age of the oldest event each runner has not processed yet (0 when caught up).",
    ["name", "kind"],
    registry=REGISTRY,
)
RUNNER_FAULTED_AT = Gauge(
    "agentledger_projection_faulted_at",
    "The position of the event a faulted projection's handler fails on (0: not faulted).",
    ["name"],
    registry=REGISTRY,
)


def observe_runners(statuses: Iterable[RunnerStatus]) -> None:
    """Set the runners' gauges from their status, when the metrics are scraped."""
    for status in statuses:
        RUNNER_POSITION.labels(status.name, status.kind).set(status.position)
        RUNNER_LAG.labels(status.name, status.kind).set(status.lag)
        RUNNER_LAG_SECONDS.labels(status.name, status.kind).set(status.lag_seconds or 0.0)
        RUNNER_FAULTED_AT.labels(status.name).set(status.faulted_at or 0)
        for state in RUNNER_STATES:
            RUNNER_STATE.labels(status.name, state).set(1 if status.state == state else 0)


def count_command(command: str, refused_as: str | None) -> None:
    """One command answered: accepted, or refused with the problem type's slug."""
    outcome = "accepted" if refused_as is None else f"refused:{refused_as}"
    COMMANDS.labels(command, outcome).inc()


def count_conflict_retry(command: str) -> None:
    CONFLICT_RETRIES.labels(command).inc()


def observe_batch_size(commands: int) -> None:
    GROUP_COMMIT_BATCH_SIZE.observe(commands)


def observe_store_pool(recorder: object) -> None:
    """Set the pool gauges from the log's recorder's datastore, when the metrics are scraped
    (a recorder without a known pool leaves them unset)."""
    pool = getattr(getattr(recorder, "datastore", None), "pool", None)
    if isinstance(pool, PsycopgPool):
        stats = pool.get_stats()
        idle = stats["pool_available"]
        in_use, most = stats["pool_size"] - idle, stats["pool_max"]
    elif isinstance(pool, LibraryPool):
        idle, in_use, most = pool.num_in_pool, pool.num_in_use, pool.pool_size + pool.max_overflow
    else:
        return
    STORE_POOL.labels("in_use").set(in_use)
    STORE_POOL.labels("idle").set(idle)
    STORE_POOL.labels("max").set(most)


def observe_sessions(sessions: SessionsReadModel, now: datetime) -> None:
    SESSIONS_ACTIVE.set(sessions.count(SessionStatus.ACTIVE, now))


def exposition() -> bytes:
    return generate_latest(REGISTRY)
