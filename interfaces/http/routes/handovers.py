"""Handover documents: /v1/sessions/{id}/handover, /v1/handovers/{id}, an agent's latest and a
project's list."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.application.handovers import HandoverDraft
from agentledger.interfaces.http.call import CONSISTENT_WITH_HEADER, IF_MATCH_HEADER, HttpCall
from agentledger.interfaces.http.handover_schemas import (
    HandoverOut,
    HandoverPage,
    HandoversQuery,
    HandoverWritten,
    WriteHandover,
)
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.schemas import with_position


def write_handover(call: HttpCall) -> Response:
    body = call.body(WriteHandover)
    session_id = call.path_uuid("session_id", "session")
    outcome = call.runtime.handovers.write(
        call.context(), session_id, HandoverDraft(**body.model_dump()), call.if_match()
    )
    handover, new = outcome.value
    written = with_position(
        HandoverWritten,
        HandoverOut.model_validate(handover, from_attributes=True),
        outcome.position,
    )
    return call.written(
        outcome,
        written,
        handover.version,
        status=201 if new else 200,
        location=f"/v1/handovers/{handover.id}" if new else None,
    )


def get_handover(call: HttpCall) -> Response:
    read = call.runtime.handovers.get(
        call.path_uuid("handover_id", "handover"), consistent_with=call.consistent_with()
    )
    return _one(call, read.value, read.position)


def latest_handover(call: HttpCall) -> Response:
    read = call.runtime.handovers.latest(
        call.path("agent_id"), consistent_with=call.consistent_with()
    )
    return _one(call, read.value, read.position)


def project_handovers(call: HttpCall) -> Response:
    query = call.query(HandoversQuery)
    page = call.runtime.handovers.for_project(
        call.path("name"),
        limit=query.limit,
        cursor=query.cursor,
        consistent_with=call.consistent_with(),
    )
    body = HandoverPage(
        items=[HandoverOut.model_validate(h, from_attributes=True) for h in page.items],
        next_cursor=page.next_cursor,
        position=page.position,
    )
    return call.read(body, page.position)


def _one(call: HttpCall, handover: object, position: int) -> Response:
    out = HandoverOut.model_validate(handover, from_attributes=True)
    return call.read(out, position, out.version)


_READ = (CONSISTENT_WITH_HEADER,)
_TAGS = ("handovers",)
OPERATIONS = [
    Operation(
        "POST",
        "/v1/sessions/{session_id}/handover",
        write_handover,
        "Write (or revise) the session's handover document; stored with its checks' results",
        body=WriteHandover,
        body_required=True,
        response=HandoverWritten,
        status=201,
        also=(200,),
        errors=(400, 403, 404, 409, 412, 413, 415),
        headers=(IF_MATCH_HEADER,),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/handovers/{handover_id}",
        get_handover,
        "Get one handover document",
        response=HandoverOut,
        errors=(400, 404),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/agents/{agent_id}/handovers/latest",
        latest_handover,
        "The agent's latest handover document: what its next session reads first",
        response=HandoverOut,
        errors=(400, 404),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/projects/{name}/handovers",
        project_handovers,
        "A project's handover documents, newest first",
        query=HandoversQuery,
        response=HandoverPage,
        errors=(400,),
        headers=_READ,
        tags=_TAGS,
    ),
]
