"""The business of AgentLedger: aggregates, their events and invariants. No I/O here."""
