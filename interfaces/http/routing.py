"""The route table: each operation once, serving both the router and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agentledger.interfaces.http.call import HttpCall
from agentledger.interfaces.http.problems import HttpProblem, to_problem

Handler = Callable[[HttpCall], Response]


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
    errors: tuple[int, ...] = ()
    headers: tuple[str, ...] = ()
    authenticated: bool = True
    # Non-blocking handlers (no store access) run on the event loop: /healthz must answer
    # even when every worker thread is busy.
    blocking: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)


def to_route(operation: Operation, max_body_bytes: int) -> Route:
    async def endpoint(request: Request) -> Response:
        runtime = request.app.state.runtime
        try:
            body = await _read_body(request, max_body_bytes)
            call = HttpCall(request, body, runtime)
            if not operation.blocking:
                return operation.handler(call)
            # Handlers are synchronous (the event store is); run them off the event loop.
            return await run_in_threadpool(_authenticated_first, operation, call)
        except Exception as exc:
            return to_problem(request, exc)

    return Route(
        operation.path, endpoint, methods=[operation.method], name=operation.handler.__name__
    )


def _authenticated_first(operation: Operation, call: HttpCall) -> Response:
    """Who is asking is settled before anything about the request is judged: an anonymous
    caller learns 401, never which of its fields were wrong."""
    if operation.authenticated:
        call.principal  # noqa: B018 - authenticates, raising Unauthenticated
    return operation.handler(call)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> HttpProblem:
    return HttpProblem(413, "body-too-large", "Request body too large", f"at most {limit} bytes")
