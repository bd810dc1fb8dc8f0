"""Routed tasks under concurrency: sixteen sessions of mixed roles drain a queue of items
routed to roles and to none; no session ever takes an item routed to a role it does not act
in, and every item is claimed exactly once."""

from __future__ import annotations

from uuid import UUID

import pytest

from agentledger.infrastructure.bootstrap import Runtime
from tests.integration.work_items_support import Team
from tests.support.helpers import run_threads
from tests.support.overlap import DecidedTogether

ROLES = ["reviewer"] * 6 + ["builder"] * 6 + [None] * 4  # sixteen sessions


def test_sixteen_sessions_of_mixed_roles_take_only_what_is_routed_to_them(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(runtime)
    routed: dict[UUID, str | None] = {}
    for n in range(20):
        for role in ("reviewer", "builder", None):
            item = team.item(f"{role} task {n}", priority=n % 5, to_role=role)
            routed[item.id] = role
    started = [team.session(f"a{n}", role=role) for n, role in enumerate(ROLES)]
    sessions = [(team.agent(f"a{n}"), started[n], role) for n, role in enumerate(ROLES)]
    runtime.catch_up()
    # The sixteen first claims are held until all have decided: all in flight at once.
    together = DecidedTogether(len(sessions)).install(monkeypatch)
    won: dict[int, list[UUID]] = {n: [] for n in range(len(sessions))}

    def drain(n: int) -> None:
        ctx, session, _ = sessions[n]
        while (outcome := runtime.work_items.claim_next(ctx, session)) is not None:
            won[n].append(outcome.value.id)

    run_threads([lambda n=n: drain(n) for n in range(len(sessions))], timeout=300)

    assert together.all_in_flight
    claimed = [item for ids in won.values() for item in ids]
    assert sorted(map(str, claimed)) == sorted(map(str, routed))  # every item, none twice
    for n, ids in won.items():
        role = sessions[n][2]
        wrong = [i for i in ids if routed[i] not in (None, role)]
        assert not wrong, f"session of role {role} took items routed elsewhere: {wrong}"
    # The log agrees: one claim per item, by a session acting in its role.
    role_of = {session: role for _, session, role in sessions}
    for item_id, role in routed.items():
        (claim,) = team.claims(item_id)
        assert role in (None, role_of[claim.session_id])
    # Those acting in no role took only unrouted items, and some took some.
    assert any(won[n] for n, (_, _, role) in enumerate(sessions) if role is None)
