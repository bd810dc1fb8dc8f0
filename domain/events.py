"""The base of every aggregate and event: each event carries who, why and when.

The context fields are declared once on the base event classes without defaults, so an event
constructed without them fails at once; aggregates emit events only through `_begin`/`_record`,
which fill them from an `EventContext`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import Aggregate


@dataclass(frozen=True)
class EventContext:
    """Why an event happens: the principal acting (and the token that authenticated it), the
    agent session it acted in, the request's trace, its idempotency key (hashed) and client,
    the command, the time."""

    actor: str
    trace_id: str
    causation: str
    command_id: str
    occurred_at: datetime
    actor_token: str | None = None  # the id of the token (never its secret); None: no token
    acting_session: str | None = None  # the agent's session the command acted in, if any
    idempotency_key_sha256: str | None = None  # of the Idempotency-Key, when one was sent
    client: str | None = None  # the caller's User-Agent, bounded

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


class LedgerAggregate(Aggregate):
    """Base aggregate: events record their context; state changes go through `apply`."""

    class Event(Aggregate.Event):
        actor: str
        trace_id: str
        causation: str
        command_id: str
        actor_token: str | None
        acting_session: str | None
        idempotency_key_sha256: str | None
        client: str | None

        # Version 2 added the token, session, idempotency key and client of the context:
        # events stored before say none of them.
        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            for name in CONTEXT_ADDED_IN_V2:
                state.setdefault(name, None)

    class Created(Event, Aggregate.Created):
        pass

    # The library's `created_on`/`modified_on` under the names rows and views use, so an
    # output is built from an aggregate by field name (`application.shapes.by_name`).
    @property
    def created_at(self) -> datetime:
        return self.created_on

    @property
    def updated_at(self) -> datetime:
        return self.modified_on

    @classmethod
    def _begin(
        cls,
        event_class: type[LedgerAggregate.Created],
        ctx: EventContext,
        aggregate_id: UUID,
        **fields: Any,
    ) -> Self:
        return cls._create(
            event_class,
            id=aggregate_id,
            timestamp=ctx.occurred_at,
            **_context_fields(ctx),
            **fields,
        )

    def _record(
        self, event_class: type[LedgerAggregate.Event], ctx: EventContext, **fields: Any
    ) -> None:
        self.trigger_event(event_class, timestamp=ctx.occurred_at, **_context_fields(ctx), **fields)


CONTEXT_ADDED_IN_V2 = ("actor_token", "acting_session", "idempotency_key_sha256", "client")
# Every field of an event's context: who, why and through what (time is the event's own).
CONTEXT_FIELDS = ("actor", "trace_id", "causation", "command_id", *CONTEXT_ADDED_IN_V2)


def _context_fields(ctx: EventContext) -> dict[str, str | None]:
    return {
        "actor": ctx.actor,
        "trace_id": ctx.trace_id,
        "causation": ctx.causation,
        "command_id": ctx.command_id,
        "actor_token": ctx.actor_token,
        "acting_session": ctx.acting_session,
        "idempotency_key_sha256": ctx.idempotency_key_sha256,
        "client": ctx.client,
    }
