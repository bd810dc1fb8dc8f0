"""Progress log: /v1/projects/{name}/entries and /v1/entries (the caller's selected project)."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.application.entries import NewEntry
from agentledger.application.readmodels import EntryFilter
from agentledger.interfaces.http.call import CONSISTENT_WITH_HEADER, HttpCall
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.schemas import (
    AppendEntry,
    EntryOut,
    EntryPage,
    ListEntriesQuery,
)


def append_to_project(call: HttpCall) -> Response:
    return _append(call, call.path("name"))


def append_to_selected(call: HttpCall) -> Response:
    return _append(call, None)


def list_entries(call: HttpCall) -> Response:
    query = call.query(ListEntriesQuery, extra_prefix="meta.")
    where = EntryFilter(
        project=call.path("name"),
        agent_id=query.agent_id,
        status=query.status,
        since=query.since,
        until=query.until,
        text=query.q,
        metadata=call.meta_filters(),
        work_item_id=query.work_item_id,
    )
    page = call.runtime.entries.list(
        where, limit=query.limit, cursor=query.cursor, consistent_with=call.consistent_with()
    )
    body = EntryPage(
        items=[EntryOut.of(e) for e in page.items],
        next_cursor=page.next_cursor,
        position=page.position,
    )
    return call.read(body, page.position)


def _append(call: HttpCall, project: str | None) -> Response:
    body = call.body(AppendEntry)
    entry = NewEntry(
        message=body.message,
        session_id=body.session_id,
        status=body.status,
        metadata=dict(body.metadata),
        work_item_id=body.work_item_id,
    )
    outcome = call.runtime.entries.append(call.context(), project, entry)
    return call.written(outcome, EntryOut.of(outcome.value), 1, status=201)


_APPEND_ERRORS = (400, 403, 404, 409, 413, 415)

OPERATIONS = [
    Operation(
        "POST",
        "/v1/projects/{name}/entries",
        append_to_project,
        "Append a progress entry to a project",
        body=AppendEntry,
        body_required=True,
        response=EntryOut,
        status=201,
        errors=_APPEND_ERRORS,
        tags=("entries",),
    ),
    Operation(
        "POST",
        "/v1/entries",
        append_to_selected,
        "Append a progress entry to the caller's selected project",
        body=AppendEntry,
        body_required=True,
        response=EntryOut,
        status=201,
        errors=_APPEND_ERRORS,
        tags=("entries",),
    ),
    Operation(
        "GET",
        "/v1/projects/{name}/entries",
        list_entries,
        "A project's progress log, newest first (filters; meta.<key>=<value>)",
        query=ListEntriesQuery,
        response=EntryPage,
        errors=(400, 404),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=("entries",),
    ),
]
