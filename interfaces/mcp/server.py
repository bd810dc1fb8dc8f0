"""The MCP server (the SDK's low-level `Server`): lists the tools and resources, validates a
call's arguments against the tool's schema, runs it, and shapes what the API answered into a
tool result — a refusal is a tool error (`isError`) carrying the API's problem document."""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import unquote

import mcp.types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from agentledger.interfaces.mcp.api import Caller, Refused, problem, seg
from agentledger.interfaces.mcp.tools import TOOLS
from agentledger.interfaces.mcp.tools.base import Tool

NAME = "agentledger"
INSTRUCTIONS = (
    "AgentLedger coordinates agents on shared work. Start a session (start_session) and call "
    "heartbeat within its ttl while you work; pick your project (get_project, then set_project "
    "with expected_version); take work with claim_next and keep its claim.fence for every "
    "write to the item; log progress with append_entry; transition the item to done; "
    "end_session when finished. A refused call is a tool error whose structured content is "
    "a problem document (type, title, status, detail and fields such as current_version): "
    "read it, decide again and retry. Pass an idempotency_key to any write you may retry."
)
STATUS_TEMPLATE = "agentledger://projects/{name}/status.md"
ITEM_TEMPLATE = "agentledger://work-items/{id}"
_STATUS_PREFIX, _STATUS_SUFFIX = "agentledger://projects/", "/status.md"
_ITEM_PREFIX = "agentledger://work-items/"
MAX_LISTED_PROJECTS = 100
# The MCP error code the spec gives a resource that does not exist (and other bad params).
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

CallerOf = Callable[[ServerRequestContext[Any, Any]], Caller]


def build_server(caller_of: CallerOf) -> Server[Any]:
    """The server; `caller_of` says who a request comes from (the MCP request's bearer token
    over HTTP, the configured token over stdio) and how to reach the API."""

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[_definition(tool) for tool in TOOLS.values()])

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        tool = TOOLS.get(params.name)
        if tool is None:
            return _refused(
                problem(404, "unknown-tool", "No such tool", f"no tool named {params.name!r}")
            )
        try:
            args = tool.args.model_validate_json(json.dumps(params.arguments or {}))
        except ValidationError as exc:
            return _refused(_invalid_arguments(exc))
        try:
            result = await tool.run(caller_of(ctx), args)
        except Refused as refusal:
            return _refused(refusal)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(result))],
            structured_content=result,
        )

    async def list_resource_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=RESOURCE_TEMPLATES)

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        try:
            page = await caller_of(ctx).get(
                "/v1/projects", archived="false", limit=MAX_LISTED_PROJECTS
            )
        except Refused as refusal:
            raise _resource_error(refusal) from None
        return types.ListResourcesResult(
            resources=[_status_resource(p["name"]) for p in page.body["items"]]
        )

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        try:
            text, mime = await _read(caller_of(ctx), uri)
        except Refused as refusal:
            raise _resource_error(refusal) from None
        return types.ReadResourceResult(
            contents=[types.TextResourceContents(uri=uri, mime_type=mime, text=text)]
        )

    return Server(
        NAME,
        version=_version(),
        title="AgentLedger",
        instructions=INSTRUCTIONS,
        # Without it the HTTP transport lists every tool to check one call's headers.
        get_tool_input_schema=_input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
    )


RESOURCE_TEMPLATES = [
    types.ResourceTemplate(
        name="project-status",
        title="Project status report",
        uri_template=STATUS_TEMPLATE,
        description="A project's status report (markdown): counts, in progress, blocked, "
        "ready, recently done, live sessions.",
        mime_type="text/markdown",
    ),
    types.ResourceTemplate(
        name="work-item",
        title="Work item",
        uri_template=ITEM_TEMPLATE,
        description="A work item (JSON) with its ancestors, children, dependencies, claim, "
        "approvals and latest entries.",
        mime_type="application/json",
    ),
]


def _input_schema(name: str) -> dict[str, Any] | None:
    tool = TOOLS.get(name)
    return None if tool is None else tool.input_schema


def _definition(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        description=tool.description,
        input_schema=tool.input_schema,
        output_schema=tool.output_schema,
        annotations=types.ToolAnnotations(
            read_only_hint=tool.read_only,
            destructive_hint=False,  # nothing is deleted: the log only grows
            idempotent_hint=tool.read_only or tool.idempotent,
            open_world_hint=False,
        ),
    )


def _refused(refusal: Refused) -> types.CallToolResult:
    """A tool error the model can act on: the problem as structured content, and as text
    for clients that only show text."""
    body = refusal.problem
    summary = f"{body.get('status')} {body.get('title')}: {body.get('detail')}"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=f"{summary}\n{json.dumps(body)}")],
        structured_content=body,
        is_error=True,
    )


def _invalid_arguments(exc: ValidationError) -> Refused:
    errors = [
        {"loc": ["arguments", *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    return problem(
        422,
        "validation-error",
        "Invalid request",
        f"{len(errors)} invalid argument(s)",
        errors=errors,
    )


def _status_resource(project: str) -> types.Resource:
    return types.Resource(
        name=f"status-{project}",
        title=f"Status of {project}",
        uri=f"{_STATUS_PREFIX}{project}{_STATUS_SUFFIX}",
        mime_type="text/markdown",
    )


async def _read(caller: Caller, uri: str) -> tuple[str, str]:
    if uri.startswith(_STATUS_PREFIX) and uri.endswith(_STATUS_SUFFIX):
        project = unquote(uri[len(_STATUS_PREFIX) : -len(_STATUS_SUFFIX)])
        if project:
            answer = await caller.get(f"/v1/projects/{seg(project)}/status.md")
            return str(answer.body), "text/markdown"
    if uri.startswith(_ITEM_PREFIX):
        item = uri[len(_ITEM_PREFIX) :]
        if item:
            answer = await caller.get(
                f"/v1/work-items/{seg(item)}", include="claim,ancestors,children"
            )
            return json.dumps(answer.body), "application/json"
    raise problem(404, "not-found", "Not found", f"no resource {uri[:300]!r}")


def _resource_error(refusal: Refused) -> MCPError:
    """Reading a resource has no tool-error form: the problem travels as the error's data."""
    body = refusal.problem
    code = INTERNAL_ERROR if int(body.get("status") or 500) >= 500 else INVALID_PARAMS
    return MCPError(code=code, message=str(body.get("detail")), data=body)


def _version() -> str:
    try:
        return version("agentledger")
    except PackageNotFoundError:
        return "0.0.0"
