"""Every tool, on each transport against a live `serve` (streamable HTTP at /mcp, and stdio by
`agentledger mcp --url`): the catalogue and its schemas, then each tool called once with valid
input and once with input it must refuse. What a tool answers is what the HTTP API answers for
the same command: the resource it wrote as the API reads it back, the same read, the same
refusal (type, title, status, detail and extra fields)."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx2 as httpx
import pytest
from mcp.shared.exceptions import MCPError

from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.mcp.server import INVALID_PARAMS
from agentledger.interfaces.mcp.tools import TOOLS
from tests.conftest import issue_token
from tests.mcp.support import TRANSPORTS, Agent, client_on, refusal_of, without_position
from tests.support.processes import serving

EXPECTED_TOOLS = {
    *("start_session", "heartbeat", "end_session"),
    *("set_project", "get_project", "append_entry", "read_recent", "query_entries"),
    *("create_work_item", "update_work_item", "query_work_item", "list_work_items"),
    *("ready_work", "claim_next", "claim", "release", "transition"),
    *("add_dependency", "remove_dependency"),
    *("send_task", "fetch_status", "request_approval", "decide_approval", "status_report"),
    *("register_agent", "list_agents", "send_message", "notify", "check_inbox"),
    *("ack_message", "write_handover", "read_handover", "offer_handoff", "accept_handoff"),
}
NOBODY = str(uuid.UUID(int=7))


@pytest.fixture
def setup(settings: Settings) -> Iterator[Runtime]:
    """The test's own runtime on the store: only to issue tokens."""
    rt = build_runtime(settings)
    yield rt
    rt.close()


@pytest.fixture
def tokens(setup: Runtime) -> dict[str, str]:
    return {
        "admin": issue_token(setup, "user:admin", "admin"),
        "alpha": issue_token(setup, "agent:alpha", "agent", "worker:builder"),
        "bob": issue_token(setup, "agent:bob", "agent"),
        "ann": issue_token(setup, "user:ann", "approver:lead"),
    }


@asynccontextmanager
async def agents_on(
    transport: str, base: str, settings: Settings, tokens: dict[str, str], *names: str
) -> AsyncIterator[list[Agent]]:
    async with AsyncExitStack() as stack:
        found = []
        for name in names:
            client = await stack.enter_async_context(
                client_on(transport, base, settings, tokens[name])
            )
            http = stack.enter_context(
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens[name]}"})
            )
            found.append(Agent(client, http))
        yield found


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_tool_answers_as_the_http_api_does(
    transport: str, settings: Settings, tokens: dict[str, str]
) -> None:
    with serving(settings) as base:
        admin = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens['admin']}"})
        for name in ("apollo", "hermes"):
            assert admin.post("/v1/projects", json={"name": name}).status_code == 201

        async def scenario() -> None:
            async with agents_on(transport, base, settings, tokens, "alpha", "bob", "ann") as (
                alpha,
                bob,
                ann,
            ):
                await check_catalogue(alpha)
                await exercise(alpha, bob, ann)

        anyio.run(scenario)


async def check_catalogue(agent: Agent) -> None:
    tools = {tool.name: tool for tool in (await agent.client.list_tools()).tools}
    assert set(tools) == EXPECTED_TOOLS == set(TOOLS)
    for name, tool in tools.items():
        ours = TOOLS[name]
        assert tool.input_schema == ours.input_schema
        assert tool.output_schema == ours.output_schema
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["additionalProperties"] is False, name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        assert tool.description and len(tool.description) > 80, name
        assert ours.read_only or "Errors:" in tool.description, name  # what a refusal means
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is ours.read_only
        writes = "idempotency_key" in tool.input_schema["properties"]
        assert writes is not ours.read_only, name  # every write takes a key, no read does
        for prop, schema in tool.input_schema["properties"].items():
            assert _bounded(schema, tool.input_schema.get("$defs", {})), (name, prop)


def _bounded(schema: dict[str, Any], defs: dict[str, Any]) -> bool:
    """Every string has a length, a pattern of bounded length, a format or a set of values;
    every list a length. (Free-form JSON objects are bounded in size and depth by the
    domain, which the API's own tests show.)"""
    if "$ref" in schema:
        return _bounded(defs[schema["$ref"].split("/")[-1]], defs)
    if "anyOf" in schema:
        return all(_bounded(s, defs) for s in schema["anyOf"])
    kind = schema.get("type")
    if kind == "string":
        # A pattern with only bounded repetition ({m,n}) bounds the length too.
        unclassed = re.sub(r"\[(\\.|[^\]])*\]", "", schema.get("pattern", "*"))
        fixed = not any(c in unclassed for c in "*+")
        return fixed or any(k in schema for k in ("maxLength", "enum", "const", "format"))
    if kind == "array":
        return "maxItems" in schema and _bounded(schema.get("items", {}), defs)
    if kind == "object":  # free-form JSON (config, context) is bounded by the domain
        return all(_bounded(p, defs) for p in schema.get("properties", {}).values())
    return True


async def exercise(alpha: Agent, bob: Agent, ann: Agent) -> None:
    # --- sessions
    problem = await alpha.refused("start_session", {"ttl_seconds": "long"})
    _invalid(problem, "ttl_seconds")
    problem = await alpha.refused("start_session", {"agent_id": "bob"})
    _same_refusal(alpha, problem, "POST", "/v1/sessions", {"agent_id": "bob"})
    session = await alpha.ok("start_session", {"ttl_seconds": 600, "role": "builder"})
    assert without_position(session) == alpha.get(f"/v1/sessions/{session['id']}")
    bob_session = await bob.ok("start_session", {})
    beat = await alpha.ok("heartbeat", {})
    assert beat["id"] == session["id"] and beat["expires_at"] >= session["lease_expires_at"]
    problem = await alpha.refused("heartbeat", {"session_id": NOBODY})
    _same_refusal(alpha, problem, "POST", f"/v1/sessions/{NOBODY}/heartbeat")

    # --- context
    problem = await alpha.refused("get_project", {})
    _same_refusal(alpha, problem, "GET", "/v1/agents/alpha/project")
    selected = await alpha.ok("set_project", {"project": "apollo", "expected_version": 0})
    assert without_position(selected) == alpha.get("/v1/agents/alpha/project")
    problem = await alpha.refused("set_project", {"project": "hermes", "expected_version": 0})
    assert problem["status"] == 412 and problem["current_version"] == selected["version"]
    body = {"project": "hermes", "session_id": session["id"]}
    _same_refusal(alpha, problem, "PUT", "/v1/agents/alpha/project", body, **{"If-None-Match": "*"})
    assert await alpha.ok("get_project") == alpha.get("/v1/agents/alpha/project")
    entry = await alpha.ok("append_entry", {"message": "started", "metadata": {"step": 1}})
    assert entry == alpha.get("/v1/projects/apollo/entries")["items"][0]
    _invalid(await alpha.refused("append_entry", {"message": ""}), "message")
    recent = await alpha.ok("read_recent", {})
    assert _same_page(recent, alpha.get("/v1/projects/apollo/entries", limit=20))
    _invalid(await alpha.refused("read_recent", {"limit": 0}), "limit")
    since = "2020-01-01T00:00:00Z"
    query = {"q": "started", "metadata": {"step": 1}, "since": since}
    found = await alpha.ok("query_entries", query)
    params = {"q": "started", "meta.step": "1", "since": since}
    assert _same_page(found, alpha.get("/v1/projects/apollo/entries", **params))
    assert [e["id"] for e in found["items"]] == [entry["id"]]
    _invalid(await alpha.refused("query_entries", {"since": "yesterday"}), "since")

    # --- work
    new = {"project": "apollo", "kind": "task", "title": "Build"}
    first = await alpha.ok("create_work_item", new)
    assert _as_read(alpha, first)
    second = await alpha.ok("create_work_item", {**new, "title": "Test"})
    body = {**new, "project": "nope"}
    problem = await alpha.refused("create_work_item", body)
    _same_refusal(alpha, problem, "POST", "/v1/work-items", body)
    edited = await alpha.ok(
        "update_work_item", {"id": first["id"], "expected_version": 1, "priority": 5}
    )
    assert edited["priority"] == 5 and _as_read(alpha, edited)
    stale = {"id": first["id"], "expected_version": 1, "priority": 6}
    problem = await alpha.refused("update_work_item", stale)
    assert problem["current_version"] == edited["version"]
    patch = ("PATCH", f"/v1/work-items/{first['id']}", {"priority": 6})
    _same_refusal(alpha, problem, *patch, **{"If-Match": '"1"'})
    detail = await alpha.ok("query_work_item", {"id": first["id"]})
    include = "ancestors,children,dependencies,claim"
    assert detail == alpha.get(f"/v1/work-items/{first['id']}", include=include)
    problem = await alpha.refused("query_work_item", {"id": NOBODY})
    _same_refusal(alpha, problem, "GET", f"/v1/work-items/{NOBODY}")
    listed = await alpha.ok("list_work_items", {"project": "apollo"})
    assert _same_page(listed, alpha.get("/v1/work-items", project="apollo"))
    _invalid(await alpha.refused("list_work_items", {"limit": 1000}), "limit")
    edge = {"id": second["id"], "depends_on": first["id"]}
    deps = await alpha.ok("add_dependency", edge)
    assert deps["depends_on"] == [first["id"]]
    cycle = {"id": first["id"], "depends_on": second["id"]}
    problem = await alpha.refused("add_dependency", cycle)
    path = f"/v1/work-items/{first['id']}/dependencies/{second['id']}"
    _same_refusal(alpha, problem, "PUT", path)
    ready = await alpha.ok("ready_work", {"project": "apollo"})
    assert _same_page(ready, alpha.get("/v1/work-items/ready", project="apollo"))
    assert [i["id"] for i in ready["items"]] == [first["id"]]  # the second waits for it
    _invalid(await alpha.refused("ready_work", {"limit": -1}), "limit")
    problem = await alpha.refused("claim_next", {"session_id": NOBODY})
    body = {"session_id": NOBODY}
    _same_refusal(alpha, problem, "POST", "/v1/work-items/claim-next", body)
    taken = await alpha.ok("claim_next", {"project": "apollo"})
    assert taken["claimed"] and taken["item"]["id"] == first["id"]
    fence = taken["item"]["claim"]["fence"]
    assert _as_read(alpha, taken["item"])
    problem = await bob.refused("claim", {"id": first["id"]})  # alpha holds it
    body = {"session_id": bob_session["id"]}
    _same_refusal(bob, problem, "POST", f"/v1/work-items/{first['id']}/claim", body)
    problem = await alpha.refused("transition", {"id": first["id"], "to": "in_review"})
    path = f"/v1/work-items/{first['id']}/transition"
    _same_refusal(alpha, problem, "POST", path, {"to": "in_review"})
    moved = await alpha.ok("transition", {"id": first["id"], "to": "in_review", "fence": fence})
    assert moved["status"] == "in_review"

    # --- coordination
    ask = {"id": first["id"], "approver_role": "lead", "reason": "ship it?", "fence": fence}
    approval = await alpha.ok("request_approval", ask)
    assert approval == {**approval, **alpha.get(f"/v1/approvals/{approval['id']}")}
    unfenced = {k: v for k, v in ask.items() if k != "fence"}
    problem = await alpha.refused("request_approval", unfenced)
    body = {k: v for k, v in ask.items() if k in ("approver_role", "reason")}
    _same_refusal(alpha, problem, "POST", f"/v1/work-items/{first['id']}/approvals", body)
    decision = {"approval_id": approval["id"], "decision": "approved"}
    problem = await alpha.refused("decide_approval", decision)
    path = f"/v1/approvals/{approval['id']}/decision"
    _same_refusal(alpha, problem, "POST", path, {"decision": "approved"})
    decided = await ann.ok("decide_approval", {**decision, "notes": "fine"})
    assert decided["status"] == "approved"
    assert without_position(decided) == ann.get(f"/v1/approvals/{approval['id']}")
    status = await alpha.ok("fetch_status", {"id": first["id"]})
    assert status == alpha.get(f"/v1/work-items/{first['id']}", include="claim")
    assert status["claim"]["agent_id"] == "alpha" and status["approvals"][0]["id"] == approval["id"]
    assert status["entries"] == []  # no entry is linked to it yet
    problem = await alpha.refused("fetch_status", {"id": NOBODY})
    _same_refusal(alpha, problem, "GET", f"/v1/work-items/{NOBODY}")
    released = await alpha.ok("release", {"id": first["id"], "fence": fence})
    assert released["assignee"] is None and _as_read(alpha, released)
    problem = await alpha.refused("release", {"id": first["id"], "fence": fence})
    path = f"/v1/work-items/{first['id']}/release"
    _same_refusal(alpha, problem, "POST", path, {}, **{"AgentLedger-Fence": str(fence)})
    assert (await alpha.ok("remove_dependency", edge))["depends_on"] == []
    problem = await alpha.refused("remove_dependency", edge)
    path = f"/v1/work-items/{second['id']}/dependencies/{first['id']}"
    _same_refusal(alpha, problem, "DELETE", path)
    task = {"project": "apollo", "title": "Review the build", "to_role": "builder"}
    routed = await alpha.ok("send_task", task)
    assert routed["to_role"] == "builder" and routed["kind"] == "task"
    assert _as_read(alpha, routed)
    _invalid(await alpha.refused("send_task", {"project": "apollo", "title": "x"}), "to_role")
    report = await alpha.ok("status_report", {"project": "apollo"})
    assert _undated(report["markdown"]) == _undated(alpha.get("/v1/projects/apollo/status.md"))
    problem = await alpha.refused("status_report", {"project": "nope"})
    _same_refusal(alpha, problem, "GET", "/v1/projects/nope/status.md")

    # --- agents, messages, handovers, handoffs
    profile = {"display_name": "Alpha", "capabilities": ["python"], "expected_version": 0}
    registered = await alpha.ok("register_agent", profile)
    assert without_position(registered) == alpha.get("/v1/agents/alpha")
    problem = await alpha.refused("register_agent", {"agent_id": "bob"})
    _same_refusal(alpha, problem, "PUT", "/v1/agents/bob", {})
    agents = await alpha.ok("list_agents", {"capability": "python"})
    assert _same_page(agents, alpha.get("/v1/agents", capability="python"))
    assert [a["agent_id"] for a in agents["items"]] == ["alpha"]
    _invalid(await alpha.refused("list_agents", {"status": "asleep"}), "status")
    question = {"to": "bob", "type": "request", "body": "ready to review?"}
    sent = await alpha.ok("send_message", question)
    assert sent == alpha.get(f"/v1/messages/{sent['id']}")  # its position is its own
    body = {"to": "role:nobody", "type": "notification", "body": "anyone?"}
    problem = await alpha.refused("send_message", body)
    _same_refusal(alpha, problem, "POST", "/v1/messages", body)
    note = await alpha.ok("notify", {"to": "bob", "body": "build is green"})
    assert note["type"] == "notification"
    _invalid(await alpha.refused("notify", {"to": "", "body": "x"}), "to")
    reply = {"to": "alpha", "type": "response", "body": "yes", "reply_to": sent["id"]}
    answer = await bob.ok("send_message", {**reply, "ack_required": True})
    inbox = await alpha.ok("check_inbox", {"unread": True, "wait": 5})
    assert _same_page(inbox, alpha.get("/v1/agents/alpha/inbox", unread="true"))
    assert [m["id"] for m in inbox["items"]] == [answer["id"]]
    problem = await alpha.refused("check_inbox", {"agent_id": "bob"})
    _same_refusal(alpha, problem, "GET", "/v1/agents/bob/inbox")
    acked = await alpha.ok("ack_message", {"message_id": answer["id"]})
    assert acked["id"] == answer["id"]
    problem = await alpha.refused("ack_message", {"message_id": answer["id"]})
    _same_refusal(alpha, problem, "POST", f"/v1/messages/{answer['id']}/ack", {})
    document = {
        "summary": "Build done, review pending.",
        "next_steps": ["Review the build"],
        "work_item_ids": [routed["id"]],
    }
    handover = await alpha.ok("write_handover", document)
    assert handover["passed"] is True and handover["failures"] == []
    assert without_position(handover) == alpha.get(f"/v1/handovers/{handover['id']}")
    _invalid(await alpha.refused("write_handover", {"next_steps": "one"}), "next_steps")
    assert await alpha.ok("read_handover", {}) == alpha.get("/v1/agents/alpha/handovers/latest")
    problem = await alpha.refused("read_handover", {"agent_id": "nobody"})
    _same_refusal(alpha, problem, "GET", "/v1/agents/nobody/handovers/latest")
    mine = await alpha.ok("claim", {"id": routed["id"]})
    offer = {"id": routed["id"], "to_agent": "bob", "fence": mine["claim"]["fence"]}
    offered = await alpha.ok("offer_handoff", {**offer, "handover_id": handover["id"]})
    assert _as_read(alpha, offered)
    problem = await alpha.refused("offer_handoff", offer)
    path = f"/v1/work-items/{routed['id']}/handoff"
    fenced = {"AgentLedger-Fence": str(offer["fence"])}
    _same_refusal(alpha, problem, "POST", path, {"to_agent": "bob"}, **fenced)
    problem = await alpha.refused("accept_handoff", {"id": routed["id"]})
    path = f"/v1/work-items/{routed['id']}/handoff/accept"
    _same_refusal(alpha, problem, "POST", path, {"session_id": session["id"]})
    accepted = await bob.ok("accept_handoff", {"id": routed["id"]})
    assert accepted["claim"]["agent_id"] == "bob"
    assert accepted["claim"]["fence"] > offer["fence"]  # the old fence is lost

    ended = await alpha.ok("end_session", {"reason": "done for today"})
    assert ended["status"] == "completed"
    problem = await alpha.refused("end_session", {"session_id": session["id"]})
    path = f"/v1/sessions/{session['id']}/complete"
    _same_refusal(alpha, problem, "POST", path, {})

    await read_resources(alpha, first["id"])
    called = set(alpha.calls) | set(bob.calls) | set(ann.calls)
    assert called == EXPECTED_TOOLS  # every tool, each with valid and with refused input


async def read_resources(agent: Agent, item_id: str) -> None:
    """The status report and a work item as resources a client can attach."""
    templates = (await agent.client.list_resource_templates()).resource_templates
    assert {t.uri_template for t in templates} == {
        "agentledger://projects/{name}/status.md",
        "agentledger://work-items/{id}",
    }
    listed = {r.uri: r for r in (await agent.client.list_resources()).resources}
    status_uri = "agentledger://projects/apollo/status.md"
    assert {status_uri, "agentledger://projects/hermes/status.md"} <= set(listed)
    assert listed[status_uri].mime_type == "text/markdown"
    report = (await agent.client.read_resource(status_uri)).contents[0]
    assert report.mime_type == "text/markdown"
    assert _undated(report.text) == _undated(agent.get("/v1/projects/apollo/status.md"))  # type: ignore[union-attr]
    item = (await agent.client.read_resource(f"agentledger://work-items/{item_id}")).contents[0]
    assert item.mime_type == "application/json"
    read = agent.get(f"/v1/work-items/{item_id}", include="claim,ancestors,children")
    assert json.loads(item.text) == read  # type: ignore[union-attr]
    for missing in ("agentledger://projects/nope/status.md", "agentledger://elsewhere"):
        with pytest.raises(MCPError) as refused:
            await agent.client.read_resource(missing)
        assert refused.value.error.code == INVALID_PARAMS  # not found: the caller's to fix


def _as_read(agent: Agent, written: dict[str, Any]) -> bool:
    """A written item is the item the API reads back (which adds what only reads show: its
    depth, approvals and entries)."""
    read = agent.get(f"/v1/work-items/{written['id']}", include="claim")
    return {k: read[k] for k in written if k not in ("position", "depth")} == {
        k: v for k, v in written.items() if k not in ("position", "depth")
    }


def _same_page(page: dict[str, Any], read: dict[str, Any]) -> bool:
    """The same items; a page's position is how far the read models were when it was read."""
    return without_position(page) == without_position(read)


def _invalid(problem: dict[str, Any], argument: str) -> None:
    """Refused at the tool's edge, as the API refuses a bad body: 422 naming the argument."""
    assert problem["status"] == 422 and problem["type"].endswith("/validation-error"), problem
    assert [e["loc"][:2] for e in problem["errors"]] == [["arguments", argument]], problem


def _same_refusal(
    agent: Agent, problem: dict[str, Any], method: str, path: str, body: Any = None, **headers: str
) -> None:
    """The API refuses the same command the same way (and a refusal writes nothing, so it
    may be sent again)."""
    response = agent.send(method, path, body, **headers)
    assert response.status_code == problem["status"], (response.status_code, problem)
    assert refusal_of(response.json()) == refusal_of(problem)


def _undated(markdown: str) -> str:
    return "\n".join(line for line in markdown.splitlines() if not line.startswith("Generated"))
