"""The event log's contract: every event carries its context, and stored names never drift."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil

from eventsourcing.utils import get_topic, resolve_topic

import agentledger.domain
from agentledger.application.ledger import APPLICATION_NAME, Ledger, stored_topics
from agentledger.domain.events import LedgerAggregate

CONTEXT_FIELDS = {
    "actor",
    "trace_id",
    "causation",
    "command_id",
    "timestamp",
    "actor_token",
    "acting_session",
    "idempotency_key_sha256",
    "client",
}


def all_event_classes() -> list[type]:
    found = []
    modules = [
        importlib.import_module(f"agentledger.domain.{info.name}")
        for info in pkgutil.iter_modules(agentledger.domain.__path__)
    ]
    for module in modules:
        for _, aggregate in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(aggregate, LedgerAggregate)
                and aggregate is not LedgerAggregate
                and aggregate.__module__ == module.__name__
            ):
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
        f"agentledger.{name}" for name in TOPICS_BEFORE_THE_NAMESPACE
    } | TOPICS_ADDED_SINCE


def test_topics_stored_before_the_namespace_resolve_to_the_same_classes() -> None:
    """Events written while the layers were top-level packages name `domain.<module>`: each
    still resolves to its class, and a projection asking the store for a class's events asks
    for both names."""
    for old in TOPICS_BEFORE_THE_NAMESPACE:
        event_class = resolve_topic(old)
        assert get_topic(event_class) == f"agentledger.{old}"
        assert stored_topics(event_class) == [f"agentledger.{old}", old]


# Every topic the log held before the layers moved under `agentledger.` (main at 0b5a137).
TOPICS_BEFORE_THE_NAMESPACE = {
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
# Every topic added since, under the namespace from the start.
TOPICS_ADDED_SINCE = {
    "agentledger.domain.approvals:Approval.ApprovalRequested",
    "agentledger.domain.approvals:Approval.ApprovalDecided",
    "agentledger.domain.work_items:WorkItem.ApprovalAttached",
    "agentledger.domain.refusals:CommandRefusal.CommandRefused",
    # Handing claims over, parking them, handover documents (issue 14).
    "agentledger.domain.work_items:WorkItem.HandoffOffered",
    "agentledger.domain.work_items:WorkItem.HandoffAccepted",
    "agentledger.domain.work_items:WorkItem.HandoffDeclined",
    "agentledger.domain.work_items:WorkItem.HandoffExpired",
    "agentledger.domain.work_items:WorkItem.ClaimParked",
    "agentledger.domain.work_items:WorkItem.ClaimResumed",
    "agentledger.domain.handovers:Handover.HandoverWritten",
    "agentledger.domain.handovers:Handover.HandoverRevised",
    "agentledger.domain.messages:Message.MessageSent",
    "agentledger.domain.messages:Message.MessageRead",
    "agentledger.domain.messages:Message.MessageAcked",
    "agentledger.domain.agents:AgentProfile.AgentRegistered",
    "agentledger.domain.agents:AgentProfile.AgentProfileUpdated",
    "agentledger.domain.sessions:AgentSession.SessionArchived",
}


def test_the_audit_knows_every_event_class() -> None:
    """A replay filters by event type, and names each event: none may be missing."""
    from agentledger.application.audit import event_classes

    assert set(event_classes().values()) == set(all_event_classes())
