"""WorkItem: the status lifecycle, and fenced claims bound to a live holder."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from domain.errors import InvalidTransition, InvalidValue
from domain.events import EventContext
from domain.work_items import ALLOWED_TRANSITIONS, AlreadyClaimed, ClaimLost, WorkItem, WorkStatus

CTX = EventContext("agent:a", "t", "test", "c", datetime(2026, 1, 1, tzinfo=UTC))


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
    assert work.claim(CTX, first, "alice", holder_alive=False) == 1
    assert work.claim(CTX, first, "alice", holder_alive=True) == 1  # same holder: no change
    with pytest.raises(AlreadyClaimed):
        work.claim(CTX, second, "bob", holder_alive=True)
    # The first holder's lease lapsed: the claim passes on with the next fence.
    assert work.claim(CTX, second, "bob", holder_alive=False) == 2
    work.check_fence(2)
    with pytest.raises(ClaimLost):
        work.check_fence(1)  # the zombie's old fence


def test_release_ends_the_claim_and_its_fence() -> None:
    work = item()
    fence = work.claim(CTX, uuid4(), "alice", holder_alive=False)
    assert work.release(CTX, "session_ended") is True
    with pytest.raises(ClaimLost):
        work.check_fence(fence)
    assert work.release(CTX, "again") is False
    assert work.claim(CTX, uuid4(), "bob", holder_alive=False) == fence + 1


def test_creation_validates_kind_and_title() -> None:
    with pytest.raises(InvalidValue):
        WorkItem.create(CTX, project="alpha", kind="chore", title="x")
    with pytest.raises(InvalidValue):
        WorkItem.create(CTX, project="alpha", kind="task", title="  ")
