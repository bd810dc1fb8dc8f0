"""/mcp in the API's own app: MCP over streamable HTTP, behind the API's bearer tokens.

The transport is stateless and answers in JSON: a tool call is one POST, any `serve` worker
may answer it, and nothing of a client's lives in the process between calls (its session is
its AgentLedger session, found by the tools). A request without a valid token is refused with
the API's 401 problem before the MCP layer reads a byte of it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from agentledger.application.errors import Unauthenticated
from agentledger.infrastructure.bootstrap import Runtime
from agentledger.interfaces.http.problems import to_problem
from agentledger.interfaces.mcp.api import Api, Caller
from agentledger.interfaces.mcp.server import build_server

PATH = "/mcp"
USER_AGENT = "agentledger-mcp/http"
# Trace headers of the MCP request that the API calls carry on (the events record them).
FORWARDED = ("traceparent", "x-request-id")


class McpEndpoint:
    def __init__(self, runtime: Runtime, max_body_bytes: int) -> None:
        self._runtime = runtime
        self._api: Api | None = None
        self._manager = StreamableHTTPSessionManager(
            app=build_server(self._caller),
            stateless=True,
            json_response=True,
            max_request_body_size=max_body_bytes,
        )

    def bind(self, app: ASGIApp) -> None:
        """The app the tools call: the whole app, middleware included, as a client sees it."""
        self._api = Api.in_process(app, USER_AGENT)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self._manager.run():
            try:
                yield
            finally:
                if self._api is not None:
                    await self._api.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            await run_in_threadpool(self._authenticate, request)
        except Exception as exc:  # the API's own answer: 401, or 503 when the store is down
            await to_problem(request, exc)(scope, receive, send)
            return
        await self._manager.handle_request(scope, receive, send)

    def _authenticate(self, request: Request) -> None:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("send 'Authorization: Bearer <token>'")
        self._runtime.access.authenticate(secret.strip())

    def _caller(self, ctx: ServerRequestContext[Any, Any]) -> Caller:
        assert self._api is not None, "bind() the endpoint to its app first"
        request = ctx.request
        assert isinstance(request, Request), "the HTTP transport hands each call its request"
        headers = request.headers
        forwarded = {name: headers[name] for name in FORWARDED if name in headers}
        return self._api.caller(headers.get("authorization", ""), forwarded)
