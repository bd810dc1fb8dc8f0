"""RFC 9457 problem details: the one mapping from errors to HTTP statuses and problem types."""

from __future__ import annotations

import logging
from typing import Any

from eventsourcing.persistence import InterfaceError as StoreInterfaceError
from eventsourcing.persistence import OperationalError as StoreOperationalError
from psycopg_pool import PoolTimeout
from starlette.requests import Request
from starlette.responses import JSONResponse

from agentledger.application.errors import (
    ConcurrencyConflict,
    Forbidden,
    InvalidCursor,
    NoProjectSelected,
    NotCaughtUp,
    NotFound,
    PositionNotInLog,
    PreconditionFailed,
    PreconditionRequired,
    ProjectExists,
    Unauthenticated,
)
from agentledger.domain.errors import (
    AlreadyClaimed,
    ClaimLost,
    CrossProject,
    DependencyCycle,
    DepthExceeded,
    DomainError,
    FenceRequired,
    InvalidTransition,
    InvalidValue,
    ItemArchived,
    LeaseLapsed,
    ProjectArchived,
    SessionNotActive,
    SessionNotOwned,
    SessionTerminated,
    TokenRevoked,
)

PROBLEM_BASE = "https://agentledger.dev/problems/"
PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("agentledger.http")


class HttpProblem(Exception):
    """A request-level mistake found by the HTTP layer itself (bad JSON, size, headers)."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.extra = extra


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
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
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def to_problem(request: Request, exc: Exception) -> JSONResponse:
    """Map any exception to a problem. Unknown ones are ours: 500, logged, no internals leaked."""
    match exc:
        case HttpProblem():
            return problem_response(
                exc.status, exc.slug, exc.title, exc.detail, request, **exc.extra
            )
        case Unauthenticated():
            return problem_response(
                401,
                "unauthenticated",
                "Authentication required",
                str(exc),
                request,
                headers={"WWW-Authenticate": 'Bearer realm="agentledger"'},
            )
        case Forbidden():
            return problem_response(403, "forbidden", "Not allowed", str(exc), request)
        case NotFound():
            return problem_response(
                404, "not-found", f"No such {exc.kind}", str(exc), request, resource=exc.kind
            )
        case PreconditionFailed():
            return problem_response(
                412,
                "version-mismatch",
                "Version does not match",
                str(exc),
                request,
                current_version=exc.current,
                **({"expected_version": exc.expected} if exc.expected >= 0 else {}),
                **exc.details,
            )
        case PreconditionRequired():
            return problem_response(
                428, "precondition-required", "Precondition required", str(exc), request
            )
        case ProjectExists():
            return problem_response(
                409, "project-exists", "Project exists", str(exc), request, project=exc.name
            )
        case NoProjectSelected():
            return problem_response(
                409,
                "no-project-selected",
                "No project selected",
                str(exc),
                request,
                agent_id=exc.agent_id,
            )
        case AlreadyClaimed():
            return problem_response(
                409,
                "already-claimed",
                "Already claimed",
                str(exc),
                request,
                holder={"agent_id": exc.holder_agent, "session_id": str(exc.holder_session)},
                expires_at=exc.expires_at.isoformat().replace("+00:00", "Z"),
            )
        case ClaimLost():
            return problem_response(
                409,
                "claim-lost",
                "Claim lost",
                str(exc),
                request,
                presented_fence=exc.presented,
                current_fence=exc.current,
            )
        case FenceRequired():
            return problem_response(
                428,
                "fence-required",
                "Fence required",
                str(exc),
                request,
                item_id=exc.item_id,
            )
        case DependencyCycle():
            return problem_response(
                409,
                "dependency-cycle",
                "Dependency cycle",
                str(exc),
                request,
                cycle=[str(item) for item in exc.path],
            )
        case DepthExceeded():
            return problem_response(
                409,
                "depth-exceeded",
                "Too deep",
                str(exc),
                request,
                depth=exc.depth,
                max_depth=exc.max_depth,
            )
        case ItemArchived():
            return problem_response(409, "item-archived", "Work item archived", str(exc), request)
        case CrossProject():
            return problem_response(422, "cross-project", "Link across projects", str(exc), request)
        case ProjectArchived():
            return problem_response(
                409, "project-archived", "Project archived", str(exc), request, project=exc.name
            )
        case SessionNotActive():
            return problem_response(
                409,
                "session-not-active",
                "Session not active",
                str(exc),
                request,
                session_id=exc.session_id,
            )
        case SessionNotOwned():
            return problem_response(
                409,
                "session-not-owned",
                "Session belongs to another agent",
                str(exc),
                request,
                session_id=exc.session_id,
                owner=exc.owner,
            )
        case NotCaughtUp():
            return problem_response(
                503,
                "not-caught-up",
                "Read model not caught up yet",
                str(exc),
                request,
                headers={"Retry-After": "1"},
                position=exc.reached,
                wanted_position=exc.wanted,
            )
        case ConcurrencyConflict():
            return problem_response(
                409, "concurrency-conflict", "Concurrent update", str(exc), request
            )
        case PositionNotInLog():
            return problem_response(400, "invalid-position", "Invalid position", str(exc), request)
        case InvalidCursor():
            return problem_response(400, "invalid-cursor", "Invalid cursor", str(exc), request)
        case InvalidValue():
            return problem_response(
                422,
                "validation-error",
                "Invalid request",
                str(exc),
                request,
                errors=[
                    {
                        "loc": ["body", exc.field] if exc.field else ["body"],
                        "msg": str(exc),
                        "type": "value_error",
                    }
                ],
            )
        case LeaseLapsed():
            return problem_response(
                409,
                "session-expired",
                "Session lease has lapsed",
                str(exc),
                request,
                session_id=exc.session_id,
                expired_at=exc.expired_at,
            )
        case SessionTerminated():
            return problem_response(
                409,
                "session-terminated",
                "Session has ended",
                str(exc),
                request,
                current_status=exc.current,
            )
        case InvalidTransition():
            return problem_response(
                409,
                "invalid-transition",
                "Transition not allowed",
                str(exc),
                request,
                current_status=exc.current,
                allowed=list(exc.allowed),
            )
        case TokenRevoked():
            return problem_response(
                409, "token-revoked", "Token already revoked", str(exc), request
            )
        case StoreOperationalError() | StoreInterfaceError() | PoolTimeout():
            log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
            return problem_response(
                503,
                "store-unavailable",
                "Event store unavailable",
                "the store did not answer in time (locked or unreachable); nothing was written "
                "by this request unless its response said so. Retry later.",
                request,
                headers={"Retry-After": "1"},
            )
        case DomainError():
            return problem_response(
                409, "conflict", "Not allowed in the current state", str(exc), request
            )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        500,
        "internal-error",
        "Internal server error",
        "The server failed; the error has been logged with this trace id.",
        request,
    )
