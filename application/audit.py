"""The audit trail: the log read as a timeline of who did what, when and why, and any
aggregate's state as it was at a version or a moment.

Nothing here writes. Every answer is computed from the stored events (never from a read
model), so it shows exactly what the log holds. Reading is streamed page by page: a replay of
a million events holds one page in memory at a time.
"""

from __future__ import annotations

import dataclasses
import enum
import heapq
import importlib
import itertools
import json
import pkgutil
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Notification

import agentledger.domain
from agentledger.application.context import Principal
from agentledger.application.errors import FieldError, InvalidRequest, NotFound
from agentledger.application.ledger import Ledger, stored_topics
from agentledger.application.seal import Checkpoint, SealedLink, SealLinks, VerifyReport, verify
from agentledger.domain.access import Role
from agentledger.domain.events import CONTEXT_FIELDS, LedgerAggregate
from agentledger.domain.refusals import CommandRefusal

PAGE = 1000  # events read from the store at a time
# What the library adds to every event, shown in a record's own columns, not as a change.
_LIBRARY_FIELDS = frozenset(
    {"originator_id", "originator_version", "timestamp", "originator_topic"}
)
# Event fields an auditor must not be handed: a token's secret, even hashed, stays in the log.
REDACTED_FIELDS = frozenset({"secret_sha256"})
REDACTED = "[redacted]"
SUMMARY_LENGTH = 200


@dataclass(frozen=True)
class AuditRecord:
    """One event as a reviewer reads it: where it is in the log, when, who, on what, what."""

    position: int
    occurred_at: datetime
    actor: str
    aggregate_type: str
    aggregate_id: UUID
    version: int
    event: str
    summary: str
    trace_id: str
    causation: str
    command_id: str
    actor_token: str | None
    acting_session: str | None
    idempotency_key_sha256: str | None
    client: str | None
    changes: dict[str, Any]


@dataclass(frozen=True)
class AuditFilter:
    """Which events a timeline holds; every criterion given must match (`types`: any one).
    `since` is inclusive and `until` exclusive, as in every time filter of the product."""

    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None
    aggregate_id: UUID | None = None
    types: tuple[str, ...] = ()
    trace_id: str | None = None

    def matches(self, record: AuditRecord) -> bool:
        return (
            (self.since is None or record.occurred_at >= self.since)
            and (self.until is None or record.occurred_at < self.until)
            and (self.actor is None or record.actor == self.actor)
            and (self.trace_id is None or record.trace_id == self.trace_id)
            and (self.aggregate_id is None or self.aggregate_id in _targets(record))
        )


@dataclass(frozen=True)
class TimelinePage:
    records: list[AuditRecord]
    # Where the next page starts (pass as `after`); None once the log's end was reached.
    next_after: int | None
    scanned_to: int  # the last log position this page looked at


@dataclass(frozen=True)
class AggregateState:
    aggregate_id: UUID
    aggregate_type: str
    version: int
    as_of: datetime  # the time of the last event applied
    position: int  # that event's log position
    state: dict[str, Any]


class AggregateLog(Protocol):
    """What the store answers beyond the library's reads: one aggregate's events with their
    log positions (the library's own per-aggregate read has no positions)."""

    def notifications_of(self, aggregate_id: UUID) -> list[Notification]: ...


def require_auditor(principal: Principal) -> None:
    """The audit trail is for reviewers: auditors and admins read it, nobody else."""
    principal.require_any_role(Role.AUDITOR)


class SealStore(SealLinks, Protocol):
    def head(self) -> SealedLink | None: ...


class AuditService:
    """Callers check who may read (`require_auditor`) before they ask."""

    def __init__(self, ledger: Ledger, aggregate_log: AggregateLog, seal: SealStore) -> None:
        self._ledger = ledger
        self._aggregate_log = aggregate_log
        self._seal = seal

    def head(self) -> int:
        return self._ledger.head_position()

    def timeline(
        self,
        criteria: AuditFilter,
        after: int = 0,
        upto: int | None = None,
        scanned: Callable[[int], None] | None = None,
    ) -> Iterator[AuditRecord]:
        """Every matching event after position `after` (up to `upto`), in log order, read a
        page at a time. One aggregate's events are read through its own index, merged with the
        refused commands that targeted it. `scanned` is told the position each page of the log
        read reached (for a progress bar)."""
        if criteria.aggregate_id is None:
            found = self._scan(topics_of(criteria.types), after, upto, scanned)
        else:
            own = self._aggregate_log.notifications_of(criteria.aggregate_id)
            found = (self.record_of(n) for n in own if _within(n.id, after, upto))
            if _refusals_wanted(criteria):
                refusals = self._scan(stored_topics(CommandRefusal.CommandRefused), after, upto)
                found = heapq.merge(found, refusals, key=lambda r: r.position)
        for record in found:
            if criteria.matches(record) and _type_matches(criteria, record):
                yield record

    def _scan(
        self,
        topics: list[str],
        after: int,
        upto: int | None,
        scanned: Callable[[int], None] | None = None,
    ) -> Iterator[AuditRecord]:
        position = after
        while True:
            notifications = self._ledger.read_log(position, PAGE, topics, stop=upto)
            for notification in notifications:
                yield self.record_of(notification)
            if len(notifications) < PAGE:
                return
            position = notifications[-1].id
            if scanned is not None:
                scanned(position)

    def page(self, criteria: AuditFilter, after: int, limit: int, scan: int) -> TimelinePage:
        """At most `limit` matching events after `after`, looking at no more than `scan`
        events of the log: a filter matching little still answers in bounded time, with the
        position to continue from. One aggregate's events come through its own index."""
        if criteria.aggregate_id is not None:
            found = list(itertools.islice(self.timeline(criteria, after), limit + 1))
            if len(found) > limit:
                last = found[limit - 1].position
                return TimelinePage(found[:limit], last, last)
            return TimelinePage(found, None, self.head())
        topics = topics_of(criteria.types)
        records: list[AuditRecord] = []
        position = after
        scanned = 0
        while scanned < scan:
            batch = min(PAGE, scan - scanned)
            notifications = self._ledger.read_log(position, batch, topics)
            for notification in notifications:
                position = notification.id
                record = self.record_of(notification)
                if criteria.matches(record):
                    records.append(record)
                    if len(records) == limit:
                        return TimelinePage(records, position, position)
            scanned += len(notifications)
            if len(notifications) < batch:
                return TimelinePage(records, None, max(position, after))
        return TimelinePage(records, position, position)

    def verify(
        self,
        published: tuple[int, str] | None = None,
        scanned: Callable[[int], None] | None = None,
    ) -> VerifyReport:
        """Recompute the seal's chain from the stored events and compare (see `seal.py`), up
        to the seal's head as it is now; events after it are counted as not sealed yet."""
        head = self._seal.head()
        end = self._ledger.head_position()

        def stored() -> Iterator[Notification]:
            position = 0
            while notifications := self._ledger.read_log(position, PAGE, stop=end):
                yield from notifications
                position = notifications[-1].id
                if scanned is not None:
                    scanned(position)

        def sealed() -> Iterator[SealedLink]:
            position = 0
            while links := self._seal.links(position, PAGE):
                yield from links
                position = links[-1].position

        return verify(stored(), sealed(), self._seal, head, published)

    def checkpoints(self) -> list[Checkpoint]:
        return self._seal.checkpoints()

    def history(self, aggregate_id: UUID) -> list[AuditRecord]:
        """Every event of one aggregate, oldest first."""
        found = self._aggregate_log.notifications_of(aggregate_id)
        if not found:
            raise NotFound("aggregate", str(aggregate_id))
        return [self.record_of(n) for n in found]

    def state(
        self, aggregate_id: UUID, version: int | None = None, at: datetime | None = None
    ) -> AggregateState:
        """The aggregate as it was after `version`, or after its last event at or before
        `at`; as it is now when neither is given."""
        notifications = self._aggregate_log.notifications_of(aggregate_id)
        if not notifications:
            raise NotFound("aggregate", str(aggregate_id))
        events = [(n, self._ledger.to_event(n)) for n in notifications]
        if version is not None:
            chosen = [(n, e) for n, e in events if e.originator_version <= version]
            if version > events[-1][1].originator_version:
                raise NotFound("version", f"{aggregate_id} v{version}")
        elif at is not None:
            chosen = [(n, e) for n, e in events if e.timestamp <= at]
        else:
            chosen = events
        if not chosen:
            raise NotFound("state", f"{aggregate_id} before its first event")
        last_notification, last = chosen[-1]
        aggregate: object = self._ledger.repository.get(
            aggregate_id, version=last.originator_version, deepcopy_from_cache=False
        )
        return AggregateState(
            aggregate_id=aggregate_id,
            aggregate_type=type(aggregate).__name__,
            version=last.originator_version,
            as_of=last.timestamp,
            position=last_notification.id,
            state=state_of(aggregate),
        )

    def record_of(self, notification: Notification) -> AuditRecord:
        return audit_record(notification.id, self._ledger.to_event(notification))


def audit_record(position: int, event: Any) -> AuditRecord:
    aggregate_type, _, name = type(event).__qualname__.rpartition(".")
    changes = {
        key: REDACTED if key in REDACTED_FIELDS else plain(value)
        for key, value in vars(event).items()
        if key not in _LIBRARY_FIELDS and key not in CONTEXT_FIELDS
    }
    return AuditRecord(
        position=position,
        occurred_at=event.timestamp,
        actor=event.actor,
        aggregate_type=aggregate_type,
        aggregate_id=event.originator_id,
        version=event.originator_version,
        event=name,
        summary=summary(name, changes),
        trace_id=event.trace_id,
        causation=event.causation,
        command_id=event.command_id,
        actor_token=event.actor_token,
        acting_session=event.acting_session,
        idempotency_key_sha256=event.idempotency_key_sha256,
        client=event.client,
        changes=changes,
    )


def summary(event_name: str, changes: Mapping[str, Any]) -> str:
    """`Status changed: status=done, reason=shipped`: the event's name in words, then what it
    set (empty values left out), cut to one line."""
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", event_name).lower().capitalize()
    parts = [f"{key}={_short(value)}" for key, value in changes.items() if value not in (None, "")]
    text = f"{words}: {', '.join(parts)}" if parts else words
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1] + "…"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return re.sub(r"\s+", " ", text)[:80]


def state_of(aggregate: object) -> dict[str, Any]:
    """An aggregate's attributes as plain values, by their public names."""
    return {
        name.lstrip("_"): plain(value)
        for name, value in vars(aggregate).items()
        if name not in ("_pending_events",)
    }


def plain(value: Any) -> Any:
    """A value as JSON can hold it: ids and times as text, sets as sorted lists."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Mapping):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=str)
    if isinstance(value, Sequence):
        return [plain(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def event_classes() -> dict[str, type]:
    """Every event class the product writes, by qualified name (`AgentSession.SessionStarted`)."""
    for module in pkgutil.iter_modules(agentledger.domain.__path__):  # each aggregate's module
        importlib.import_module(f"{agentledger.domain.__name__}.{module.name}")
    found: dict[str, type] = {}
    pending: list[type] = [LedgerAggregate.Event]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        owner, _, name = cls.__qualname__.rpartition(".")
        # Each aggregate class gets its own `Event` and `Created` bases: never written.
        if owner not in ("", "LedgerAggregate") and name not in ("Event", "Created"):
            found[cls.__qualname__] = cls
    return found


def topics_of(types: Sequence[str]) -> list[str]:
    """The stored topics of the event types named (by class name or qualified name)."""
    if not types:
        return []
    classes = event_classes()
    topics: list[str] = []
    unknown = []
    for name in types:
        matching = [c for q, c in classes.items() if name in (q, q.rpartition(".")[2])]
        if not matching:
            unknown.append(name)
        for cls in matching:
            topics.extend(stored_topics(cls))
    if unknown:
        known = ", ".join(sorted({q.rpartition(".")[2] for q in classes}))
        raise InvalidRequest(
            f"no event type {', '.join(map(repr, unknown))}; known: {known}",
            [
                FieldError(("query", "type"), f"no event type {n!r}; known: {known}", "enum")
                for n in unknown
            ],
        )
    return sorted(set(topics))


def _refusals_wanted(criteria: AuditFilter) -> bool:
    """A refused command is its own aggregate; filtering by the aggregate it targeted must
    find it too, which the per-aggregate read cannot."""
    return not criteria.types or any(
        t in ("CommandRefused", "CommandRefusal.CommandRefused") for t in criteria.types
    )


def _within(position: int, after: int, upto: int | None) -> bool:
    return position > after and (upto is None or position <= upto)


def _type_matches(criteria: AuditFilter, record: AuditRecord) -> bool:
    if not criteria.types:
        return True
    return any(
        t in (record.event, f"{record.aggregate_type}.{record.event}") for t in criteria.types
    )


def _targets(record: AuditRecord) -> tuple[UUID | str, ...]:
    target = record.changes.get("target_id")
    if record.event == "CommandRefused" and target:
        return (record.aggregate_id, _as_uuid(target))
    return (record.aggregate_id,)


def _as_uuid(text: str) -> UUID | str:
    try:
        return UUID(text)
    except ValueError:
        return text
