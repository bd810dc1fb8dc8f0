"""The one path every command takes: load, decide, save atomically, retry on conflict.

Cross-cutting behaviour (event context, optimistic concurrency, positions, commit callbacks)
lives here once, so use cases stay a few lines and later concerns (idempotency records, group
commit) have one place to go.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError, Tracking

from agentledger.application import deadlines
from agentledger.application.clock import Clock
from agentledger.application.context import RequestContext
from agentledger.application.errors import ConcurrencyConflict, NotFound
from agentledger.application.group_commit import BatchObserver, GroupCommitter, OutageTest
from agentledger.application.idempotency import (
    Claim,
    Completion,
    IdempotencyStore,
    current_claim,
    current_replay,
    encode_outcome,
)
from agentledger.application.ledger import Ledger
from agentledger.domain.events import EventContext, LedgerAggregate

T = TypeVar("T")
A = TypeVar("A", bound=LedgerAggregate)

MAX_ATTEMPTS = 20
# Commands naming the same hot aggregate (`serialize_on`) take turns within a process instead
# of racing to conflicts; a fixed set of striped locks bounds the memory this takes.
LOCK_STRIPES = 64


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What a command produced, and the log position a reader must reach to see it."""

    value: T
    position: int
    events_written: int


class UnitOfWork:
    """The aggregates one attempt of a command touched; saved together or not at all."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._aggregates: dict[UUID, LedgerAggregate] = {}
        self._absent: set[UUID] = set()  # preloaded, and not in the log
        self._shared: set[UUID] = set()  # preloaded to read: the cache's own objects

    def preload(self, *ids: UUID, only_read: tuple[UUID, ...] = ()) -> None:
        """Load the aggregates a decision will need in one round trip rather than one each
        (see `Ledger.load_current`); `get` and `find` then answer from what was loaded.
        Those `only_read` are not copied: the decision must not change them (`changed`
        refuses to save a command that did)."""
        wanted = [
            i for i in (*ids, *only_read) if i not in self._aggregates and i not in self._absent
        ]
        if not wanted:
            return
        found = self._ledger.load_current(wanted, to_change=set(ids))
        self._aggregates.update(found)
        self._absent.update(i for i in wanted if i not in found)
        self._shared.update(i for i in only_read if i in found and i not in ids)

    def get(self, kind: type[A], aggregate_id: UUID, label: str) -> A:
        if aggregate_id in self._absent:
            raise NotFound(label, str(aggregate_id))
        if aggregate_id in self._aggregates:
            found = self._aggregates[aggregate_id]
        else:
            try:
                found = self._ledger.repository.get(aggregate_id)
            except AggregateNotFoundError:
                raise NotFound(label, str(aggregate_id)) from None
        if not isinstance(found, kind):
            raise NotFound(label, str(aggregate_id))
        self._aggregates[aggregate_id] = found
        return found

    def find(self, kind: type[A], aggregate_id: UUID) -> A | None:
        """Like `get`, but None when the aggregate does not exist (yet)."""
        try:
            return self.get(kind, aggregate_id, kind.__name__)
        except NotFound:
            return None

    def add(self, aggregate: LedgerAggregate) -> None:
        self._absent.discard(aggregate.id)
        self._shared.discard(aggregate.id)
        self._aggregates[aggregate.id] = aggregate

    def changed(self) -> list[LedgerAggregate]:
        changed = [a for a in self._aggregates.values() if a.pending_events]
        misused = [a.id for a in changed if a.id in self._shared]
        if misused:  # a programming error: the cache's own copy was changed
            self._ledger.forget_cached(misused)
            raise RuntimeError(f"aggregates loaded only to read were changed: {misused}")
        return changed


Decision = Callable[[UnitOfWork, EventContext], T]
# Told the command's name each time it is re-run after losing a version conflict; set by the
# wiring to feed a metric (this layer knows nothing of how it is reported).
RetryObserver = Callable[[str], None]


class CommandRunner:
    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        group_commit: int = 64,
        *,
        on_retry: RetryObserver | None = None,
        on_batch: BatchObserver | None = None,
        is_outage: OutageTest | None = None,
    ) -> None:
        """`group_commit`: how many concurrent commands one transaction may hold (1: none).
        `on_retry` and `on_batch` observe conflict retries and group-commit batch sizes;
        `is_outage` tells a store outage from a refused write (see `group_commit`)."""
        self._ledger = ledger
        self._clock = clock
        self.committer = (
            GroupCommitter(ledger, group_commit, on_batch, is_outage) if group_commit > 1 else None
        )
        self._on_retry = on_retry
        self._stripes = [threading.Lock() for _ in range(LOCK_STRIPES)]
        # Version conflicts met (retried or reported), a race indicator; counted under a lock
        # because racing writers meet them at the same moment.
        self._conflicts = 0
        self._conflicts_lock = threading.Lock()
        # Where a command that wrote nothing stores its idempotency key's outcome (the
        # others store it with their events).
        self.idempotency_store: IdempotencyStore | None = None

    @property
    def conflicts(self) -> int:
        return self._conflicts

    def _committed_already(self, first: tuple[UUID, int], command_id: str) -> bool:
        aggregate_id, version = first
        stored = list(self._ledger.events.get(aggregate_id, gt=version - 1, lte=version))
        return bool(stored) and getattr(stored[0], "command_id", None) == command_id

    def read(self, kind: type[A], aggregate_id: UUID, label: str) -> A:
        """An aggregate as the log has it now, to read and never change (no copy is made):
        what a query needs from the write side, outside any command."""
        try:
            found: object = self._ledger.repository.get(aggregate_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            raise NotFound(label, str(aggregate_id)) from None
        if not isinstance(found, kind):
            raise NotFound(label, str(aggregate_id))
        return found

    def head_position(self) -> int:
        """The newest position in the log: what a read model must reach to see every write."""
        return self._ledger.head_position()

    def run(
        self,
        request: RequestContext,
        command: str,
        decide: Decision[T],
        *,
        retry_on_conflict: bool = True,
        tracking: Tracking | None = None,
        serialize_on: UUID | None = None,
        session: UUID | None = None,
    ) -> Outcome[T]:
        """Run `decide` against fresh state and save what it changed in one transaction.

        On a version conflict the whole decision is re-run against reloaded state, so domain
        rules are always checked against what was actually committed; a command that must not
        be retried reports the conflict instead. A policy passes the `tracking` position of
        the event it reacts to, recorded in the same transaction (so it reacts exactly once).
        Commands that all write one hot aggregate name it in `serialize_on`: they take turns
        in this process, and only writers in other processes can still conflict. `session`:
        the agent session the command acts in, recorded on its events.
        """
        with self._turn(serialize_on) if serialize_on else nullcontext():
            return self._attempts(request, command, decide, retry_on_conflict, tracking, session)

    @contextmanager
    def _turn(self, key: UUID) -> Iterator[None]:
        with self._stripes[key.int % LOCK_STRIPES]:
            yield

    def _attempts(
        self,
        request: RequestContext,
        command: str,
        decide: Decision[T],
        retry_on_conflict: bool,
        tracking: Tracking | None,
        session: UUID | None = None,
    ) -> Outcome[T]:
        replay = current_replay()
        if replay is not None:  # an idempotent request sent again: answer as the first time
            return Outcome(replay.value, replay.position, replay.events_written)
        claim = current_claim()
        command_id = _command_id()
        for attempt in range(MAX_ATTEMPTS):
            deadlines.check()  # a conflict re-run, too, stays within the request's time
            if attempt and self._on_retry is not None:
                self._on_retry(command)
            ctx = EventContext(
                actor=request.principal.name,
                trace_id=request.trace_id,
                causation=command,
                command_id=command_id,
                occurred_at=self._clock.now(),
                **context_of(request, session),
            )
            uow = UnitOfWork(self._ledger)
            value = decide(uow, ctx)
            changed = uow.changed()
            if not changed:
                position = self._ledger.head_position()
                self._complete_alone(claim, value, position)
                return Outcome(value, position, 0)
            events = [e for a in changed for e in a.collect_events()]
            first = (events[0].originator_id, events[0].originator_version)
            written = len(events)
            completion = _completion(claim, value, events)
            try:
                recordings = self._record(events, changed, tracking, completion)
            except IntegrityError:
                with self._conflicts_lock:
                    self._conflicts += 1
                if self._committed_already(first, command_id):
                    # The library retried a commit whose acknowledgement was lost, and the
                    # retry collided with our own events: the command did succeed.
                    if claim is not None:
                        claim.completed = True
                    return Outcome(value, self._ledger.head_position(), written)
                if not retry_on_conflict:
                    raise ConcurrencyConflict(f"{command}: a concurrent write won") from None
                _back_off(attempt)
                continue
            if claim is not None:
                claim.completed = True
            position = max(r.notification.id for r in recordings)
            return Outcome(value, position, len(recordings))
        raise ConcurrencyConflict(f"{command}: gave up after {MAX_ATTEMPTS} conflicting attempts")

    def _record(
        self,
        events: list[Any],
        aggregates: list[LedgerAggregate],
        tracking: Tracking | None,
        completion: Completion | None,
    ) -> list[Any]:
        # A policy's reaction carries its tracking position in its own transaction.
        if self.committer is None or tracking is not None:
            if completion is None:
                return self._ledger.record_events(events, aggregates, tracking)
            return self._ledger.record_events(events, aggregates, tracking, [completion])
        return self.committer.record(events, list(aggregates), [completion] if completion else [])

    def store_new(self, aggregate: LedgerAggregate) -> int:
        """Store a new aggregate's events beside whatever command is running: no decision, no
        retry (a new aggregate cannot conflict) and nothing to do with the request's
        idempotency key. Through group commit like any command; returns the position."""
        events = list(aggregate.collect_events())
        recordings = self._record(events, [aggregate], None, None)
        return int(max(r.notification.id for r in recordings))

    def _complete_alone(self, claim: Claim | None, value: Any, position: int) -> None:
        if claim is None:
            return
        assert self.idempotency_store is not None, "idempotency keys need a store"
        outcome = encode_outcome(value, 0)
        done = Completion(claim.scope, claim.token, outcome, None, position)
        claim.completed = self.idempotency_store.complete_key(done)


def _completion(claim: Claim | None, value: Any, events: list[Any]) -> Completion | None:
    """The key's outcome, for the transaction holding the events; it names the last event,
    whose position (known only once stored) is the one the answer reports."""
    if claim is None:
        return None
    last = events[-1]
    written = len(events)
    last_event = (str(last.originator_id), int(last.originator_version))
    return Completion(claim.scope, claim.token, encode_outcome(value, written), last_event, None)


def context_of(request: RequestContext, session: UUID | None) -> dict[str, str | None]:
    """What an event records of the request beyond the actor: the token (its id), the
    session, the idempotency key (hashed: the key may carry the client's own identifiers)."""
    token = request.principal.token_id
    key = request.idempotency_key
    return {
        "actor_token": None if token is None else str(token),
        "acting_session": None if session is None else str(session),
        "idempotency_key_sha256": None if key is None else hashlib.sha256(key.encode()).hexdigest(),
        "client": request.client,
    }


def _command_id() -> str:
    # Unique, not secret: the process's seeded generator, because os.urandom (behind uuid4)
    # cost about 0.7 ms a call on the VMs measured, once per command.
    return f"{random.getrandbits(128):032x}"


def _back_off(attempt: int) -> None:
    # Jitter spreads retrying writers apart; the cap keeps a request's worst case small.
    time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))


__all__ = ["CommandRunner", "Outcome", "UnitOfWork"]
