"""AgentSession's lifecycle: every allowed transition, and every refused one."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentledger.domain.errors import (
    InvalidTransition,
    InvalidValue,
    LeaseLapsed,
    SessionTerminated,
)
from agentledger.domain.events import EventContext
from agentledger.domain.sessions import AgentSession, SessionStatus, clamp_ttl

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ctx(at: datetime = T0, actor: str = "agent:alice") -> EventContext:
    return EventContext(
        actor=actor, trace_id="trace-1", causation="test", command_id="cmd-1", occurred_at=at
    )


def later(seconds: float) -> EventContext:
    return ctx(T0 + timedelta(seconds=seconds))


def session(status: str = "active", ttl: int = 600) -> AgentSession:
    s = AgentSession.start(ctx(), agent_id="alice", ttl_seconds=ttl, pending=status == "pending")
    if status in ("completed", "failed", "expired"):
        {
            "completed": lambda: s.complete(later(1)),
            "failed": lambda: s.fail(later(1), "crashed"),
            "expired": lambda: s.expire(later(ttl + 1)),
        }[status]()
    s.collect_events()
    return s


COMMANDS: dict[str, Callable[[AgentSession, EventContext], Any]] = {
    "activate": lambda s, c: s.activate(c),
    "heartbeat": lambda s, c: s.renew_lease(c),
    "complete": lambda s, c: s.complete(c),
    "fail": lambda s, c: s.fail(c, "boom"),
    "update_metadata": lambda s, c: s.update_metadata(c, {"k": "v"}),
}


# --- start -------------------------------------------------------------------------------


def test_start_active_sets_lease_from_ttl() -> None:
    s = AgentSession.start(ctx(), agent_id="alice", ttl_seconds=120)
    assert s.status is SessionStatus.ACTIVE
    assert s.lease_expires_at == T0 + timedelta(seconds=120)
    assert s.version == 1


def test_start_pending() -> None:
    s = AgentSession.start(ctx(), agent_id="alice", pending=True)
    assert s.status is SessionStatus.PENDING
    assert s.ttl_seconds == 900


@pytest.mark.parametrize(
    ("asked", "given"), [(None, 900), (1, 60), (59, 60), (60, 60), (3600, 3600), (99999, 3600)]
)
def test_ttl_default_and_clamping(asked: int | None, given: int) -> None:
    assert clamp_ttl(asked) == given


@pytest.mark.parametrize("agent_id", ["", "has space", "x" * 129, "slash/no"])
def test_start_refuses_malformed_agent_ids(agent_id: str) -> None:
    with pytest.raises(InvalidValue):
        AgentSession.start(ctx(), agent_id=agent_id)


def test_every_event_carries_its_context() -> None:
    s = AgentSession.start(ctx(actor="agent:alice"), agent_id="alice", ttl_seconds=600)
    s.renew_lease(ctx(T0 + timedelta(seconds=300), actor="agent:alice"))
    s.complete(ctx(T0 + timedelta(seconds=301), actor="user:boss"))
    events = s.collect_events()
    assert [type(e).__name__ for e in events] == [
        "SessionStarted",
        "LeaseRenewed",
        "SessionCompleted",
    ]
    assert [e.actor for e in events] == ["agent:alice", "agent:alice", "user:boss"]
    assert all(e.trace_id == "trace-1" and e.causation == "test" for e in events)
    assert events[2].timestamp == T0 + timedelta(seconds=301)


# --- allowed transitions -------------------------------------------------------------------


def test_pending_to_active() -> None:
    s = session("pending", ttl=600)
    s.activate(later(30))
    assert s.status is SessionStatus.ACTIVE
    assert s.lease_expires_at == T0 + timedelta(seconds=630)


@pytest.mark.parametrize("end", ["complete", "fail"])
def test_active_to_terminal(end: str) -> None:
    s = session("active")
    COMMANDS[end](s, later(10))
    assert s.status is SessionStatus(end + "d" if end == "complete" else "failed")
    assert s.ended_at == T0 + timedelta(seconds=10)


@pytest.mark.parametrize("status", ["pending", "active"])
def test_live_to_expired_once_lease_lapsed(status: str) -> None:
    s = session(status, ttl=600)
    assert s.expire(later(599)) is False
    assert s.pending_events == []
    assert s.expire(later(600)) is True
    assert s.status is SessionStatus.EXPIRED
    assert s.ended_at == T0 + timedelta(seconds=600)


def test_heartbeat_renews_to_now_plus_ttl() -> None:
    s = session("active", ttl=600)
    assert s.renew_lease(later(100)) is True
    assert s.lease_expires_at == T0 + timedelta(seconds=700)


def test_small_heartbeat_writes_nothing() -> None:
    s = session("active", ttl=600)
    # Moving the expiry by 59 s (< a tenth of 600 s) is answered from state.
    assert s.renew_lease(later(59)) is False
    assert s.pending_events == []
    assert s.lease_expires_at == T0 + timedelta(seconds=600)
    # Exactly a tenth is written.
    assert s.renew_lease(later(60)) is True
    assert len(s.pending_events) == 1


def test_metadata_merge_patch() -> None:
    s = AgentSession.start(ctx(), agent_id="alice", metadata={"a": 1, "b": "x"})
    assert s.update_metadata(later(1), {"a": None, "c": True}) is True
    assert s.metadata == {"b": "x", "c": True}
    assert s.update_metadata(later(2), {"b": "x"}) is False


def test_metadata_bounds() -> None:
    with pytest.raises(InvalidValue):
        AgentSession.start(ctx(), agent_id="alice", metadata={"nested": {"no": 1}})  # type: ignore[dict-item]
    with pytest.raises(InvalidValue):
        AgentSession.start(ctx(), agent_id="alice", metadata={f"k{i}": i for i in range(65)})
    with pytest.raises(InvalidValue):
        AgentSession.start(ctx(), agent_id="alice", metadata={"big": "x" * 9000})
    with pytest.raises(InvalidValue):
        AgentSession.start(ctx(), agent_id="alice", metadata={"nan": float("nan")})


# --- refused transitions -------------------------------------------------------------------

REFUSED_FROM_LIVE = [
    ("pending", "heartbeat"),
    ("pending", "complete"),
    ("pending", "fail"),
    ("active", "activate"),
]


@pytest.mark.parametrize(("status", "command"), REFUSED_FROM_LIVE)
def test_refused_from_live_states(status: str, command: str) -> None:
    s = session(status)
    with pytest.raises(InvalidTransition) as refused:
        COMMANDS[command](s, later(1))
    assert not isinstance(refused.value, SessionTerminated)
    assert refused.value.current == status
    assert command.replace("_", " ") not in refused.value.allowed
    assert s.pending_events == []


@pytest.mark.parametrize("status", ["completed", "failed", "expired"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_terminal_states_are_final(status: str, command: str) -> None:
    s = session(status, ttl=600)
    with pytest.raises(SessionTerminated):
        COMMANDS[command](s, later(5000))
    assert s.status is SessionStatus(status)
    assert s.pending_events == []


@pytest.mark.parametrize("status", ["completed", "failed", "expired"])
def test_terminal_sessions_do_not_expire_again(status: str) -> None:
    s = session(status, ttl=600)
    assert s.expire(later(5000)) is False
    assert s.pending_events == []


@pytest.mark.parametrize("status", ["pending", "active"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_lapsed_lease_refuses_every_command_before_expiry_is_recorded(
    status: str, command: str
) -> None:
    s = session(status, ttl=600)
    with pytest.raises(LeaseLapsed):
        COMMANDS[command](s, later(600))
    assert s.effective_status(T0 + timedelta(seconds=600)) is SessionStatus.EXPIRED
    assert s.status is SessionStatus(status)  # nothing recorded yet: computed on read
    assert s.pending_events == []


def test_allowed_commands_follow_state() -> None:
    assert session("pending").allowed_commands(T0) == ("activate", "update metadata")
    assert "heartbeat" in session("active").allowed_commands(T0)
    assert session("active", ttl=600).allowed_commands(T0 + timedelta(seconds=600)) == ()
    assert session("completed").allowed_commands(T0) == ()
