"""MCP clients of the SDK itself (never hand-made JSON-RPC) on each transport, a server in this
process for the concurrency tests, and one agent's view of a server: its MCP client beside a
plain HTTP client, to compare what each answers for the same command."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from agentledger.infrastructure.bootstrap import Runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.app import create_app
from tests.cli.shell import free_port
from tests.support.helpers import wait_until
from tests.support.processes import CLI, cli_env

TRANSPORTS = ("http", "stdio")
# Fields of a problem that name the occurrence, not the refusal (the request's path and trace).
OCCURRENCE = ("instance", "trace_id")


@asynccontextmanager
async def http_client(
    base: str, token: str | None, statuses: list[int] | None = None
) -> AsyncIterator[Client]:
    """The SDK's client on `serve`'s /mcp, with the token as a bearer header; `statuses`
    collects the HTTP status of every answer it got."""
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}

    async def record(response: httpx.Response) -> None:
        if statuses is not None:
            statuses.append(response.status_code)

    async with (
        httpx.AsyncClient(headers=headers, timeout=60, event_hooks={"response": [record]}) as http,
        Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client,
    ):
        yield client


@asynccontextmanager
async def stdio_client(
    settings: Settings, token: str, url: str | None = None
) -> AsyncIterator[Client]:
    """The SDK's client on `agentledger mcp` started as a subprocess, as a desktop agent runs
    it: with a running server's URL, or on the store itself."""
    env = {**cli_env(settings), "AGENTLEDGER_TOKEN": token}
    if url is not None:
        env["AGENTLEDGER_URL"] = url
    params = StdioServerParameters(command=CLI, args=["mcp"], env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        yield client


def client_on(
    transport: str, base: str, settings: Settings, token: str
) -> Any:  # an async context manager of Client
    if transport == "http":
        return http_client(base, token)
    return stdio_client(settings, token, base)


@contextmanager
def serving_here(runtime: Runtime) -> Iterator[str]:
    """The app (MCP included) on uvicorn in a thread of this process: a real socket, and the
    test's monkeypatches (the overlap barrier) reach the server's handlers."""
    port = free_port()
    config = uvicorn.Config(
        create_app(runtime), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def structured(result: Any) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return dict(result.structured_content)


def refusal_of(problem: dict[str, Any]) -> dict[str, Any]:
    """A problem without what names its occurrence: the same refusal compares equal."""
    return {k: v for k, v in problem.items() if k not in OCCURRENCE}


def without_position(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "position"}


@dataclass
class Agent:
    """One agent's MCP client, and its HTTP client on the same server with the same token:
    reads there wait for everything its MCP calls wrote (Consistent-With)."""

    client: Client
    http: httpx.Client
    seen: int = 0
    calls: list[str] = field(default_factory=list)

    async def ok(self, tool: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
        result = await self.client.call_tool(tool, args or {})
        body = structured(result)
        assert not result.is_error, (tool, body)
        self._saw(body)
        self.calls.append(tool)
        return body

    async def refused(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        """The tool error of a refused call: its problem, also in its text (for clients that
        show only text), never a protocol error."""
        result = await self.client.call_tool(tool, args)
        problem = structured(result)
        assert result.is_error, (tool, problem)
        assert json.dumps(problem) in result.content[0].text  # type: ignore[union-attr]
        assert {"type", "title", "status", "detail"} <= set(problem)
        self.calls.append(tool)
        return problem

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(
            path, params=params, headers={"AgentLedger-Consistent-With": str(self.seen)}
        )
        assert response.status_code == 200, response.text
        return response.json() if "json" in response.headers["content-type"] else response.text

    def send(self, method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
        return self.http.request(method, path, json=body, headers=headers)

    def _saw(self, body: dict[str, Any]) -> None:
        for value in (body.get("position"), (body.get("item") or {}).get("position")):
            if isinstance(value, int):
                self.seen = max(self.seen, value)
