"""The MCP server (official `mcp` SDK): tools and resources over the HTTP API's routes, served
over streamable HTTP at /mcp by `serve` and over stdio by `agentledger mcp`."""
