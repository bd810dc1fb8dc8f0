"""/v1/approvals and /v1/work-items/{id}/approvals: people (or reviewer agents) gate work."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.application.approvals import NewApproval
from agentledger.application.readmodels import ApprovalFilter
from agentledger.interfaces.http.approval_schemas import (
    ApprovalOut,
    ApprovalPage,
    ApprovalRequested,
    ApprovalWritten,
    DecideApproval,
    ListApprovalsQuery,
    RequestApproval,
)
from agentledger.interfaces.http.call import (
    CONSISTENT_WITH_HEADER,
    FENCE_HEADER,
    IF_MATCH_HEADER,
    HttpCall,
)
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.schemas import with_position


def request_approval(call: HttpCall) -> Response:
    """If-Match names the item's version (the request is a write to the item, which then
    waits for the approval); the answer's ETag is the approval's."""
    body = call.body(RequestApproval)
    outcome = call.runtime.approvals.request(
        call.context(),
        call.path_uuid("id", "work item"),
        NewApproval(**body.model_dump()),
        fence=call.fence(),
        precondition=call.if_match(),
    )
    approval = outcome.value.approval
    return call.written(
        outcome,
        ApprovalRequested.of_request(outcome.value, outcome.position),
        approval.version,
        status=201,
        location=f"/v1/approvals/{approval.id}",
    )


def list_approvals(call: HttpCall) -> Response:
    query = call.query(ListApprovalsQuery)
    where = ApprovalFilter(**query.model_dump(exclude={"limit", "cursor"}))
    page = call.runtime.approvals.list(
        where, limit=query.limit, cursor=query.cursor, consistent_with=call.consistent_with()
    )
    body = ApprovalPage(
        items=[ApprovalOut.of(a) for a in page.items],
        next_cursor=page.next_cursor,
        position=page.position,
    )
    return call.read(body, page.position)


def get_approval(call: HttpCall) -> Response:
    approval_id = call.path_uuid("id", "approval")
    read = call.runtime.approvals.get(approval_id, consistent_with=call.consistent_with())
    return call.read(ApprovalOut.of(read.value), read.position, read.value.version)


def decide_approval(call: HttpCall) -> Response:
    body = call.body(DecideApproval)
    outcome = call.runtime.approvals.decide(
        call.context(), call.path_uuid("id", "approval"), body.decision, body.notes
    )
    approval = outcome.value
    body_out = with_position(ApprovalWritten, ApprovalOut.of(approval), outcome.position)
    return call.written(outcome, body_out, approval.version)


_TAGS = ("approvals",)
OPERATIONS = [
    Operation(
        "POST",
        "/v1/work-items/{id}/approvals",
        request_approval,
        "Request an approval: the item cannot be done until approver:<role> approves it",
        body=RequestApproval,
        body_required=True,
        response=ApprovalRequested,
        status=201,
        errors=(400, 403, 404, 409, 412, 413, 415, 428),
        headers=(FENCE_HEADER, IF_MATCH_HEADER),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/approvals",
        list_approvals,
        "The approval queue, oldest request first (filter by status, approver_role, item)",
        query=ListApprovalsQuery,
        response=ApprovalPage,
        errors=(400,),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/approvals/{id}",
        get_approval,
        "Get one approval with its decision",
        response=ApprovalOut,
        errors=(400, 404),
        headers=(CONSISTENT_WITH_HEADER,),
        tags=_TAGS,
    ),
    Operation(
        "POST",
        "/v1/approvals/{id}/decision",
        decide_approval,
        "Approve or reject (approver:<role>, never the requester; decided once)",
        body=DecideApproval,
        body_required=True,
        response=ApprovalWritten,
        errors=(400, 403, 404, 409, 413, 415),
        tags=_TAGS,
    ),
]
