"""Read-model tables, one module per read model, each on PostgreSQL and SQLite."""
