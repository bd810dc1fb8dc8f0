"""How AgentLedger is stored and configured: event store wiring, read-model tables, settings."""
