"""Every remaining write path under several concurrent writers: nothing acknowledged is lost,
and the writers that lose are told so (never silently swallowed)."""

from __future__ import annotations

import threading
from typing import Any

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


def test_concurrent_metadata_patches_all_land(runtime: Runtime) -> None:
    alice = agent_context(runtime, "alice")
    sid = runtime.sessions.start(alice).value.id
    results = Results()
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


def test_concurrent_session_starts_each_get_their_own_session(runtime: Runtime) -> None:
    agents = [agent_context(runtime, f"a{i}") for i in range(WRITERS)]
    results = Results()
    run_threads([(lambda a=a: results.attempt(lambda: runtime.sessions.start(a))) for a in agents])
    ids = {o.value.id for o in results.ok}
    assert len(ids) == WRITERS
    for session_id in ids:
        assert isinstance(next(iter(runtime.ledger.events.get(session_id))), AgentSession.Event)


def test_concurrent_revocations_of_one_token_record_one_revocation(runtime: Runtime) -> None:
    operator = RequestContext(local_operator("tester"), "t")
    issued = runtime.access.issue(operator, "agent:zed", ["agent"]).value
    results = Results()
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


def test_concurrent_token_issues_are_all_recorded(runtime: Runtime) -> None:
    results = Results()
    run_threads(
        [
            (lambda i=i: results.attempt(lambda: issue_token(runtime, f"agent:t{i}", "agent")))
            for i in range(WRITERS)
        ]
    )
    assert len(set(results.ok)) == WRITERS
    for secret in results.ok:
        assert runtime.access.authenticate(secret).name.startswith("agent:t")


def test_concurrent_archives_write_one_archive_event(runtime: Runtime) -> None:
    boss = RequestContext(
        runtime.access.authenticate(issue_token(runtime, "user:boss", "coordinator")), "t"
    )
    runtime.projects.create(boss, "alpha")
    results = Results()
    run_threads([(lambda: results.attempt(lambda: runtime.projects.archive(boss, "alpha")))] * 8)
    assert len(results.ok) == 8  # archiving is idempotent: every caller sees it archived
    assert all(o.value.archived for o in results.ok)
    events = list(runtime.ledger.events.get(project_id("alpha")))
    assert [type(e) for e in events] == [Project.ProjectCreated, Project.ProjectArchived]
    assert sum(o.events_written for o in results.ok) == 1


def test_concurrent_clears_with_one_version_let_one_win(runtime: Runtime) -> None:
    alice = agent_context(runtime, "alice")
    runtime.projects.create(alice, "alpha")
    sid = runtime.sessions.start(alice).value.id
    version = runtime.selections.select(
        alice, "alice", "alpha", sid, Precondition.absent()
    ).value.version
    results = Results()
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
