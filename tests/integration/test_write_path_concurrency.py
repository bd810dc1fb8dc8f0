"""Every remaining write path under several concurrent writers: nothing acknowledged is lost,
and the writers that lose are told so (never silently swallowed)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext, local_operator
from agentledger.application.errors import PreconditionFailed
from agentledger.application.preconditions import Precondition
from agentledger.domain.access import AccessToken
from agentledger.domain.errors import TokenRevoked
from agentledger.domain.projects import Project, project_id
from agentledger.domain.sessions import AgentSession
from agentledger.infrastructure.bootstrap import Runtime
from tests.conftest import issue_token
from tests.support.helpers import agent_context, run_threads
from tests.support.overlap import Conflicts, DecidedTogether

WRITERS = 16


class Results:
    def __init__(self) -> None:
        self.ok: list[Any] = []
        self.refused: list[BaseException] = []
        self._lock = threading.Lock()

    def attempt(self, call: Any, *refusals: type[BaseException]) -> None:
        try:
            value = call()
        except refusals as exc:
            with self._lock:
                self.refused.append(exc)
            return
        with self._lock:
            self.ok.append(value)


def test_concurrent_metadata_patches_all_land(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice).value.id
    results = Results()
    together = DecidedTogether(WRITERS).install(monkeypatch)
    conflicts = Conflicts(runtime)
    run_threads(
        [
            (
                lambda i=i: results.attempt(
                    lambda: runtime.sessions.update_metadata(alice, sid, {f"k{i}": i})
                )
            )
            for i in range(WRITERS)
        ]
    )
    assert len(results.ok) == WRITERS
    session = runtime.ledger.repository.get(sid)
    assert session.metadata == {f"k{i}": i for i in range(WRITERS)}  # no patch lost
    versions = [e.originator_version for e in runtime.ledger.events.get(sid)]
    assert versions == list(range(1, WRITERS + 2))
    # All patched version 1 at once: all but one save collided, and was re-run.
    assert together.all_in_flight and conflicts.since() >= WRITERS - 1


def test_concurrent_heartbeats_past_the_threshold_write_one_renewal(
    runtime: Runtime, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice, ttl_seconds=600).value.id
    clock.advance(120)  # far enough for a renewal to be written (past a tenth of the TTL)
    results = Results()
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    run_threads([(lambda: results.attempt(lambda: runtime.sessions.heartbeat(alice, sid)))] * 8)
    assert len(results.ok) == 8  # every heartbeat is answered: the lease is renewed
    assert sorted(o.value.renewed for o in results.ok) == [False] * 7 + [True]
    events = list(runtime.ledger.events.get(sid))
    assert [type(e) for e in events] == [AgentSession.SessionStarted, AgentSession.LeaseRenewed]
    assert {o.value.session.lease_expires_at for o in results.ok} == {events[-1].lease_expires_at}
    # All eight decided to renew at once: seven saves collided, and re-ran to find it renewed.
    assert together.all_in_flight and conflicts.since() >= 7


def test_concurrent_session_starts_each_get_their_own_session(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents = [agent_context(runtime, f"a{i}") for i in range(WRITERS)]
    results = Results()
    together = DecidedTogether(WRITERS).install(monkeypatch)  # new sessions: nothing to collide
    run_threads([(lambda a=a: results.attempt(lambda: runtime.sessions.start(a))) for a in agents])
    ids = {o.value.id for o in results.ok}
    assert len(ids) == WRITERS
    for session_id in ids:
        assert isinstance(next(iter(runtime.ledger.events.get(session_id))), AgentSession.Event)
    assert together.all_in_flight


def test_concurrent_revocations_of_one_token_record_one_revocation(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = RequestContext(local_operator("tester"), "t")
    issued = runtime.access.issue(operator, "agent:zed", ["agent"]).value
    results = Results()
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    run_threads(
        [
            (
                lambda: results.attempt(
                    lambda: runtime.access.revoke(operator, issued.token_id), TokenRevoked
                )
            )
            for _ in range(8)
        ]
    )
    assert (len(results.ok), len(results.refused)) == (1, 7)
    events = list(runtime.ledger.events.get(issued.token_id))
    assert [type(e).__name__ for e in events] == ["Issued", "Revoked"]
    assert isinstance(events[-1], AccessToken.Revoked)
    # All eight revoked the live token at once: seven saves collided, re-ran, were refused.
    assert together.all_in_flight and conflicts.since() >= 7


def test_concurrent_token_issues_are_all_recorded(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = Results()
    together = DecidedTogether(WRITERS).install(monkeypatch)  # new tokens: nothing to collide
    run_threads(
        [
            (lambda i=i: results.attempt(lambda: issue_token(runtime, f"agent:t{i}", "agent")))
            for i in range(WRITERS)
        ]
    )
    assert len(set(results.ok)) == WRITERS
    for secret in results.ok:
        assert runtime.access.authenticate(secret).name.startswith("agent:t")
    assert together.all_in_flight


def test_concurrent_archives_write_one_archive_event(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    boss = RequestContext(
        runtime.access.authenticate(issue_token(runtime, "user:boss", "coordinator")), "t"
    )
    runtime.projects.create(boss, "alpha")
    results = Results()
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    run_threads([(lambda: results.attempt(lambda: runtime.projects.archive(boss, "alpha")))] * 8)
    assert len(results.ok) == 8  # archiving is idempotent: every caller sees it archived
    assert all(o.value.archived for o in results.ok)
    events = list(runtime.ledger.events.get(project_id("alpha")))
    assert [type(e) for e in events] == [Project.ProjectCreated, Project.ProjectArchived]
    assert sum(o.events_written for o in results.ok) == 1
    # All eight archived the open project at once: seven collided, re-ran, found it done.
    assert together.all_in_flight and conflicts.since() >= 7


def test_concurrent_clears_with_one_version_let_one_win(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice = agent_context(runtime, "alice")
    runtime.projects.create(alice, "alpha")
    sid = runtime.sessions.start(alice).value.id
    version = runtime.selections.select(
        alice, "alice", "alpha", sid, Precondition.absent()
    ).value.version
    results = Results()
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    run_threads(
        [
            (
                lambda: results.attempt(
                    lambda: runtime.selections.clear(alice, "alice", Precondition.at(version)),
                    PreconditionFailed,
                )
            )
            for _ in range(8)
        ]
    )
    assert (len(results.ok), len(results.refused)) == (1, 7)
    assert all(r.current == version + 1 for r in results.refused)  # type: ignore[attr-defined]
    # All eight passed the version check at once: the losers' saves collided, then re-ran
    # against the new version and were told so.
    assert together.all_in_flight and conflicts.since() >= 7
