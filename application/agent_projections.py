"""What the agent directory and the session timelines make of the events (pure logic, written
through the `Rows` port, like `projections.py`).

The directory keeps, per agent, its profile and what its status is derived from on read (its
sessions' leases and the claims they hold), and the counts and samples its metrics are made
of. A timeline keeps, per session, every event the session's context names, and the work-item
events its agent wrote while the session held the item's claim (a write under a fence does
not name the session).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from agentledger.application.readmodels import AgentRow, Rows
from agentledger.application.shapes import values_by_name
from agentledger.domain.agents import AgentProfile
from agentledger.domain.events import CONTEXT_FIELDS, LedgerAggregate
from agentledger.domain.messages import Message
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem

PROFILE = ("display_name", "kind", "capabilities", "workspace", "endpoints", "config")
# Metrics samples, by kind: seconds from an agent's last claim of an item to its being done,
# and from a request to the agent's first answer to it.
CLAIM_TO_DONE = "claim_to_done"
RESPONSE = "response"
SUMMARY_TEXT = 200  # characters of a text field a timeline row keeps


# Sessions whose agent the directory remembers (a fact of the log, true in any batch,
# committed or not), so a session's events need no read to find their agent.
KNOWN_SESSIONS = 50_000


class AgentsProjection:
    follows = (
        AgentProfile.Event,
        AgentSession.Event,
        WorkItem.WorkItemClaimed,
        WorkItem.ClaimReleased,
        WorkItem.StatusChanged,
        Message.MessageSent,
    )

    def __init__(self) -> None:
        self._agent_of: dict[UUID, str] = {}

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, AgentProfile.Event):
            self._profile(event, position, rows)
        elif isinstance(event, AgentSession.Event):
            self._session(event, position, rows)
        elif isinstance(event, WorkItem.WorkItemClaimed):
            key = {"item_id": event.originator_id}
            rows.delete("claims", key)
            claim = {**key, "session_id": event.session_id, "agent_id": event.agent_id}
            rows.insert("claims", claim)
            rows.delete("last_claims", key)
            rows.insert("last_claims", {**claim, "claimed_at": event.timestamp})
        elif isinstance(event, WorkItem.ClaimReleased):
            rows.delete("claims", {"item_id": event.originator_id})
        elif isinstance(event, WorkItem.StatusChanged) and event.to_status == "done":
            self._done(event, position, rows)
        elif isinstance(event, Message.MessageSent):
            self._message(event, position, rows)

    def _profile(self, event: Any, position: int, rows: Rows) -> None:
        agent_id = event.agent_id if isinstance(event, AgentProfile.AgentRegistered) else None
        if agent_id is None:
            found = rows.find("agents", {"profile_id": event.originator_id})
            agent_id = found[0]["agent_id"]
        self._ensure(agent_id, position, rows)
        rows.delete("capabilities", {"agent_id": agent_id})
        for capability in event.capabilities:
            rows.insert("capabilities", {"agent_id": agent_id, "capability": capability})
        changes = {name: getattr(event, name) for name in PROFILE}
        rows.update(
            "agents",
            {"agent_id": agent_id},
            {
                **changes,
                "registered": True,
                "profile_id": event.originator_id,
                "version": event.originator_version,
            },
        )

    def _session(self, event: Any, position: int, rows: Rows) -> None:
        key = {"session_id": event.originator_id}
        if isinstance(event, AgentSession.SessionStarted):
            self._ensure(event.agent_id, position, rows)
            rows.insert(
                "sessions",
                {
                    **key,
                    "agent_id": event.agent_id,
                    "status": event.status,
                    "lease_expires_at": event.lease_expires_at,
                    "role": event.role,
                },
            )
            rows.add_to("agents", {"agent_id": event.agent_id}, "sessions_total", 1)
            self._seen(event.agent_id, event, rows, last_session=True)
            self._remember(event.originator_id, event.agent_id)
            return
        agent_id = self._agent_of.get(event.originator_id) or self._look_up(key, rows)
        changes: dict[str, Any] = {}
        if isinstance(event, AgentSession.SessionActivated | AgentSession.LeaseRenewed):
            changes = {"status": "active", "lease_expires_at": event.lease_expires_at}
        elif isinstance(event, AgentSession.SessionCompleted):
            changes = {"status": "completed"}
        elif isinstance(event, AgentSession.SessionFailed):
            changes = {"status": "failed"}
            rows.add_to("agents", {"agent_id": agent_id}, "sessions_failed", 1)
        elif isinstance(event, AgentSession.SessionExpired):
            changes = {"status": "expired"}
            rows.add_to("agents", {"agent_id": agent_id}, "sessions_expired", 1)
        if "status" in changes:
            rows.update("sessions", key, changes)
            rows.update_all(  # the agent's row shows its last session's status only
                "agents",
                {"agent_id": agent_id, "last_session_id": event.originator_id},
                {"last_session_status": changes["status"]},
            )
        if not isinstance(event, AgentSession.SessionExpired):  # an expiry is not a sighting
            self._seen(agent_id, event, rows, last_session=False)

    def _look_up(self, key: dict[str, Any], rows: Rows) -> str:
        session = rows.get("sessions", key)
        if session is None:
            raise LookupError(f"session {key['session_id']}: no row")
        agent_id: str = session["agent_id"]
        self._remember(key["session_id"], agent_id)
        return agent_id

    def _remember(self, session_id: UUID, agent_id: str) -> None:
        if len(self._agent_of) >= KNOWN_SESSIONS:
            self._agent_of.clear()
        self._agent_of[session_id] = agent_id

    def _seen(self, agent_id: str, event: Any, rows: Rows, *, last_session: bool) -> None:
        changes: dict[str, Any] = {"last_seen_at": event.timestamp}
        if last_session:
            changes.update(last_session_id=event.originator_id, last_session_status=event.status)
        rows.update("agents", {"agent_id": agent_id}, changes)

    def _done(self, event: Any, position: int, rows: Rows) -> None:
        claim = rows.get("last_claims", {"item_id": event.originator_id})
        if claim is None:
            return  # done without ever being claimed: nobody's work to count
        agent_id = claim["agent_id"]
        rows.add_to("agents", {"agent_id": agent_id}, "items_completed", 1)
        _sample(rows, agent_id, CLAIM_TO_DONE, position, event.timestamp, claim["claimed_at"])

    def _message(self, event: Any, position: int, rows: Rows) -> None:
        if event.type == "request":
            rows.insert(
                "requests",
                {
                    "message_id": event.originator_id,
                    "sent_at": event.timestamp,
                    "recipients": list(event.recipients),
                    "answered": False,
                },
            )
        elif event.type in ("response", "error") and event.reply_to is not None:
            request = rows.get("requests", {"message_id": event.reply_to})
            replier = event.sender_agent
            if request is None or request["answered"] or replier not in request["recipients"]:
                return
            rows.update("requests", {"message_id": event.reply_to}, {"answered": True})
            self._ensure(replier, position, rows)
            rows.add_to("agents", {"agent_id": replier}, "messages_answered", 1)
            _sample(rows, replier, RESPONSE, position, event.timestamp, request["sent_at"])

    def _ensure(self, agent_id: str, position: int, rows: Rows) -> None:
        """The agent's row, made (unregistered) when it is first seen: a write, not a read
        first (a rebuild read the row of every session's agent, one round trip each)."""
        row = values_by_name(
            AgentRow,
            object(),
            agent_id=agent_id,
            registered=False,
            display_name=None,
            kind=None,
            capabilities=[],
            workspace=None,
            endpoints={},
            config={},
            version=0,
            last_seen_at=None,
            last_session_id=None,
            last_session_status=None,
            sessions_total=0,
            sessions_failed=0,
            sessions_expired=0,
            items_completed=0,
            messages_answered=0,
            created_position=position,
        )
        rows.insert_missing("agents", {**row, "profile_id": None})


def _sample(
    rows: Rows, agent_id: str, kind: str, position: int, end: datetime, start: datetime
) -> None:
    seconds = max(0.0, (end - start).total_seconds())
    rows.insert(
        "samples",
        {"agent_id": agent_id, "kind": kind, "position": position, "millis": int(seconds * 1000)},
    )


class TimelineProjection:
    follows = (LedgerAggregate.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, WorkItem.WorkItemClaimed):
            key = {"item_id": event.originator_id}
            rows.delete("holders", key)
            holder = {**key, "session_id": event.session_id, "agent_id": event.agent_id}
            rows.insert("holders", holder)
        session = _session_of(event, rows)
        if isinstance(event, WorkItem.ClaimReleased):
            rows.delete("holders", {"item_id": event.originator_id})
        if session is None:
            return
        rows.insert(
            "timeline",
            {
                "position": position,
                "session_id": session,
                "occurred_at": event.timestamp,
                "event": type(event).__qualname__,
                "aggregate_id": event.originator_id,
                "actor": event.actor,
                "summary": summary_of(event),
            },
        )


def _session_of(event: Any, rows: Rows) -> UUID | None:
    """The session an event belongs to: the one its context names, or for a work-item event
    by the agent holding the item's claim, the claim's session."""
    named = getattr(event, "acting_session", None)
    if named is not None:
        return UUID(named)
    if not isinstance(event, WorkItem.Event):
        return None
    holder = rows.get("holders", {"item_id": event.originator_id})
    if holder is None or event.actor != f"agent:{holder['agent_id']}":
        return None
    session: UUID = holder["session_id"]
    return session


_NOT_SUMMARISED = {
    *CONTEXT_FIELDS,
    "originator_id",
    "originator_version",
    "timestamp",
    # Long texts and documents: the aggregate's history has them whole.
    "body",
    "summary",
    "notes",
    "description",
}


def summary_of(event: Any) -> dict[str, Any]:
    """An event's own fields a timeline shows: scalars and ids, texts cut short; bodies,
    contexts and documents are left to the event itself (GET the aggregate's history)."""
    found: dict[str, Any] = {}
    for name, value in vars(event).items():
        if name in _NOT_SUMMARISED or name.startswith("_"):
            continue
        if isinstance(value, str):
            found[name] = value[:SUMMARY_TEXT]
        elif isinstance(value, UUID | datetime):
            found[name] = str(value) if isinstance(value, UUID) else value.isoformat()
        elif value is None or isinstance(value, bool | int | float):
            found[name] = value
    return found
