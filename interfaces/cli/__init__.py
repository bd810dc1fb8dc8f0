"""The `agentledger` command line: serve, tokens, sessions, projections."""
