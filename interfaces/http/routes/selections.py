"""/v1/agents/{agent_id}/project: each agent's current project, changed by version only."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.interfaces.http.call import CONSISTENT_WITH_HEADER, HttpCall
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.schemas import (
    SelectionOut,
    SelectionWritten,
    SelectProject,
    with_position,
)

_PATH = "/v1/agents/{agent_id}/project"


def get_selection(call: HttpCall) -> Response:
    read = call.runtime.selections.get(
        call.path("agent_id"), consistent_with=call.consistent_with()
    )
    return call.read(SelectionOut.of(read.value), read.position, read.value.version)


def put_selection(call: HttpCall) -> Response:
    body = call.body(SelectProject)
    outcome = call.runtime.selections.select(
        call.context(),
        call.path("agent_id"),
        body.project,
        body.session_id,
        call.precondition(),
    )
    selection = outcome.value
    return call.written(
        outcome,
        with_position(SelectionWritten, SelectionOut.of(selection), outcome.position),
        selection.version,
    )


def delete_selection(call: HttpCall) -> Response:
    outcome = call.runtime.selections.clear(
        call.context(), call.path("agent_id"), call.precondition()
    )
    selection = outcome.value
    return call.written(
        outcome,
        with_position(SelectionWritten, SelectionOut.of(selection), outcome.position),
        selection.version,
    )


OPERATIONS = [
    Operation(
        "GET",
        _PATH,
        get_selection,
        "The agent's current project (404 before its first selection)",
        response=SelectionOut,
        errors=(400, 404),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=("selections",),
    ),
    Operation(
        "PUT",
        _PATH,
        put_selection,
        "Switch the agent's project (If-Match or If-None-Match: * required)",
        body=SelectProject,
        body_required=True,
        response=SelectionWritten,
        errors=(400, 403, 404, 409, 412, 413, 415, 428),
        headers=("If-Match", "If-None-Match"),
        tags=("selections",),
    ),
    Operation(
        "DELETE",
        _PATH,
        delete_selection,
        "Clear the agent's project (If-Match required)",
        response=SelectionWritten,
        errors=(400, 403, 404, 412, 428),
        headers=("If-Match", "If-None-Match"),
        tags=("selections",),
    ),
]
