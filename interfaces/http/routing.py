"""The route table: each operation once, serving both the router and the OpenAPI document."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from uuid import UUID

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from agentledger.application import deadlines
from agentledger.application.errors import (
    BodyTooLarge,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidRequest,
    ReadModelBuilding,
    Unauthenticated,
)
from agentledger.application.refusals import AUDITED_STATUSES, Refusal
from agentledger.infrastructure.metrics import (
    REFUSALS_NOT_RECORDED,
    REFUSED_COMMANDS,
    UNAUTHENTICATED,
    count_command,
)
from agentledger.interfaces.http.call import IDEMPOTENCY_KEY_HEADER, HttpCall
from agentledger.interfaces.http.idempotency import (
    REPLAYED_HEADER,
    WRITE_METHODS,
    idempotency_key,
    run_idempotently,
)
from agentledger.interfaces.http.problems import problem_type_of, to_problem
from agentledger.interfaces.http.schemas import UUID_PATH_PARAMETERS, NoQuery

Handler = Callable[[HttpCall], Response]
JSON = "application/json"
TEXT = "text/plain"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    body_required: bool = False
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    # Other successes: e.g. 204 of claim-next with nothing ready, 200 of a dependency already
    # there (beside its 201 when added).
    also: tuple[int, ...] = ()
    # What the success body may be: JSON (`response`) and/or text/markdown.
    media: tuple[str, ...] = (JSON,)
    errors: tuple[int, ...] = ()
    # Every request header the handler reads (HttpCall refuses to read any other), and those
    # it cannot do without.
    headers: tuple[str, ...] = ()
    required_headers: tuple[str, ...] = ()
    authenticated: bool = True
    # Non-blocking handlers (no store access) run on the event loop: /healthz must answer
    # even when every worker thread is busy.
    blocking: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # Every authenticated write takes an Idempotency-Key: declared here, once for all.
        if self.method in WRITE_METHODS and self.authenticated:
            object.__setattr__(self, "headers", (*self.headers, IDEMPOTENCY_KEY_HEADER))


class ResourceRoute(Route):
    """All operations of one path. The path alone decides the match, so a fixed path such as
    `/v1/work-items/claim-next` is never taken for `/v1/work-items/{id}` with another method,
    and a 405 lists exactly this path's methods (Starlette would try later routes instead)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return (Match.FULL, child) if match is Match.PARTIAL else (match, child)


def to_routes(operations: Iterable[Operation], max_body_bytes: int) -> list[Route]:
    """One route per path; paths with fixed segments where others have parameters first."""
    by_path: dict[str, dict[str, Operation]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method] = op
    ordered = sorted(by_path, key=lambda path: [s.startswith("{") for s in path.split("/")])
    return [_route(path, by_path[path], max_body_bytes) for path in ordered]


def _route(path: str, by_method: dict[str, Operation], max_body_bytes: int) -> Route:
    async def endpoint(request: Request) -> Response:
        arrived = time.monotonic()
        method = "GET" if request.method == "HEAD" else request.method
        operation = by_method[method]
        runtime = request.app.state.runtime
        try:
            body = await _read_body(request, max_body_bytes)
            call = HttpCall(request, body, runtime, frozenset(operation.headers))
            if not operation.blocking:
                response = _checked(operation, call)
            else:
                # Handlers are synchronous (the event store is); run them off the event loop.
                response = await run_in_threadpool(_within_deadline, operation, call, arrived)
        except Exception as exc:
            _count_refused(operation, exc)
            return to_problem(request, exc)
        _count_accepted(operation, response)
        return response

    return ResourceRoute(path, endpoint, methods=sorted(by_method), name=path)


def _within_deadline(operation: Operation, call: HttpCall, arrived: float) -> Response:
    """The handler, bound to the request's time (`request_timeout_seconds` from its arrival,
    a wait for a worker thread included): it has committed or failed by then."""
    budget = call.runtime.settings.request_timeout_seconds
    with deadlines.within(budget - (time.monotonic() - arrived)):
        return _checked(operation, call)


def _checked(operation: Operation, call: HttpCall) -> Response:
    """Who is asking is settled before anything about the request is judged: an anonymous
    caller learns 401, never which of its fields were wrong. A command refused is recorded
    for the audit (`refusals.py`) before the refusal is answered. While a new version of a
    read model is first built (tokens among them, perhaps), nothing authenticated answers."""
    if operation.authenticated:
        building = call.runtime.runners.first_builds()
        if building:
            raise ReadModelBuilding(building)
        try:
            call.principal  # noqa: B018 - authenticates, raising Unauthenticated
        except Unauthenticated:
            UNAUTHENTICATED.inc()
            raise
    if operation.method not in WRITE_METHODS or not operation.authenticated:
        return _answered(operation, call)
    try:
        return _answered(operation, call)
    except Exception as exc:
        _record_refusal(operation, call, exc)
        raise


def _is_command(operation: Operation) -> bool:
    return operation.method in WRITE_METHODS and operation.authenticated


def _count_accepted(operation: Operation, response: Response) -> None:
    # A replay did nothing (the command was counted when it ran), whatever it answers.
    replayed = REPLAYED_HEADER in response.headers
    if _is_command(operation) and response.status_code < 400 and not replayed:
        count_command(operation.handler.__name__, None)


def _count_refused(operation: Operation, exc: Exception) -> None:
    """A 4xx by its problem type (a fixed set of slugs); a 5xx is the server's failure, not
    the command's outcome (the request histogram counts it)."""
    kind = problem_type_of(exc)
    if _is_command(operation) and kind is not None and 400 <= kind.status < 500:
        count_command(operation.handler.__name__, kind.slug)


def _answered(operation: Operation, call: HttpCall) -> Response:
    """A route without query parameters refuses any (as one with them refuses unknown
    ones)."""
    if operation.query is None:
        call.query(NoQuery)
    key = idempotency_key(call) if IDEMPOTENCY_KEY_HEADER in operation.headers else None
    call.idempotency_key = key
    if key is None:
        return operation.handler(call)
    return run_idempotently(operation, call, key)


def _record_refusal(operation: Operation, call: HttpCall, exc: Exception) -> None:
    kind = problem_type_of(exc)
    if kind is None or kind.status not in AUDITED_STATUSES or isinstance(exc, NOT_REFUSALS):
        return
    refusal = Refusal(
        command=operation.handler.__name__,
        target=call.request.url.path,
        target_id=_named_id(call),
        problem=kind.slug,
        status=kind.status,
        detail=str(exc),
    )
    if call.runtime.refusals.record(call.context(), refusal) is None:
        REFUSALS_NOT_RECORDED.inc()
    else:
        REFUSED_COMMANDS.labels(kind.slug).inc()


# Answered with an audited status, yet not a refusal of the command: the request itself was
# malformed (422 validation), or another request with its key is still running.
NOT_REFUSALS = (InvalidRequest, IdempotencyKeyReused, IdempotencyInProgress)


def _named_id(call: HttpCall) -> UUID | None:
    """The aggregate the path names by id (`/v1/work-items/{id}/...`), if any."""
    for name in UUID_PATH_PARAMETERS:
        raw = call.request.path_params.get(name)
        if raw is not None:
            try:
                return UUID(raw)
            except ValueError:
                return None
    return None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
