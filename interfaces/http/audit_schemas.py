"""Request and response shapes of the audit endpoints (auditors and admins only)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import Field

from agentledger.application.audit import AggregateState, AuditRecord
from agentledger.application.seal import Breach, SealedLink, VerifyReport
from agentledger.interfaces.http.schemas import Query, Strict, ZonedTime, response_model

# An event type as the timeline names it: `SessionStarted`, or `AgentSession.SessionStarted`.
EVENT_TYPE_PATTERN = r"^[A-Z][A-Za-z0-9]{0,63}(\.[A-Z][A-Za-z0-9]{0,63})?$"
# An actor: a token's principal (`agent:alice`) or the system's (`system:cli:root`).
ACTOR_PATTERN = r"^(agent|user|service|system):[A-Za-z0-9._:@-]{1,200}$"
MAX_EVENTS_PAGE = 1000
# A page looks at no more than this many events of the log, however few match.
SCAN_PER_PAGE = 10_000

EventType = Annotated[str, Field(pattern=EVENT_TYPE_PATTERN)]
ActorName = Annotated[str, Field(pattern=ACTOR_PATTERN)]
TraceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._:/+=-]{1,128}$")]


class EventsQuery(Query):
    after: int = Field(default=0, ge=0, le=10**18, description="Events after this position.")
    limit: int = Field(default=100, ge=1, le=MAX_EVENTS_PAGE)
    aggregate_id: UUID | None = Field(
        default=None, description="Its events, and the refused commands that named it."
    )
    type: EventType | None = Field(default=None, description="An event type, e.g. StatusChanged.")
    actor: ActorName | None = None
    trace_id: TraceId | None = None
    since: ZonedTime | None = Field(default=None, description="Inclusive, ISO 8601 with zone.")
    until: ZonedTime | None = Field(default=None, description="Exclusive, ISO 8601 with zone.")


AuditEventOut = response_model(
    "AuditEventOut",
    AuditRecord,
    described={
        "position": "The event's position in the log (its notification id).",
        "summary": "What changed, in one line for people.",
        "changes": "The event's own fields (context fields have columns of their own).",
        "actor_token": "The id of the token that authenticated the actor (never its secret).",
        "idempotency_key_sha256": "SHA-256 of the Idempotency-Key the request carried.",
        "client": "The User-Agent the request carried (bounded).",
        "causation": "The command that caused the event.",
    },
    types={"changes": dict[str, Any]},
)


class EventPage(Strict):
    events: list[AuditEventOut]  # type: ignore[valid-type]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null once the end of the log was read."
    )
    scanned_to: int = Field(description="The last log position this page looked at.")


class AggregateHistory(Strict):
    aggregate_id: UUID
    events: list[AuditEventOut]  # type: ignore[valid-type]


class StateQuery(Query):
    version: int | None = Field(default=None, ge=1, le=10**12)
    at: ZonedTime | None = Field(default=None, description="ISO 8601 with zone.")


AggregateStateOut = response_model(
    "AggregateStateOut",
    AggregateState,
    described={
        "as_of": "The time of the last event applied.",
        "position": "The log position of that event.",
        "state": "The aggregate's attributes as they were.",
    },
    types={"state": dict[str, Any]},
)


class VerifyQuery(Query):
    checkpoint: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,18}:[0-9a-f]{64}$",
        description="A checkpoint published earlier, POSITION:LINK: the log must still reach it.",
    )


SealedLinkOut = response_model("SealedLinkOut", SealedLink)
BreachOut = response_model(
    "BreachOut",
    Breach,
    described={
        "kind": "altered, removed, inserted, reordered, chain-rewritten or not-sealed-yet",
    },
)
VerifyOut = response_model(
    "VerifyOut",
    VerifyReport,
    described={
        "ok": "True when every sealed event is stored exactly as it was sealed.",
        "sealed_head": "The last event the seal holds; publish position:link to check later.",
        "unsealed": "Events newer than the seal's head (sealed within moments while serving).",
        "breach": "The first position where the log and the seal disagree.",
    },
    types={"sealed_head": SealedLinkOut | None, "breach": BreachOut | None},
)
