"""What each read model makes of the events: pure logic, written through the `Rows` port.

A projection sees the events it `follows`, in position order; its tracking position still
advances past the others (so `AgentLedger-Consistent-With` works for any position). The row a
creation event starts is built by name (`values_by_name`): the event's fields of the same
name are copied, and only what the event names otherwise (its id, version, time) or what the
row starts with is spelled out.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from eventsourcing.utils import TopicError

from agentledger.application.entries import EntryView
from agentledger.application.ledger import stored_topics
from agentledger.application.readmodels import (
    ApprovalRow,
    HandoverRow,
    MessageRow,
    ProjectRow,
    Rows,
    SelectionRow,
    SessionRow,
    TokenRow,
    WorkItemRow,
)
from agentledger.application.shapes import values_by_name
from agentledger.domain.access import AccessToken
from agentledger.domain.approvals import Approval
from agentledger.domain.entries import LogEntry
from agentledger.domain.handovers import Handover
from agentledger.domain.messages import Message
from agentledger.domain.plans import ProjectPlan
from agentledger.domain.projects import Project
from agentledger.domain.selections import ProjectSelection
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import FINAL, WorkItem


def touched(event: Any, position: int) -> dict[str, Any]:
    """What every event of an aggregate changes in its row: version, time and log position."""
    return {
        "version": event.originator_version,
        "updated_at": event.timestamp,
        "position": position,
    }


class Follower(Protocol):
    """A reader of the log (a projection, a policy) that names the events it reads."""

    @property
    def follows(self) -> tuple[type, ...]:
        """The events it reads (subclasses included); the others are not even decoded."""


class Projection(Follower, Protocol):
    """What one read model makes of the events. It has no name of its own: its read model's
    name (`sessions_v1`) names the tables, the tracking position and the runner. A batch with
    none of the events it follows writes no rows."""

    def handle(self, event: Any, position: int, rows: Rows) -> None: ...


def followed_topics(follower: Follower) -> list[str]:
    """The stored topics of every event class `follower` follows, subclasses included: what
    to ask the store for, so the rest of the log is neither sent nor decoded."""
    found: set[str] = set()
    pending = list(follower.follows)
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        try:
            found.update(stored_topics(cls))
        except TopicError:
            # A class the library's aggregate machinery replaced by the one it stores under
            # that name (an event declared in an aggregate's body): never in the log itself.
            continue
    return sorted(found)


class SessionsProjection:
    follows = (AgentSession.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if not isinstance(event, AgentSession.Event):
            return
        if isinstance(event, AgentSession.SessionStarted):
            row = values_by_name(
                SessionRow,
                event,
                id=event.originator_id,
                version=event.originator_version,
                created_at=event.timestamp,
                updated_at=event.timestamp,
                ended_at=None,
                end_reason=None,
                archived=False,
                created_position=position,
                position=position,
            )
            rows.insert("sessions", row)
            return
        changes = touched(event, position)
        if isinstance(event, AgentSession.SessionActivated):
            changes.update(status="active", lease_expires_at=event.lease_expires_at)
        elif isinstance(event, AgentSession.LeaseRenewed):
            changes.update(lease_expires_at=event.lease_expires_at)
        elif isinstance(event, AgentSession.SessionMetadataUpdated):
            changes.update(metadata=dict(event.metadata))
        elif isinstance(event, AgentSession.SessionCompleted | AgentSession.SessionFailed):
            status = "completed" if isinstance(event, AgentSession.SessionCompleted) else "failed"
            changes.update(status=status, ended_at=event.timestamp, end_reason=event.reason)
        elif isinstance(event, AgentSession.SessionExpired):
            changes.update(
                status="expired", ended_at=event.lease_expired_at, end_reason="lease_expired"
            )
        elif isinstance(event, AgentSession.SessionArchived):
            changes.update(archived=True)
        rows.update("sessions", {"id": event.originator_id}, changes)


class TokensProjection:
    follows = (AccessToken.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, AccessToken.Issued):
            row = values_by_name(
                TokenRow,
                event,
                id=event.originator_id,
                roles=list(event.roles),
                issued_at=event.timestamp,
                issued_by=event.actor,
                revoked_at=None,
                revoked_by=None,
            )
            rows.insert("tokens", row)
        elif isinstance(event, AccessToken.Revoked):
            rows.update(
                "tokens",
                {"id": event.originator_id},
                {"revoked_at": event.timestamp, "revoked_by": event.actor},
            )


class ProjectsProjection:
    follows = (Project.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, Project.ProjectCreated):
            row = values_by_name(
                ProjectRow,
                event,
                id=event.originator_id,
                archived=False,
                version=event.originator_version,
                created_at=event.timestamp,
                created_by=event.actor,
                updated_at=event.timestamp,
                archived_at=None,
                archived_position=None,
                position=position,
            )
            rows.insert("projects", row)
        elif isinstance(event, Project.ProjectArchived):
            rows.update(
                "projects",
                {"id": event.originator_id},
                {
                    "archived": True,
                    "archived_at": event.timestamp,
                    "archived_position": position,
                    **touched(event, position),
                },
            )


class SelectionsProjection:
    follows = (ProjectSelection.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, ProjectSelection.SelectionStarted):
            row = values_by_name(
                SelectionRow,
                event,
                selection_id=event.originator_id,
                version=event.originator_version,
                updated_at=event.timestamp,
                cleared_reason=None,
                position=position,
            )
            rows.insert("selections", row)
            return
        changes = touched(event, position)
        if isinstance(event, ProjectSelection.ProjectSelected):
            changes.update(project=event.project, session_id=event.session_id, cleared_reason=None)
        elif isinstance(event, ProjectSelection.SelectionCleared):
            changes.update(project=None, session_id=event.session_id, cleared_reason=event.reason)
        else:
            return
        rows.update("selections", {"selection_id": event.originator_id}, changes)


class EntriesProjection:
    follows = (LogEntry.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if not isinstance(event, LogEntry.EntryAppended):
            return
        entry = values_by_name(
            EntryView, event, position=position, id=event.originator_id, created_at=event.timestamp
        )
        rows.insert("entries", {**entry, "folded": event.message.casefold()})
        for key, value in event.metadata.items():
            rows.insert(
                "entry_metadata",
                {
                    "position": position,
                    "project": event.project,
                    "key": key,
                    "value": metadata_text(value),
                },
            )


class ApprovalsProjection:
    follows = (Approval.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, Approval.ApprovalRequested):
            row = values_by_name(
                ApprovalRow,
                event,
                id=event.originator_id,
                status="pending",
                requested_by=event.actor,
                decided_by=None,
                decided_at=None,
                notes=None,
                version=event.originator_version,
                created_at=event.timestamp,
                updated_at=event.timestamp,
                created_position=position,
                position=position,
            )
            rows.insert("approvals", row)
        elif isinstance(event, Approval.ApprovalDecided):
            changes = {
                "status": event.decision,
                "decided_by": event.actor,
                "decided_at": event.timestamp,
                "notes": event.notes,
                **touched(event, position),
            }
            rows.update("approvals", {"id": event.originator_id}, changes)


class HandoversProjection:
    follows = (Handover.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if not isinstance(event, Handover.HandoverWritten | Handover.HandoverRevised):
            return
        document = {
            "project": event.project,
            "summary": event.summary,
            "next_steps": list(event.next_steps),
            "files_to_read": list(event.files_to_read),
            "open_questions": list(event.open_questions),
            "notes": event.notes,
            "work_item_ids": [str(i) for i in event.work_item_ids],
            "failures": [dict(f) for f in event.failures],
            "passed": not event.failures,
            **touched(event, position),
        }
        if isinstance(event, Handover.HandoverRevised):
            rows.update("handovers", {"id": event.originator_id}, document)
            return
        row = values_by_name(
            HandoverRow,
            event,
            id=event.originator_id,
            created_at=event.timestamp,
            created_position=position,
            **document,
        )
        rows.insert("handovers", row)


class MessagesProjection:
    """Each message once, an inbox row per recipient; the first reply from a recipient of a
    request marks the request answered (and its inbox rows, which "waiting for a reply"
    reads)."""

    follows = (Message.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, Message.MessageSent):
            self._sent(event, position, rows)
        elif isinstance(event, Message.MessageRead | Message.MessageAcked):
            column = "read_at" if isinstance(event, Message.MessageRead) else "acked_at"
            rows.update(
                "inbox",
                {"message_id": event.originator_id, "recipient": event.agent_id},
                {column: event.timestamp},
            )

    def _sent(self, event: Any, position: int, rows: Rows) -> None:
        row = values_by_name(
            MessageRow,
            event,
            id=event.originator_id,
            addressed_to=event.to,
            recipients=list(event.recipients),
            context=dict(event.context),
            created_at=event.timestamp,
            answered_at=None,
            answered_by=None,
            read_at=None,
            acked_at=None,
            created_position=position,
        )
        rows.insert("messages", row)
        for recipient in event.recipients:
            rows.insert(
                "inbox",
                {
                    "message_id": event.originator_id,
                    "recipient": recipient,
                    "sender_agent": event.sender_agent,
                    "type": event.type,
                    "thread_id": event.thread_id,
                    "ack_required": event.ack_required,
                    "answered": False,
                    "read_at": None,
                    "acked_at": None,
                    "created_position": position,
                },
            )
        if event.reply_to is not None and event.type in ("response", "error"):
            original = rows.get("messages", {"id": event.reply_to})
            answers = original is not None and original["answered_at"] is None
            if original is not None and answers and event.sender_agent in original["recipients"]:
                rows.update(
                    "messages",
                    {"id": event.reply_to},
                    {"answered_at": event.timestamp, "answered_by": event.sender_agent},
                )
                rows.update_all("inbox", {"message_id": event.reply_to}, {"answered": True})


class WorkItemsProjection:
    """Work items with a materialised path (ids from the root down), their dependencies, and
    each claim's expiry, which follows the holder's session lease: a heartbeat keeps every
    claim of its session alive, and a session's end ends them at once, before any release."""

    follows = (
        WorkItem.Event,
        ProjectPlan.DependencyAdded,
        ProjectPlan.DependencyRemoved,
        AgentSession.SessionActivated,
        AgentSession.LeaseRenewed,
        AgentSession.SessionCompleted,
        AgentSession.SessionFailed,
        AgentSession.SessionExpired,
        Project.ProjectArchived,
    )

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, Project.ProjectArchived):
            rows.update_all("work_items", {"project": event.name}, {"project_archived": True})
        elif isinstance(event, ProjectPlan.DependencyAdded | ProjectPlan.DependencyRemoved):
            self._edit_edge(event, rows)
        elif isinstance(event, AgentSession.Event):
            self._follow_lease(event, rows)
        elif isinstance(event, WorkItem.WorkItemCreated):
            self._insert(event, position, rows)
        elif isinstance(event, WorkItem.Event):
            changes = {**self._changes(event, rows), **touched(event, position)}
            rows.update("work_items", {"id": event.originator_id}, changes)

    def _edit_edge(self, event: Any, rows: Rows) -> None:
        """An edge in `dependencies`, and its waiting item's count of dependencies not done."""
        edge = {"item_id": event.item_id, "depends_on": event.depends_on}
        added = isinstance(event, ProjectPlan.DependencyAdded)
        if added:
            rows.insert("dependencies", edge)
        else:
            rows.delete("dependencies", edge)
        target = rows.get("work_items", {"id": event.depends_on})
        if target is None or target["status"] != "done":
            rows.add_to("work_items", {"id": event.item_id}, "waiting_on", 1 if added else -1)

    def _count_done(self, event: Any, rows: Rows) -> None:
        """An item became done (or stopped being done): each item waiting for it waits for
        one dependency fewer (or more)."""
        if (event.from_status == "done") == (event.to_status == "done"):
            return
        delta = -1 if event.to_status == "done" else 1
        for edge in rows.find("dependencies", {"depends_on": event.originator_id}):
            rows.add_to("work_items", {"id": edge["item_id"]}, "waiting_on", delta)

    def _insert(self, event: Any, position: int, rows: Rows) -> None:
        path, depth = str(event.originator_id), 0
        if event.parent_id is not None:
            parent = rows.get("work_items", {"id": event.parent_id})
            if parent is None:
                raise LookupError(f"work item {event.originator_id}: no parent row")
            path, depth = f"{parent['path']}/{path}", parent["depth"] + 1
        row = values_by_name(
            WorkItemRow,
            event,
            id=event.originator_id,
            status="open",
            blocked_reason=None,
            archived=False,
            project_archived=False,
            holder_session=None,
            holder_agent=None,
            fence=0,
            claimed_at=None,
            claim_expires_at=None,
            path=path,
            depth=depth,
            waiting_on=0,
            version=event.originator_version,
            created_at=event.timestamp,
            created_by=event.actor,
            updated_at=event.timestamp,
            finished_at=None,
            offered_to=None,
            offer_expires_at=None,
            parked_on=None,
            created_position=position,
            position=position,
        )
        rows.insert("work_items", row)

    def _changes(self, event: Any, rows: Rows) -> dict[str, Any]:
        if isinstance(event, WorkItem.WorkItemUpdated):
            return dict(event.changes)
        if isinstance(event, WorkItem.StatusChanged):
            self._count_done(event, rows)
            finished = event.timestamp if event.to_status in FINAL else None
            blocked = event.reason if event.to_status == "blocked" else None
            return {"status": event.to_status, "blocked_reason": blocked, "finished_at": finished}
        if isinstance(event, WorkItem.WorkItemClaimed):
            return {
                "holder_session": event.session_id,
                "holder_agent": event.agent_id,
                "fence": event.fence,
                "claimed_at": event.timestamp,
                "claim_expires_at": event.lease_expires_at,
                **NO_OFFER,
                "parked_on": None,
            }
        if isinstance(event, WorkItem.ClaimReleased):
            return {
                "holder_session": None,
                "holder_agent": None,
                "claimed_at": None,
                "claim_expires_at": None,
                **NO_OFFER,
                "parked_on": None,
            }
        if isinstance(event, WorkItem.HandoffOffered):
            return {"offered_to": event.to_agent, "offer_expires_at": event.expires_at}
        if isinstance(event, OFFER_ENDS):
            return dict(NO_OFFER)
        if isinstance(event, WorkItem.ClaimParked | WorkItem.ClaimResumed):
            parked = isinstance(event, WorkItem.ClaimParked)
            return {"parked_on": event.approval_id if parked else None}
        if isinstance(event, WorkItem.WorkItemArchived | WorkItem.WorkItemUnarchived):
            return {"archived": isinstance(event, WorkItem.WorkItemArchived)}
        if isinstance(event, WorkItem.ParentChanged):
            self._move(event, rows)
            return {"parent_id": event.parent_id}
        return {}

    def _move(self, event: Any, rows: Rows) -> None:
        """Rewrite the path and depth of the moved item and everything below it."""
        moved = rows.get("work_items", {"id": event.originator_id})
        if moved is None:
            raise LookupError(f"work item {event.originator_id}: no row")
        new_prefix, new_depth = str(event.originator_id), 0
        if event.parent_id is not None:
            parent = rows.get("work_items", {"id": event.parent_id})
            if parent is None:
                raise LookupError(f"work item {event.originator_id}: no parent row")
            new_prefix = f"{parent['path']}/{new_prefix}"
            new_depth = parent["depth"] + 1
        old_prefix, shift = moved["path"], new_depth - moved["depth"]
        for row in [moved, *rows.with_prefix("work_items", "path", old_prefix + "/")]:
            rows.update(
                "work_items",
                {"id": row["id"]},
                {
                    "path": new_prefix + row["path"][len(old_prefix) :],
                    "depth": row["depth"] + shift,
                },
            )

    def _follow_lease(self, event: Any, rows: Rows) -> None:
        if isinstance(event, AgentSession.SessionActivated | AgentSession.LeaseRenewed):
            expires = event.lease_expires_at
        elif isinstance(event, AgentSession.SessionExpired):
            expires = event.lease_expired_at
        else:
            expires = event.timestamp
        rows.update_all(
            "work_items", {"holder_session": event.originator_id}, {"claim_expires_at": expires}
        )


NO_OFFER = {"offered_to": None, "offer_expires_at": None}
OFFER_ENDS = WorkItem.HandoffAccepted | WorkItem.HandoffDeclined | WorkItem.HandoffExpired


def metadata_text(value: Any) -> str:
    """How a metadata value is matched by `meta.<key>=<value>` filters: strings as they are,
    other values in their JSON spelling (true, false, null, 42, 1.5)."""
    return value if isinstance(value, str) else json.dumps(value)
