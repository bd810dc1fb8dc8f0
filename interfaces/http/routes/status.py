"""/v1/projects/{name}/status: a project's status report, as JSON or markdown."""

from __future__ import annotations

from pydantic import Field
from starlette.responses import PlainTextResponse, Response

from agentledger.application.audit import require_auditor
from agentledger.application.errors import FieldError, InvalidRequest
from agentledger.application.status import render_markdown
from agentledger.interfaces.http.call import (
    ACCEPT_HEADER,
    CONSISTENT_WITH_HEADER,
    POSITION_HEADER,
    HttpCall,
)
from agentledger.interfaces.http.routing import JSON, Operation
from agentledger.interfaces.http.schemas import Query, ZonedTime
from agentledger.interfaces.http.work_item_schemas import StatusOut

MARKDOWN = "text/markdown"


def project_status(call: HttpCall) -> Response:
    return _status(call, markdown=MARKDOWN in (call.header(ACCEPT_HEADER) or ""))


def project_status_markdown(call: HttpCall) -> Response:
    return _status(call, markdown=True)


class StatusQuery(Query):
    as_of: ZonedTime | None = Field(
        default=None,
        description="The report as it was at this time (ISO 8601 with zone), rebuilt from the "
        "log: auditors and admins only.",
    )


def _status(call: HttpCall, *, markdown: bool) -> Response:
    query = call.query(StatusQuery)
    if query.as_of is None:
        read = call.runtime.status.report(call.path("name"), consistent_with=call.consistent_with())
    else:
        require_auditor(call.principal)
        if query.as_of > call.runtime.clock.now():
            raise InvalidRequest(
                "as_of is in the future",
                [FieldError(("query", "as_of"), "must not be in the future", "value_error")],
            )
        read = call.runtime.past_status.report(call.path("name"), query.as_of)
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
        query=StatusQuery,
        response=StatusOut,
        media=(JSON, MARKDOWN),
        errors=(400, 403, 404),
        headers=(CONSISTENT_WITH_HEADER, ACCEPT_HEADER),
        tags=("projects",),
    ),
    Operation(
        "GET",
        "/v1/projects/{name}/status.md",
        project_status_markdown,
        "A project's status report as markdown",
        query=StatusQuery,
        media=(MARKDOWN,),
        errors=(400, 403, 404),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=("projects",),
    ),
]
