"""WorkItem: the status lifecycle, and fenced claims bound to a live holder."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from agentledger.domain.errors import InvalidTransition, InvalidValue
from agentledger.domain.events import EventContext
from agentledger.domain.work_items import (
    ALLOWED_TRANSITIONS,
    AlreadyClaimed,
    ClaimLost,
    ItemArchived,
    WorkItem,
    WorkStatus,
)

CTX = EventContext("agent:a", "t", "test", "c", datetime(2026, 1, 1, tzinfo=UTC))
LEASE = datetime(2026, 1, 1, 0, 15, tzinfo=UTC)


def item() -> WorkItem:
    return WorkItem.create(CTX, project="alpha", kind="task", title="Write the parser")


def at(status: WorkStatus) -> WorkItem:
    """An item driven to `status` along allowed transitions."""
    routes = {
        WorkStatus.OPEN: [],
        WorkStatus.IN_PROGRESS: ["in_progress"],
        WorkStatus.IN_REVIEW: ["in_progress", "in_review"],
        WorkStatus.DONE: ["in_progress", "in_review", "done"],
        WorkStatus.BLOCKED: ["blocked"],
        WorkStatus.CANCELLED: ["cancelled"],
    }
    work = item()
    for step in routes[status]:
        work.transition(CTX, step, "waiting for the API key" if step == "blocked" else None)
    work.collect_events()
    return work


@pytest.mark.parametrize(
    ("start", "target"),
    [(s, t) for s, targets in ALLOWED_TRANSITIONS.items() for t in targets],
)
def test_every_allowed_transition(start: WorkStatus, target: WorkStatus) -> None:
    work = at(start)
    work.transition(CTX, target.value, "reason")
    assert work.status is target


@pytest.mark.parametrize(
    ("start", "target"),
    [(s, t) for s in WorkStatus for t in WorkStatus if t not in ALLOWED_TRANSITIONS[s]],
)
def test_every_refused_transition_lists_the_allowed_ones(
    start: WorkStatus, target: WorkStatus
) -> None:
    work = at(start)
    with pytest.raises(InvalidTransition) as refused:
        work.transition(CTX, target.value, "reason")
    assert refused.value.allowed == tuple(s.value for s in ALLOWED_TRANSITIONS[start])
    assert work.pending_events == []


def test_blocking_needs_a_reason() -> None:
    with pytest.raises(InvalidValue):
        item().transition(CTX, "blocked")
    work = item()
    work.transition(CTX, "blocked", "waiting for review capacity")
    assert work.blocked_reason == "waiting for review capacity"


def test_claims_take_increasing_fences_and_live_holders_keep_items() -> None:
    work = item()
    first, second = uuid4(), uuid4()
    assert work.claim(CTX, first, "alice", lease_expires_at=LEASE, holder_lease=None) == 1
    assert work.claim(CTX, first, "alice", lease_expires_at=LEASE, holder_lease=LEASE) == 1
    with pytest.raises(AlreadyClaimed):
        work.claim(CTX, second, "bob", lease_expires_at=LEASE, holder_lease=LEASE)
    # The first holder's lease lapsed: the claim passes on with the next fence.
    assert work.claim(CTX, second, "bob", lease_expires_at=LEASE, holder_lease=None) == 2
    work.check_fence(2)
    with pytest.raises(ClaimLost):
        work.check_fence(1)  # the zombie's old fence


def test_release_ends_the_claim_and_its_fence() -> None:
    work = item()
    fence = work.claim(CTX, uuid4(), "alice", lease_expires_at=LEASE, holder_lease=None)
    assert work.release(CTX, "session_ended") is True
    with pytest.raises(ClaimLost):
        work.check_fence(fence)
    assert work.release(CTX, "again") is False
    assert work.claim(CTX, uuid4(), "bob", lease_expires_at=LEASE, holder_lease=None) == fence + 1


def test_creation_validates_kind_and_title() -> None:
    with pytest.raises(InvalidValue):
        WorkItem.create(CTX, project="alpha", kind="Chore!", title="x")
    with pytest.raises(InvalidValue):
        WorkItem.create(CTX, project="alpha", kind="task", title="  ")


def test_a_claim_starts_open_work_and_a_release_hands_it_back() -> None:
    work = item()
    session = uuid4()
    work.claim(CTX, session, "alice", lease_expires_at=LEASE, holder_lease=None)
    assert work.status is WorkStatus.IN_PROGRESS
    assert work.release(CTX, "session expired", session_id=uuid4()) is False  # not the holder
    assert work.release(CTX, "session expired", session_id=session) is True
    assert (work.status, work.holder_session) == (WorkStatus.OPEN, None)


def test_kinds_are_extensible_and_metadata_is_checked_per_kind() -> None:
    task = WorkItem.create(
        CTX,
        project="alpha",
        kind="task",
        title="Route me",
        metadata={"from_role": "planner", "payload": {"file": "a.py"}, "labels": ["parser"]},
    )
    assert task.metadata == {
        "from_role": "planner",
        "payload": {"file": "a.py"},
        "labels": ["parser"],
    }
    with pytest.raises(InvalidValue, match="metadata for kind 'task'"):
        WorkItem.create(CTX, project="alpha", kind="task", title="x", metadata={"colour": "red"})
    with pytest.raises(InvalidValue, match="metadata for kind 'epic'"):
        WorkItem.create(
            CTX, project="alpha", kind="epic", title="x", metadata={"target_date": "soon"}
        )
    chore = WorkItem.create(CTX, project="alpha", kind="chore", title="x", metadata={"n": 1})
    assert chore.metadata == {"n": 1}
    with pytest.raises(InvalidValue):  # unknown kinds: a flat object only
        WorkItem.create(CTX, project="alpha", kind="chore", title="x", metadata={"n": {"deep": 1}})


def test_an_archived_item_takes_no_changes_until_unarchived() -> None:
    work = item()
    assert work.archive(CTX) is True
    with pytest.raises(ItemArchived):
        work.transition(CTX, "in_progress")
    with pytest.raises(ItemArchived):
        work.update(CTX, title="New title")
    assert work.unarchive(CTX) is True
    assert work.update(CTX, title="New title") is True
    assert work.update(CTX, title="New title") is False  # no change, no event
