"""The project plan under load: concurrent structure edits never both pass the cycle and depth
checks, depth is bounded at five levels below a root, and on a large random plan every item's
readiness agrees with the ready queue and with a computation made here from the aggregates."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext
from agentledger.application.errors import NotFound
from agentledger.application.preconditions import Precondition
from agentledger.application.work_items import NewWorkItem
from agentledger.domain.errors import DependencyCycle, DepthExceeded
from agentledger.domain.plans import MAX_DEPTH, ProjectPlan, plan_id
from agentledger.domain.readiness import Reason
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from tests.integration.work_items_support import Team
from tests.support.helpers import run_threads, wait_until
from tests.support.overlap import Conflicts, DecidedTogether

POLICY = "policy_session_end_releases_claims"


# --- helpers ----------------------------------------------------------------------------------


def plan_edges(rt: Runtime, project: str = "apollo") -> set[tuple[UUID, UUID]]:
    """The dependency edges the log holds for the project's plan (added and not removed)."""
    edges: set[tuple[UUID, UUID]] = set()
    for event in rt.ledger.events.get(plan_id(project)):
        if isinstance(event, ProjectPlan.DependencyAdded):
            assert (event.item_id, event.depends_on) not in edges  # never recorded twice
            edges.add((event.item_id, event.depends_on))
        elif isinstance(event, ProjectPlan.DependencyRemoved):
            edges.remove((event.item_id, event.depends_on))
    return edges


def events_since(rt: Runtime, position: int) -> list[Any]:
    return [rt.ledger.to_event(n) for n in rt.ledger.read_log(position, 10_000)]


def version_of(rt: Runtime, item_id: UUID) -> int:
    item = rt.ledger.repository.get(item_id)
    assert isinstance(item, WorkItem)
    return int(item.version)


def move(team: Team, item_id: UUID, parent: UUID | None) -> None:
    team.rt.work_items.update(
        team.boss,
        item_id,
        {"parent_id": parent},
        precondition=Precondition.at(version_of(team.rt, item_id)),
        fence=None,
    )


class Race:
    """Collect what each concurrent attempt did: 'ok' or the exception it raised."""

    def __init__(self) -> None:
        self.results: dict[str, object] = {}
        self._lock = threading.Lock()

    def attempt(self, name: str, action: Callable[[], object]) -> Callable[[], None]:
        def go() -> None:
            try:
                action()
                outcome: object = "ok"
            except (DependencyCycle, DepthExceeded) as refused:
                outcome = refused
            with self._lock:
                self.results[name] = outcome

        return go

    def accepted(self) -> list[str]:
        return sorted(k for k, v in self.results.items() if v == "ok")

    def refused(self) -> dict[str, Exception]:
        return {k: v for k, v in self.results.items() if isinstance(v, Exception)}


# --- 1. concurrent structure edits ------------------------------------------------------------
#
# Within one process, structure edits of a plan take turns (a lock named by the plan); across
# processes only the plan's version check stands between them. The races below run their even
# rounds within one runtime and their odd rounds across two runtimes on one store (as two
# servers would be), or split their threads over both runtimes, so both guards are exercised.


@pytest.fixture
def other_server(runtime: Runtime, settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """A second runtime on the runtime's store: a second server, without background work."""
    second = build_runtime(settings, clock)
    yield second
    second.close()


def servers_for(round_: int, runtime: Runtime, other: Runtime) -> tuple[Runtime, Runtime]:
    runtime.catch_up()  # the in-process turn-taking finds the items' plan in the read model
    return (runtime, runtime) if round_ % 2 == 0 else (runtime, other)


def conflicts(*runtimes: Runtime) -> int:
    return sum(rt.commands.conflicts for rt in runtimes)


@contextmanager
def raced(one: Runtime, two: Runtime, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Across two servers, the first structure edit through each decides before either saves:
    the two must collide, and one re-runs against the other's edit. (Within one server they
    take turns, so nothing may be held between deciding and saving there.)"""
    if one is two:
        yield
        return
    collided = Conflicts(one, two)
    with monkeypatch.context() as patch:
        together = DecidedTogether(2).install(patch)
        yield
    assert together.all_in_flight and collided.since() >= 1, "the two servers did not race"


def new_item(rt: Runtime, team: Team, title: str, parent: UUID | None = None) -> UUID:
    return rt.work_items.create(
        team.boss, NewWorkItem("apollo", "task", title, parent_id=parent)
    ).value.id


def test_two_opposite_dependencies_added_at_once_are_never_both_accepted(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    for round_ in range(30):
        a, b = team.item(f"a{round_}").id, team.item(f"b{round_}").id
        one, two = servers_for(round_, runtime, other_server)
        race = Race()
        with raced(one, two, monkeypatch):
            run_threads(
                [
                    race.attempt(
                        "a->b",
                        lambda a=a, b=b, rt=one: rt.work_items.add_dependency(
                            team.boss, a, b, fence=None
                        ),
                    ),
                    race.attempt(
                        "b->a",
                        lambda a=a, b=b, rt=two: rt.work_items.add_dependency(
                            team.boss, b, a, fence=None
                        ),
                    ),
                ]
            )
        assert len(race.results) == 2
        (won,) = race.accepted()  # exactly one of the two edges is accepted
        ((_, refusal),) = race.refused().items()
        assert isinstance(refusal, DependencyCycle)
        winner, loser = ((a, b), (b, a)) if won == "a->b" else ((b, a), (a, b))
        assert refusal.path == [loser[0], loser[1], loser[0]]  # the cycle the edge would close
        in_log = {e for e in plan_edges(runtime) if set(e) == {a, b}}
        assert in_log == {winner}
    assert conflicts(runtime, other_server) > 0  # the two servers did race, and re-ran


def test_three_dependencies_closing_a_triangle_at_once_are_never_all_accepted(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    for round_ in range(20):
        a, b, c = (team.item(f"{n}{round_}").id for n in "abc")
        edges = {"a->b": (a, b), "b->c": (b, c), "c->a": (c, a)}
        one, two = servers_for(round_, runtime, other_server)
        race = Race()
        with raced(one, two, monkeypatch):
            run_threads(
                [
                    race.attempt(
                        name,
                        lambda e=e, rt=rt: rt.work_items.add_dependency(
                            team.boss, e[0], e[1], fence=None
                        ),
                    )
                    for (name, e), rt in zip(edges.items(), (one, two, one), strict=True)
                ]
            )
        assert len(race.results) == 3
        accepted = race.accepted()
        assert len(accepted) == 2  # any two of the three are fine together, never the third
        ((lost, refusal),) = race.refused().items()
        assert isinstance(refusal, DependencyCycle)
        source, target = edges[lost]
        # The path runs from the refused edge's item over the accepted edges back to it.
        assert refusal.path[0] == refusal.path[-1] == source
        assert refusal.path[1] == target
        assert len(refusal.path) == 4 and set(refusal.path) == {a, b, c}
        for step in zip(refusal.path[1:], refusal.path[2:], strict=False):
            assert step in {edges[name] for name in accepted}
        in_log = {e for e in plan_edges(runtime) if set(e) <= {a, b, c}}
        assert in_log == {edges[name] for name in accepted}


def test_a_dependency_and_a_move_closing_a_cycle_at_once_are_never_both_accepted(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A waits for B (dependency) while B is moved under A (B waits for its parent A): each
    alone is fine, together they would close a cycle over a dependency and a parent edge."""
    team = Team(runtime)
    for round_ in range(16):
        a, b = team.item(f"a{round_}").id, team.item(f"b{round_}").id
        version = version_of(runtime, b)
        one, two = servers_for(round_, runtime, other_server)
        race = Race()
        with raced(one, two, monkeypatch):
            run_threads(
                [
                    race.attempt(
                        "depend",
                        lambda a=a, b=b, rt=one: rt.work_items.add_dependency(
                            team.boss, a, b, fence=None
                        ),
                    ),
                    race.attempt(
                        "move",
                        lambda a=a, b=b, v=version, rt=two: rt.work_items.update(
                            team.boss,
                            b,
                            {"parent_id": a},
                            precondition=Precondition.at(v),
                            fence=None,
                        ),
                    ),
                ]
            )
        (won,) = race.accepted()
        ((_, refusal),) = race.refused().items()
        assert isinstance(refusal, DependencyCycle)
        assert refusal.path[0] == refusal.path[-1]
        moved = runtime.ledger.repository.get(b).parent_id == a
        depends = (a, b) in plan_edges(runtime)
        assert (moved, depends) == ((True, False) if won == "move" else (False, True))
        placed = [
            e
            for e in runtime.ledger.events.get(plan_id("apollo"))
            if isinstance(e, ProjectPlan.ItemPlaced) and e.item_id == b
        ]
        assert [e.parent_id for e in placed] == ([None, a] if moved else [None])


# --- 2. depth ---------------------------------------------------------------------------------


def chain(team: Team, length: int, name: str = "level") -> list[UUID]:
    ids: list[UUID] = []
    for level in range(length):
        ids.append(team.item(f"{name} {level}", ids[-1] if ids else None).id)
    return ids


def test_a_root_holds_five_levels_below_it_and_no_sixth(runtime: Runtime) -> None:
    team = Team(runtime)
    levels = chain(team, MAX_DEPTH + 1)  # a root and five levels below it
    runtime.catch_up()
    depths = [runtime.work_items.get(i).value.item.depth for i in levels]
    assert depths == [0, 1, 2, 3, 4, 5]

    head = runtime.ledger.head_position()
    with pytest.raises(DepthExceeded) as refused:
        team.item("level 6", levels[-1])
    assert refused.value.depth == 6
    assert runtime.ledger.head_position() == head  # nothing written

    # Moving a subtree moves its height with it: two levels under a level-4 item is too deep.
    two = chain(team, 3, "subtree")  # a root with two levels below it
    one = chain(team, 2, "pair")  # a root with one level below it
    head = runtime.ledger.head_position()
    with pytest.raises(DepthExceeded) as refused:
        move(team, two[0], levels[4])
    assert refused.value.depth == 7
    with pytest.raises(DepthExceeded) as refused:
        move(team, one[0], levels[4])
    assert refused.value.depth == 6
    with pytest.raises(DepthExceeded) as refused:
        move(team, two[1], levels[4])  # a mid-subtree item with its child: 4 + 1 + 1 = 6
    assert refused.value.depth == 6
    assert runtime.ledger.head_position() == head

    # A parent under its own descendant (or itself) closes a cycle.
    with pytest.raises(DependencyCycle) as cycle:
        move(team, levels[1], levels[3])
    assert cycle.value.path == [levels[1], levels[3], levels[2], levels[1]]
    with pytest.raises(DependencyCycle) as cycle:
        move(team, levels[2], levels[2])
    assert cycle.value.path[0] == cycle.value.path[-1] == levels[2]
    assert runtime.ledger.head_position() == head

    # What fits is allowed, and the read model follows the whole subtree.
    move(team, one[0], levels[3])
    runtime.catch_up()
    assert [runtime.work_items.get(i).value.item.depth for i in one] == [4, 5]
    with pytest.raises(DepthExceeded):
        team.item("below the moved pair", one[1])
    move(team, two[1], levels[2])  # two[1] with its child: levels 3 and 4
    runtime.catch_up()
    assert [runtime.work_items.get(i).value.item.depth for i in two] == [0, 3, 4]


def test_concurrent_children_under_level_four_pass_and_under_level_five_are_refused(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    levels = chain(team, MAX_DEPTH)  # root .. level 4
    fifth = [team.item(f"level 5 #{n}", levels[4]).id for n in range(8)]
    runtime.catch_up()
    head = runtime.ledger.head_position()
    created: list[UUID] = []
    race = Race()

    def child(rt: Runtime, parent: UUID, title: str) -> Callable[[], object]:
        def go() -> object:
            item = new_item(rt, team, title, parent)
            created.append(item)
            return item

        return go

    servers = (runtime, other_server)
    with raced(runtime, other_server, monkeypatch):
        run_threads(
            [
                race.attempt(f"ok{n}", child(servers[n % 2], levels[4], f"new #{n}"))
                for n in range(8)
            ]
            + [
                race.attempt(f"deep{n}", child(servers[n % 2], fifth[n], f"deep #{n}"))
                for n in range(8)
            ]
        )
    assert race.accepted() == sorted(f"ok{n}" for n in range(8))
    refused = race.refused()
    assert sorted(refused) == sorted(f"deep{n}" for n in range(8))
    assert all(isinstance(r, DepthExceeded) and r.depth == 6 for r in refused.values())

    written = events_since(runtime, head)  # nothing partial: an item and its placing, 8 times
    assert Counter(type(e).__name__ for e in written) == {"WorkItemCreated": 8, "ItemPlaced": 8}
    assert {e.originator_id for e in written if isinstance(e, WorkItem.WorkItemCreated)} == set(
        created
    )
    assert {e.item_id for e in written if isinstance(e, ProjectPlan.ItemPlaced)} == set(created)
    assert all(e.parent_id == levels[4] for e in written)
    runtime.catch_up()
    assert {runtime.work_items.get(i).value.item.depth for i in created} == {5}


def test_a_move_and_a_new_child_that_together_exceed_the_depth_never_both_pass(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moving a root with one child under a level-3 item (levels 4 and 5) and adding a child
    below that child (level 2, before the move) are each fine; together they would make a
    sixth level."""
    team = Team(runtime)
    levels = chain(team, 4)  # root .. level 3
    for round_ in range(16):
        top = team.item(f"top {round_}").id
        leaf = team.item(f"leaf {round_}", top).id
        version = version_of(runtime, top)
        one, two = servers_for(round_, runtime, other_server)
        race = Race()
        with raced(one, two, monkeypatch):
            run_threads(
                [
                    race.attempt(
                        "move",
                        lambda top=top, v=version, rt=one: rt.work_items.update(
                            team.boss,
                            top,
                            {"parent_id": levels[3]},
                            precondition=Precondition.at(v),
                            fence=None,
                        ),
                    ),
                    race.attempt(
                        "child", lambda leaf=leaf, rt=two: new_item(rt, team, "below", leaf)
                    ),
                ]
            )
        (won,) = race.accepted()
        ((_, refusal),) = race.refused().items()
        assert isinstance(refusal, DepthExceeded) and refusal.depth == 6
        plan = runtime.ledger.repository.get(plan_id("apollo"))
        assert max(plan.depth(UUID(i)) for i in plan.parents) <= MAX_DEPTH
        assert (plan.parents[str(top)] == str(levels[3])) == (won == "move")
    runtime.catch_up()
    plan = runtime.ledger.repository.get(plan_id("apollo"))
    tree = runtime.work_items.tree("apollo").value
    assert len(tree) == len(plan.parents)
    assert all(v.depth == plan.depth(v.id) <= MAX_DEPTH for v in tree)  # the read model agrees


# --- 3. a large random plan: readiness, the ready queue and the aggregates agree -----------------

LEVEL_SIZES = (12, 36, 96, 216, 360, 480)  # 1,200 items: roots (level 0) and five levels below


@dataclass
class Plan:
    """What the test itself knows of the plan it built, kept beside the service."""

    rng: random.Random
    order: list[UUID] = field(default_factory=list)  # creation order
    level: dict[UUID, int] = field(default_factory=dict)
    parent: dict[UUID, UUID | None] = field(default_factory=dict)
    priority: dict[UUID, int] = field(default_factory=dict)
    deps: dict[UUID, set[UUID]] = field(default_factory=dict)
    cycles_refused: int = 0
    duplicates: int = 0

    def edges(self, node: UUID) -> list[UUID]:
        parent = self.parent[node]
        return [*([parent] if parent else []), *self.deps.get(node, ())]

    def reaches(self, start: UUID, goal: UUID) -> bool:
        seen, stack = {start}, [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            for nxt in self.edges(node):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    def ancestors(self, node: UUID) -> list[UUID]:
        found = []
        while (up := self.parent[node]) is not None:
            found.append(up)
            node = up
        return found


def build_plan(team: Team, rng: random.Random) -> Plan:
    """1,200 items in a random parents-first order, with dependencies added along the way: most
    point to an older item, some to a random one, some from an item to one of its descendants
    (a cycle over parent edges)."""
    rt, boss = team.rt, team.boss
    plan = Plan(rng)
    shape: list[tuple[int, int]] = []  # (level, parent's index in shape)
    for level, size in enumerate(LEVEL_SIZES):
        above = [i for i, (lv, _) in enumerate(shape) if lv == level - 1]
        start = len(shape)
        for n in range(size):
            # every item above gets at least one child, so all five levels are reached
            parent = above[n] if n < len(above) else rng.choice(above) if above else -1
            shape.append((level, parent))
        assert len(shape) - start == size
    created: dict[int, UUID] = {}
    available = [i for i, (lv, _) in enumerate(shape) if lv == 0]
    children: dict[int, list[int]] = {}
    for i, (_, p) in enumerate(shape):
        children.setdefault(p, []).append(i)
    while available:
        index = available.pop(rng.randrange(len(available)))
        level, p = shape[index]
        parent = created[p] if p >= 0 else None
        priority = rng.randint(-3, 3)
        item = team.item(f"item {index}", parent, priority=priority).id
        created[index] = item
        plan.order.append(item)
        plan.level[item] = level
        plan.parent[item] = parent
        plan.priority[item] = priority
        available.extend(children.get(index, []))
        if len(plan.order) > 2 and rng.random() < 0.15:
            add_dependency(rt, boss, plan)
        if plan.deps and rng.random() < 0.01:
            remove_dependency(rt, boss, plan)
    return plan


def add_dependency(rt: Runtime, boss: RequestContext, plan: Plan) -> None:
    rng = plan.rng
    roll = rng.random()
    source = rng.choice(plan.order[1:])
    if roll < 0.7:  # an older item
        target = rng.choice(plan.order[: plan.order.index(source)])
    elif roll < 0.85 and (ancestors := plan.ancestors(source)):  # a descendant waited for
        target, source = source, rng.choice(ancestors)
    else:
        target = rng.choice(plan.order)
    known = target in plan.deps.get(source, set())
    closes = source == target or plan.reaches(target, source)
    try:
        outcome = rt.work_items.add_dependency(boss, source, target, fence=None)
    except DependencyCycle as cycle:
        assert closes, f"{source} -> {target} refused as a cycle, but none would close"
        assert cycle.path[0] == cycle.path[-1] == source and cycle.path[1] == target
        for here, there in zip(cycle.path[1:], cycle.path[2:], strict=False):
            assert there in plan.edges(here)  # each step is a parent or a dependency edge
        plan.cycles_refused += 1
        return
    assert not closes, f"{source} -> {target} closes a cycle but was accepted"
    assert outcome.value.changed is not known
    plan.duplicates += known
    plan.deps.setdefault(source, set()).add(target)
    assert set(outcome.value.depends_on) == plan.deps[source]


def remove_dependency(rt: Runtime, boss: RequestContext, plan: Plan) -> None:
    source = plan.rng.choice(sorted(plan.deps, key=plan.order.index))
    target = plan.rng.choice(sorted(plan.deps[source], key=plan.order.index))
    outcome = rt.work_items.remove_dependency(boss, source, target, fence=None)
    assert outcome.value.changed
    plan.deps[source].discard(target)
    if not plan.deps[source]:
        del plan.deps[source]
    with pytest.raises(NotFound):
        rt.work_items.remove_dependency(boss, source, target, fence=None)


def drive_statuses(team: Team, plan: Plan) -> None:
    rt, boss, rng = team.rt, team.boss, plan.rng

    def to(item: UUID, *steps: str) -> None:
        for step in steps:
            reason = "waits for the vendor" if step == "blocked" else None
            rt.work_items.transition(boss, item, step, reason, fence=None)

    for item in plan.order:
        roll = rng.random()
        if roll < 0.30:
            to(item, "in_progress", "in_review", "done")
        elif roll < 0.40:
            to(item, "blocked")
        elif roll < 0.52:
            to(item, "cancelled")
        elif roll < 0.58:
            to(item, "in_progress")
        elif roll < 0.62:
            to(item, "in_progress", "in_review")
        elif roll < 0.64:
            to(item, "blocked", "open")  # blocked once, open again


def claim_some(
    team: Team, plan: Plan, agent: str, session: UUID, count: int, taken: set[UUID]
) -> None:
    """Claim `count` unfinished items; the holder puts a third back to open while keeping the
    claim, and gives a sixth back."""
    rt, rng = team.rt, plan.rng
    ctx = team.agent(agent)
    candidates = [
        i
        for i in plan.order
        if rng.random() < 0.1 and i not in taken and not rt.ledger.repository.get(i).is_final
    ]
    for item in candidates[:count]:
        taken.add(item)
        claim = rt.work_items.claim(ctx, item, session).value.claim
        assert claim is not None and claim.agent_id == agent
        roll = rng.random()
        status = rt.ledger.repository.get(item).state
        if roll < 0.33 and status == "in_progress":
            rt.work_items.transition(ctx, item, "open", None, fence=claim.fence)
        elif roll < 0.5:
            rt.work_items.release(ctx, item, fence=claim.fence)


@dataclass(frozen=True)
class Expected:
    reasons: frozenset[Reason]
    ready: bool


def expected_readiness(rt: Runtime, plan: Plan, now: datetime) -> dict[UUID, Expected]:
    """Readiness computed here, from the aggregates in the log: the item's status, archived
    flag, holder and its session's lease, and the plan's dependencies with their statuses."""
    items: dict[UUID, WorkItem] = {i: rt.ledger.repository.get(i) for i in plan.order}
    stored_plan = rt.ledger.repository.get(plan_id("apollo"))
    assert isinstance(stored_plan, ProjectPlan)
    dependencies = {UUID(k): {UUID(d) for d in v} for k, v in stored_plan.dependencies.items() if v}
    assert dependencies == plan.deps  # the plan in the log is the one the test built
    assert plan_edges(rt) == {(s, t) for s, ts in plan.deps.items() for t in ts}
    sessions: dict[UUID, AgentSession] = {}
    expected: dict[UUID, Expected] = {}
    for item_id, item in items.items():
        reasons: set[Reason] = set()
        if item.state != "open":
            reasons.add(Reason("status", status=item.state))
        if item.archived:
            reasons.add(Reason("archived"))
        if item.holder_session is not None:
            if item.holder_session not in sessions:
                sessions[item.holder_session] = rt.ledger.repository.get(item.holder_session)
            holder = sessions[item.holder_session]
            if holder.state == "active" and now < holder.lease_expires_at:
                assert holder.agent_id == item.holder_agent
                reasons.add(Reason("claimed_by", agent_id=item.holder_agent))
        for dep in dependencies.get(item_id, ()):
            if items[dep].state != "done":
                reasons.add(Reason("blocked_by", status=items[dep].state, item_id=dep))
        expected[item_id] = Expected(frozenset(reasons), not reasons)
    return expected


def check_readiness(rt: Runtime, plan: Plan, now: datetime) -> dict[UUID, Expected]:
    rt.catch_up()
    expected = expected_readiness(rt, plan, now)
    created = {item: n for n, item in enumerate(plan.order)}
    ready_ids = [i for i in plan.order if expected[i].ready]
    assert 0 < len(ready_ids) < 500, "the queue must fit one page for this check to be whole"
    queue = [v.id for v in rt.work_items.ready(project="apollo", limit=500).value]
    # best first: higher priority, then older
    assert queue == sorted(ready_ids, key=lambda i: (-plan.priority[i], created[i]))
    in_queue = set(queue)
    for item in plan.order:
        verdict = rt.work_items.readiness(item).value.readiness
        assert verdict.ready == (item in in_queue), item
        assert len(set(verdict.reasons)) == len(verdict.reasons), verdict.reasons
        assert (verdict.ready, frozenset(verdict.reasons)) == (
            expected[item].ready,
            expected[item].reasons,
        ), item
    return expected


SEEDS = {"postgres": 20260101, "sqlite": 20260102}  # a different plan on each backend


def test_readiness_agrees_with_the_queue_and_the_aggregates_on_a_large_random_plan(
    runtime: Runtime, clock: ManualClock, backend: str
) -> None:
    team = Team(runtime)
    rng = random.Random(SEEDS[backend])
    plan = build_plan(team, rng)
    assert len(plan.order) == 1200
    assert Counter(plan.level.values()) == dict(enumerate(LEVEL_SIZES))
    assert plan.cycles_refused > 0  # the cycle check was exercised, and agreed with ours

    drive_statuses(team, plan)
    # Sessions: amy lives long; bob's lease is short but renewed; cat's and zed's lapse.
    sessions = {
        "amy": team.session("amy", ttl_seconds=600),
        "bob": team.session("bob", ttl_seconds=120),
        "cat": team.session("cat", ttl_seconds=120),
        "zed": team.session("zed", ttl_seconds=60),
    }
    runtime.runners.policies[POLICY].stop()  # lapsed holders keep their claims until phase 2
    taken: set[UUID] = set()
    for name, session in sessions.items():
        claim_some(team, plan, name, session, 30, taken)
    waited_for = sorted({t for ts in plan.deps.values() for t in ts}, key=plan.order.index)
    for item in rng.sample(plan.order, 30) + rng.sample(waited_for, 10):
        runtime.work_items.archive(team.boss, item, fence=None)  # a no-op if archived already
    for item in rng.sample(plan.order, 60):
        runtime.work_items.unarchive(team.boss, item, fence=None)  # a no-op unless archived

    clock.advance(61)  # zed's lease lapses
    renewed = runtime.sessions.heartbeat(team.agent("bob"), sessions["bob"]).value
    assert renewed.renewed  # bob's lease now ends 181 s after the start
    clock.advance(61)  # cat's lease lapses (120 s), bob's (renewed) does not
    # amy takes over a few of zed's items: a lapsed holder's claim goes to a live session
    repository = runtime.ledger.repository
    zeds = [i for i in plan.order if repository.get(i).holder_session == sessions["zed"]]
    for item in [i for i in zeds if not repository.get(i).is_final][:3]:
        claim = runtime.work_items.claim(team.agent("amy"), item, sessions["amy"]).value.claim
        assert claim is not None and (claim.agent_id, claim.fence, claim.live) == ("amy", 2, True)

    expected = check_readiness(runtime, plan, clock.now())
    archived_waited_for = {
        r.item_id
        for e in expected.values()
        for r in e.reasons
        if r.code == "blocked_by" and repository.get(r.item_id).archived
    }
    assert archived_waited_for  # an archived dependency that is not done still holds items up
    reasons = Counter(r.code for e in expected.values() for r in e.reasons)
    assert all(reasons[code] > 10 for code in ("status", "archived", "blocked_by", "claimed_by"))
    holders = {r.agent_id for e in expected.values() for r in e.reasons if r.code == "claimed_by"}
    assert holders == {"amy", "bob"}  # the lapsed holders hold nothing live
    items = {i: runtime.ledger.repository.get(i) for i in plan.order}
    lapsed_open = [
        i
        for i, it in items.items()
        if it.holder_agent in ("cat", "zed") and it.state == "open" and expected[i].ready
    ]
    assert lapsed_open  # an open item whose holder lapsed is ready, though still "claimed"

    # The tree: unarchived items, parents before children, siblings by age, at the depth the
    # test placed them (an item under an archived parent is listed with the roots).
    tree = runtime.work_items.tree("apollo").value
    assert {v.id for v in tree} == {i for i, it in items.items() if not it.archived}
    siblings: dict[UUID | None, list[UUID]] = {}
    seen: set[UUID] = set()
    for view in tree:
        assert view.depth == plan.level[view.id]
        assert view.parent_id == plan.parent[view.id]
        parent = view.parent_id if view.parent_id and not items[view.parent_id].archived else None
        assert parent is None or parent in seen
        siblings.setdefault(parent, []).append(view.id)
        seen.add(view.id)
    created = {item: n for n, item in enumerate(plan.order)}
    assert all(ids == sorted(ids, key=created.__getitem__) for ids in siblings.values())

    # Phase 2: the lapsed sessions are swept and the policy releases their claims.
    lapsed = {sessions["cat"], sessions["zed"]}
    held = [i for i, it in items.items() if it.holder_session in lapsed]
    assert held
    runtime.runners.policies[POLICY].start()
    runtime.sessions.sweep()
    wait_until(
        lambda: not any(runtime.ledger.repository.get(i).holder_session in lapsed for i in held),
        timeout=60,
    )
    check_readiness(runtime, plan, clock.now())

    # claim-next takes the head of the queue.
    head = runtime.work_items.ready(project="apollo", limit=1).value[0].id
    taken_next = runtime.work_items.claim_next(team.agent("amy"), sessions["amy"], project="apollo")
    assert taken_next is not None and taken_next.value.id == head
