"""/v1/events and /v1/audit: the log read by reviewers (role auditor or admin)."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.application.audit import AuditFilter, require_auditor
from agentledger.application.errors import FieldError, InvalidRequest
from agentledger.application.seal import parse_published
from agentledger.interfaces.http.audit_schemas import (
    SCAN_PER_PAGE,
    AggregateHistory,
    AggregateStateOut,
    AuditEventOut,
    EventPage,
    EventsQuery,
    StateQuery,
    VerifyOut,
    VerifyQuery,
)
from agentledger.interfaces.http.call import HttpCall
from agentledger.interfaces.http.routing import Operation


def list_events(call: HttpCall) -> Response:
    require_auditor(call.principal)
    query = call.query(EventsQuery)
    criteria = AuditFilter(
        since=query.since,
        until=query.until,
        actor=query.actor,
        aggregate_id=query.aggregate_id,
        types=(query.type,) if query.type else (),
        trace_id=query.trace_id,
    )
    page = call.runtime.audit.page(criteria, query.after, query.limit, SCAN_PER_PAGE)
    body = EventPage(
        events=[AuditEventOut.of(r) for r in page.records],
        next_after=page.next_after,
        scanned_to=page.scanned_to,
    )
    return call.read(body, page.scanned_to)


def aggregate_history(call: HttpCall) -> Response:
    require_auditor(call.principal)
    aggregate_id = call.path_uuid("id", "aggregate")
    records = call.runtime.audit.history(aggregate_id)
    body = AggregateHistory(
        aggregate_id=aggregate_id, events=[AuditEventOut.of(r) for r in records]
    )
    return call.read(body, records[-1].position, records[-1].version)


def aggregate_state(call: HttpCall) -> Response:
    require_auditor(call.principal)
    query = call.query(StateQuery)
    if query.version is not None and query.at is not None:
        raise InvalidRequest(
            "give version or at, not both",
            [FieldError(("query", "at"), "not with version", "value_error")],
        )
    state = call.runtime.audit.state(
        call.path_uuid("id", "aggregate"), version=query.version, at=query.at
    )
    return call.read(AggregateStateOut.of(state), state.position, state.version)


def verify_log(call: HttpCall) -> Response:
    require_auditor(call.principal)
    query = call.query(VerifyQuery)
    published = None if query.checkpoint is None else parse_published(query.checkpoint)
    report = call.runtime.audit.verify(published)
    head = report.sealed_head
    return call.read(VerifyOut.of(report), head.position if head else 0)


_TAGS = ("audit",)
OPERATIONS = [
    Operation(
        "GET",
        "/v1/events",
        list_events,
        "The log as a timeline, in position order, filtered (auditor or admin)",
        query=EventsQuery,
        response=EventPage,
        errors=(400, 403),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/audit/aggregates/{id}/history",
        aggregate_history,
        "Every event of one aggregate, oldest first (auditor or admin)",
        response=AggregateHistory,
        errors=(403, 404),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/audit/aggregates/{id}/state",
        aggregate_state,
        "An aggregate's state as it was at a version or a time (auditor or admin)",
        query=StateQuery,
        response=AggregateStateOut,
        errors=(400, 403, 404),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/audit/verify",
        verify_log,
        "Recompute the seal's hash chain from the stored events (auditor or admin)",
        query=VerifyQuery,
        response=VerifyOut,
        errors=(400, 403),
        tags=_TAGS,
    ),
]
