"""The route table: each operation once, serving both the router and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from agentledger.application.errors import BodyTooLarge
from agentledger.interfaces.http.call import IDEMPOTENCY_KEY_HEADER, HttpCall
from agentledger.interfaces.http.idempotency import (
    WRITE_METHODS,
    idempotency_key,
    run_idempotently,
)
from agentledger.interfaces.http.problems import to_problem
from agentledger.interfaces.http.schemas import NoQuery

Handler = Callable[[HttpCall], Response]
JSON = "application/json"


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
        method = "GET" if request.method == "HEAD" else request.method
        operation = by_method[method]
        runtime = request.app.state.runtime
        try:
            body = await _read_body(request, max_body_bytes)
            call = HttpCall(request, body, runtime, frozenset(operation.headers))
            if not operation.blocking:
                return _checked(operation, call)
            # Handlers are synchronous (the event store is); run them off the event loop.
            return await run_in_threadpool(_checked, operation, call)
        except Exception as exc:
            return to_problem(request, exc)

    return ResourceRoute(path, endpoint, methods=sorted(by_method), name=path)


def _checked(operation: Operation, call: HttpCall) -> Response:
    """Who is asking is settled before anything about the request is judged: an anonymous
    caller learns 401, never which of its fields were wrong. A route without query
    parameters refuses any (as one with them refuses unknown ones)."""
    if operation.authenticated:
        call.principal  # noqa: B018 - authenticates, raising Unauthenticated
    if operation.query is None:
        call.query(NoQuery)
    key = idempotency_key(call) if IDEMPOTENCY_KEY_HEADER in operation.headers else None
    call.idempotency_key = key
    if key is None:
        return operation.handler(call)
    return run_idempotently(operation, call, key)


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
