"""Agent sessions: leases an agent keeps alive by heartbeating.

Lifecycle: pending -> active -> completed | failed | expired, and pending -> expired.
A lease whose time has passed counts as expired at once, before `SessionExpired` is recorded:
the effective status is always computed against the clock the caller passes in.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from agentledger.domain.errors import (
    InvalidTransition,
    InvalidValue,
    LeaseLapsed,
    SessionNotActive,
    SessionNotOwned,
    SessionTerminated,
)
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.metadata import Metadata, merge_metadata, validate_metadata
from agentledger.domain.names import validate_agent_id
from agentledger.domain.text import clean_optional_text
from agentledger.domain.work_items import ROLE_PATTERN as WORK_ROLE_PATTERN

DEFAULT_TTL_SECONDS = 900
MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 3600
# A renewal moving the expiry by less than this share of the TTL is answered from state, not
# written: heartbeats must not flood the log.
RENEWAL_WRITE_THRESHOLD = 0.1
# Agents are told to heartbeat at a third of the TTL: two heartbeats may be lost before lapse.
HEARTBEAT_INTERVAL_SHARE = 1 / 3


class SessionStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {SessionStatus.COMPLETED, SessionStatus.FAILED, SessionStatus.EXPIRED}
)
LIVE_STATUSES = frozenset({SessionStatus.PENDING, SessionStatus.ACTIVE})


def effective_status(status: str, lease_expires_at: datetime, now: datetime) -> SessionStatus:
    """The status at `now`: a live lease whose time has passed is expired, recorded or not."""
    recorded = SessionStatus(status)
    if recorded in LIVE_STATUSES and now >= lease_expires_at:
        return SessionStatus.EXPIRED
    return recorded


def heartbeat_interval(ttl_seconds: int) -> int:
    return max(1, int(ttl_seconds * HEARTBEAT_INTERVAL_SHARE))


def clamp_ttl(ttl_seconds: int | None) -> int:
    """Default 900 s; out-of-range values are clamped to 60-3600 s rather than refused."""
    if ttl_seconds is None:
        return DEFAULT_TTL_SECONDS
    return max(MIN_TTL_SECONDS, min(MAX_TTL_SECONDS, ttl_seconds))


class AgentSession(LedgerAggregate):
    """One agent's lease on being alive and at work, in the role it acts in (if any)."""

    # Version 2 added `role` (the role a session acts in): snapshots taken before are upcast.
    class_version = 2

    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        agent_id: str
        role: str | None  # the role it acts in (routed tasks), fixed when it starts
        state: str  # the stored status value; a plain string so snapshots round-trip
        ttl_seconds: int
        lease_expires_at: datetime
        metadata: Metadata
        ended_at: datetime | None
        end_reason: str | None

    # Archived: an ended session put out of the default lists (still in the log and audit).
    # A class default, so sessions (and snapshots) from before archiving read as not archived.
    archived = False

    class SessionStarted(LedgerAggregate.Created):
        agent_id: str
        status: str
        ttl_seconds: int
        lease_expires_at: datetime
        metadata: dict[str, Any]
        role: str | None

        # Version 2 added `role`: sessions started before it act in none.
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            LedgerAggregate.Event.upcast_v1_v2(state)  # the context every event gained
            state.setdefault("role", None)

        def apply(self, aggregate: Any) -> None:
            aggregate.agent_id = self.agent_id
            aggregate.state = self.status
            aggregate.ttl_seconds = self.ttl_seconds
            aggregate.lease_expires_at = self.lease_expires_at
            aggregate.metadata = dict(self.metadata)
            aggregate.ended_at = None
            aggregate.end_reason = None
            aggregate.role = self.role

    class SessionActivated(LedgerAggregate.Event):
        lease_expires_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.state = SessionStatus.ACTIVE.value
            aggregate.lease_expires_at = self.lease_expires_at

    class LeaseRenewed(LedgerAggregate.Event):
        lease_expires_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.lease_expires_at = self.lease_expires_at

    class SessionMetadataUpdated(LedgerAggregate.Event):
        metadata: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.metadata = dict(self.metadata)

    class SessionCompleted(LedgerAggregate.Event):
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.state = SessionStatus.COMPLETED.value
            aggregate.ended_at = self.timestamp
            aggregate.end_reason = self.reason

    class SessionFailed(LedgerAggregate.Event):
        reason: str | None

        def apply(self, aggregate: Any) -> None:
            aggregate.state = SessionStatus.FAILED.value
            aggregate.ended_at = self.timestamp
            aggregate.end_reason = self.reason

    class SessionExpired(LedgerAggregate.Event):
        lease_expired_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.state = SessionStatus.EXPIRED.value
            aggregate.ended_at = self.lease_expired_at
            aggregate.end_reason = "lease_expired"

    class SessionArchived(LedgerAggregate.Event):
        def apply(self, aggregate: Any) -> None:
            aggregate.archived = True

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state.setdefault("role", None)

    # --- commands -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        ctx: EventContext,
        *,
        agent_id: str,
        ttl_seconds: int | None = None,
        pending: bool = False,
        metadata: dict[str, Any] | None = None,
        session_id: UUID | None = None,
        role: str | None = None,
    ) -> AgentSession:
        """`role`: the role the session acts in, which the caller has checked the agent is
        granted (a `worker:<role>` token role, or a coordinator's assignment)."""
        ttl = clamp_ttl(ttl_seconds)
        if role is not None and not WORK_ROLE_PATTERN.fullmatch(role):
            raise InvalidValue("role must be a role name (letters, digits, ._-)", field="role")
        return cls._begin(
            cls.SessionStarted,
            ctx,
            session_id or uuid4(),
            agent_id=validate_agent_id(agent_id),
            status=(SessionStatus.PENDING if pending else SessionStatus.ACTIVE).value,
            ttl_seconds=ttl,
            lease_expires_at=ctx.occurred_at + timedelta(seconds=ttl),
            metadata=validate_metadata(metadata or {}),
            role=role,
        )

    def activate(self, ctx: EventContext) -> None:
        self.ensure_live(ctx.occurred_at, attempted="activate")
        if self.status is not SessionStatus.PENDING:
            raise InvalidTransition(
                self.status.value, "activate", self.allowed_commands(ctx.occurred_at)
            )
        self._record(
            self.SessionActivated, ctx, lease_expires_at=self._renewed_expiry(ctx.occurred_at)
        )

    def renew_lease(self, ctx: EventContext) -> bool:
        """Heartbeat. Returns whether a renewal was written (small moves are not)."""
        self.ensure_live(ctx.occurred_at, attempted="heartbeat")
        if self.status is not SessionStatus.ACTIVE:
            raise InvalidTransition(
                self.status.value, "heartbeat", self.allowed_commands(ctx.occurred_at)
            )
        new_expiry = self._renewed_expiry(ctx.occurred_at)
        threshold = timedelta(seconds=self.ttl_seconds * RENEWAL_WRITE_THRESHOLD)
        if new_expiry - self.lease_expires_at < threshold:
            return False
        self._record(self.LeaseRenewed, ctx, lease_expires_at=new_expiry)
        return True

    def update_metadata(self, ctx: EventContext, patch: dict[str, Any]) -> bool:
        self.ensure_live(ctx.occurred_at, attempted="update metadata")
        merged = merge_metadata(self.metadata, patch)
        if merged == self.metadata:
            return False
        self._record(self.SessionMetadataUpdated, ctx, metadata=merged)
        return True

    def complete(self, ctx: EventContext, reason: str | None = None) -> None:
        self.ensure_live(ctx.occurred_at, attempted="complete")
        if self.status is not SessionStatus.ACTIVE:
            raise InvalidTransition(
                self.status.value, "complete", self.allowed_commands(ctx.occurred_at)
            )
        self._record(self.SessionCompleted, ctx, reason=clean_optional_text(reason, "reason", 1000))

    def fail(self, ctx: EventContext, reason: str | None = None) -> None:
        self.ensure_live(ctx.occurred_at, attempted="fail")
        if self.status is not SessionStatus.ACTIVE:
            raise InvalidTransition(
                self.status.value, "fail", self.allowed_commands(ctx.occurred_at)
            )
        self._record(self.SessionFailed, ctx, reason=clean_optional_text(reason, "reason", 1000))

    def expire(self, ctx: EventContext) -> bool:
        """Record that the lease lapsed. Returns False (writing nothing) if it has not."""
        if self.status.is_terminal or not self.has_lapsed(ctx.occurred_at):
            return False
        self._record(self.SessionExpired, ctx, lease_expired_at=self.lease_expires_at)
        return True

    def archive(self, ctx: EventContext, ended_before: datetime) -> bool:
        """Put an ended session out of the default lists. Only a session that ended before
        `ended_before`; a live one, one ended since, or one archived already writes nothing."""
        if self.archived or not self.status.is_terminal:
            return False
        if self.ended_at is None or self.ended_at >= ended_before:
            return False
        self._record(self.SessionArchived, ctx)
        return True

    # --- queries on state -----------------------------------------------------------------

    @property
    def status(self) -> SessionStatus:
        """The recorded status (see `effective_status` for the status at a given moment)."""
        return SessionStatus(self.state)

    def has_lapsed(self, now: datetime) -> bool:
        return self.status in LIVE_STATUSES and now >= self.lease_expires_at

    def effective_status(self, now: datetime) -> SessionStatus:
        return effective_status(self.state, self.lease_expires_at, now)

    def ensure_live(self, now: datetime, attempted: str = "use the session") -> None:
        """Refuse commands on a session that has ended or whose lease has run out."""
        if self.status.is_terminal:
            raise SessionTerminated(self.status.value, attempted, ())
        if self.has_lapsed(now):
            raise LeaseLapsed(str(self.id), self.lease_expires_at.isoformat())

    def ensure_active_for(self, agent_id: str, now: datetime) -> None:
        """What acting on a session's behalf needs: the agent's own, active, unexpired lease."""
        if self.agent_id != agent_id:
            raise SessionNotOwned(str(self.id), self.agent_id, agent_id)
        self.ensure_live(now)
        if self.status is not SessionStatus.ACTIVE:
            raise SessionNotActive(str(self.id))

    def allowed_commands(self, now: datetime) -> tuple[str, ...]:
        status = self.effective_status(now)
        if status is SessionStatus.PENDING:
            return ("activate", "update metadata")
        if status is SessionStatus.ACTIVE:
            return ("heartbeat", "update metadata", "complete", "fail")
        return ()

    def heartbeat_interval_seconds(self) -> int:
        return heartbeat_interval(self.ttl_seconds)

    def _renewed_expiry(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.ttl_seconds)
