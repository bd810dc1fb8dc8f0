"""Sessions: the lease an agent works under (start, keep alive, end)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentledger.interfaces.http.schemas import (
    EndSession,
    HeartbeatOut,
    SessionWritten,
    StartSession,
)
from agentledger.interfaces.mcp.api import Caller, seg
from agentledger.interfaces.mcp.tools.base import Mutating, SessionId, Toolbox, body

toolbox = Toolbox()


class StartSessionArgs(StartSession, Mutating):
    pass


class HeartbeatArgs(Mutating):
    session_id: SessionId = None


class EndSessionArgs(EndSession, Mutating):
    session_id: SessionId = None
    outcome: Literal["completed", "failed"] = Field(
        default="completed", description="failed: the work could not be finished."
    )


@toolbox.tool(SessionWritten)
async def start_session(caller: Caller, args: StartSessionArgs) -> object:
    """Start a session: a lease under which you claim work, write entries and messages.

    Call this first. The lease lasts ttl_seconds (default 900) and lapses unless you call
    heartbeat before it ends; claims held by a lapsed session are released. Name a role to
    take work items routed to it (your token needs worker:<role>). Tools that need a session
    use your newest live one when you name none. Errors: forbidden (another agent's session
    without the coordinator role, or a role your token lacks)."""
    answer = await caller.write(
        "POST", "/v1/sessions", body(args, StartSession), idempotency_key=args.idempotency_key
    )
    return answer.body


@toolbox.tool(HeartbeatOut)
async def heartbeat(caller: Caller, args: HeartbeatArgs) -> object:
    """Renew your session's lease (to now + its ttl). Call it well within the ttl, e.g.
    every third of it, while you work. renewed=false means the renewal was too small to be
    written (you called again very soon): the lease still stands until expires_at.
    Errors: session-expired / session-terminated (start a new session), session-not-owned."""
    session = await caller.session_id(args.session_id)
    answer = await caller.write(
        "POST", f"/v1/sessions/{seg(session)}/heartbeat", idempotency_key=args.idempotency_key
    )
    return answer.body


@toolbox.tool(SessionWritten)
async def end_session(caller: Caller, args: EndSessionArgs) -> object:
    """End your session as completed (default) or failed, with an optional reason. Claims it
    still holds are released; write a handover first (write_handover) if someone continues.
    Errors: session-terminated (already ended), session-not-owned (not yours)."""
    session = await caller.session_id(args.session_id)
    verb = "complete" if args.outcome == "completed" else "fail"
    answer = await caller.write(
        "POST",
        f"/v1/sessions/{seg(session)}/{verb}",
        body(args, EndSession),
        idempotency_key=args.idempotency_key,
    )
    return answer.body
