"""The claim rules over plain facts: who may write a claimed item, who may claim one, and what
claim-next may take. No storage: the facts are aggregates built here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from agentledger.domain.claims import Caller, check_write, claim, claim_ready, live_lease
from agentledger.domain.errors import (
    AlreadyClaimed,
    ClaimLost,
    FenceRequired,
    NotReady,
    ProjectArchived,
    SessionNotOwned,
)
from agentledger.domain.events import EventContext
from agentledger.domain.readiness import Reason
from agentledger.domain.sessions import AgentSession
from agentledger.domain.work_items import WorkItem, WorkStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
ALICE = Caller("agent:alice", "alice", may_act_for_others=False)
BOB = Caller("agent:bob", "bob", may_act_for_others=False)
BOSS = Caller("user:boss", None, may_act_for_others=True)


def at(seconds: float = 0, actor: str = "agent:alice") -> EventContext:
    return EventContext(actor, "trace", "test", "cmd", T0 + timedelta(seconds=seconds))


def session(agent: str, ttl: int = 600) -> AgentSession:
    return AgentSession.start(at(), agent_id=agent, ttl_seconds=ttl)


def held_by(holder: AgentSession) -> WorkItem:
    item = WorkItem.create(at(), project="alpha", kind="task", title="Parser")
    claim(at(), item, holder, ALICE, None, project_archived=False)
    item.collect_events()
    return item


def test_only_the_live_holder_with_its_fence_or_a_coordinator_writes_a_claimed_item() -> None:
    alices = session("alice", ttl=60)
    item = held_by(alices)
    lease = alices.lease_expires_at
    now = T0 + timedelta(seconds=1)
    assert check_write(item, ALICE, 1, alices, now) == lease
    with pytest.raises(FenceRequired) as required:
        check_write(item, ALICE, None, alices, now)
    assert (required.value.item_id, required.value.fence) == (str(item.id), 1)
    with pytest.raises(ClaimLost):
        check_write(item, ALICE, 9, alices, now)
    for fence in (None, 1):  # the fence is no password: bob is still not the holder
        with pytest.raises(AlreadyClaimed) as refused:
            check_write(item, BOB, fence, alices, now)
        assert (refused.value.holder_agent, refused.value.expires_at) == ("alice", lease)
    assert check_write(item, BOSS, None, alices, now) == lease  # a coordinator overrides


def test_a_lapsed_holder_must_still_say_which_claim_and_binds_nobody_else() -> None:
    alices = session("alice", ttl=60)
    item = held_by(alices)
    lapsed = T0 + timedelta(seconds=60)  # the lease ends at this very instant
    assert live_lease(item, alices, lapsed) is None
    with pytest.raises(FenceRequired):
        check_write(item, ALICE, None, alices, lapsed)
    with pytest.raises(ClaimLost) as lost:
        check_write(item, ALICE, 1, alices, lapsed)
    assert lost.value.current is None
    assert check_write(item, BOB, None, alices, lapsed) is None


def test_a_holder_is_live_only_while_the_session_the_item_names_is_active() -> None:
    alices = session("alice")
    item = held_by(alices)
    now = T0 + timedelta(seconds=1)
    assert live_lease(item, alices, now) == alices.lease_expires_at
    assert live_lease(item, session("alice"), now) is None  # another session of alice's
    assert live_lease(item, None, now) is None
    alices.complete(at(1))
    assert live_lease(item, alices, now) is None


def test_a_claim_needs_the_callers_own_active_session_in_an_open_project() -> None:
    item = WorkItem.create(at(), project="alpha", kind="task", title="Parser")
    item.collect_events()
    bobs = session("bob")
    with pytest.raises(SessionNotOwned):
        claim(at(1), item, bobs, ALICE, None, project_archived=False)
    with pytest.raises(ProjectArchived):
        claim(at(1), item, bobs, BOB, None, project_archived=True)
    assert item.pending_events == []
    assert claim(at(1), item, bobs, BOSS, None, project_archived=False) == 1  # any agent's
    assert (item.holder_agent, item.status) == ("bob", WorkStatus.IN_PROGRESS)


def test_a_live_holder_keeps_the_item_and_a_lapsed_one_loses_it() -> None:
    alices, bobs = session("alice", ttl=60), session("bob")
    item = held_by(alices)
    with pytest.raises(AlreadyClaimed):
        claim(at(59), item, bobs, BOB, alices, project_archived=False)
    assert claim(at(1), item, alices, ALICE, alices, project_archived=False) == 1  # again: same
    assert item.pending_events == []
    assert claim(at(60), item, bobs, BOB, alices, project_archived=False) == 2


def test_claim_next_takes_only_a_ready_item_and_says_why_not() -> None:
    alices, bobs = session("alice"), session("bob")
    item = held_by(alices)
    item.transition(at(1), "open", None)  # open again, alice still holds it
    item.collect_events()
    waits_for = UUID(int=7)
    with pytest.raises(NotReady) as refused:
        claim_ready(
            at(2),
            item,
            bobs,
            BOB,
            alices,
            project_archived=False,
            dependencies={waits_for: "in_progress"},
        )
    assert refused.value.reasons == (
        Reason("claimed_by", agent_id="alice"),
        Reason("blocked_by", status="in_progress", item_id=waits_for),
    )
    assert item.pending_events == []
    fresh = WorkItem.create(at(), project="alpha", kind="task", title="Lexer")
    fence = claim_ready(
        at(2), fresh, bobs, BOB, None, project_archived=False, dependencies={uuid4(): "done"}
    )
    assert (fence, fresh.holder_agent) == (1, "bob")
