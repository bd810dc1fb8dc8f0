"""Handing a claim from one agent to another without letting it go, and parking a claim while
a person decides: the races, the ready queue, the fences, expiry and the sweeper."""

from __future__ import annotations

from uuid import UUID

import pytest

from agentledger.application.approvals import NewApproval
from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext
from agentledger.domain.errors import (
    ApprovalPending,
    ClaimLost,
    ClaimParked,
    HandoffForAnother,
    HandoffPending,
    NoHandoffOffered,
    NoPendingApproval,
)
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime
from tests.conftest import issue_token
from tests.integration.work_items_support import Team
from tests.support.helpers import run_threads, wait_until
from tests.support.overlap import Conflicts, DecidedTogether

POLICY = "policy_session_end_releases_claims"


def claimed(team: Team, holder: str = "lead", ttl: int = 600) -> tuple[UUID, UUID, int]:
    """An item claimed by a session of `holder`: (item, session, fence)."""
    item = team.item("review the parser").id
    session = team.session(holder, ttl_seconds=ttl)
    fence = team.rt.work_items.claim(team.agent(holder), item, session).value.claim
    assert fence is not None
    return item, session, fence.fence


def policy_passed(rt: Runtime) -> None:
    """Wait until the release policy here has reacted (or not) to everything in the log."""
    head = rt.ledger.head_position()
    runner = rt.runners.policies[POLICY]
    wait_until(lambda: (runner.progress() or 0) >= head and runner.waiting())


def kinds(team: Team, item: UUID) -> list[str]:
    return [type(e).__name__ for e in team.events(item)]


def ready_ids(rt: Runtime) -> set[UUID]:
    rt.catch_up()
    return {v.id for v in rt.work_items.ready(project="apollo").value}


def test_eight_sessions_racing_to_accept_one_offer_make_exactly_one_holder(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    item, _, fence = claimed(team)
    runtime.work_items.offer(team.agent("lead"), item, "reviewer", fence=fence)
    sessions = [team.session("reviewer") for _ in range(8)]
    reviewer = team.agent("reviewer")
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    won: list[int] = []
    refused: list[Exception] = []

    def accept(session: UUID) -> None:
        try:
            outcome = runtime.work_items.accept(reviewer, item, session)
            assert outcome.value.claim is not None
            won.append(outcome.value.claim.fence)
        except NoHandoffOffered as exc:
            refused.append(exc)

    run_threads([lambda s=s: accept(s) for s in sessions])

    assert together.all_in_flight  # the eight decided together, before any saved
    assert won == [fence + 1] and len(refused) == 7
    assert conflicts.since() >= 7  # each loser met the winner's write and was told
    accepted = [e for e in team.events(item) if isinstance(e, WorkItem.HandoffAccepted)]
    claims = team.claims(item)
    assert len(accepted) == 1 and accepted[0].from_agent == "lead"
    assert claims[-1].session_id in sessions and claims[-1].previous_session == claims[0].session_id


def test_an_offered_item_is_nobodys_to_take_and_the_old_fence_dies_with_the_move(
    runtime: Runtime, clock: ManualClock
) -> None:
    team = Team(runtime)
    item, lead_session, fence = claimed(team, ttl=60)
    lead, other = team.agent("lead"), team.agent("other")
    runtime.work_items.offer(
        lead, item, "reviewer", fence=fence, reason="needs a second pair of eyes"
    )
    with pytest.raises(HandoffPending):  # the offerer no longer writes it
        runtime.work_items.transition(lead, item, "in_review", None, fence=fence)
    with pytest.raises(HandoffForAnother):
        runtime.work_items.accept(other, item, team.session("other"))
    # The offerer's lease lapses: still nobody's to take but the reviewer's.
    clock.advance(61)
    runtime.catch_up()  # the sweep expires what the sessions read model knows of
    assert runtime.sessions.sweep() == 1
    policy_passed(runtime)
    assert not team.releases(item)  # the offer, not the session's end, decides
    taker = team.session("other")
    with pytest.raises(HandoffPending):
        runtime.work_items.claim(other, item, taker)
    assert runtime.work_items.claim_next(other, taker, project="apollo") is None
    assert item not in ready_ids(runtime)

    reviewer_session = team.session("reviewer")
    moved = runtime.work_items.accept(team.agent("reviewer"), item, reviewer_session).value
    assert moved.claim is not None and moved.claim.fence == fence + 1
    with pytest.raises(ClaimLost):  # the old holder's fence is refused after the move
        runtime.work_items.transition(lead, item, "in_review", None, fence=fence)
    done = runtime.work_items.transition(
        team.agent("reviewer"), item, "in_review", None, fence=fence + 1
    )
    assert done.value.status == "in_review"
    offered = next(e for e in team.events(item) if isinstance(e, WorkItem.HandoffOffered))
    assert (offered.from_agent, offered.to_agent, offered.session_id) == (
        "lead",
        "reviewer",
        lead_session,
    )
    assert offered.reason == "needs a second pair of eyes"


@pytest.mark.parametrize("offerer_alive", [True, False])
def test_an_offer_past_its_time_returns_the_item_or_releases_it(
    runtime: Runtime, clock: ManualClock, offerer_alive: bool
) -> None:
    team = Team(runtime)
    item, _, fence = claimed(team, ttl=600 if offerer_alive else 60)
    lead = team.agent("lead")
    runtime.work_items.offer(lead, item, "reviewer", fence=fence, expires_in_seconds=120)
    clock.advance(121)
    runtime.catch_up()
    assert runtime.work_items.sweep_claims() == 1
    assert runtime.work_items.sweep_claims() == 0  # recorded once
    with pytest.raises(NoHandoffOffered):
        runtime.work_items.accept(team.agent("reviewer"), item, team.session("reviewer"))
    assert "HandoffExpired" in kinds(team, item)
    if offerer_alive:  # back to the offerer: its fence writes again
        runtime.sessions.heartbeat(lead, team.claims(item)[0].session_id)
        moved = runtime.work_items.transition(lead, item, "in_review", None, fence=fence)
        assert moved.value.status == "in_review"
    else:  # the offerer is gone: the item is free again
        (release,) = team.releases(item)
        assert "lapsed" in release.reason
        assert item in ready_ids(runtime)


def test_a_decline_leaves_the_claim_with_the_offerer(runtime: Runtime) -> None:
    team = Team(runtime)
    item, _, fence = claimed(team)
    lead, reviewer = team.agent("lead"), team.agent("reviewer")
    runtime.work_items.offer(lead, item, "reviewer", fence=fence)
    with pytest.raises(HandoffForAnother):
        runtime.work_items.decline(team.agent("other"), item, "not mine")
    runtime.work_items.decline(reviewer, item, "busy with the release")
    declined = next(e for e in team.events(item) if isinstance(e, WorkItem.HandoffDeclined))
    assert (declined.declined_by, declined.reason) == ("agent:reviewer", "busy with the release")
    assert runtime.work_items.transition(lead, item, "in_review", None, fence=fence).value


def _approval(team: Team, item: UUID) -> UUID:
    new = NewApproval("security", "touches auth")
    return team.rt.approvals.request(team.boss, item, new).value.approval.id


def _approver(team: Team) -> RequestContext:
    principal = team.rt.access.authenticate(issue_token(team.rt, "user:sec", "approver:security"))
    return RequestContext(principal, "approver")


def test_a_parked_claim_outlives_its_session_and_only_its_agent_resumes_it(
    runtime: Runtime, clock: ManualClock
) -> None:
    team = Team(runtime)
    item, _, fence = claimed(team, holder="reviewer", ttl=60)
    approval = _approval(team, item)
    reviewer = team.agent("reviewer")
    parked = runtime.work_items.park(reviewer, item, fence=fence).value
    assert parked.parked_on == approval
    with pytest.raises(ClaimParked):  # parked: not even the holder writes it
        runtime.work_items.transition(reviewer, item, "in_review", None, fence=fence)
    clock.advance(61)  # the holder's session expires while the claim is parked
    runtime.catch_up()  # the sweep expires what the sessions read model knows of (a CI run
    # on a loaded machine swept before it had the session's last write)
    assert runtime.sessions.sweep() == 1
    policy_passed(runtime)
    assert not team.releases(item)  # the claim survives its session
    other = team.agent("other")
    with pytest.raises(ClaimParked):  # nobody else takes it
        runtime.work_items.claim(other, item, team.session("other"))
    fresh = team.session("reviewer")
    with pytest.raises(ApprovalPending):  # resumed once a person has decided
        runtime.work_items.resume(reviewer, item, fresh)

    runtime.approvals.decide(_approver(team), approval, "approved", "fine")
    with pytest.raises(ClaimParked):  # a session of another agent cannot resume it
        runtime.work_items.resume(other, item, team.session("other"))
    resumed = runtime.work_items.resume(reviewer, item, fresh).value
    assert resumed.claim is not None and resumed.claim.fence == fence + 1
    assert resumed.claim.session_id == fresh and resumed.parked_on is None
    with pytest.raises(ClaimLost):
        runtime.work_items.transition(reviewer, item, "in_review", None, fence=fence)
    runtime.work_items.transition(reviewer, item, "in_review", None, fence=fence + 1)
    assert runtime.work_items.transition(reviewer, item, "done", None, fence=fence + 1).value


def test_a_parked_claim_nobody_resumes_within_its_grace_is_released(
    runtime: Runtime, clock: ManualClock
) -> None:
    team = Team(runtime)
    item, _, fence = claimed(team, holder="reviewer", ttl=600)
    approval = _approval(team, item)
    runtime.work_items.park(
        team.agent("reviewer"), item, fence=fence, successor="heir", grace_seconds=300
    )
    runtime.catch_up()
    assert runtime.work_items.sweep_claims() == 0  # pending: parked for as long as it takes
    runtime.approvals.decide(_approver(team), approval, "rejected", "no")
    clock.advance(299)
    assert runtime.work_items.sweep_claims() == 0
    clock.advance(2)
    assert runtime.work_items.sweep_claims() == 1
    (release,) = team.releases(item)
    assert "grace" in release.reason
    taken = runtime.work_items.claim(team.agent("other"), item, team.session("other")).value
    assert taken.claim is not None and taken.claim.fence == fence + 1


def test_racing_steps_of_a_handoff_or_a_park_make_exactly_one(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write path of handing over and parking, raced by two writers that decided
    together: one wins, the other is refused (never both, never silently)."""
    team = Team(runtime)
    lead, reviewer = team.agent("lead"), team.agent("reviewer")
    wk = runtime.work_items

    def race(*attempts: object) -> list[object]:
        together = DecidedTogether(len(attempts)).install(monkeypatch)
        results: list[object] = []

        def attempt(call: object) -> None:
            try:
                results.append(call())  # type: ignore[operator]
            except Exception as exc:  # the loser's refusal, kept to be checked
                results.append(exc)

        run_threads([lambda c=c: attempt(c) for c in attempts])
        # Both decided before either saved; the loser is told (re-run, then refused), whether
        # its save failed on the store or inside the winner's group commit.
        assert together.all_in_flight
        monkeypatch.undo()
        return results

    # Two offers of one claim, to two agents: one offer stands.
    item, _, fence = claimed(team)
    won = race(
        lambda: wk.offer(lead, item, "reviewer", fence=fence),
        lambda: wk.offer(lead, item, "other", fence=fence),
    )
    assert sum(isinstance(r, HandoffPending) for r in won) == 1
    # An accept and a decline of that offer at once: exactly one decides it.
    offered_to = next(
        e.to_agent for e in team.events(item) if isinstance(e, WorkItem.HandoffOffered)
    )
    taker = team.agent(offered_to)
    won = race(
        lambda: wk.accept(taker, item, team.session(offered_to)),
        lambda: wk.decline(taker, item, "no"),
    )
    assert sum(isinstance(r, NoHandoffOffered) for r in won) == 1
    ends = [
        e
        for e in team.events(item)
        if isinstance(e, WorkItem.HandoffAccepted | WorkItem.HandoffDeclined)
    ]
    assert len(ends) == 1

    # Two parks of one claim, then two sessions of its agent resuming it at once.
    item, _, fence = claimed(team, holder="reviewer")
    approval = _approval(team, item)
    won = race(
        lambda: wk.park(reviewer, item, fence=fence),
        lambda: wk.park(reviewer, item, fence=fence),
    )
    assert sum(isinstance(r, ClaimParked) for r in won) == 1
    runtime.approvals.decide(_approver(team), approval, "approved", "ok")
    sessions = [team.session("reviewer"), team.session("reviewer")]
    won = race(*(lambda s=s: wk.resume(reviewer, item, s) for s in sessions))
    refusals = [r for r in won if isinstance(r, Exception)]
    assert len(refusals) == 1 and isinstance(refusals[0], NoPendingApproval)
    assert len([e for e in team.events(item) if isinstance(e, WorkItem.ClaimResumed)]) == 1
