"""What one MCP tool call costs on each transport, next to the same command over plain HTTP:
an append (a write) and reading the agent's project (a read), against a live `serve`.

Transports: plain HTTP (httpx, keep-alive), MCP over streamable HTTP (/mcp), MCP over stdio
through the server (`agentledger mcp --url`), and MCP over stdio on the store itself
(`agentledger mcp`, the API in that process). Clients are the official SDK's.

Run: `python -m bench.mcp [--store sqlite|postgres|both] [--calls N]`. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import httpx2 as httpx
from mcp import Client, StdioServerParameters

from agentledger.infrastructure.bootstrap import build_runtime
from bench.harness import DEFAULT_DATABASE_URL, free_port, one_store, summarise
from tests.conftest import bearer, issue_token
from tests.mcp.support import http_client

CLI = str(Path(sys.executable).with_name("agentledger"))
CALLS = 300
WARM_UP = 20


def _serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [CLI, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return server, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError("serve did not become ready")


def _http_calls(base: str, token: str, session: str, calls: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"append": [], "get_project": []}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers) as http:
        for n in range(WARM_UP + calls):
            began = time.perf_counter()
            answer = http.post("/v1/entries", json={"message": f"http {n}", "session_id": session})
            elapsed = time.perf_counter() - began
            assert answer.status_code == 201, answer.text
            if n >= WARM_UP:
                timings["append"].append(elapsed)
            # Read your own write, as the MCP server does for its callers.
            seen = {"AgentLedger-Consistent-With": answer.headers["AgentLedger-Position"]}
            began = time.perf_counter()
            read = http.get("/v1/agents/bench/project", headers=seen)
            elapsed = time.perf_counter() - began
            assert read.status_code == 200, read.text
            if n >= WARM_UP:
                timings["get_project"].append(elapsed)
    return timings


async def _tool_calls(
    connect: Callable[[], AbstractAsyncContextManager[Client]], session: str, calls: int
) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {"append": [], "get_project": []}
    async with connect() as client:

        async def timed(name: str, tool: str, args: dict[str, Any], n: int) -> None:
            began = time.perf_counter()
            result = await client.call_tool(tool, args)
            elapsed = time.perf_counter() - began
            assert not result.is_error, result.structured_content
            if n >= WARM_UP:
                timings[name].append(elapsed)

        for n in range(WARM_UP + calls):
            append = {"message": f"mcp {n}", "session_id": session}
            await timed("append", "append_entry", append, n)
            await timed("get_project", "get_project", {}, n)
    return timings


def measure(settings: Any, env: dict[str, str], calls: int) -> dict[str, object]:
    rt = build_runtime(settings)
    try:
        admin = issue_token(rt, "user:admin", "admin")
        token = issue_token(rt, "agent:bench", "agent")
    finally:
        rt.close()
    server, base = _serve(env)
    results: dict[str, object] = {}

    def over_stdio(url: str | None) -> Callable[[], AbstractAsyncContextManager[Client]]:
        child = {**env, "AGENTLEDGER_TOKEN": token, **({"AGENTLEDGER_URL": url} if url else {})}
        params = StdioServerParameters(command=CLI, args=["mcp"], env=child)
        return lambda: Client(params, read_timeout_seconds=60)

    try:
        with httpx.Client(base_url=base) as http:
            http.post("/v1/projects", json={"name": "bench"}, headers=bearer(admin))
            started = http.post("/v1/sessions", json={"ttl_seconds": 3600}, headers=bearer(token))
            session = started.json()["id"]
            selected = http.put(
                "/v1/agents/bench/project",
                json={"project": "bench", "session_id": session},
                headers={**bearer(token), "If-None-Match": "*"},
            )
            assert selected.status_code == 200, selected.text
        results["plain_http"] = summarise(_http_calls(base, token, session, calls))

        def over_http() -> AbstractAsyncContextManager[Client]:
            return http_client(base, token)

        transports: dict[str, Callable[[], AbstractAsyncContextManager[Client]]] = {
            "mcp_streamable_http": over_http,
            "mcp_stdio_via_serve": over_stdio(base),
        }
        for name, connect in transports.items():
            results[name] = summarise(anyio.run(_tool_calls, connect, session, calls))
    finally:
        server.terminate()
        server.wait(30)
    # On the store itself, as a desktop agent runs it with no server: its own projections
    # (with `serve` still up, they would be serve's, and a read would wait on their polling).
    alone = over_stdio(None)
    results["mcp_stdio_on_the_store"] = summarise(anyio.run(_tool_calls, alone, session, calls))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--calls", type=int, default=CALLS)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    results = {}
    for store in stores:
        with one_store(store, url) as (settings, env):
            results[store] = measure(settings, env, args.calls)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
