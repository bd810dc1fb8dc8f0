"""`agentledger mcp`: the MCP server over stdio, for a client that starts it as a subprocess.

With a URL every tool call goes to that running AgentLedger over HTTP (one service stays the
writer); without one it opens the configured store itself (the embedded default) and runs the
API in process, with its projections and sweeper, as `serve` would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.stdio import stdio_server
from starlette.applications import Starlette

from agentledger.interfaces.mcp.api import Api, Refused
from agentledger.interfaces.mcp.server import build_server

USER_AGENT = "agentledger-mcp/stdio"


async def serve_stdio(token: str, url: str | None) -> str | None:
    """Serve until the client closes stdin; or say at once why the token is refused (an
    exception would leave through the app's task groups, wrapped)."""
    authorization = f"Bearer {token}"
    async with _api(url) as api:
        try:
            await api.caller(authorization).me()
        except Refused as refusal:
            return str(refusal)
        server = build_server(lambda _ctx: api.caller(authorization))
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())
    return None


@asynccontextmanager
async def _api(url: str | None) -> AsyncIterator[Api]:
    if url is not None:
        api = Api.remote(url, USER_AGENT)
        try:
            yield api
        finally:
            await api.close()
        return
    # The store itself: the app (and its background work) lives as long as this process.
    from agentledger.interfaces.cli.store import open_runtime
    from agentledger.interfaces.http.app import create_app

    runtime = open_runtime(writable=True)
    runtime.catch_up()
    app: Any = create_app(runtime, manage_runtime=True)
    starlette: Starlette = app.app
    async with starlette.router.lifespan_context(starlette):
        api = Api.in_process(app, USER_AGENT)
        try:
            yield api
        finally:
            await api.close()
