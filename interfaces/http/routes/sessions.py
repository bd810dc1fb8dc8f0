"""/v1/sessions: agent session leases."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.interfaces.http.call import CONSISTENT_WITH_HEADER, HttpCall
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.schemas import (
    EmptyBody,
    EndSession,
    HeartbeatOut,
    ListSessionsQuery,
    PatchSession,
    SessionOut,
    SessionPage,
    SessionWritten,
    StartSession,
    with_position,
)


def start_session(call: HttpCall) -> Response:
    body = call.body(StartSession)
    outcome = call.runtime.sessions.start(
        call.context(),
        agent_id=body.agent_id,
        ttl_seconds=body.ttl_seconds,
        pending=body.status == "pending",
        metadata=body.metadata,
        role=body.role,
    )
    session = outcome.value
    return call.written(
        outcome,
        with_position(SessionWritten, SessionOut.of(session), outcome.position),
        session.version,
        status=201,
        location=f"/v1/sessions/{session.id}",
    )


def list_sessions(call: HttpCall) -> Response:
    query = call.query(ListSessionsQuery)
    page = call.runtime.sessions.list(
        agent_id=query.agent_id,
        status=query.status,
        limit=query.limit,
        cursor=query.cursor,
        consistent_with=call.consistent_with(),
        include_archived=query.include_archived,
    )
    body = SessionPage(
        items=[SessionOut.of(s) for s in page.items],
        next_cursor=page.next_cursor,
        position=page.position,
    )
    return call.read(body, page.position)


def get_session(call: HttpCall) -> Response:
    read = call.runtime.sessions.get(
        call.path_uuid("session_id", "session"), consistent_with=call.consistent_with()
    )
    return call.read(SessionOut.of(read.value), read.position, read.value.version)


def patch_session(call: HttpCall) -> Response:
    body = call.body(PatchSession)
    outcome = call.runtime.sessions.update_metadata(
        call.context(),
        call.path_uuid("session_id", "session"),
        dict(body.metadata),
        precondition=call.if_match(),
    )
    return _written_session(call, outcome)


def heartbeat(call: HttpCall) -> Response:
    call.body(EmptyBody)
    outcome = call.runtime.sessions.heartbeat(
        call.context(),
        call.path_uuid("session_id", "session"),
        precondition=call.if_match(),
    )
    beat = outcome.value
    body = HeartbeatOut(
        **SessionOut.of(beat.session).model_dump(),
        position=outcome.position,
        expires_at=beat.session.lease_expires_at,
        renewed=beat.renewed,
    )
    return call.written(outcome, body, beat.session.version)


def activate(call: HttpCall) -> Response:
    call.body(EmptyBody)
    outcome = call.runtime.sessions.activate(
        call.context(),
        call.path_uuid("session_id", "session"),
        precondition=call.if_match(),
    )
    return _written_session(call, outcome)


def complete(call: HttpCall) -> Response:
    body = call.body(EndSession)
    outcome = call.runtime.sessions.complete(
        call.context(),
        call.path_uuid("session_id", "session"),
        reason=body.reason,
        precondition=call.if_match(),
    )
    return _written_session(call, outcome)


def fail(call: HttpCall) -> Response:
    body = call.body(EndSession)
    outcome = call.runtime.sessions.fail(
        call.context(),
        call.path_uuid("session_id", "session"),
        reason=body.reason,
        precondition=call.if_match(),
    )
    return _written_session(call, outcome)


def _written_session(call: HttpCall, outcome) -> Response:  # type: ignore[no-untyped-def]
    session = outcome.value
    body = with_position(SessionWritten, SessionOut.of(session), outcome.position)
    return call.written(outcome, body, session.version)


_WRITE_ERRORS = (400, 403, 404, 409, 412, 413, 415)
_ITEM = "/v1/sessions/{session_id}"

OPERATIONS = [
    Operation(
        "POST",
        "/v1/sessions",
        start_session,
        "Start a session (a lease) for an agent",
        body=StartSession,
        response=SessionWritten,
        status=201,
        errors=(400, 403, 413, 415),
        tags=("sessions",),
    ),
    Operation(
        "GET",
        "/v1/sessions",
        list_sessions,
        "List sessions, newest first",
        query=ListSessionsQuery,
        response=SessionPage,
        errors=(400,),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=("sessions",),
    ),
    Operation(
        "GET",
        _ITEM,
        get_session,
        "Get one session",
        response=SessionOut,
        errors=(400, 404),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=("sessions",),
    ),
    Operation(
        "PATCH",
        _ITEM,
        patch_session,
        "Merge-patch a session's metadata",
        body=PatchSession,
        body_required=True,
        response=SessionWritten,
        errors=_WRITE_ERRORS,
        headers=("If-Match",),
        tags=("sessions",),
    ),
    Operation(
        "POST",
        _ITEM + "/heartbeat",
        heartbeat,
        "Renew the lease (the agent itself)",
        body=EmptyBody,
        response=HeartbeatOut,
        errors=_WRITE_ERRORS,
        headers=("If-Match",),
        tags=("sessions",),
    ),
    Operation(
        "POST",
        _ITEM + "/activate",
        activate,
        "Pick up a pending session (the agent itself)",
        body=EmptyBody,
        response=SessionWritten,
        errors=_WRITE_ERRORS,
        headers=("If-Match",),
        tags=("sessions",),
    ),
    Operation(
        "POST",
        _ITEM + "/complete",
        complete,
        "End the session as completed",
        body=EndSession,
        response=SessionWritten,
        errors=_WRITE_ERRORS,
        headers=("If-Match",),
        tags=("sessions",),
    ),
    Operation(
        "POST",
        _ITEM + "/fail",
        fail,
        "End the session as failed",
        body=EndSession,
        response=SessionWritten,
        errors=_WRITE_ERRORS,
        headers=("If-Match",),
        tags=("sessions",),
    ),
]
