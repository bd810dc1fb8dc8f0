"""Counters for Prometheus, kept by `prometheus_client` in a registry of the product's own
(not the library's global one, which also collects the process' own metrics twice when
several apps share a process, as tests do)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
REFUSALS_NOT_RECORDED = Counter(
    "agentledger_refusals_not_recorded",
    "Refusals answered but not written to the log because the store failed at that moment.",
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
    "1 for each runner's current state (running, standby, failed, stopped), else 0.",
    ["name", "state"],
    registry=REGISTRY,
)
RUNNER_STATES = ("running", "standby", "failed", "stopped")


def observe_runners(statuses: Iterable[RunnerStatus]) -> None:
    """Set the runners' gauges from their status, when the metrics are scraped."""
    for status in statuses:
        RUNNER_POSITION.labels(status.name, status.kind).set(status.position)
        RUNNER_LAG.labels(status.name, status.kind).set(status.lag)
        for state in RUNNER_STATES:
            RUNNER_STATE.labels(status.name, state).set(1 if status.state == state else 0)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
