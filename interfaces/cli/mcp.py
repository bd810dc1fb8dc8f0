"""`agentledger mcp`: the MCP server over stdio (see `interfaces.mcp.stdio`)."""

from __future__ import annotations

import anyio
import click

from agentledger.interfaces.mcp.stdio import serve_stdio


@click.command("mcp")
@click.option(
    "--token",
    envvar="AGENTLEDGER_TOKEN",
    required=True,
    help="The agent's bearer token (or AGENTLEDGER_TOKEN): every tool acts as its principal.",
)
@click.option(
    "--url",
    envvar="AGENTLEDGER_URL",
    default=None,
    help="A running AgentLedger (or AGENTLEDGER_URL), e.g. http://127.0.0.1:8080: tool calls "
    "go through its API. Without it, the configured store is opened here.",
)
def mcp(token: str, url: str | None) -> None:
    """Serve MCP over stdio, for a desktop or coding agent that starts it as a subprocess."""
    refused = anyio.run(serve_stdio, token.strip(), url)
    if refused is not None:
        raise click.ClickException(f"the token was refused: {refused}")
