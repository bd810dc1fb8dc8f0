"""Read-model rows and the ports projections write through and queries read through.

Infrastructure implements these ports for PostgreSQL and SQLite; the application never sees SQL.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar
from uuid import UUID

from agentledger.application.clock import Clock
from agentledger.application.errors import InvalidCursor
from agentledger.domain.sessions import effective_status

if TYPE_CHECKING:  # the entries read model stores entries as callers see them
    from agentledger.application.entries import EntryView

T = TypeVar("T")
R = TypeVar("R")
MAX_PAGE = 500  # the largest page any list returns
W = TypeVar("W", contravariant=True)


@dataclass(frozen=True)
class SessionRow:
    id: UUID
    agent_id: str
    status: str
    ttl_seconds: int
    lease_expires_at: datetime
    metadata: dict[str, Any]
    version: int
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    role: str | None
    archived: bool  # put out of the default lists (`sessions archive`)
    created_position: int
    position: int

    def status_at(self, now: datetime) -> str:
        """Expiry is computed on read: a lapsed lease is expired before the sweeper says so."""
        return effective_status(self.status, self.lease_expires_at, now).value


@dataclass(frozen=True)
class TokenRow:
    id: UUID
    principal: str
    roles: list[str]
    label: str | None
    issued_at: datetime
    issued_by: str
    revoked_at: datetime | None
    revoked_by: str | None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None
    position: int


@dataclass(frozen=True)
class Read(Generic[T]):
    """A query answer and the log position the read model reflected when it was read."""

    value: T
    position: int


class Created(Protocol):
    """A row that knows where in the log it was created (what oldest-first lists sort by)."""

    @property
    def created_position(self) -> int: ...


C = TypeVar("C", bound=Created)


class Rows(Protocol):
    """What a projection writes through: rows of named tables, inside the read model's
    transaction."""

    def insert(self, table: str, values: Mapping[str, Any]) -> None: ...
    def insert_missing(self, table: str, values: Mapping[str, Any]) -> None:
        """Insert the row unless one with its key is there (no read to find out)."""

    def update(self, table: str, key: Mapping[str, Any], changes: Mapping[str, Any]) -> None: ...
    def delete(self, table: str, key: Mapping[str, Any]) -> None: ...
    def update_all(
        self, table: str, where: Mapping[str, Any], changes: Mapping[str, Any]
    ) -> None: ...
    def get(self, table: str, key: Mapping[str, Any]) -> dict[str, Any] | None: ...
    def find(self, table: str, where: Mapping[str, Any]) -> list[dict[str, Any]]: ...
    def add_to(self, table: str, key: Mapping[str, Any], column: str, delta: int) -> None: ...
    def with_prefix(self, table: str, column: str, prefix: str) -> list[dict[str, Any]]: ...


class SessionsReader(Protocol):
    def position(self) -> int: ...
    def get(self, session_id: UUID) -> SessionRow | None: ...
    def list(
        self,
        *,
        agent_id: str | None,
        status: str | None,
        now: datetime,
        limit: int,
        before_position: int | None,
        include_archived: bool = False,
    ) -> list[SessionRow]: ...
    def lapsed(self, now: datetime, limit: int) -> builtins.list[UUID]: ...
    def ended_before(self, moment: datetime, limit: int) -> builtins.list[UUID]:
        """Sessions ended before `moment`, not archived yet."""


@dataclass(frozen=True)
class ProjectRow:
    id: UUID
    name: str
    description: str | None
    archived: bool
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    archived_at: datetime | None
    archived_position: int | None
    position: int


@dataclass(frozen=True)
class SelectionRow:
    selection_id: UUID
    agent_id: str
    project: str | None
    version: int
    session_id: UUID | None
    updated_at: datetime
    cleared_reason: str | None
    position: int


@dataclass(frozen=True)
class EntryFilter:
    project: str
    agent_id: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    work_item_id: UUID | None = None


class ProjectsReader(Protocol):
    def position(self) -> int: ...
    def get(self, name: str) -> ProjectRow | None: ...
    def list(
        self, *, archived: bool | None, limit: int, after_name: str | None
    ) -> builtins.list[ProjectRow]: ...


class SelectionsReader(Protocol):
    def position(self) -> int: ...
    def get(self, agent_id: str) -> SelectionRow | None: ...
    def agents_on(self, project: str) -> builtins.list[str]: ...


class EntriesReader(Protocol):
    def position(self) -> int: ...
    def list(
        self, where: EntryFilter, *, limit: int, before_position: int | None
    ) -> builtins.list[EntryView]: ...


class TokensReader(Protocol):
    def position(self) -> int: ...
    def list(self, *, include_revoked: bool) -> builtins.list[TokenRow]: ...


ReadyKey = tuple[int, int]  # (priority, created_position): the ready queue's order


@dataclass(frozen=True)
class WorkItemRow:
    id: UUID
    project: str
    kind: str
    title: str
    description: str | None
    priority: int
    parent_id: UUID | None
    to_role: str | None
    metadata: dict[str, Any]
    status: str
    blocked_reason: str | None
    archived: bool
    project_archived: bool
    holder_session: UUID | None
    holder_agent: str | None
    fence: int
    claimed_at: datetime | None
    claim_expires_at: datetime | None
    path: str  # ids from the root down to this item, joined by "/"
    depth: int  # 0 for a root
    # How many of its dependencies are not done: the ready queue reads `waiting_on = 0`
    # instead of joining every waiting item's dependencies.
    waiting_on: int
    version: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    finished_at: datetime | None  # when it became done or cancelled
    trace_id: str  # the trace of the request that created it
    offered_to: str | None  # an open handoff offer (until offer_expires_at)
    offer_expires_at: datetime | None
    parked_on: UUID | None  # the approval a parked claim waits on
    created_position: int
    position: int

    @property
    def ready_key(self) -> ReadyKey:
        """Where this row sits in the ready queue's order (a page of it ends here)."""
        return (self.priority, self.created_position)

    def live_holder(self, now: datetime) -> str | None:
        """The agent holding a claim whose lease has not lapsed (None otherwise)."""
        if self.holder_agent is None or self.claim_expires_at is None:
            return None
        return self.holder_agent if self.claim_expires_at > now else None


@dataclass(frozen=True)
class WorkItemFilter:
    project: str | None = None
    kind: str | None = None
    status: str | None = None
    parent_id: UUID | None = None
    assignee: str | None = None
    to_role: str | None = None
    archived: bool | None = None
    trace_id: str | None = None  # the trace the item was created under


class WorkItemsReader(Protocol):
    def position(self) -> int: ...
    def get(self, item_id: UUID) -> WorkItemRow | None: ...
    def get_many(self, ids: Sequence[UUID]) -> builtins.list[WorkItemRow]: ...
    def list(
        self, where: WorkItemFilter, *, limit: int, after_position: int | None, now: datetime
    ) -> builtins.list[WorkItemRow]: ...
    def children(self, item_id: UUID) -> builtins.list[WorkItemRow]: ...
    def descendants(self, row: WorkItemRow) -> builtins.list[WorkItemRow]: ...
    def in_project(self, project: str) -> builtins.list[WorkItemRow]: ...
    def counts(self, project: str) -> tuple[dict[str, int], dict[str, int]]:
        """Unarchived items of the project by status and by kind."""

    def with_status(
        self, project: str, status: str, limit: int, newest_finished_first: bool = False
    ) -> builtins.list[WorkItemRow]: ...
    def claims_in(self, project: str, now: datetime) -> dict[UUID, int]:
        """Live claims on the project's unarchived items, by holder session."""

    def ready(
        self,
        *,
        project: str | None,
        kind: str | None,
        to_role: str | None,
        now: datetime,
        limit: int,
        after: ReadyKey | None = None,
        roles: Sequence[str] | None = None,
        excluding: Sequence[UUID] = (),
    ) -> builtins.list[WorkItemRow]:
        """Ready items, best first (higher priority, then older), decided by the query itself:
        `domain.readiness` over the rows (open, not archived, project not archived, no claim
        live at `now`, every dependency present and done), so a page costs what it returns.
        `after`: the `ready_key` of the last row of the previous page. `roles`: only items
        routed to none of them or to one of these (`domain.claims.routed_to`); None: all.
        `excluding`: items left out (claimed since the rows were written)."""

    def dependencies(self, item_ids: Sequence[UUID]) -> dict[UUID, builtins.list[UUID]]:
        """What each of `item_ids` depends on (items without dependencies are left out)."""

    def dependents(self, item_id: UUID) -> builtins.list[UUID]: ...
    def statuses(self, item_ids: Sequence[UUID]) -> dict[UUID, str]: ...
    def held_by(self, session_id: UUID) -> builtins.list[UUID]: ...
    def offers_expired(self, now: datetime, limit: int) -> builtins.list[UUID]:
        """Items whose handoff offer's time has passed, not yet recorded as expired."""

    def parked(self, limit: int) -> builtins.list[UUID]:
        """Items whose claim is parked (the sweeper checks whether each has lapsed)."""

    def finished_before(self, moment: datetime, limit: int) -> builtins.list[UUID]: ...


@dataclass(frozen=True)
class ApprovalRow:
    id: UUID
    work_item_id: UUID
    project: str
    approver_role: str
    reason: str
    status: str  # as recorded: pending, approved or rejected (expiry is computed on read)
    requested_by: str
    expires_at: datetime | None
    decided_by: str | None
    decided_at: datetime | None
    notes: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    created_position: int
    position: int


@dataclass(frozen=True)
class ApprovalFilter:
    status: str | None = None  # pending, approved, rejected or expired (as of now)
    approver_role: str | None = None
    work_item_id: UUID | None = None
    project: str | None = None


class ApprovalsReader(Protocol):
    def position(self) -> int: ...
    def get(self, approval_id: UUID) -> ApprovalRow | None: ...
    def for_item(self, item_id: UUID) -> builtins.list[ApprovalRow]: ...
    def list(
        self, where: ApprovalFilter, *, limit: int, after_position: int | None, now: datetime
    ) -> builtins.list[ApprovalRow]: ...


@dataclass(frozen=True)
class HandoverRow:
    id: UUID
    session_id: UUID
    agent_id: str
    project: str | None
    summary: str
    next_steps: list[str]
    files_to_read: list[str]
    open_questions: list[str]
    notes: str
    work_item_ids: list[str]
    failures: list[dict[str, str]]
    passed: bool
    version: int
    created_at: datetime
    updated_at: datetime
    created_position: int
    position: int


class HandoversReader(Protocol):
    def position(self) -> int: ...
    def get(self, handover_id: UUID) -> HandoverRow | None: ...
    def latest(self, agent_id: str) -> HandoverRow | None:
        """The agent's handover document written or revised last."""

    def for_project(
        self, project: str, *, limit: int, before_position: int | None
    ) -> builtins.list[HandoverRow]:
        """Newest first (by when each was first written)."""


@dataclass(frozen=True)
class MessageRow:
    """A message as lists show it; `read_at`/`acked_at` are its recipient's, in an inbox
    (null elsewhere)."""

    id: UUID
    sender: str
    sender_agent: str | None
    addressed_to: str  # `to` as sent (a reserved word in SQL)
    recipients: list[str]
    type: str
    subject: str | None
    body: str
    context: dict[str, Any]
    thread_id: UUID
    reply_to: UUID | None
    importance: str
    ack_required: bool
    created_at: datetime
    answered_at: datetime | None
    answered_by: str | None
    read_at: datetime | None
    acked_at: datetime | None
    created_position: int


@dataclass(frozen=True)
class MessageFilter:
    agent_id: str  # whose inbox
    unread: bool | None = None
    type: str | None = None
    thread_id: UUID | None = None


class MessagesReader(Protocol):
    def position(self) -> int: ...
    def get(self, message_id: UUID) -> MessageRow | None: ...
    def inbox(
        self, where: MessageFilter, *, limit: int, after_position: int | None
    ) -> builtins.list[MessageRow]:
        """Oldest first, after `after_position`."""

    def thread(self, thread_id: UUID, limit: int) -> builtins.list[MessageRow]: ...
    def conversation(
        self, agent_id: str, other: str, *, limit: int, before_position: int | None
    ) -> builtins.list[MessageRow]:
        """Messages either sent the other, newest first."""

    def waiting(self, agent_id: str, what: str, side: str, limit: int) -> builtins.list[MessageRow]:
        """Requests not answered (`what="reply"`) or messages not acknowledged (`"ack"`)
        that the agent received (`side="received"`) or sent (`"sent"`), oldest first."""


@dataclass(frozen=True)
class AgentRow:
    """An agent in the directory: its profile (once registered) and what its status is
    derived from (computed on read, against the clock, by the reader)."""

    agent_id: str
    registered: bool
    display_name: str | None
    kind: str | None
    capabilities: list[str]
    workspace: str | None
    endpoints: dict[str, str]
    config: dict[str, Any]
    version: int  # the profile's (0: never registered)
    last_seen_at: datetime | None  # its latest recorded session event but an expiry
    last_session_id: UUID | None
    last_session_status: str | None
    sessions_total: int
    sessions_failed: int
    sessions_expired: int
    items_completed: int
    messages_answered: int
    created_position: int


@dataclass(frozen=True)
class AgentFilter:
    capability: str | None = None
    status: str | None = None  # busy, active, error or inactive, at the moment of reading
    kind: str | None = None


class AgentsReader(Protocol):
    def position(self) -> int: ...
    def get(self, agent_id: str, now: datetime) -> tuple[AgentRow, str] | None:
        """The agent and its status at `now`."""

    def list(
        self, where: AgentFilter, *, now: datetime, limit: int, after: str | None
    ) -> builtins.list[tuple[AgentRow, str]]:
        """By agent id, after `after`."""

    def median(self, agent_id: str, kind: str) -> float | None:
        """The median of the agent's samples of `kind` (seconds), None without any."""


@dataclass(frozen=True)
class TimelineRow:
    position: int
    session_id: UUID
    occurred_at: datetime
    event: str  # e.g. WorkItem.StatusChanged
    aggregate_id: UUID
    actor: str
    summary: dict[str, Any]  # the event's own small fields


class TimelineReader(Protocol):
    def position(self) -> int: ...
    def of_session(
        self, session_id: UUID, *, limit: int, after_position: int | None
    ) -> builtins.list[TimelineRow]: ...


MAX_CURSOR_LENGTH = 2048  # far beyond any cursor issued (its filters are bounded too)
_SIGNATURE_BYTES = 16  # of an HMAC-SHA256: 128 bits cannot be guessed


@dataclass(frozen=True)
class Cursor:
    """A keyset cursor: the sort key where the previous page stopped, and the filters it was
    issued for (a cursor is refused with other filters). Clients see it only as issued by
    `Cursors`: opaque and signed."""

    key: int | str
    filters: dict[str, Any] = field(default_factory=dict)

    def position(self) -> int:
        """The key as a log position (for lists ordered by position)."""
        if isinstance(self.key, bool) or not isinstance(self.key, int) or not 0 < self.key < 2**63:
            raise InvalidCursor("cursor is not one this server issued")
        return self.key

    def text(self) -> str:
        """The key as text (for lists ordered by name)."""
        if not isinstance(self.key, str) or len(self.key) > 256:
            raise InvalidCursor("cursor is not one this server issued")
        return self.key


class Cursors:
    """Issues cursors and takes back only those it issued: each carries an HMAC-SHA256 of its
    content under the deployment's key, checked before the content is even parsed, so a
    forged or altered cursor (or one from another deployment) is refused as invalid."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a cursor key needs at least 16 bytes")
        self._key = key

    def encode(self, cursor: Cursor) -> str:
        raw = json.dumps(
            {"k": cursor.key, "f": cursor.filters}, sort_keys=True, default=str
        ).encode()
        return f"{_b64(raw)}.{_b64(self._sign(raw))}"

    def decode(self, token: str, filters: dict[str, Any]) -> Cursor:
        content = self._verified(token)
        try:
            data = json.loads(content)
            cursor = Cursor(key=data["k"], filters=dict(data["f"]))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise InvalidCursor("cursor is not one this server issued") from exc
        if cursor.filters != json.loads(json.dumps(filters, sort_keys=True, default=str)):
            raise InvalidCursor("cursor was issued for different filters")
        return cursor

    def page(
        self,
        rows: Sequence[R],
        limit: int,
        filters: dict[str, Any],
        position: int,
        key: Callable[[R], int | str],
        output: Callable[[R], T],
    ) -> Page[T]:
        """A page from rows fetched with `limit + 1`: the extra row only says a next page
        exists, and the cursor points after the last row shown. `output`: what callers get
        of each row."""
        shown = rows[:limit]
        more = len(rows) > limit
        next_cursor = self.encode(Cursor(key(shown[-1]), filters)) if more else None
        return Page([output(r) for r in shown], next_cursor, position)

    def oldest_first(
        self,
        where: object,
        cursor: str | None,
        limit: int,
        *,
        wait: Callable[[], int],
        clock: Clock,
        rows: Callable[[int, int | None, datetime], Sequence[C]],
        output: Callable[[C, datetime], T],
    ) -> Page[T]:
        """A filtered list, oldest first, a keyset page at a time: the filters (a dataclass
        of optional values) bind the cursor; the read model's position is waited for once
        the cursor is known good; `rows(limit, after_position, now)` reads the page."""
        filters = {k: (str(v) if v is not None else None) for k, v in vars(where).items()}
        after = self.decode(cursor, filters).position() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = wait()
        now = clock.now()
        found = rows(limit + 1, after, now)
        return self.page(
            found, limit, filters, position, lambda r: r.created_position, lambda r: output(r, now)
        )

    def _verified(self, token: str) -> bytes:
        content, dot, signature = token.rpartition(".")
        if not dot or len(token) > MAX_CURSOR_LENGTH:
            raise InvalidCursor("cursor is not one this server issued")
        try:
            raw, presented = _unb64(content), _unb64(signature)
        except ValueError:
            raise InvalidCursor("cursor is not one this server issued") from None
        if not hmac.compare_digest(presented, self._sign(raw)):
            raise InvalidCursor("cursor is not one this server issued")
        return raw

    def _sign(self, raw: bytes) -> bytes:
        return hmac.new(self._key, raw, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    """Only the one text `_b64` makes of the bytes: the last character of unpadded base64 has
    spare bits, and a cursor differing in them must not pass for the one issued."""
    if not text.isascii():
        raise ValueError("not base64")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(raw) != text:
        raise ValueError("not the canonical base64 of its bytes")
    return raw
