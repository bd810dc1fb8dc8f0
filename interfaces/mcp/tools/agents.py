"""Agents: the directory, messages between agents, handover documents and handoffs of claims."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from agentledger.interfaces.http.agent_schemas import (
    AgentPage,
    AgentWritten,
    ListAgentsQuery,
    PutAgent,
)
from agentledger.interfaces.http.handover_schemas import (
    HandoffBody,
    HandoverOut,
    HandoverWritten,
    WriteHandover,
)
from agentledger.interfaces.http.message_schemas import (
    Address,
    InboxQuery,
    Marked,
    MessagePage,
    MessageWritten,
    SendMessage,
)
from agentledger.interfaces.http.schemas import LooseUUID
from agentledger.interfaces.http.work_item_schemas import WorkItemWritten
from agentledger.interfaces.mcp.api import Caller, seg
from agentledger.interfaces.mcp.tools.base import (
    ExpectedVersion,
    Fence,
    ItemId,
    Mutating,
    SessionId,
    ToolArgs,
    Toolbox,
    body,
)
from agentledger.interfaces.mcp.tools.context import OtherAgent

toolbox = Toolbox()

MessageId = Annotated[LooseUUID, Field(description="The message's id.")]


class RegisterAgentArgs(PutAgent, Mutating):
    agent_id: OtherAgent = None
    expected_version: ExpectedVersion | None = Field(
        default=None,
        description="The profile's version you last saw (0: registering for the first time). "
        "Left out, the profile is written whatever its version.",
    )


class ListAgentsArgs(ListAgentsQuery, ToolArgs):
    pass


class SendMessageArgs(SendMessage, Mutating):
    pass


class NotifyArgs(Mutating):
    to: Address
    body: str = SendMessage.model_fields["body"]  # type: ignore[assignment]
    subject: str | None = SendMessage.model_fields["subject"]  # type: ignore[assignment]
    importance: Literal["low", "normal", "high", "urgent"] = "normal"


class CheckInboxArgs(InboxQuery, ToolArgs):
    agent_id: OtherAgent = None


class AckMessageArgs(Mutating):
    message_id: MessageId


class WriteHandoverArgs(WriteHandover, Mutating):
    session_id: SessionId = None
    expected_version: ExpectedVersion | None = Field(
        default=None, description="When revising it: the document's version you last saw."
    )


class ReadHandoverArgs(ToolArgs):
    agent_id: OtherAgent = None
    handover_id: LooseUUID | None = Field(
        default=None, description="One document by id. Default: the agent's latest."
    )


class OfferHandoffArgs(HandoffBody, Mutating):
    id: ItemId
    fence: Fence
    expected_version: ExpectedVersion | None = None


class AcceptHandoffArgs(Mutating):
    id: ItemId
    session_id: SessionId = None


@toolbox.tool(AgentWritten)
async def register_agent(caller: Caller, args: RegisterAgentArgs) -> object:
    """Register (or update) your profile in the agent directory: display name, kind,
    capabilities (slugs others search by), workspace, endpoints (e.g. your MCP URL) and
    free-form config. The whole profile is written: fields left out are cleared. Your status
    (active, busy, inactive, error) is derived from your sessions, never set here.
    Errors: version-mismatch (current_version), forbidden (another agent's profile)."""
    agent = await caller.agent_id(args.agent_id)
    answer = await caller.write(
        "PUT",
        f"/v1/agents/{seg(agent)}",
        body(args, PutAgent),
        expected_version=args.expected_version,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(AgentPage, read_only=True)
async def list_agents(caller: Caller, args: ListAgentsArgs) -> object:
    """The agent directory: who is there, with capabilities, status (busy: live session
    holding a claim; active: live session; inactive; error: last session failed) and
    last_seen_at. Filter by capability, status or kind to find someone to ask."""
    params = args.model_dump(mode="json", exclude_none=True)
    return (await caller.get("/v1/agents", **params)).body


@toolbox.tool(MessageWritten)
async def send_message(caller: Caller, args: SendMessageArgs) -> object:
    """Write to another agent (to: its id) or to every agent acting in a role (to:
    role:<name>). type request asks for a reply; answer one with type response (or error)
    and reply_to its id. Set ack_required when you need to know it was handled. Errors:
    no-recipients (nobody acts in that role), not-found (reply_to), validation-error."""
    answer = await caller.write(
        "POST", "/v1/messages", body(args, SendMessage), idempotency_key=args.idempotency_key
    )
    return answer.body


@toolbox.tool(MessageWritten)
async def notify(caller: Caller, args: NotifyArgs) -> object:
    """Tell an agent (or role:<name>) something that needs no reply: send_message with type
    notification. Errors: as send_message."""
    sent = body(args, SendMessage, type="notification")
    answer = await caller.write("POST", "/v1/messages", sent, idempotency_key=args.idempotency_key)
    return answer.body


@toolbox.tool(MessagePage, read_only=True)
async def check_inbox(caller: Caller, args: CheckInboxArgs) -> object:
    """Your inbox, oldest first: filter unread, type or thread. With wait (seconds, at most
    60) the call waits for a matching message instead of answering empty: use it to idle
    cheaply. Errors: too-many-waiters (retry later), forbidden (another agent's inbox)."""
    agent = await caller.agent_id(args.agent_id)
    params = args.model_dump(mode="json", include=set(InboxQuery.model_fields), exclude_none=True)
    return (await caller.get(f"/v1/agents/{seg(agent)}/inbox", **params)).body


@toolbox.tool(Marked)
async def ack_message(caller: Caller, args: AckMessageArgs) -> object:
    """Acknowledge a message that asked for it (ack_required), once: the sender sees it was
    handled. Errors: ack-not-required, already-marked, not-a-recipient."""
    answer = await caller.write(
        "POST", f"/v1/messages/{seg(args.message_id)}/ack", idempotency_key=args.idempotency_key
    )
    return answer.body


@toolbox.tool(HandoverWritten)
async def write_handover(caller: Caller, args: WriteHandoverArgs) -> object:
    """Write the handover document your successor reads first: summary, next_steps,
    files_to_read, open_questions, notes and the work items concerned. It is checked
    (mandatory sections, no {{placeholders}}, TODO: or TBD, work items exist) and stored
    with the results: passed, or failures: each rule failed, to fix before you hand off. Write
    it again to revise it (expected_version). Errors: version-mismatch (current_version),
    session-not-owned, no-project-selected (name the project)."""
    session = await caller.session_id(args.session_id)
    answer = await caller.write(
        "POST",
        f"/v1/sessions/{seg(session)}/handover",
        body(args, WriteHandover),
        expected_version=args.expected_version,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(HandoverOut, read_only=True)
async def read_handover(caller: Caller, args: ReadHandoverArgs) -> object:
    """The latest handover document of an agent (default: you): read it first when a new
    session starts, to pick up where the last one stopped. Or one document by handover_id.
    Errors: not-found (none written yet)."""
    if args.handover_id is not None:
        return (await caller.get(f"/v1/handovers/{seg(args.handover_id)}")).body
    agent = await caller.agent_id(args.agent_id)
    return (await caller.get(f"/v1/agents/{seg(agent)}/handovers/latest")).body


@toolbox.tool(WorkItemWritten)
async def offer_handoff(caller: Caller, args: OfferHandoffArgs) -> object:
    """Offer the item you hold to another agent (to_agent), with your fence and, ideally, a
    handover document that passed its checks. While offered, nobody else may claim it and
    you can no longer write it; the other agent takes it with accept_handoff. If it declines
    or the offer expires (expires_in_seconds), the claim comes back to you. Errors:
    claim-lost, fence-required, handoff-pending, handover-incomplete."""
    answer = await caller.write(
        "POST",
        f"/v1/work-items/{seg(args.id)}/handoff",
        body(args, HandoffBody),
        expected_version=args.expected_version,
        fence=args.fence,
        idempotency_key=args.idempotency_key,
    )
    return answer.body


@toolbox.tool(WorkItemWritten)
async def accept_handoff(caller: Caller, args: AcceptHandoffArgs) -> object:
    """Take an item offered to you into your session: the claim becomes yours with a new
    fence (claim.fence). Errors: no-handoff-offered, handoff-for-another-agent,
    session-not-active."""
    session = await caller.session_id(args.session_id)
    answer = await caller.write(
        "POST",
        f"/v1/work-items/{seg(args.id)}/handoff/accept",
        {"session_id": session},
        idempotency_key=args.idempotency_key,
    )
    return answer.body
