"""How people and programs reach AgentLedger: the HTTP API and the CLI. Thin by design."""
