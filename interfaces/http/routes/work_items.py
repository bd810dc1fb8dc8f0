"""/v1/work-items: the plan's items, their claims and structure; the ready queue."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.application.commands import Outcome
from agentledger.application.readmodels import WorkItemFilter
from agentledger.application.work_items import NewWorkItem, WorkItemView
from agentledger.interfaces.http.call import (
    CONSISTENT_WITH_HEADER,
    FENCE_HEADER,
    IF_MATCH_HEADER,
    HttpCall,
)
from agentledger.interfaces.http.routing import Handler, Operation
from agentledger.interfaces.http.schemas import EmptyBody, with_position
from agentledger.interfaces.http.work_item_schemas import (
    ClaimBody,
    ClaimNextBody,
    CreateWorkItem,
    DependenciesOut,
    GetWorkItemQuery,
    ListWorkItemsQuery,
    PatchWorkItem,
    ReadinessOut,
    ReadyOut,
    ReadyQuery,
    Transition,
    WorkItemDetail,
    WorkItemOut,
    WorkItemPage,
    WorkItemWritten,
)

_ITEM = "/v1/work-items/{id}"


def item_written(call: HttpCall, outcome: Outcome[WorkItemView], status: int = 200) -> Response:
    item = outcome.value
    body = with_position(WorkItemWritten, WorkItemOut.of(item), outcome.position)
    location = f"/v1/work-items/{item.id}" if status == 201 else None
    return call.written(outcome, body, item.version, status=status, location=location)


def create_item(call: HttpCall) -> Response:
    body = call.body(CreateWorkItem)
    new = NewWorkItem(**body.model_dump())
    return item_written(call, call.runtime.work_items.create(call.context(), new), 201)


def list_items(call: HttpCall) -> Response:
    query = call.query(ListWorkItemsQuery)
    where = WorkItemFilter(
        **query.model_dump(exclude={"limit", "cursor"}),
    )
    page = call.runtime.work_items.list(
        where, limit=query.limit, cursor=query.cursor, consistent_with=call.consistent_with()
    )
    body = WorkItemPage(
        items=[WorkItemOut.of(v, with_claim=False) for v in page.items],
        next_cursor=page.next_cursor,
        position=page.position,
    )
    return call.read(body, page.position)


def get_item(call: HttpCall) -> Response:
    include = call.query(GetWorkItemQuery).parts()
    item_id = call.path_uuid("id", "work item")
    read = call.runtime.item_status.get(item_id, include, consistent_with=call.consistent_with())
    body = WorkItemDetail.of_status(read.value, include)
    return call.read(body, read.position, read.value.detail.item.version)


def patch_item(call: HttpCall) -> Response:
    body = call.body(PatchWorkItem)
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    outcome = call.runtime.work_items.update(
        call.context(),
        call.path_uuid("id", "work item"),
        changes,
        precondition=call.if_match(),
        fence=call.fence(),
    )
    return item_written(call, outcome)


def transition_item(call: HttpCall) -> Response:
    body = call.body(Transition)
    outcome = call.runtime.work_items.transition(
        call.context(),
        call.path_uuid("id", "work item"),
        body.to,
        body.reason,
        fence=call.fence(),
        precondition=call.if_match(),
    )
    return item_written(call, outcome)


def claim_item(call: HttpCall) -> Response:
    body = call.body(ClaimBody)
    outcome = call.runtime.work_items.claim(
        call.context(),
        call.path_uuid("id", "work item"),
        body.session_id,
        precondition=call.if_match(),
    )
    return item_written(call, outcome)


def claim_next(call: HttpCall) -> Response:
    body = call.body(ClaimNextBody)
    outcome = call.runtime.work_items.claim_next(
        call.context(), body.session_id, project=body.project, kind=body.kind, to_role=body.to_role
    )
    if outcome is None:
        return Response(status_code=204)
    return item_written(call, outcome, 201)


def _fenced(action: str) -> Handler:
    """A bodiless command on one item under the caller's fence: release, archive, unarchive."""

    def handler(call: HttpCall) -> Response:
        call.body(EmptyBody)
        command = getattr(call.runtime.work_items, action)
        outcome = command(
            call.context(),
            call.path_uuid("id", "work item"),
            fence=call.fence(),
            precondition=call.if_match(),
        )
        return item_written(call, outcome)

    handler.__name__ = f"{action}_item"
    return handler


release_item = _fenced("release")
archive_item = _fenced("archive")
unarchive_item = _fenced("unarchive")


def put_dependency(call: HttpCall) -> Response:
    """If-Match and the ETag name the version of the item `{id}` (which waits): a dependency
    edit requires the item as the client saw it, and leaves its version as it is."""
    call.body(EmptyBody)
    outcome = call.runtime.work_items.add_dependency(
        call.context(),
        call.path_uuid("id", "work item"),
        call.path_uuid("other_id", "work item"),
        fence=call.fence(),
        precondition=call.if_match(),
    )
    body = DependenciesOut.of(outcome.value, outcome.position)
    status = 201 if outcome.value.changed else 200
    return call.written(outcome, body, outcome.value.version, status=status)


def delete_dependency(call: HttpCall) -> Response:
    """If-Match and the ETag name the version of the item `{id}`, as for PUT."""
    outcome = call.runtime.work_items.remove_dependency(
        call.context(),
        call.path_uuid("id", "work item"),
        call.path_uuid("other_id", "work item"),
        fence=call.fence(),
        precondition=call.if_match(),
    )
    body = DependenciesOut.of(outcome.value, outcome.position)
    return call.written(outcome, body, outcome.value.version)


def ready_queue(call: HttpCall) -> Response:
    query = call.query(ReadyQuery)
    work_items = call.runtime.work_items
    read = work_items.ready(
        project=query.project,
        kind=query.kind,
        to_role=query.to_role,
        roles=work_items.visible_roles(call.principal, query.session_id),
        limit=query.limit,
        consistent_with=call.consistent_with(),
    )
    body = ReadyOut(items=[WorkItemOut.of(v) for v in read.value], position=read.position)
    return call.read(body, read.position)


def item_readiness(call: HttpCall) -> Response:
    item_id = call.path_uuid("id", "work item")
    read = call.runtime.work_items.readiness(item_id, consistent_with=call.consistent_with())
    return call.read(ReadinessOut.of(item_id, read.value.readiness, read.position), read.position)


_READ = (CONSISTENT_WITH_HEADER,)
_WRITE = (FENCE_HEADER, IF_MATCH_HEADER)
_TAGS = ("work items",)
OPERATIONS = [
    Operation(
        "POST",
        "/v1/work-items",
        create_item,
        "Create a work item (under a parent: at most 5 levels below a root)",
        body=CreateWorkItem,
        body_required=True,
        response=WorkItemWritten,
        status=201,
        errors=(400, 403, 404, 409, 413, 415),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/work-items",
        list_items,
        "List work items, oldest first",
        query=ListWorkItemsQuery,
        response=WorkItemPage,
        errors=(400,),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/work-items/ready",
        ready_queue,
        "The ready queue: open, unclaimed, not archived, every dependency done",
        query=ReadyQuery,
        response=ReadyOut,
        errors=(400, 404),  # 404: the session_id named is not a session
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        "/v1/work-items/claim-next",
        claim_next,
        "Claim the best ready item (201), or 204 when nothing is ready",
        body=ClaimNextBody,
        body_required=True,
        response=WorkItemWritten,
        status=201,
        also=(204,),
        errors=(400, 403, 404, 409, 413, 415),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        _ITEM,
        get_item,
        "Get a work item (include=ancestors,children,descendants,dependencies,dependents,claim)",
        query=GetWorkItemQuery,
        response=WorkItemDetail,
        errors=(400, 404),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "PATCH",
        _ITEM,
        patch_item,
        "Edit a work item or move it (If-Match required; holders send their fence)",
        body=PatchWorkItem,
        body_required=True,
        response=WorkItemWritten,
        errors=(400, 403, 404, 409, 412, 413, 415, 428),
        headers=_WRITE,
        required_headers=(IF_MATCH_HEADER,),
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{_ITEM}/transition",
        transition_item,
        "Move a work item along its lifecycle (409 lists the allowed targets)",
        body=Transition,
        body_required=True,
        response=WorkItemWritten,
        errors=(400, 403, 404, 409, 412, 413, 415, 428),
        headers=_WRITE,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{_ITEM}/claim",
        claim_item,
        "Claim a work item for a session: held while the session's lease lives",
        body=ClaimBody,
        body_required=True,
        response=WorkItemWritten,
        errors=(400, 403, 404, 409, 412, 413, 415),
        headers=(IF_MATCH_HEADER,),
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{_ITEM}/release",
        release_item,
        "Give a claim back (the holder with its fence, or a coordinator)",
        body=EmptyBody,
        response=WorkItemWritten,
        errors=(400, 403, 404, 409, 412, 413, 415, 428),
        headers=_WRITE,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{_ITEM}/archive",
        archive_item,
        "Archive a work item (nothing is deleted)",
        body=EmptyBody,
        response=WorkItemWritten,
        errors=(400, 403, 404, 409, 412, 413, 415, 428),
        headers=_WRITE,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        f"{_ITEM}/unarchive",
        unarchive_item,
        "Bring an archived work item back",
        body=EmptyBody,
        response=WorkItemWritten,
        errors=(400, 403, 404, 409, 412, 413, 415, 428),
        headers=_WRITE,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        f"{_ITEM}/readiness",
        item_readiness,
        "Whether a work item is ready, and every reason it is not",
        response=ReadinessOut,
        errors=(400, 404),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "PUT",
        f"{_ITEM}/dependencies/{{other_id}}",
        put_dependency,
        "The item waits for other_id (201 added, 200 already there; 409 on a cycle)",
        body=EmptyBody,
        response=DependenciesOut,
        status=201,
        also=(200,),
        errors=(400, 403, 404, 409, 412, 413, 415, 428),
        headers=_WRITE,
        tags=_TAGS,
    ),
    Operation(
        "DELETE",
        f"{_ITEM}/dependencies/{{other_id}}",
        delete_dependency,
        "The item no longer waits for other_id",
        response=DependenciesOut,
        errors=(400, 403, 404, 409, 412, 428),
        headers=_WRITE,
        tags=_TAGS,
    ),
]
