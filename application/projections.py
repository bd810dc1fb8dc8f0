"""What each read model makes of the events: pure logic, written through the `Rows` port.

A projection sees the events it `follows`, in position order; its tracking position still
advances past the others (so `AgentLedger-Consistent-With` works for any position).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Protocol

from application.readmodels import EntryRow, ProjectRow, Rows, SelectionRow, SessionRow, TokenRow
from domain.access import AccessToken
from domain.entries import LogEntry
from domain.projects import Project
from domain.selections import ProjectSelection
from domain.sessions import AgentSession


class Projection(Protocol):
    name: str
    # The events this projection reads; a batch with none of them writes no rows.
    follows: tuple[type, ...]

    def handle(self, event: Any, position: int, rows: Rows) -> None: ...


class SessionsProjection:
    name = "sessions"
    follows = (AgentSession.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if not isinstance(event, AgentSession.Event):
            return
        if isinstance(event, AgentSession.SessionStarted):
            rows.insert(
                "sessions",
                asdict(
                    SessionRow(
                        id=event.originator_id,
                        agent_id=event.agent_id,
                        status=event.status,
                        ttl_seconds=event.ttl_seconds,
                        lease_expires_at=event.lease_expires_at,
                        metadata=dict(event.metadata),
                        version=event.originator_version,
                        created_at=event.timestamp,
                        updated_at=event.timestamp,
                        ended_at=None,
                        end_reason=None,
                        created_position=position,
                        position=position,
                    )
                ),
            )
            return
        changes: dict[str, Any] = {
            "version": event.originator_version,
            "updated_at": event.timestamp,
            "position": position,
        }
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
        rows.update("sessions", {"id": event.originator_id}, changes)


class TokensProjection:
    name = "tokens"
    follows = (AccessToken.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, AccessToken.Issued):
            rows.insert(
                "tokens",
                asdict(
                    TokenRow(
                        id=event.originator_id,
                        principal=event.principal,
                        roles=list(event.roles),
                        label=event.label,
                        issued_at=event.timestamp,
                        issued_by=event.actor,
                        revoked_at=None,
                        revoked_by=None,
                    )
                ),
            )
        elif isinstance(event, AccessToken.Revoked):
            rows.update(
                "tokens",
                {"id": event.originator_id},
                {"revoked_at": event.timestamp, "revoked_by": event.actor},
            )


class ProjectsProjection:
    name = "projects"
    follows = (Project.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, Project.ProjectCreated):
            row = ProjectRow(
                id=event.originator_id,
                name=event.name,
                description=event.description,
                archived=False,
                version=event.originator_version,
                created_at=event.timestamp,
                created_by=event.actor,
                updated_at=event.timestamp,
                archived_at=None,
                archived_position=None,
                position=position,
            )
            rows.insert("projects", asdict(row))
        elif isinstance(event, Project.ProjectArchived):
            rows.update(
                "projects",
                {"id": event.originator_id},
                {
                    "archived": True,
                    "archived_at": event.timestamp,
                    "archived_position": position,
                    "version": event.originator_version,
                    "updated_at": event.timestamp,
                    "position": position,
                },
            )


class SelectionsProjection:
    name = "selections"
    follows = (ProjectSelection.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if isinstance(event, ProjectSelection.SelectionStarted):
            row = SelectionRow(
                selection_id=event.originator_id,
                agent_id=event.agent_id,
                project=event.project,
                version=event.originator_version,
                session_id=event.session_id,
                updated_at=event.timestamp,
                cleared_reason=None,
                position=position,
            )
            rows.insert("selections", asdict(row))
            return
        changes: dict[str, Any] = {
            "version": event.originator_version,
            "updated_at": event.timestamp,
            "position": position,
        }
        if isinstance(event, ProjectSelection.ProjectSelected):
            changes.update(project=event.project, session_id=event.session_id, cleared_reason=None)
        elif isinstance(event, ProjectSelection.SelectionCleared):
            changes.update(project=None, session_id=event.session_id, cleared_reason=event.reason)
        else:
            return
        rows.update("selections", {"selection_id": event.originator_id}, changes)


class EntriesProjection:
    name = "entries"
    follows = (LogEntry.Event,)

    def handle(self, event: Any, position: int, rows: Rows) -> None:
        if not isinstance(event, LogEntry.EntryAppended):
            return
        row = EntryRow(
            position=position,
            id=event.originator_id,
            project=event.project,
            agent_id=event.agent_id,
            session_id=event.session_id,
            status=event.status,
            message=event.message,
            metadata=dict(event.metadata),
            created_at=event.timestamp,
        )
        rows.insert("entries", {**asdict(row), "folded": event.message.casefold()})
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


def metadata_text(value: Any) -> str:
    """How a metadata value is matched by `meta.<key>=<value>` filters: strings as they are,
    other values in their JSON spelling (true, false, null, 42, 1.5)."""
    return value if isinstance(value, str) else json.dumps(value)
