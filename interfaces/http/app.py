"""The Starlette application: route tables, trace ids, problem details, lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from agentledger.infrastructure.bootstrap import Runtime
from agentledger.infrastructure.metrics import HTTP_REQUESTS
from agentledger.interfaces.http.call import TRACE_HEADER, trace_id_of
from agentledger.interfaces.http.openapi import build_openapi
from agentledger.interfaces.http.problems import problem_response, to_problem
from agentledger.interfaces.http.routes import (
    agents,
    approvals,
    audit,
    entries,
    handoffs,
    handovers,
    health,
    identity,
    messages,
    projections,
    projects,
    selections,
    sessions,
    status,
    work_items,
)
from agentledger.interfaces.http.routing import Operation, to_routes
from agentledger.interfaces.mcp.endpoint import PATH as MCP_PATH
from agentledger.interfaces.mcp.endpoint import McpEndpoint

OPERATIONS: list[Operation] = [
    *health.OPERATIONS,
    *identity.OPERATIONS,
    *sessions.OPERATIONS,
    *projects.OPERATIONS,
    *selections.OPERATIONS,
    *entries.OPERATIONS,
    *work_items.OPERATIONS,
    *approvals.OPERATIONS,
    *handoffs.OPERATIONS,
    *handovers.OPERATIONS,
    *messages.OPERATIONS,
    *agents.OPERATIONS,
    *status.OPERATIONS,
    *audit.OPERATIONS,
    *projections.OPERATIONS,
]


def create_app(runtime: Runtime, *, manage_runtime: bool = False) -> Starlette:
    """Build the app. With `manage_runtime`, the lifespan starts the projections and sweeper
    and closes the runtime on shutdown (what `serve` does); tests manage it themselves."""

    mcp = McpEndpoint(runtime, runtime.settings.max_body_bytes)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if manage_runtime:
            runtime.start_background()
        try:
            async with mcp.running():
                yield
        finally:
            if manage_runtime:
                runtime.close()

    routes = to_routes(OPERATIONS, runtime.settings.max_body_bytes)
    app = Starlette(
        routes=[*routes, Route(MCP_PATH, mcp, methods=["GET", "POST", "DELETE"])],
        exception_handlers={404: _not_found, 405: _method_not_allowed, Exception: to_problem},
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.openapi = openapi_document()
    traced = TraceMiddleware(app)
    mcp.bind(traced)
    return traced  # type: ignore[return-value]


class TraceMiddleware:
    """Give every request a trace id (for events and problems) and echo it back, with the
    time the server spent on it (`Server-Timing: app;dur=<ms>`, as browsers and tools read)."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state = app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        trace_id = trace_id_of(request)
        scope.setdefault("state", {})["trace_id"] = trace_id
        started = time.perf_counter()

        async def send_with_trace(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                elapsed = time.perf_counter() - started
                elapsed_ms = elapsed * 1000
                route = scope.get("route")
                HTTP_REQUESTS.labels(
                    scope["method"], getattr(route, "path", "unmatched"), str(message["status"])
                ).observe(elapsed)
                message.setdefault("headers", []).extend(
                    [
                        (TRACE_HEADER.lower().encode(), trace_id.encode()),
                        (b"server-timing", f"app;dur={elapsed_ms:.2f}".encode()),
                    ]
                )
            await send(message)

        await self.app(scope, receive, send_with_trace)


async def _not_found(request: Request, exc: Exception) -> Response:
    return problem_response(
        404, "not-found", "No such route", f"no route for {request.url.path}", request
    )


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    # The matched path's route names its methods (one route per path: see ResourceRoute).
    headers = exc.headers if isinstance(exc, HTTPException) and exc.headers else {}
    allowed = sorted(m.strip() for m in headers.get("Allow", "").split(",") if m.strip())
    return problem_response(
        405,
        "method-not-allowed",
        "Method not allowed",
        f"{request.method} is not allowed on {request.url.path}",
        request,
        headers={"Allow": ", ".join(allowed)},
    )


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the route table: the same for every app of this process, so
    built once (it walks every operation's models: about 0.1 s)."""
    return build_openapi(OPERATIONS, _version())


def _version() -> str:
    try:
        return version("agentledger")
    except PackageNotFoundError:
        return "0.0.0"
