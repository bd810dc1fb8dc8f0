"""Who may use the MCP server: without a token, or with a revoked one, it refuses before any
tool runs (nothing is written); an agent cannot act for another through it; and the events
name the token's principal, as an HTTP call's do."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from uuid import UUID

import anyio
import httpx2 as httpx
import pytest

from agentledger.application.context import RequestContext, local_operator
from agentledger.infrastructure.bootstrap import Runtime
from agentledger.infrastructure.settings import Settings
from tests.api.helpers import events_of
from tests.conftest import issue_token
from tests.mcp.support import http_client, serving_here, stdio_client, structured
from tests.support.processes import CLI, cli_env

ADMIN = RequestContext(local_operator("tester"), "test-setup")


@pytest.fixture
def base(runtime: Runtime) -> Iterator[str]:
    with serving_here(runtime) as url:
        yield url


def _refused_at_the_door(base: str, token: str | None) -> None:
    statuses: list[int] = []

    async def connect() -> None:
        async with http_client(base, token, statuses) as client:
            await client.call_tool("start_session", {})

    with pytest.raises(BaseException):  # noqa: B017 - the SDK's own error, in task groups
        anyio.run(connect)
    assert statuses and set(statuses) == {401}, statuses  # refused at the first request


def test_without_a_token_or_with_a_revoked_one_no_tool_runs(runtime: Runtime, base: str) -> None:
    secret = issue_token(runtime, "agent:alpha", "agent")
    runtime.access.revoke(ADMIN, runtime.access.authenticate(secret).token_id or UUID(int=0))
    head = runtime.ledger.head_position()
    _refused_at_the_door(base, None)
    _refused_at_the_door(base, "al_not-a-token")
    _refused_at_the_door(base, secret)  # revoked
    assert runtime.ledger.head_position() == head  # no tool ran: nothing was written
    # What the door answers, as an HTTP client sees it: the API's own 401 problem.
    refused = httpx.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["type"].endswith("/unauthenticated")


def test_a_token_revoked_mid_conversation_stops_the_next_call(runtime: Runtime, base: str) -> None:
    secret = issue_token(runtime, "agent:alpha", "agent")
    token_id = runtime.access.authenticate(secret).token_id
    assert token_id is not None

    statuses: list[int] = []
    heads: list[int] = []

    async def conversation() -> None:
        async with http_client(base, secret, statuses) as client:
            assert not (await client.call_tool("start_session", {})).is_error
            runtime.access.revoke(ADMIN, token_id)
            heads.append(runtime.ledger.head_position())
            await client.call_tool("start_session", {})

    with pytest.raises(BaseException):  # noqa: B017 - the SDK's error for a 401
        anyio.run(conversation)
    assert statuses[-1] == 401 and 401 not in statuses[:-1], statuses
    assert runtime.ledger.head_position() == heads[0]  # the second start never ran


def test_stdio_with_a_refused_token_says_so_in_one_line(settings: Settings) -> None:
    env = {**cli_env(settings), "AGENTLEDGER_TOKEN": "al_not-a-token"}
    done = subprocess.run([CLI, "mcp"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stdout == ""  # stdout carries only MCP frames
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: the token was refused"), done.stderr
    assert "Traceback" not in done.stderr


def test_an_agent_cannot_act_for_another_and_events_name_the_principal(
    runtime: Runtime, base: str
) -> None:
    secret = issue_token(runtime, "agent:alpha", "agent")
    token_id = runtime.access.authenticate(secret).token_id
    admin = {"Authorization": f"Bearer {issue_token(runtime, 'user:admin', 'admin')}"}
    assert httpx.post(f"{base}/v1/projects", json={"name": "apollo"}, headers=admin).is_success
    # bob is at work: his session is there to be found, and still alpha may not use it.
    bob = {"Authorization": f"Bearer {issue_token(runtime, 'agent:bob', 'agent')}"}
    assert httpx.post(f"{base}/v1/sessions", json={}, headers=bob).status_code == 201
    heads: list[int] = []

    async def as_alpha() -> tuple[str, list[dict[str, object]]]:
        async with http_client(base, secret) as client:
            heads.append(runtime.ledger.head_position())
            refusals = [
                structured(await client.call_tool(tool, args))
                for tool, args in (
                    ("start_session", {"agent_id": "bob"}),
                    (
                        "set_project",
                        {"project": "apollo", "expected_version": 0, "agent_id": "bob"},
                    ),
                    ("check_inbox", {"agent_id": "bob"}),
                    ("register_agent", {"agent_id": "bob"}),
                )
            ]
            session = structured(await client.call_tool("start_session", {}))
            return str(session["id"]), refusals

    session, refusals = anyio.run(as_alpha)
    assert [r["status"] for r in refusals] == [403, 403, 403, 403], refusals
    assert {r["type"] for r in refusals} == {"https://agentledger.dev/problems/forbidden"}
    # Refused, so nothing written for bob: only the audit's record of each refused write.
    written = [runtime.ledger.to_event(n) for n in runtime.ledger.read_log(heads[0], 100)]
    written = [e for e in written if e.originator_id != UUID(session)]
    assert [type(e).__name__ for e in written] == ["CommandRefused"] * 3
    assert {(e.actor, e.problem) for e in written} == {("agent:alpha", "forbidden")}
    started = events_of(runtime, session)[0]
    assert started.actor == "agent:alpha" and started.actor_token == str(token_id)
    assert started.client == "agentledger-mcp/http"


def test_stdio_on_the_store_itself_writes_as_the_token(settings: Settings) -> None:
    """`agentledger mcp` without a URL: the configured store, opened in that process."""
    from agentledger.infrastructure.bootstrap import build_runtime

    rt = build_runtime(settings)
    try:
        secret = issue_token(rt, "agent:alpha", "agent")
    finally:
        rt.close()

    async def as_alpha() -> str:
        async with stdio_client(settings, secret) as client:
            session = structured(await client.call_tool("start_session", {"ttl_seconds": 300}))
            beat = await client.call_tool("heartbeat", {})
            assert not beat.is_error and structured(beat)["id"] == session["id"]
            return str(session["id"])

    session = anyio.run(as_alpha)
    rt = build_runtime(settings)
    try:
        started = events_of(rt, session)[0]
        assert started.actor == "agent:alpha" and started.client == "agentledger-mcp/stdio"
    finally:
        rt.close()
