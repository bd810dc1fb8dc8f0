"""ProjectPlan: cycles over parent and dependency edges, and depth, are refused."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from uuid import UUID, uuid4

import pytest

from agentledger.domain.errors import DependencyCycle, DepthExceeded
from agentledger.domain.events import EventContext
from agentledger.domain.plans import MAX_DEPTH, ProjectPlan

CTX = EventContext("agent:a", "t", "test", "c", datetime(2026, 1, 1, tzinfo=UTC))


def plan_with(*parents: tuple[UUID, UUID | None]) -> ProjectPlan:
    plan = ProjectPlan.start(CTX, "alpha")
    for item, parent in parents:
        plan.place(CTX, item, parent)
    return plan


def test_a_dependency_both_ways_is_a_cycle_with_its_path() -> None:
    a, b = uuid4(), uuid4()
    plan = plan_with((a, None), (b, None))
    assert plan.add_dependency(CTX, a, b) is True
    with pytest.raises(DependencyCycle) as cycle:
        plan.add_dependency(CTX, b, a)
    assert cycle.value.path == [b, a, b]


def test_a_parent_waiting_for_its_own_child_is_a_cycle() -> None:
    parent, child = uuid4(), uuid4()
    plan = plan_with((parent, None), (child, parent))
    plan.add_dependency(CTX, child, parent)  # a child may wait for its parent
    with pytest.raises(DependencyCycle):
        plan.add_dependency(CTX, parent, child)


def test_longer_cycles_across_both_kinds_of_edge() -> None:
    a, b, c, d = (uuid4() for _ in range(4))
    plan = plan_with((a, None), (b, a), (c, None), (d, None))
    plan.add_dependency(CTX, a, c)  # b -> a (parent) -> c
    plan.add_dependency(CTX, c, d)  # c -> d
    with pytest.raises(DependencyCycle) as cycle:
        plan.add_dependency(CTX, d, b)  # d -> b would close b -> a -> c -> d -> b
    assert cycle.value.path[0] == d and cycle.value.path[-1] == d


def test_five_levels_below_a_root_and_no_sixth() -> None:
    chain = [uuid4() for _ in range(MAX_DEPTH + 2)]
    plan = plan_with((chain[0], None))
    for parent, item in itertools.pairwise(chain[: MAX_DEPTH + 1]):
        plan.place(CTX, item, parent)
    assert plan.depth(chain[MAX_DEPTH]) == MAX_DEPTH
    with pytest.raises(DepthExceeded):
        plan.place(CTX, chain[MAX_DEPTH + 1], chain[MAX_DEPTH])


def test_moving_a_subtree_counts_its_height() -> None:
    roots = [uuid4() for _ in range(5)]
    subtree = [uuid4(), uuid4()]
    plan = plan_with(
        (roots[0], None),
        *((r, p) for p, r in itertools.pairwise(roots)),
        (subtree[0], None),
        (subtree[1], subtree[0]),
    )
    # roots[4] sits at depth 4; the two-level subtree under it would reach depth 6.
    with pytest.raises(DepthExceeded):
        plan.place(CTX, subtree[0], roots[4])
    plan.place(CTX, subtree[0], roots[3])  # depth 4 and 5: allowed


def test_refused_edits_write_nothing() -> None:
    a, b = uuid4(), uuid4()
    plan = plan_with((a, None), (b, None))
    plan.add_dependency(CTX, a, b)
    plan.collect_events()
    with pytest.raises(DependencyCycle):
        plan.add_dependency(CTX, b, a)
    assert plan.pending_events == []
    assert plan.add_dependency(CTX, a, b) is False  # already there: no event
    assert plan.pending_events == []
