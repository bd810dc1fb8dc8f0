"""Errors a client can cause, raised by use cases and by the interfaces' request parsing.

Each interface maps them once (HTTP: `interfaces/http/problems.py`); none of them names HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
    """The resource is not what the writer expected (`application.preconditions`); nothing
    was written. `expected` is the version the writer named, if it named one."""

    def __init__(self, asked: str, expected: int | None, current: int, **details: object) -> None:
        self.expected = expected
        self.current = current
        self.details = details
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


class ReadModelBuilding(ApplicationError):
    """A read model of a new version is being built from the log on start-up: nothing is
    answered from it until it is whole."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        super().__init__(f"building read model(s) {', '.join(names)} from the log; try again")


class InvalidPosition(ApplicationError):
    """A consistency position that is not a log position (malformed)."""


class PositionNotInLog(InvalidPosition):
    """A consistency position beyond the newest event: no write of this log returned it."""

    def __init__(self, position: int) -> None:
        self.position = position
        super().__init__(f"position {position} is beyond the end of the log")


class InvalidCursor(ApplicationError):
    """A pagination cursor that is malformed or belongs to another query."""


# --- the request itself ------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """One thing wrong with one input: where (`("body", "ttl_seconds")`, `("query", "limit")`,
    `("path", "agent_id")`), what, and a machine-readable kind (e.g. `"missing"`)."""

    loc: tuple[str | int, ...]
    msg: str
    type: str


class InvalidRequest(ApplicationError):
    """Inputs that are missing, malformed or unknown; every one is listed in `errors`."""

    def __init__(self, detail: str, errors: Sequence[FieldError]) -> None:
        self.errors = tuple(errors)
        super().__init__(detail)


class MalformedJson(ApplicationError):
    """A body that is not JSON text (or not text a UTF-8 store can hold)."""


class UnsupportedMediaType(ApplicationError):
    """A body sent as something other than JSON."""


class BodyTooLarge(ApplicationError):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"at most {limit} bytes")


class InvalidPrecondition(ApplicationError):
    """A precondition (expected version) that cannot be read, or contradicts another one."""


class InvalidFence(ApplicationError):
    """A claim fence that is not a non-negative integer."""


class StoreUnavailable(ApplicationError):
    """The store did not answer in time (locked, unreachable, out of connections)."""

    def __init__(self) -> None:
        super().__init__(
            "the store did not answer in time (locked or unreachable); nothing was written "
            "by this request unless its response said so. Retry later."
        )


class IdempotencyKeyReused(ApplicationError):
    """The key was used before for a request with another body or other preconditions."""


class IdempotencyInProgress(ApplicationError):
    """The first request with this key is still running."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"a request with this key is still running; retry in {retry_after} s")
        self.retry_after = retry_after


class InvalidIdempotencyKey(ApplicationError):
    pass


class NoRecipients(ApplicationError):
    """A message to a role nobody acts in now: it would reach nobody."""

    def __init__(self, to: str) -> None:
        self.to = to
        super().__init__(f"no agent has a live session acting in {to}: the message reaches nobody")


class TooManyWaiters(ApplicationError):
    """Every long-poll slot of this process is taken (each holds a worker thread)."""

    def __init__(self) -> None:
        super().__init__("too many requests are waiting for messages here; retry shortly")
