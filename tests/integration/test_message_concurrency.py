"""Messages under concurrency: sixteen agents writing to one another at once lose nothing and
duplicate nothing; a message is read and acknowledged once however many try at once."""

from __future__ import annotations

from collections import Counter
from uuid import UUID

import pytest

from agentledger.application.context import RequestContext
from agentledger.application.messages import NewMessage
from agentledger.application.readmodels import MessageFilter
from agentledger.domain.messages import AlreadyMarked, Message
from agentledger.infrastructure.bootstrap import Runtime
from tests.conftest import issue_token
from tests.support.helpers import run_threads
from tests.support.overlap import Conflicts, DecidedTogether

AGENTS = 16
EACH = 50


def agents(rt: Runtime, count: int) -> list[RequestContext]:
    found = []
    for n in range(count):
        principal = rt.access.authenticate(issue_token(rt, f"agent:a{n}", "agent"))
        found.append(RequestContext(principal, f"a{n}"))
        rt.sessions.start(found[-1])  # known to the service: messages may reach it
    return found


def everything(rt: Runtime, agent: str) -> list[UUID]:
    """The agent's whole inbox, page by page."""
    reader = rt.read_models["messages_v1"]
    rows = reader.inbox(MessageFilter(agent), limit=10_000, after_position=None)  # type: ignore[attr-defined]
    return [r.id for r in rows]


def test_sixteen_agents_sending_fifty_each_reach_exactly_the_right_inboxes_once(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = agents(runtime, AGENTS)
    # Each agent's first message is held until all sixteen have decided theirs: in flight at once.
    together = DecidedTogether(AGENTS).install(monkeypatch)
    sent: dict[int, list[tuple[UUID, str, UUID]]] = {n: [] for n in range(AGENTS)}

    def write(n: int) -> None:
        thread = None
        for k in range(EACH):
            to = f"a{(n + 1 + k % (AGENTS - 1)) % AGENTS}"  # everyone but itself, in turn
            new = NewMessage(to=to, type="notification", body=f"{n}:{k}", thread_id=thread)
            message = runtime.messages.send(team[n], new).value
            thread = thread or message.id
            sent[n].append((message.id, to, message.thread_id))

    run_threads([lambda n=n: write(n) for n in range(AGENTS)], timeout=300)

    assert together.all_in_flight
    runtime.catch_up()
    expected: dict[str, list[UUID]] = {f"a{n}": [] for n in range(AGENTS)}
    for messages in sent.values():
        for message_id, to, _ in messages:
            expected[to].append(message_id)
    for agent, ids in expected.items():
        found = everything(runtime, agent)
        assert Counter(found) == Counter(ids), agent  # each once, none missing, none foreign
    for n, messages in sent.items():  # threads intact: one per sender, in the order sent
        root = messages[0][0]
        assert {thread for _, _, thread in messages} == {root}
        thread = runtime.messages.thread(team[n].principal, root).value
        assert [m.id for m in thread] == [m for m, _, _ in messages]
        assert [m.body for m in thread] == [f"{n}:{k}" for k in range(EACH)]


@pytest.mark.parametrize("mark", ["mark_read", "acknowledge"])
def test_eight_concurrent_marks_of_one_message_make_one(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, mark: str
) -> None:
    sender, reader = agents(runtime, 2)
    new = NewMessage(to="a1", type="request", body="Please review", ack_required=True)
    message = runtime.messages.send(sender, new).value
    together = DecidedTogether(8).install(monkeypatch)
    conflicts = Conflicts(runtime)
    done: list[UUID] = []
    refused: list[Exception] = []

    def try_mark() -> None:
        try:
            done.append(getattr(runtime.messages, mark)(reader, message.id).value)
        except AlreadyMarked as exc:
            refused.append(exc)

    run_threads([try_mark for _ in range(8)])

    assert together.all_in_flight
    assert len(done) == 1 and len(refused) == 7
    assert conflicts.since() >= 7  # the losers were told of the winner, not overwritten
    events = list(runtime.ledger.events.get(message.id))
    kinds = Counter(type(e).__name__ for e in events)
    assert kinds["MessageRead"] == 1
    assert kinds["MessageAcked"] == (1 if mark == "acknowledge" else 0)
    assert all(getattr(e, "agent_id", "a1") == "a1" for e in events[1:])
    assert isinstance(events[0], Message.MessageSent)
