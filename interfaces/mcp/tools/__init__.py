"""Every MCP tool, by area; each calls the HTTP API's routes (see `interfaces.mcp.api`)."""

from __future__ import annotations

from agentledger.interfaces.mcp.tools import agents, context, coordination, sessions, work
from agentledger.interfaces.mcp.tools.base import Tool

TOOLS: dict[str, Tool] = {
    tool.name: tool
    for box in (sessions, context, work, coordination, agents)
    for tool in box.toolbox.tools
}
