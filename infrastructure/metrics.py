"""Counters for Prometheus, kept by `prometheus_client` in a registry of the product's own
(not the library's global one, which also collects the process' own metrics twice when
several apps share a process, as tests do)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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


def exposition() -> bytes:
    return generate_latest(REGISTRY)
