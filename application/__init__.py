"""What AgentLedger does: use cases in, aggregates loaded and saved, results out. No HTTP here."""
