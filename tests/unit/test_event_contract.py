"""The event log's contract: every event carries its context, and stored names never drift."""

from __future__ import annotations

import dataclasses
import inspect

from eventsourcing.utils import get_topic

import domain.access
import domain.entries
import domain.plans
import domain.projects
import domain.selections
import domain.sessions
import domain.work_items
from application.ledger import APPLICATION_NAME, Ledger
from domain.events import LedgerAggregate

CONTEXT_FIELDS = {"actor", "trace_id", "causation", "command_id", "timestamp"}


def all_event_classes() -> list[type]:
    found = []
    for module in (
        domain.sessions,
        domain.access,
        domain.projects,
        domain.selections,
        domain.entries,
        domain.plans,
        domain.work_items,
    ):
        for _, aggregate in inspect.getmembers(module, inspect.isclass):
            if issubclass(aggregate, LedgerAggregate) and aggregate is not LedgerAggregate:
                for _, member in inspect.getmembers(aggregate, inspect.isclass):
                    if (
                        issubclass(member, LedgerAggregate.Event)
                        and member.__qualname__.startswith(aggregate.__name__ + ".")
                        and member.__name__ not in ("Event", "Created")
                    ):
                        found.append(member)
    return found


def test_every_event_requires_its_context() -> None:
    classes = all_event_classes()
    assert len(classes) >= 9
    for event_class in classes:
        fields = {f.name: f for f in dataclasses.fields(event_class)}
        assert set(fields) >= CONTEXT_FIELDS, event_class
        for name in CONTEXT_FIELDS:
            assert fields[name].default is dataclasses.MISSING, (
                f"{event_class}.{name} has a default"
            )


def test_stored_names_are_stable() -> None:
    # Renaming any of these orphans stored events or tables: change them only with upcasters
    # or registered topic aliases.
    assert APPLICATION_NAME == Ledger.name == "agentledger"
    assert {get_topic(c) for c in all_event_classes()} == {
        "domain.sessions:AgentSession.SessionStarted",
        "domain.sessions:AgentSession.SessionActivated",
        "domain.sessions:AgentSession.LeaseRenewed",
        "domain.sessions:AgentSession.SessionMetadataUpdated",
        "domain.sessions:AgentSession.SessionCompleted",
        "domain.sessions:AgentSession.SessionFailed",
        "domain.sessions:AgentSession.SessionExpired",
        "domain.access:AccessToken.Issued",
        "domain.access:AccessToken.Revoked",
        "domain.projects:Project.ProjectCreated",
        "domain.projects:Project.ProjectArchived",
        "domain.selections:ProjectSelection.SelectionStarted",
        "domain.selections:ProjectSelection.ProjectSelected",
        "domain.selections:ProjectSelection.SelectionCleared",
        "domain.entries:LogEntry.EntryAppended",
        "domain.plans:ProjectPlan.PlanStarted",
        "domain.plans:ProjectPlan.ItemPlaced",
        "domain.plans:ProjectPlan.DependencyAdded",
        "domain.plans:ProjectPlan.DependencyRemoved",
        "domain.work_items:WorkItem.WorkItemCreated",
        "domain.work_items:WorkItem.StatusChanged",
        "domain.work_items:WorkItem.WorkItemClaimed",
        "domain.work_items:WorkItem.ClaimReleased",
        "domain.work_items:WorkItem.WorkItemUpdated",
        "domain.work_items:WorkItem.ParentChanged",
        "domain.work_items:WorkItem.WorkItemArchived",
        "domain.work_items:WorkItem.WorkItemUnarchived",
    }
