"""The event-sourced application: one event log for every aggregate, one global position order.

Persistence (PostgreSQL or SQLite) is chosen by the environment the infrastructure passes in,
as the `eventsourcing` library intends; nothing here knows which store it is.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from copy import deepcopy
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    project_aggregate,
)
from eventsourcing.persistence import Notification, ProcessRecorder, StoredEvent, Tracking
from eventsourcing.utils import Environment, EnvType, get_topic, register_topic

import agentledger.domain
from agentledger.domain.plans import ProjectPlan
from agentledger.domain.selections import ProjectSelection
from agentledger.domain.sessions import AgentSession

log = logging.getLogger("agentledger.ledger")

# Pinned: the PostgreSQL table names derive from it, and renaming would orphan the log.
APPLICATION_NAME = "agentledger"

# Events and snapshots stored while the layers were installed as top-level packages name their
# classes `domain.<module>:<Class>`. The library resolves a registered package prefix for every
# topic under it, so those rows load as the classes now under `agentledger.domain`.
LEGACY_TOPIC_PACKAGES = {"domain": agentledger.domain}
for _old_name, _package in LEGACY_TOPIC_PACKAGES.items():
    register_topic(_old_name, _package)


def stored_topics(event_class: type) -> list[str]:
    """Every topic the log may hold for `event_class`: its own, then the names it was stored
    under before (what a reader filtering the log by topic must ask for)."""
    topic = get_topic(event_class)
    topics = [topic]
    for old_name, package in LEGACY_TOPIC_PACKAGES.items():
        if topic.startswith(package.__name__ + "."):
            topics.append(old_name + topic.removeprefix(package.__name__))
    return topics


class ReadsSeveralAggregates(Protocol):
    """A recorder that reads several aggregates' events, each after a version, in one query."""

    def select_events_after(self, after: Sequence[tuple[UUID, int]]) -> list[StoredEvent]: ...


# Told the log position after each commit made through this ledger, and the stored topics of
# the events it wrote.
CommitCallback = Callable[[int, frozenset[str]], None]


class Ledger(Application[UUID]):
    name = APPLICATION_NAME
    recorder: ProcessRecorder
    # Long-lived sessions gather a renewal every few minutes, and an agent's selection a switch
    # each time it changes project; a snapshot every 20 events keeps loading either O(1)
    # instead of replaying its whole history on each command. A project's plan gains an event
    # for every item and edge, and every structure edit loads it.
    snapshotting_intervals = {AgentSession: 20, ProjectSelection: 20, ProjectPlan: 50}  # noqa: RUF012 - the library reads a class dict

    def __init__(self, env: EnvType | None = None) -> None:
        super().__init__(env)
        self._commit_callbacks: list[CommitCallback] = []

    def on_commit(self, callback: CommitCallback) -> None:
        """Be told the position and topics of each commit through this ledger, whoever made it
        (a command, a batch of them, a loader): lets the in-process runners that follow what
        it wrote wake at once."""
        self._commit_callbacks.append(callback)

    def _notify(self, recordings: list[Any]) -> None:
        if recordings:
            position = max(r.notification.id for r in recordings)
            topics = frozenset(r.notification.topic for r in recordings)
            for callback in self._commit_callbacks:
                callback(position, topics)

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """Configuration comes only from what the caller passes (built from the one settings
        object). The library would also read the process environment, where its prefixed keys
        (AGENTLEDGER_POSTGRES_*) would silently override our settings."""
        merged: dict[str, str] = {}
        if self.snapshotting_intervals:
            merged["IS_SNAPSHOTTING_ENABLED"] = "y"
        merged.update(env or {})
        return Environment(name, merged)

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        # Snapshots are written after the events' transaction has committed. They only speed
        # up loading, so failing to write one must not turn a committed command into an error.
        try:
            self._snapshot_due(processing_event)
        except Exception:
            log.warning("could not write a snapshot; the log is intact", exc_info=True)

    def _snapshot_due(self, processing_event: ProcessingEvent[UUID]) -> None:
        """The library's rule (a snapshot at each multiple of the aggregate's interval), taken
        from the aggregate just saved where its last event is the one due: the library
        reloads it from the store and copies it first (a switch in twenty did, a sixth of
        that command's time)."""
        assert self.snapshots is not None
        for event in processing_event.events:
            aggregate: Any = processing_event.aggregates.get(event.originator_id)
            interval = self.snapshotting_intervals.get(type(aggregate))
            if aggregate is None or interval is None or event.originator_version % interval:
                continue
            if aggregate.version != event.originator_version:  # not its newest state
                self.take_snapshot(event.originator_id, event.originator_version)
                continue
            snapshot_class: Any = getattr(type(aggregate), "Snapshot", self.snapshot_class)
            self.snapshots.put([snapshot_class.take(aggregate)])

    def construct_recorder(self) -> ProcessRecorder:
        """A process recorder: policies record their events together with the position of
        the event that caused them, in one transaction (exactly-once reactions)."""
        return self.factory.process_recorder()

    def record_events(
        self,
        events: Sequence[Any],
        aggregates: Sequence[Any],
        tracking: Tracking | None = None,
        completions: Sequence[Any] = (),
    ) -> list[Any]:
        """Store events already collected from `aggregates` in one transaction, with (for
        policies) the tracking position; then snapshot and notify, as `save()` does. Taking
        events rather than aggregates lets a failed transaction be tried again, alone or in
        another batch: collecting pops an aggregate's pending events. `completions` (the
        idempotency keys these commands answer) are written in the same transaction."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent(tracking=tracking)
        # Domain events as they are: `collect_events` checks each against two runtime
        # protocols, which costs more than the rest of this method.
        processing_event.events.extend(events)
        if completions:
            processing_event.saved_kwargs["idempotency"] = list(completions)
        processing_event.aggregates.update({a.id: a for a in aggregates})
        recordings = self._record(processing_event)
        # What was just committed is the newest state: cached, the next command's load of it
        # is one query that finds nothing newer (the library caches only what it loads).
        if self.repository.cache is not None:
            for aggregate in aggregates:
                self.repository.cache.put(aggregate.id, aggregate)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings

    def load_current(self, ids: Sequence[UUID], to_change: Collection[UUID]) -> dict[UUID, Any]:
        """These aggregates as the log has them now; an id with no events is left out. Those
        `to_change` are copies; the others are the cached objects themselves, to read and
        never change (copying a large plan cost more than loading it). Those in the cache are
        brought up to date from the log with one query for all of them (each load would
        otherwise be a round trip of its own), fast-forwarded in the cache as the library's
        own loads are, under its lock for that aggregate; the others are loaded one by one."""
        cache = self.repository.cache
        cached: dict[UUID, Any] = {}
        if cache is not None:
            for aggregate_id in dict.fromkeys(ids):
                with contextlib.suppress(KeyError):
                    cached[aggregate_id] = cache.get(aggregate_id)
        recorder: ReadsSeveralAggregates = self.recorder  # type: ignore[assignment]
        newer: dict[UUID, list[StoredEvent]] = defaultdict(list)
        if cached:
            for stored in recorder.select_events_after([(i, a.version) for i, a in cached.items()]):
                newer[stored.originator_id].append(stored)  # type: ignore[index]
        found = {
            i: self._fast_forwarded(i, a, newer[i], copy=i in to_change) for i, a in cached.items()
        }
        for aggregate_id in ids:
            if aggregate_id not in found:
                with contextlib.suppress(AggregateNotFoundError):
                    found[aggregate_id] = self.repository.get(
                        aggregate_id, deepcopy_from_cache=aggregate_id in to_change
                    )
        return found

    def forget_cached(self, ids: Sequence[UUID]) -> None:
        cache = self.repository.cache
        if cache is None:
            return
        for aggregate_id in ids:
            with contextlib.suppress(KeyError):
                cache.get(aggregate_id, evict=True)

    def _fast_forwarded(
        self, aggregate_id: UUID, aggregate: Any, stored: list[StoredEvent], copy: bool
    ) -> Any:
        # The library's per-aggregate lock (`Repository._use_fastforward_lock`, not public in
        # 9.5): another thread may be fast-forwarding the same cached object in place.
        repository = self.repository
        lock = repository._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                new = [s for s in stored if s.originator_version > aggregate.version]
                if new:
                    events = [self.mapper.to_domain_event(s) for s in new]
                    aggregate = project_aggregate(aggregate, events)
                return deepcopy(aggregate) if copy else aggregate
        finally:
            repository._disuse_fastforward_lock(aggregate_id)

    def tracked_position(self, name: str) -> int:
        return self.recorder.max_tracking_id(name) or 0

    def record_position(self, tracking: Tracking) -> None:
        self.recorder.insert_tracking(tracking)

    def head_position(self) -> int:
        """The position of the newest event in the log (0 for an empty log)."""
        return self.recorder.max_notification_id() or 0

    def read_log(
        self, after: int, limit: int, topics: Collection[str] = (), stop: int | None = None
    ) -> list[Notification]:
        """At most `limit` stored events after position `after` (up to `stop`), in order;
        only those of `topics` when given (any collection: the driver is sent a list)."""
        return list(
            self.recorder.select_notifications(
                start=after, limit=limit, stop=stop, topics=list(topics), inclusive_of_start=False
            )
        )

    def to_event(self, notification: Notification) -> Any:
        return self.mapper.to_domain_event(notification)
