"""Errors a client can cause, raised by use cases and mapped once to HTTP problems."""

from __future__ import annotations


class ApplicationError(Exception):
    """Base of errors the application reports to its callers."""


class Unauthenticated(ApplicationError):
    """No credentials, or credentials that do not identify a live token."""


class Forbidden(ApplicationError):
    """The principal is known but may not do this."""


class NotFound(ApplicationError):
    def __init__(self, kind: str, identifier: str) -> None:
        self.kind = kind
        self.identifier = identifier
        super().__init__(f"{kind} '{identifier}' not found")


class PreconditionFailed(ApplicationError):
    """The client's expected version is stale; nothing was written."""

    WEAK = -1  # a weak ETag was sent: it never matches (RFC 9110 strong comparison)
    ABSENT = -2  # `If-None-Match: *` was sent: the resource must not exist yet

    def __init__(self, expected: int, current: int, **details: object) -> None:
        self.expected = expected
        self.current = current
        self.details = details
        asked = {
            self.WEAK: "a weak ETag never matches",
            self.ABSENT: "expected no existing resource (If-None-Match: *)",
        }.get(expected, f"expected version {expected}")
        super().__init__(f"{asked}; current version is {current}")


class PreconditionRequired(ApplicationError):
    """The write must say which version it expects (If-Match / If-None-Match)."""


class ProjectExists(ApplicationError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"project '{name}' already exists")


class NoProjectSelected(ApplicationError):
    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(f"agent '{agent_id}' has no project selected")


class ConcurrencyConflict(ApplicationError):
    """Concurrent writers kept winning; the command gave up without writing."""


class NotCaughtUp(ApplicationError):
    """The read model has not reached the position the client asked to be consistent with."""

    def __init__(self, wanted: int, reached: int) -> None:
        self.wanted = wanted
        self.reached = reached
        super().__init__(f"read model is at position {reached}, waiting for {wanted} timed out")


class PositionNotInLog(ApplicationError):
    """A consistency position beyond the newest event: no write of this log returned it."""

    def __init__(self, position: int) -> None:
        self.position = position
        super().__init__(f"position {position} is beyond the end of the log")


class InvalidCursor(ApplicationError):
    """A pagination cursor that is malformed or belongs to another query."""
