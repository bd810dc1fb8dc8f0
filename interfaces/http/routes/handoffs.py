"""/v1/work-items/{id}/handoff and /park: passing a claim on without letting it go."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.interfaces.http.call import FENCE_HEADER, IF_MATCH_HEADER, HttpCall
from agentledger.interfaces.http.handover_schemas import (
    DeclineBody,
    HandoffBody,
    ParkBody,
    SessionBody,
)
from agentledger.interfaces.http.routes.work_items import item_written
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.work_item_schemas import WorkItemWritten


def offer_handoff(call: HttpCall) -> Response:
    body = call.body(HandoffBody)
    outcome = call.runtime.work_items.offer(
        call.context(),
        call.path_uuid("id", "work item"),
        body.to_agent,
        fence=call.fence(),
        handover_id=body.handover_id,
        expires_in_seconds=body.expires_in_seconds,
        reason=body.reason,
        precondition=call.if_match(),
    )
    return item_written(call, outcome)


def accept_handoff(call: HttpCall) -> Response:
    body = call.body(SessionBody)
    outcome = call.runtime.work_items.accept(
        call.context(), call.path_uuid("id", "work item"), body.session_id
    )
    return item_written(call, outcome)


def decline_handoff(call: HttpCall) -> Response:
    body = call.body(DeclineBody)
    outcome = call.runtime.work_items.decline(
        call.context(), call.path_uuid("id", "work item"), body.reason
    )
    return item_written(call, outcome)


def park_claim(call: HttpCall) -> Response:
    body = call.body(ParkBody)
    outcome = call.runtime.work_items.park(
        call.context(),
        call.path_uuid("id", "work item"),
        fence=call.fence(),
        approval_id=body.approval_id,
        successor=body.successor,
        grace_seconds=body.grace_seconds,
        precondition=call.if_match(),
    )
    return item_written(call, outcome)


def resume_claim(call: HttpCall) -> Response:
    body = call.body(SessionBody)
    outcome = call.runtime.work_items.resume(
        call.context(), call.path_uuid("id", "work item"), body.session_id
    )
    return item_written(call, outcome)


_ITEM = "/v1/work-items/{id}"
_ERRORS = (400, 403, 404, 409, 413, 415)
_TAGS = ("work items",)
OPERATIONS = [
    Operation(
        "POST",
        _ITEM + "/handoff",
        offer_handoff,
        "Offer your claim to another agent (the holder, with its fence)",
        body=HandoffBody,
        body_required=True,
        response=WorkItemWritten,
        errors=(*_ERRORS, 412, 428),
        headers=(FENCE_HEADER, IF_MATCH_HEADER),
        tags=_TAGS,
    ),
    Operation(
        "POST",
        _ITEM + "/handoff/accept",
        accept_handoff,
        "Take an offered claim into a session of the agent named (a new fence)",
        body=SessionBody,
        body_required=True,
        response=WorkItemWritten,
        errors=_ERRORS,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        _ITEM + "/handoff/decline",
        decline_handoff,
        "Decline an offer (the agent named) or withdraw it (the offerer)",
        body=DeclineBody,
        response=WorkItemWritten,
        errors=_ERRORS,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        _ITEM + "/park",
        park_claim,
        "Park your claim while the item waits on an approval (the holder, with its fence)",
        body=ParkBody,
        response=WorkItemWritten,
        errors=(*_ERRORS, 412, 428),
        headers=(FENCE_HEADER, IF_MATCH_HEADER),
        tags=_TAGS,
    ),
    Operation(
        "POST",
        _ITEM + "/resume",
        resume_claim,
        "Resume a parked claim in a session of its agent or successor (a new fence)",
        body=SessionBody,
        body_required=True,
        response=WorkItemWritten,
        errors=_ERRORS,
        tags=_TAGS,
    ),
]
