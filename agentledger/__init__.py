"""AgentLedger: an event-sourced coordination service for multi-agent AI systems.

The four layers live in the repository's top-level folders (`domain/`, `application/`,
`infrastructure/`, `interfaces/`); the links beside this file install and import them under
this one name, `agentledger.domain` and so on, so they never collide with other packages.
"""
