"""`sessions archive`, `agents list` and `messages tail` against a real store: archived
sessions leave the default lists and stay in the log; the directory and an inbox print."""

from __future__ import annotations

import json

from agentledger.application.messages import NewMessage
from agentledger.application.readmodels import MessageFilter
from agentledger.domain.sessions import AgentSession
from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from tests.support.helpers import agent_context


def test_archive_list_and_tail(run, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    rt = build_runtime(settings)
    rt.start_runners()
    try:
        alice, bob = agent_context(rt, "alice"), agent_context(rt, "bob")
        ended = [rt.sessions.start(alice).value.id for _ in range(2)]
        live = rt.sessions.start(bob).value.id
        for session in ended:
            rt.sessions.complete(alice, session)
        rt.messages.send(bob, NewMessage(to="alice", type="request", body="Need a review"))
    finally:
        rt.close()

    assert run("sessions", "archive", "--older-than", "0s").output.startswith("archived 2 ")
    assert run("sessions", "archive", "--older-than", "0s").output.startswith("archived 0 ")
    listed = json.loads(run("agents", "list", "--json").output.splitlines()[0])
    assert listed["agent_id"] == "alice" and listed["status"] == "inactive"
    lines = run("agents", "list", "--status", "active").output.splitlines()
    assert [line.split()[0] for line in lines] == ["bob"]
    tail = run("messages", "tail", "--agent", "alice").output
    assert "agent:bob" in tail and "Need a review" in tail

    rt = build_runtime(settings)
    try:
        rt.catch_up()
        shown = [s.id for s in rt.sessions.list().items]
        assert shown == [live]  # archived sessions left the default list
        everything = {s.id for s in rt.sessions.list(include_archived=True).items}
        assert everything == {live, *ended}
        for session in ended:  # and stay in the log
            kinds = [type(e).__name__ for e in rt.ledger.events.get(session)]
            assert kinds[-1] == AgentSession.SessionArchived.__name__
        reader = agent_context(rt, "alice").principal
        assert len(rt.messages.since(reader, MessageFilter("alice"), 0)) == 1
    finally:
        rt.close()
