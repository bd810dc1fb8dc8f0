"""Claims bound to session leases: one winner per item under races, fences that stop zombies,
and claims released exactly once when their session ends."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any
from uuid import UUID

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.commands import Decision, UnitOfWork
from agentledger.application.context import RequestContext
from agentledger.application.policies import Policy
from agentledger.domain.errors import AlreadyClaimed, ClaimLost
from agentledger.domain.events import EventContext
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime
from tests.integration.work_items_support import Team
from tests.support.helpers import run_threads, wait_until
from tests.support.overlap import Conflicts, DecidedTogether

POLICY = "policy_session_end_releases_claims"


def test_sixteen_sessions_drain_a_hundred_ready_items_each_claimed_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    items = {team.item(f"task {n}", priority=n % 7).id for n in range(100)}
    sessions = [(team.agent(f"a{n}"), team.session(f"a{n}")) for n in range(16)]
    runtime.catch_up()
    # Claim-next within a server hands each claimant another item (no collisions to count):
    # the sixteen first claims are held until all have decided, so all are in flight at once.
    together = DecidedTogether(16).install(monkeypatch)
    won: dict[int, list[UUID]] = {n: [] for n in range(16)}

    def drain(n: int) -> None:
        ctx, session = sessions[n]
        while (
            outcome := runtime.work_items.claim_next(ctx, session, project="apollo")
        ) is not None:
            won[n].append(outcome.value.id)

    run_threads([lambda n=n: drain(n) for n in range(16)], timeout=300)
    claimed = [item for ids in won.values() for item in ids]
    assert len(claimed) == 100
    assert set(claimed) == items  # every item, none twice
    assert all(len(team.claims(item)) == 1 for item in items)  # the log agrees: one claim each
    runtime.catch_up()
    assert runtime.work_items.ready(project="apollo").value == []
    assert together.all_in_flight


def test_sixteen_sessions_claiming_one_item_make_one_winner(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    item = team.item("the one").id
    sessions = [(team.agent(f"a{n}"), team.session(f"a{n}")) for n in range(16)]
    together = DecidedTogether(16).install(monkeypatch)
    conflicts = Conflicts(runtime)
    results: list[str] = []
    lock = threading.Lock()

    def claim(n: int) -> None:
        ctx, session = sessions[n]
        try:
            runtime.work_items.claim(ctx, item, session)
            outcome = "won"
        except AlreadyClaimed as refused:
            outcome = f"refused:{refused.holder_agent}"
        with lock:
            results.append(outcome)

    run_threads([lambda n=n: claim(n) for n in range(16)])
    counts = Counter(results)
    assert counts["won"] == 1
    winner = team.claims(item)[0].agent_id
    assert counts[f"refused:{winner}"] == 15  # every loser is told who holds it
    assert len(team.claims(item)) == 1
    # All sixteen claimed the free item at once: fifteen saves collided, re-ran, were refused.
    assert together.all_in_flight and conflicts.since() >= 15


def test_concurrent_releases_of_one_claim_release_it_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    item = team.item("held").id
    alice, session = team.agent("alice"), team.session("alice")
    claim = runtime.work_items.claim(alice, item, session).value.claim
    assert claim is not None
    # The holder (with its fence) and seven coordinators give the claim back at once.
    releasers = [(alice, claim.fence)] + [(team.boss, None)] * 7
    together = DecidedTogether(len(releasers)).install(monkeypatch)
    conflicts = Conflicts(runtime)
    outcomes: list[str] = []
    lock = threading.Lock()

    def release(ctx: RequestContext, fence: int | None) -> None:
        try:
            view = runtime.work_items.release(ctx, item, fence=fence).value
            outcome = f"{ctx.principal.name}: open" if view.claim is None else "still held"
        except ClaimLost:
            outcome = f"{ctx.principal.name}: lost"
        with lock:
            outcomes.append(outcome)

    run_threads([lambda who=who: release(*who) for who in releasers])
    (released,) = team.releases(item)  # once, whoever won
    assert released.session_id == session
    # Releasing a released claim is already done for a coordinator; the holder, told its
    # fence no longer holds anything, knows it lost the claim to someone else.
    holder = "open" if released.reason == "released by holder" else "lost"
    assert sorted(outcomes) == sorted([f"agent:alice: {holder}"] + ["user:boss: open"] * 7)
    runtime.catch_up()  # the read model, once it has the release
    assert runtime.work_items.get(item).value.item.status == "open"
    assert together.all_in_flight and conflicts.since() >= len(releasers) - 1


def test_a_zombie_holder_whose_lease_lapsed_cannot_write_with_its_old_fence(
    runtime: Runtime, clock: ManualClock
) -> None:
    team = Team(runtime)
    item = team.item("contested").id
    zombie, zombie_session = team.agent("zombie"), team.session("zombie", ttl_seconds=60)
    old = runtime.work_items.claim(zombie, item, zombie_session).value.claim
    assert old is not None and old.fence == 1

    clock.advance(61)  # the zombie stops heartbeating; its lease lapses
    heir, heir_session = team.agent("heir"), team.session("heir")
    new = runtime.work_items.claim(heir, item, heir_session).value.claim
    assert new is not None and (new.agent_id, new.fence) == ("heir", 2)

    before = len(team.events(item))
    with pytest.raises(ClaimLost) as lost:
        runtime.work_items.transition(zombie, item, "in_review", None, fence=old.fence)
    assert (lost.value.presented, lost.value.current) == (1, 2)
    assert len(team.events(item)) == before  # nothing written
    done = runtime.work_items.transition(heir, item, "in_review", None, fence=new.fence)
    assert done.value.status == "in_review"


@pytest.mark.parametrize("ending", ["complete", "fail", "expire"])
def test_a_session_end_releases_its_claims_once_and_the_items_are_ready_again(
    runtime: Runtime, clock: ManualClock, ending: str
) -> None:
    team = Team(runtime)
    items = [team.item(f"task {n}").id for n in range(5)]
    alice, session = team.agent("alice"), team.session("alice", ttl_seconds=60)
    for item in items:
        runtime.work_items.claim(alice, item, session)
    if ending == "complete":
        runtime.sessions.complete(alice, session, None)
    elif ending == "fail":
        runtime.sessions.fail(alice, session, "crashed")
    else:
        clock.advance(61)
        assert runtime.sessions.sweep() == 1

    wait_until(lambda: all(team.releases(i) for i in items))
    runtime.catch_up()
    ready = {v.id for v in runtime.work_items.ready(project="apollo").value}
    assert ready == set(items)
    for item in items:
        (release,) = team.releases(item)
        assert release.session_id == session
        assert release.reason.startswith("session ")
        assert runtime.work_items.get(item).value.item.status == "open"


class ProcessDied(RuntimeError):
    """What the policy below raises in place of a reaction, as a killed process would."""


class DiesAfterReleases:
    """The real policy until its reactions have released `limit` claims; from then on it
    raises before deciding anything, so the runner fails between two reactions of one batch
    (a runner only stops between batches, so a stop could never land mid-way)."""

    def __init__(self, policy: Policy, limit: int) -> None:
        self.name = policy.name
        self._policy = policy
        self._limit = limit
        self.released = 0

    def decision(self, event: Any, position: int) -> Decision[int] | None:
        if self.released >= self._limit:
            raise ProcessDied(f"died before reacting to position {position}")
        decided = self._policy.decision(event, position)
        if decided is None:
            return None

        def counted(uow: UnitOfWork, ctx: EventContext) -> int:
            changed = decided(uow, ctx)
            self.released += changed
            return changed

        return counted


def test_session_end_releases_exactly_once_across_a_policy_restart(runtime: Runtime) -> None:
    team = Team(runtime)
    runner = runtime.runners.policies[POLICY]
    runner.stop()
    ended: list[UUID] = []
    items: list[UUID] = []
    for n in range(12):
        ctx, session = team.agent(f"a{n}"), team.session(f"a{n}")
        for k in range(3):
            item = team.item(f"a{n} task {k}").id
            runtime.work_items.claim(ctx, item, session)
            items.append(item)
        runtime.sessions.complete(ctx, session, None)
        ended.append(session)

    policy = runner.worker.policy
    runner.worker.policy = dying = DiesAfterReleases(policy, limit=10)
    runner.start()
    wait_until(lambda: runner.state == "faulted")
    runner.stop()
    # Mid-way for certain: some claims released (with the position of their cause), not all.
    released = [i for i in items if team.releases(i)]
    assert len(released) == dying.released and 10 <= len(released) < len(items)

    runner.worker.policy = policy  # restarting must neither skip nor repeat
    runner.start()
    wait_until(lambda: all(team.releases(i) for i in items))
    runtime.catch_up()
    assert [len(team.releases(i)) for i in items] == [1] * len(items)
    released_by = Counter(
        e.session_id for i in items for e in team.events(i) if isinstance(e, WorkItem.ClaimReleased)
    )
    assert released_by == Counter({s: 3 for s in ended})
