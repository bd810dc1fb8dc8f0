"""Rule violations the domain refuses. Each names what the client got wrong."""

from __future__ import annotations


class DomainError(Exception):
    """A command the current state does not allow."""


class InvalidValue(DomainError):
    """A value outside what the domain accepts (e.g. a malformed metadata object)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidTransition(DomainError):
    """A lifecycle move not allowed from the current state."""

    def __init__(self, current: str, attempted: str, allowed: tuple[str, ...]) -> None:
        self.current = current
        self.attempted = attempted
        self.allowed = allowed
        super().__init__(
            f"cannot {attempted} from status '{current}'"
            + (f"; allowed from here: {', '.join(allowed)}" if allowed else "")
        )


class SessionTerminated(InvalidTransition):
    """The session has ended (completed, failed or expired); terminal states are final."""


class LeaseLapsed(DomainError):
    """The session's lease has run out: it can no longer act, even before expiry is recorded."""

    def __init__(self, session_id: str, expired_at: str) -> None:
        self.session_id = session_id
        self.expired_at = expired_at
        super().__init__(f"session {session_id} lease lapsed at {expired_at}")


class SessionNotActive(DomainError):
    """The session exists and is live but has not been activated (it is pending)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(f"session {session_id} is pending: activate it first")


class SessionNotOwned(DomainError):
    """The session belongs to another agent."""

    def __init__(self, session_id: str, owner: str, agent_id: str) -> None:
        self.session_id = session_id
        self.owner = owner
        super().__init__(f"session {session_id} belongs to agent '{owner}', not '{agent_id}'")


class TokenRevoked(DomainError):
    """The access token has been revoked."""
