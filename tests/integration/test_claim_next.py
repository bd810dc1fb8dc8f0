"""claim-next against the aggregates: a candidate another server won while this read model
lagged is passed over, not reported; and claims sent with one If-Match, all in flight at once,
make one winner while every other is told its version is stale."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.errors import PreconditionFailed
from agentledger.application.preconditions import Precondition
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from tests.integration.work_items_support import Team
from tests.support.helpers import run_threads

PROJECTION = "work_items_v4"


@pytest.fixture
def other_server(runtime: Runtime, settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """A second runtime on the runtime's store: a second server, without background work."""
    second = build_runtime(settings, clock)
    yield second
    second.close()


def test_claim_next_passes_over_what_another_server_won_since_the_queue_was_read(
    runtime: Runtime, other_server: Runtime
) -> None:
    team = Team(runtime)
    best, second, third = (team.item(t, priority=p).id for t, p in (("a", 9), ("b", 5), ("c", 1)))
    runtime.catch_up()
    runtime.runners.projections[PROJECTION].stop()  # this server's queue still shows all three
    bob = team.agent("bob")
    other_server.work_items.claim(bob, best, team.session("bob"))
    ready = [v.id for v in runtime.work_items.ready(project="apollo").value]
    assert ready == [best, second, third]

    taken = runtime.work_items.claim_next(team.agent("alice"), team.session("alice"))
    assert taken is not None and taken.value.id == second
    assert [c.agent_id for c in team.claims(best)] == ["bob"]  # passed over, not taken
    assert [c.agent_id for c in team.claims(second)] == ["alice"]


def test_claims_with_one_if_match_in_flight_at_once_make_one_winner(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    item = team.item("the one").id
    callers = [(team.agent(f"a{n}"), team.session(f"a{n}")) for n in range(8)]
    # Every first attempt waits here, after loading the item and checking the version, until
    # all eight have: they are all in flight at once, and seven saves must then conflict.
    in_flight = threading.Barrier(len(callers), timeout=60)
    waited: set[int] = set()
    real_claim = WorkItem.claim

    def claim_when_all_have_loaded(self: WorkItem, *args: Any, **kwargs: Any) -> int:
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            in_flight.wait()
        return real_claim(self, *args, **kwargs)

    monkeypatch.setattr(WorkItem, "claim", claim_when_all_have_loaded)
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def claim(n: int) -> None:
        ctx, session = callers[n]
        try:
            runtime.work_items.claim(ctx, item, session, precondition=Precondition.at(1))
            outcome = "won"
        except PreconditionFailed as stale:
            outcome = f"stale:{stale.current}"
        with lock:
            results[outcome] += 1

    conflicts = runtime.commands.conflicts
    run_threads([lambda n=n: claim(n) for n in range(len(callers))])
    assert results == Counter({"won": 1, "stale:3": 7})  # claimed and started: version 3
    assert runtime.commands.conflicts - conflicts >= 7  # the losers' saves did collide
    assert len(team.claims(item)) == 1
