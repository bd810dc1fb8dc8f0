"""Test harness helpers: finding a real PostgreSQL server, building runtimes and clients."""
