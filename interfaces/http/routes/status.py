"""/v1/projects/{name}/status: a project's status report, as JSON or markdown."""

from __future__ import annotations

from starlette.responses import PlainTextResponse, Response

from agentledger.application.status import render_markdown
from agentledger.interfaces.http.call import (
    ACCEPT_HEADER,
    CONSISTENT_WITH_HEADER,
    POSITION_HEADER,
    HttpCall,
)
from agentledger.interfaces.http.routing import JSON, Operation
from agentledger.interfaces.http.work_item_schemas import StatusOut

MARKDOWN = "text/markdown"


def project_status(call: HttpCall) -> Response:
    return _status(call, markdown=MARKDOWN in (call.header(ACCEPT_HEADER) or ""))


def project_status_markdown(call: HttpCall) -> Response:
    return _status(call, markdown=True)


def _status(call: HttpCall, *, markdown: bool) -> Response:
    read = call.runtime.status.report(call.path("name"), consistent_with=call.consistent_with())
    if not markdown:
        return call.read(StatusOut.of(read.value, read.position), read.position)
    return PlainTextResponse(
        render_markdown(read.value),
        media_type=f"{MARKDOWN}; charset=utf-8",
        headers={POSITION_HEADER: str(read.position)},
    )


OPERATIONS = [
    Operation(
        "GET",
        "/v1/projects/{name}/status",
        project_status,
        "A project's status report (JSON; markdown with Accept: text/markdown)",
        response=StatusOut,
        media=(JSON, MARKDOWN),
        errors=(400, 404),
        headers=(CONSISTENT_WITH_HEADER, ACCEPT_HEADER),
        tags=("projects",),
    ),
    Operation(
        "GET",
        "/v1/projects/{name}/status.md",
        project_status_markdown,
        "A project's status report as markdown",
        media=(MARKDOWN,),
        errors=(400, 404),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=("projects",),
    ),
]
