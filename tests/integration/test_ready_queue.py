"""The ready queue is decided by the read model's SQL, and that SQL is the domain's rule: on a
varied generated plan (three projects, one archived; kinds, roles, tied priorities; live,
lapsed-at-this-instant, completed and failed holders; archived items and dependencies) every
page of the queue, under every filter, is what `domain.readiness` says of the aggregates. And a
page reads only itself, however many items wait behind it."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.readmodels import Cursors, WorkItemRow
from agentledger.application.work_items import NewWorkItem, WorkItemClaims, WorkItemQueries
from agentledger.application.work_items.claiming import FIRST_READY_PAGE
from agentledger.domain.claims import live_lease, routed_to
from agentledger.domain.plans import ProjectPlan, plan_id
from agentledger.domain.projects import Project, project_id
from agentledger.domain.readiness import readiness
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime
from tests.integration.work_items_support import Team

POLICY = "policy_session_end_releases_claims"
PROJECTS = ("apollo", "gemini", "mercury")  # mercury is archived at the end
KINDS = ("task", "research", "chore")
ROLES = (None, "reviewer", "builder")
# The roles the holders' sessions act in: each claims what is routed to it or to no role.
HOLDER_ROLES = {"amy": "reviewer", "bob": "builder", "cat": None, "dan": "builder"}
SEEDS = {"postgres": 20260201, "sqlite": 20260202}  # a different plan on each backend


@dataclass
class Built:
    """What the test knows of the plan it built: items in creation order, and their fields."""

    order: list[UUID] = field(default_factory=list)
    fields: dict[UUID, dict[str, Any]] = field(default_factory=dict)
    depth: dict[UUID, int] = field(default_factory=dict)


def build(team: Team, rng: random.Random, count: int = 180) -> Built:
    rt, boss = team.rt, team.boss
    for project in PROJECTS[1:]:
        rt.projects.create(boss, project)
    built = Built()
    for n in range(count):
        project = rng.choice(PROJECTS)
        mine = [i for i in built.order if built.fields[i]["project"] == project]
        parents = [i for i in mine if built.depth[i] < 3]
        parent = rng.choice(parents) if parents and rng.random() < 0.3 else None
        fields = {
            "project": project,
            "kind": rng.choice(KINDS),
            "to_role": rng.choice(ROLES),
            "priority": rng.randint(-2, 2),  # few values: many ties, ordered by age
        }
        new = NewWorkItem(title=f"item {n}", parent_id=parent, **fields)
        item = rt.work_items.create(boss, new).value.id
        built.order.append(item)
        built.fields[item] = fields
        built.depth[item] = 0 if parent is None else built.depth[parent] + 1
        if mine and rng.random() < 0.4:  # older items only: never a cycle
            for other in rng.sample(mine, min(len(mine), rng.randint(1, 3))):
                rt.work_items.add_dependency(boss, item, other, fence=None)
    return built


def drive(team: Team, built: Built, rng: random.Random) -> None:
    rt, boss = team.rt, team.boss
    for item in built.order:
        roll = rng.random()
        steps: tuple[str, ...] = ()
        if roll < 0.35:
            steps = ("in_progress", "in_review", "done")
        elif roll < 0.45:
            steps = ("blocked",)
        elif roll < 0.5:
            steps = ("cancelled",)
        elif roll < 0.55:
            steps = ("in_progress",)
        elif roll < 0.58:
            steps = ("blocked", "open")
        for step in steps:
            reason = "waits for the vendor" if step == "blocked" else None
            rt.work_items.transition(boss, item, step, reason, fence=None)
    for item in rng.sample(built.order, len(built.order) // 8):
        rt.work_items.archive(boss, item, fence=None)  # done ones too: done still counts


def rewire(team: Team, built: Built, rng: random.Random) -> int:
    """After the statuses moved: some items drop a dependency, others start waiting for an
    older item that may be done already (the count of dependencies not done must follow
    both). Returns how many edits were made."""
    rt, boss, edits = team.rt, team.boss, 0
    repository = rt.ledger.repository
    for item in rng.sample(built.order, len(built.order) // 4):
        state = repository.get(item)
        if state.archived:
            continue
        waits_for = repository.get(plan_id(state.project)).dependencies.get(str(item), [])
        if waits_for and rng.random() < 0.5:
            rt.work_items.remove_dependency(boss, item, UUID(rng.choice(waits_for)), fence=None)
            edits += 1
            continue
        older = [
            i
            for i in built.order[: built.order.index(item)]
            if built.fields[i]["project"] == state.project
            and not repository.get(i).archived
            and str(i) not in waits_for
        ]
        if older:
            rt.work_items.add_dependency(boss, item, rng.choice(older), fence=None)
            edits += 1
    return edits


def claim_some(team: Team, built: Built, rng: random.Random, sessions: dict[str, UUID]) -> None:
    """Each holder claims unfinished items; it puts the first it started, and a third of the
    rest, back to open keeping the claim (open but held: not ready while the holder lives),
    and gives a sixth back."""
    rt = team.rt
    free = [i for i in built.order if not rt.ledger.repository.get(i).is_final]
    rng.shuffle(free)
    for name, session in sessions.items():
        ctx = team.agent(name)
        reopened = False
        # What its session's role may take (`domain.claims.routed_to`), open ones first, so
        # each holder has one to start (and put back to open).
        takeable = [i for i in free if _takeable(rt.ledger.repository.get(i), HOLDER_ROLES[name])]
        takeable.sort(key=lambda i: rt.ledger.repository.get(i).state != "open")
        for item in takeable[:8]:
            free.remove(item)
            claim = rt.work_items.claim(ctx, item, session).value.claim
            assert claim is not None
            started = rt.ledger.repository.get(item).state == "in_progress"
            roll = rng.random()
            if started and (not reopened or roll < 0.34):
                rt.work_items.transition(ctx, item, "open", None, fence=claim.fence)
                reopened = True
            elif roll < 0.5:
                rt.work_items.release(ctx, item, fence=claim.fence)
        assert reopened, name


def the_rule(rt: Runtime, built: Built, now: Any) -> dict[UUID, bool]:
    """`domain.readiness` of every item, over facts read from the aggregates in the log."""
    repository = rt.ledger.repository
    items: dict[UUID, WorkItem] = {i: repository.get(i) for i in built.order}
    plans: dict[str, ProjectPlan] = {p: repository.get(plan_id(p)) for p in PROJECTS}
    projects: dict[str, Project] = {p: repository.get(project_id(p)) for p in PROJECTS}
    verdicts = {}
    for item_id, item in items.items():
        holder = repository.get(item.holder_session) if item.holder_session else None
        assert holder is None or isinstance(holder, AgentSession)
        waits_for = plans[item.project].dependencies.get(str(item_id), [])
        verdicts[item_id] = readiness(
            status=item.state,
            archived=item.archived,
            claimed_by=item.holder_agent if live_lease(item, holder, now) else None,
            dependencies={UUID(d): items[UUID(d)].state for d in waits_for},
            project_archived=projects[item.project].archived,
        ).ready
    return verdicts


def waiting_on(rt: Runtime, item_id: UUID) -> int:
    """How many of the item's dependencies are not done, from the aggregates."""
    repository = rt.ledger.repository
    item = repository.get(item_id)
    waits_for = repository.get(plan_id(item.project)).dependencies.get(str(item_id), [])
    return sum(repository.get(UUID(d)).state != "done" for d in waits_for)


def walk(page: Callable[[tuple[int, int] | None], list[WorkItemRow]]) -> Iterator[WorkItemRow]:
    after = None
    while rows := page(after):
        yield from rows
        after = rows[-1].ready_key


def test_the_sql_ready_queue_is_the_domain_rule_on_a_varied_plan(
    runtime: Runtime, clock: ManualClock, backend: str
) -> None:
    rng = random.Random(SEEDS[backend])
    team = Team(runtime)
    built = build(team, rng)
    drive(team, built, rng)
    assert rewire(team, built, rng) > 20
    runtime.runners.policies[POLICY].stop()  # ended holders keep their claims in the log
    sessions = {
        "amy": team.session("amy", ttl_seconds=600, role=HOLDER_ROLES["amy"]),  # lives
        "bob": team.session("bob", ttl_seconds=120, role=HOLDER_ROLES["bob"]),  # lapses then
        "cat": team.session("cat", ttl_seconds=600, role=HOLDER_ROLES["cat"]),  # completes
        "dan": team.session("dan", ttl_seconds=600, role=HOLDER_ROLES["dan"]),  # fails
    }
    claim_some(team, built, rng, sessions)
    runtime.sessions.complete(team.agent("cat"), sessions["cat"], None)
    runtime.sessions.fail(team.agent("dan"), sessions["dan"], "crashed")
    runtime.projects.archive(team.boss, "mercury")
    bobs_lease = runtime.sessions.get(sessions["bob"]).value.lease_expires_at
    clock.set(bobs_lease)  # now == the lease end: lapsed, for the rule and for the SQL
    runtime.catch_up()
    now = clock.now()

    ready = the_rule(runtime, built, now)
    created = {item: n for n, item in enumerate(built.order)}
    repository = runtime.ledger.repository
    held_open = {
        repository.get(i).holder_agent
        for i in built.order
        if repository.get(i).holder_agent and repository.get(i).state == "open"
    }
    assert held_open == {"amy", "bob", "cat", "dan"}  # open but held: live, lapsed, ended
    assert 10 < sum(ready.values()) < len(built.order) - 50  # some ready, most not

    view = runtime.read_models["work_items_v4"]
    filters: list[dict[str, Any]] = [{}]
    filters += [{"project": p} for p in PROJECTS]
    filters += [{"kind": k} for k in KINDS]
    filters += [{"to_role": r} for r in ROLES if r]
    filters += [{"project": "apollo", "kind": "task"}, {"project": "gemini", "to_role": "builder"}]
    for where in filters:
        expected = sorted(
            (i for i in built.order if ready[i] and _matches(built.fields[i], where)),
            key=lambda i: (-built.fields[i]["priority"], created[i]),
        )
        query = {"project": None, "kind": None, "to_role": None, **where}
        whole = view.ready(**query, now=now, limit=500)
        assert [r.id for r in whole] == expected, where
        pages = walk(lambda after, q=query: view.ready(**q, now=now, limit=4, after=after))
        assert [r.id for r in pages] == expected, where  # keyset pages, ties included
    for row in view.get_many(built.order):  # the count the query relies on, item by item
        assert row.waiting_on == waiting_on(runtime, row.id), row.id
    for roles in ((), ("builder",), tuple(r for r in ROLES if r)):  # as sessions see it
        expected = sorted(
            (i for i in built.order if ready[i] and _routed(built.fields[i]["to_role"], roles)),
            key=lambda i: (-built.fields[i]["priority"], created[i]),
        )
        routed = view.ready(project=None, kind=None, to_role=None, roles=roles, now=now, limit=500)
        assert [r.id for r in routed] == expected, roles
    queue = runtime.work_items.ready(project="apollo", limit=500).value
    assert [v.id for v in queue] == [
        r.id for r in view.ready(project="apollo", kind=None, to_role=None, now=now, limit=500)
    ]


def _routed(to_role: str | None, roles: tuple[str, ...]) -> bool:
    """The domain's rule for a reader acting in any of `roles` (or in none)."""
    return any(routed_to(to_role, role) for role in (None, *roles))


def _takeable(item: WorkItem, role: str | None) -> bool:
    return not item.archived and routed_to(item.to_role, role)


def _matches(fields: dict[str, Any], where: dict[str, Any]) -> bool:
    return all(fields[k] == v for k, v in where.items())


# --- a page reads only itself -----------------------------------------------------------------


class CountingReader:
    """The read model, counting the rows each query hands the service."""

    def __init__(self, view: Any) -> None:
        self._view = view
        self.reads: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._view, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if isinstance(result, list | dict):
                self.reads.append((name, len(result)))
            return result

        return counted

    def rows(self) -> int:
        return sum(n for _, n in self.reads)


def waiting_backlog(team: Team, waiting: int) -> list[UUID]:
    """`waiting` items ahead of the ready ones in the queue's order (higher priority), each
    waiting for a blocked item; then three ready items. Returns the ready ones, best first."""
    blocker = team.item("blocker").id
    team.rt.work_items.transition(team.boss, blocker, "blocked", "the vendor", fence=None)
    for n in range(waiting):
        item = team.item(f"waits {n}", priority=9).id
        team.rt.work_items.add_dependency(team.boss, item, blocker, fence=None)
    ready = [team.item(f"ready {n}", priority=5 - n).id for n in range(3)]
    team.rt.catch_up()
    return ready


@pytest.mark.parametrize("waiting", [0, 40])
def test_a_ready_page_and_claim_next_read_no_waiting_item(runtime: Runtime, waiting: int) -> None:
    team = Team(runtime)
    ready = waiting_backlog(team, waiting)
    reader = CountingReader(runtime.read_models["work_items_v4"])

    queries = WorkItemQueries(reader, runtime.clock, runtime.consistency, Cursors(b"k" * 16))
    assert [v.id for v in queries.ready(limit=1).value] == ready[:1]
    assert [n for name, n in reader.reads if name != "position"] == [1]  # one query, one row

    reader.reads.clear()
    claims = WorkItemClaims(runtime.commands, reader, runtime.clock)
    alice, session = team.agent("alice"), team.session("alice")
    taken = claims.claim_next(alice, session)
    assert taken is not None and taken.value.id == ready[0]
    assert reader.reads == [("ready", 3)]  # the first page held only ready items
    assert reader.rows() == 3 <= FIRST_READY_PAGE


def test_claim_next_leaves_out_of_the_query_what_this_process_claimed_since(
    runtime: Runtime,
) -> None:
    """Under load the projection trails the claims: items claimed here since its position are
    left out of the ready query itself, so each claim-next still reads one page, not a first
    page of items already taken and then another."""
    team = Team(runtime)
    ready = [team.item(f"ready {n}", priority=1).id for n in range(FIRST_READY_PAGE + 3)]
    team.rt.catch_up()
    runtime.runners.stop()  # the read model stays where it was: every item still ready there
    reader = CountingReader(runtime.read_models["work_items_v4"])
    claims = WorkItemClaims(runtime.commands, reader, runtime.clock)
    taken = []
    for n in range(FIRST_READY_PAGE + 2):
        reader.reads.clear()
        outcome = claims.claim_next(team.agent(f"a{n}"), team.session(f"a{n}"))
        assert outcome is not None
        taken.append(outcome.value.id)
        assert [name for name, _ in reader.reads if name == "ready"] == ["ready"]
    assert taken == ready[: FIRST_READY_PAGE + 2]  # best first, each once
