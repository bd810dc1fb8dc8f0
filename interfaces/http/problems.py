"""RFC 9457 problem details: the one table from error classes to HTTP statuses and problem types.

An error is looked up along its class hierarchy (its MRO, as Starlette looks up exception
handlers), so a subclass answers as its nearest listed ancestor unless it has a row of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from agentledger.application.errors import (
    BodyTooLarge,
    ConcurrencyConflict,
    FieldError,
    Forbidden,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidFence,
    InvalidIdempotencyKey,
    InvalidPosition,
    InvalidPrecondition,
    InvalidRequest,
    MalformedJson,
    NoProjectSelected,
    NoRecipients,
    NotCaughtUp,
    NotFound,
    PreconditionFailed,
    PreconditionRequired,
    ProjectExists,
    ReadModelBuilding,
    StoreUnavailable,
    TooManyWaiters,
    Unauthenticated,
    UnsupportedMediaType,
)
from agentledger.domain.errors import (
    AlreadyClaimed,
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalPending,
    ApprovalRequired,
    ClaimLost,
    ClaimParked,
    CrossProject,
    DependencyCycle,
    DepthExceeded,
    DomainError,
    FenceRequired,
    HandoffForAnother,
    HandoffPending,
    HandoverIncomplete,
    InvalidTransition,
    InvalidValue,
    ItemArchived,
    LeaseLapsed,
    NoHandoffOffered,
    NoPendingApproval,
    ProjectArchived,
    RoleRequired,
    SelfApproval,
    SessionNotActive,
    SessionNotOwned,
    SessionTerminated,
    TokenRevoked,
)
from agentledger.domain.messages import AckNotRequired, AlreadyMarked, NotARecipient
from agentledger.infrastructure.store_errors import is_store_outage

PROBLEM_BASE = "https://agentledger.dev/problems/"
PROBLEM_JSON = "application/problem+json"
RETRY_SOON = {"Retry-After": "1"}
log = logging.getLogger("agentledger.http")

Fields = Callable[[Any], dict[str, Any]]


def _no_fields(_exc: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ProblemType:
    """How one kind of error answers: status, type slug, title (the same for every occurrence,
    as RFC 9457 asks), the members it adds to the body and the headers it sends."""

    status: int
    slug: str
    title: str
    fields: Fields = _no_fields
    headers: Mapping[str, str] = field(default_factory=dict)
    # Headers that depend on the occurrence (e.g. how long to wait before retrying).
    headers_of: Callable[[Any], Mapping[str, str]] | None = None


def validation_fields(errors: Sequence[FieldError]) -> dict[str, Any]:
    """The `errors` member of every validation problem: one entry per wrong input."""
    return {"errors": [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in errors]}


def _invalid_value_fields(exc: InvalidValue) -> dict[str, Any]:
    loc = ("body", exc.field) if exc.field else ("body",)
    return validation_fields([FieldError(loc, str(exc), "value_error")])


def _precondition_failed_fields(exc: PreconditionFailed) -> dict[str, Any]:
    expected = {} if exc.expected is None else {"expected_version": exc.expected}
    return {"current_version": exc.current, **expected, **exc.details}


def _utc(moment: Any) -> str:
    return str(moment.isoformat()).replace("+00:00", "Z")


PROBLEM_TYPES: dict[type[Exception], ProblemType] = {
    # --- the request itself
    InvalidRequest: ProblemType(
        422, "validation-error", "Invalid request", lambda e: validation_fields(e.errors)
    ),
    InvalidValue: ProblemType(422, "validation-error", "Invalid request", _invalid_value_fields),
    MalformedJson: ProblemType(400, "malformed-json", "Malformed JSON"),
    UnsupportedMediaType: ProblemType(415, "unsupported-media-type", "Unsupported media type"),
    BodyTooLarge: ProblemType(413, "body-too-large", "Request body too large"),
    InvalidPrecondition: ProblemType(400, "invalid-precondition", "Invalid precondition"),
    InvalidPosition: ProblemType(400, "invalid-position", "Invalid position"),
    InvalidFence: ProblemType(400, "invalid-fence", "Invalid fence"),
    InvalidCursor: ProblemType(400, "invalid-cursor", "Invalid cursor"),
    InvalidIdempotencyKey: ProblemType(400, "invalid-idempotency-key", "Invalid Idempotency-Key"),
    IdempotencyKeyReused: ProblemType(422, "idempotency-key-reused", "Idempotency-Key reused"),
    IdempotencyInProgress: ProblemType(
        409,
        "idempotency-request-in-progress",
        "A request with this Idempotency-Key is in progress",
        headers_of=lambda e: {"Retry-After": str(e.retry_after)},
    ),
    # --- who is asking
    Unauthenticated: ProblemType(
        401,
        "unauthenticated",
        "Authentication required",
        headers={"WWW-Authenticate": 'Bearer realm="agentledger"'},
    ),
    Forbidden: ProblemType(403, "forbidden", "Not allowed"),
    RoleRequired: ProblemType(
        403,
        "role-required",
        "Routed to another role",
        lambda e: {"item_id": e.item_id, "to_role": e.to_role, "session_role": e.session_role},
    ),
    SelfApproval: ProblemType(
        403,
        "separation-of-duties",
        "The requester cannot decide its own approval",
        lambda e: {"approval_id": e.approval_id, "requested_by": e.requester},
    ),
    # --- what it asks about
    NotFound: ProblemType(404, "not-found", "No such resource", lambda e: {"resource": e.kind}),
    PreconditionFailed: ProblemType(
        412, "version-mismatch", "Version does not match", _precondition_failed_fields
    ),
    PreconditionRequired: ProblemType(428, "precondition-required", "Precondition required"),
    FenceRequired: ProblemType(
        428, "fence-required", "Fence required", lambda e: {"item_id": e.item_id}
    ),
    CrossProject: ProblemType(422, "cross-project", "Link across projects"),
    # --- the state refuses it
    ProjectExists: ProblemType(
        409, "project-exists", "Project exists", lambda e: {"project": e.name}
    ),
    NoProjectSelected: ProblemType(
        409, "no-project-selected", "No project selected", lambda e: {"agent_id": e.agent_id}
    ),
    ProjectArchived: ProblemType(
        409, "project-archived", "Project archived", lambda e: {"project": e.name}
    ),
    AlreadyClaimed: ProblemType(
        409,
        "already-claimed",
        "Already claimed",
        lambda e: {
            "holder": {"agent_id": e.holder_agent, "session_id": str(e.holder_session)},
            "expires_at": _utc(e.expires_at),
        },
    ),
    ClaimLost: ProblemType(
        409,
        "claim-lost",
        "Claim lost",
        lambda e: {"presented_fence": e.presented, "current_fence": e.current},
    ),
    DependencyCycle: ProblemType(
        409, "dependency-cycle", "Dependency cycle", lambda e: {"cycle": [str(i) for i in e.path]}
    ),
    DepthExceeded: ProblemType(
        409,
        "depth-exceeded",
        "Too deep",
        lambda e: {"depth": e.depth, "max_depth": e.max_depth},
    ),
    ItemArchived: ProblemType(409, "item-archived", "Work item archived"),
    SessionNotActive: ProblemType(
        409, "session-not-active", "Session not active", lambda e: {"session_id": e.session_id}
    ),
    SessionNotOwned: ProblemType(
        409,
        "session-not-owned",
        "Session belongs to another agent",
        lambda e: {"session_id": e.session_id, "owner": e.owner},
    ),
    LeaseLapsed: ProblemType(
        409,
        "session-expired",
        "Session lease has lapsed",
        lambda e: {"session_id": e.session_id, "expired_at": e.expired_at},
    ),
    SessionTerminated: ProblemType(
        409, "session-terminated", "Session has ended", lambda e: {"current_status": e.current}
    ),
    InvalidTransition: ProblemType(
        409,
        "invalid-transition",
        "Transition not allowed",
        lambda e: {"current_status": e.current, "allowed": list(e.allowed)},
    ),
    TokenRevoked: ProblemType(409, "token-revoked", "Token already revoked"),
    ApprovalAlreadyDecided: ProblemType(
        409,
        "approval-already-decided",
        "Approval already decided",
        lambda e: {
            "approval_id": e.approval_id,
            "decision": e.decision,
            "decided_by": e.decided_by,
        },
    ),
    ApprovalExpired: ProblemType(
        409,
        "approval-expired",
        "Approval expired",
        lambda e: {"approval_id": e.approval_id, "expired_at": _utc(e.expired_at)},
    ),
    ApprovalRequired: ProblemType(
        409,
        "approval-required",
        "Approval required",
        lambda e: {
            "approvals": [
                {"id": i, "approver_role": role, "status": status}
                for i, role, status in e.approvals
            ]
        },
    ),
    NoRecipients: ProblemType(409, "no-recipients", "Nobody to send to", lambda e: {"to": e.to}),
    AlreadyMarked: ProblemType(
        409, "already-marked", "Already read or acknowledged", lambda e: {"marked": e.what}
    ),
    AckNotRequired: ProblemType(409, "ack-not-required", "No acknowledgement asked for"),
    NotARecipient: ProblemType(403, "not-a-recipient", "Not a recipient"),
    TooManyWaiters: ProblemType(
        503, "too-many-waiters", "Too many long-polls waiting", headers=RETRY_SOON
    ),
    HandoffPending: ProblemType(
        409,
        "handoff-pending",
        "Offered to another agent",
        lambda e: {"offered_to": e.to_agent, "expires_at": _utc(e.expires_at)},
    ),
    NoHandoffOffered: ProblemType(409, "no-handoff-offered", "No open handoff offer"),
    HandoffForAnother: ProblemType(
        403,
        "handoff-for-another-agent",
        "Offered to another agent",
        lambda e: {"offered_to": e.to_agent},
    ),
    ClaimParked: ProblemType(
        409,
        "claim-parked",
        "Claim parked",
        lambda e: {"agent_id": e.agent_id, "successor": e.successor},
    ),
    ApprovalPending: ProblemType(
        409,
        "approval-pending",
        "Approval still pending",
        lambda e: {"approval_id": str(e.approval_id)},
    ),
    NoPendingApproval: ProblemType(409, "no-pending-approval", "Nothing to park on"),
    HandoverIncomplete: ProblemType(
        409,
        "handover-incomplete",
        "Handover document failed its checks",
        lambda e: {"handover_id": str(e.handover_id), "failed_rules": e.failed},
    ),
    ConcurrencyConflict: ProblemType(409, "concurrency-conflict", "Concurrent update"),
    DomainError: ProblemType(409, "conflict", "Not allowed in the current state"),
    # --- the service could not answer
    NotCaughtUp: ProblemType(
        503,
        "not-caught-up",
        "Read model not caught up yet",
        lambda e: {"position": e.reached, "wanted_position": e.wanted},
        headers=RETRY_SOON,
    ),
    StoreUnavailable: ProblemType(
        503, "store-unavailable", "Event store unavailable", headers=RETRY_SOON
    ),
    ReadModelBuilding: ProblemType(
        503,
        "read-model-building",
        "Read model being built",
        lambda e: {"read_models": e.names},
        headers=RETRY_SOON,
    ),
}
INTERNAL = ProblemType(500, "internal-error", "Internal server error")


def problem_type_of(exc: BaseException) -> ProblemType | None:
    """The row of the nearest class in `exc`'s hierarchy that has one."""
    return next((PROBLEM_TYPES[c] for c in type(exc).__mro__ if c in PROBLEM_TYPES), None)


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    request: Request | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
        trace_id = getattr(request.state, "trace_id", None)
        if trace_id:
            body["trace_id"] = trace_id
    body.update(extra)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON
    )


def to_problem(request: Request, exc: Exception) -> JSONResponse:
    """Map any exception to a problem. Unknown ones are ours: 500, logged, no internals leaked."""
    kind = problem_type_of(exc)
    if kind is None and is_store_outage(exc):
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
        exc = StoreUnavailable()
        kind = PROBLEM_TYPES[StoreUnavailable]
    if kind is None:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem_response(
            INTERNAL.status,
            INTERNAL.slug,
            INTERNAL.title,
            "The server failed; the error has been logged with this trace id.",
            request,
        )
    headers = {**kind.headers, **(kind.headers_of(exc) if kind.headers_of else {})}
    return problem_response(
        kind.status, kind.slug, kind.title, str(exc), request, headers, **kind.fields(exc)
    )
