"""Messages between agents: send, read, acknowledge; inboxes (long-polled), threads,
conversations, and what waits for a reply or an acknowledgement."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from agentledger.application import deadlines
from agentledger.application.clock import Clock
from agentledger.application.commands import CommandRunner, Outcome, UnitOfWork
from agentledger.application.consistency import Consistency
from agentledger.application.context import Principal, RequestContext
from agentledger.application.errors import Forbidden, NoRecipients, NotFound, TooManyWaiters
from agentledger.application.readmodels import (
    MAX_PAGE,
    Cursors,
    MessageFilter,
    MessageRow,
    MessagesReader,
    Page,
    Read,
)
from agentledger.domain.access import Role
from agentledger.domain.events import EventContext
from agentledger.domain.messages import ROLE_PREFIX, Message
from agentledger.domain.names import validate_agent_id
from agentledger.domain.sessions import AgentSession

MAX_WAIT_SECONDS = 30
WAIT_POLL_SECONDS = 0.05  # how often a long-poll looks whether the read model moved


class Recipients(Protocol):
    """Who a message reaches, as the read models know it when it is sent."""

    def position(self) -> int: ...

    def known(self, agent_id: str) -> bool:
        """Whether the agent has ever had a session (or a directory entry)."""

    def acting_in(self, role: str, now: datetime) -> list[str]:
        """Agents with a live session acting in `role` at `now`."""


@dataclass(frozen=True)
class NewMessage:
    to: str
    type: str
    body: str
    subject: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    thread_id: UUID | None = None
    reply_to: UUID | None = None
    importance: str = "normal"
    ack_required: bool = False
    session_id: UUID | None = None  # the sender's session, recorded on the event


@dataclass(frozen=True)
class MessageView:
    id: UUID
    sender: str
    sender_agent: str | None
    to: str
    recipients: list[str]
    type: str
    subject: str | None
    body: str
    context: dict[str, Any]
    thread_id: UUID
    reply_to: UUID | None
    importance: str
    ack_required: bool
    created_at: datetime
    answered_at: datetime | None = None  # a request's first answer
    answered_by: str | None = None
    read_at: datetime | None = None  # in an inbox: when its recipient read it
    acked_at: datetime | None = None
    position: int | None = None  # where in the log it was sent (on reads)

    @classmethod
    def of_row(cls, row: MessageRow) -> MessageView:
        names = [n for n in cls.__dataclass_fields__ if n not in ("to", "position")]
        fields = {n: getattr(row, n) for n in names}
        return cls(to=row.addressed_to, position=row.created_position, **fields)

    @classmethod
    def of_aggregate(cls, message: Message, sent: Message.MessageSent) -> MessageView:
        values = {
            name: getattr(sent, name)
            for name in cls.__dataclass_fields__
            if hasattr(sent, name) and name not in ("id", "created_at")
        }
        return cls(id=message.id, created_at=sent.timestamp, **values)


class MessageService:
    def __init__(
        self,
        commands: CommandRunner,
        reader: MessagesReader,
        recipients: Recipients,
        clock: Clock,
        consistency: Consistency,
        cursors: Cursors,
        max_waiters: int = 32,
    ) -> None:
        self._commands = commands
        self._reader = reader
        self._recipients = recipients
        self._clock = clock
        self._consistency = consistency
        self._cursors = cursors
        # A long-poll holds a worker thread while it waits: only so many at once.
        self._waiters = threading.BoundedSemaphore(max_waiters)

    def send(self, request: RequestContext, new: NewMessage) -> Outcome[MessageView]:
        principal = request.principal
        principal.require_any_role(Role.AGENT, Role.COORDINATOR)
        recipients = self._resolve(new.to)

        def decide(uow: UnitOfWork, ctx: EventContext) -> MessageView:
            if new.session_id is not None:
                session = uow.get(AgentSession, new.session_id, "session")
                session.ensure_active_for(principal.agent_id or principal.name, ctx.occurred_at)
            original = None if new.reply_to is None else uow.get(Message, new.reply_to, "message")
            thread = None if new.thread_id is None else uow.get(Message, new.thread_id, "thread")
            message = Message.send(
                ctx,
                sender_agent=principal.agent_id,
                to=new.to,
                recipients=recipients,
                type=new.type,
                body=new.body,
                subject=new.subject,
                context=new.context,
                replying_to=original,
                thread=thread,
                importance=new.importance,
                ack_required=new.ack_required,
            )
            uow.add(message)
            (sent,) = (e for e in message.pending_events if isinstance(e, Message.MessageSent))
            return MessageView.of_aggregate(message, sent)

        return self._commands.run(request, "messages.send", decide, session=new.session_id)

    def mark_read(self, request: RequestContext, message_id: UUID) -> Outcome[UUID]:
        return self._mark(request, message_id, "messages.read", Message.mark_read)

    def acknowledge(self, request: RequestContext, message_id: UUID) -> Outcome[UUID]:
        return self._mark(request, message_id, "messages.ack", Message.acknowledge)

    def _mark(
        self,
        request: RequestContext,
        message_id: UUID,
        command: str,
        act: Callable[[Message, EventContext, str], None],
    ) -> Outcome[UUID]:
        principal = request.principal
        principal.require_any_role(Role.AGENT, Role.COORDINATOR)
        agent_id = principal.agent_id
        if agent_id is None:
            raise Forbidden("only a recipient agent reads or acknowledges a message")

        def decide(uow: UnitOfWork, ctx: EventContext) -> UUID:
            message = uow.get(Message, message_id, "message")
            act(message, ctx, agent_id)
            return message.id

        return self._commands.run(request, command, decide)

    def _resolve(self, to: str) -> list[str]:
        """The agents `to` names now. Nobody found: looked for again once the read model has
        caught up with the log, so a session started a moment ago is not missed."""
        found = self._lookup(to)
        if not found:
            self._consistency.wait(self._recipients, self._commands.head_position())
            found = self._lookup(to)
        if not found and to.startswith(ROLE_PREFIX):
            raise NoRecipients(to)
        if not found:
            raise NotFound("agent", to)
        return found

    def _lookup(self, to: str) -> list[str]:
        if to.startswith(ROLE_PREFIX):
            return self._recipients.acting_in(to.removeprefix(ROLE_PREFIX), self._clock.now())
        agent = validate_agent_id(to)
        return [agent] if self._recipients.known(agent) else []

    # --- queries --------------------------------------------------------------------------

    def get(
        self, principal: Principal, message_id: UUID, consistent_with: int | None = None
    ) -> Read[MessageView]:
        position = self._consistency.wait(self._reader, consistent_with)
        row = self._reader.get(message_id)
        if row is None:
            raise NotFound("message", str(message_id))
        _may_read(principal, [row.sender_agent, *row.recipients])
        return Read(MessageView.of_row(row), position)

    def inbox(
        self,
        principal: Principal,
        where: MessageFilter,
        *,
        limit: int = 50,
        cursor: str | None = None,
        wait: float = 0,
        consistent_with: int | None = None,
    ) -> Page[MessageView]:
        """The agent's messages, oldest first. With `wait`, an empty answer waits (at most
        `wait` seconds) for the next message to arrive instead."""
        _may_read(principal, [where.agent_id])
        filters = {k: None if v is None else str(v) for k, v in vars(where).items()}
        after = self._cursors.decode(cursor, filters).position() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._reader, consistent_with)
        rows = self._reader.inbox(where, limit=limit + 1, after_position=after)
        if not rows and wait > 0:
            position, rows = self._wait_for(where, limit, after, position, wait)
        return self._cursors.page(
            rows, limit, filters, position, lambda r: r.created_position, MessageView.of_row
        )

    def since(
        self, principal: Principal, where: MessageFilter, position: int, wait: float = 0
    ) -> list[MessageView]:
        """What arrived in the inbox after log `position`, oldest first (at most a page);
        with `wait`, waits for the next message when none has (what a follower reads)."""
        _may_read(principal, [where.agent_id])
        rows = self._reader.inbox(where, limit=MAX_PAGE, after_position=position)
        if not rows and wait > 0:
            _, rows = self._wait_for(where, MAX_PAGE - 1, position, self._reader.position(), wait)
        return [MessageView.of_row(r) for r in rows]

    def _wait_for(
        self, where: MessageFilter, limit: int, after: int | None, position: int, wait: float
    ) -> tuple[int, list[MessageRow]]:
        if not self._waiters.acquire(blocking=False):
            raise TooManyWaiters()
        try:
            deadline = time.monotonic() + min(wait, MAX_WAIT_SECONDS)
            while time.monotonic() < deadline:
                time.sleep(WAIT_POLL_SECONDS)
                with deadlines.renewed():  # the wait is not the store's time; each look is
                    reached = self._reader.position()
                    if reached > position:
                        position = reached
                        rows = self._reader.inbox(where, limit=limit + 1, after_position=after)
                        if rows:
                            return position, rows
            return position, []
        finally:
            self._waiters.release()

    def thread(
        self, principal: Principal, thread_id: UUID, consistent_with: int | None = None
    ) -> Read[list[MessageView]]:
        """A thread, oldest first (at most MAX_PAGE messages)."""
        position = self._consistency.wait(self._reader, consistent_with)
        rows = self._reader.thread(thread_id, MAX_PAGE)
        if not rows:
            raise NotFound("thread", str(thread_id))
        involved = {a for r in rows for a in (r.sender_agent, *r.recipients) if a}
        _may_read(principal, sorted(involved))
        return Read([MessageView.of_row(r) for r in rows], position)

    def conversation(
        self,
        principal: Principal,
        agent_id: str,
        other: str,
        *,
        limit: int = 50,
        cursor: str | None = None,
        consistent_with: int | None = None,
    ) -> Page[MessageView]:
        """What two agents sent each other, newest first."""
        _may_read(principal, [agent_id, other])
        filters = {"agent_id": agent_id, "other": other}
        before = self._cursors.decode(cursor, filters).position() if cursor else None
        limit = max(1, min(MAX_PAGE, limit))
        position = self._consistency.wait(self._reader, consistent_with)
        rows = self._reader.conversation(agent_id, other, limit=limit + 1, before_position=before)
        return self._cursors.page(
            rows, limit, filters, position, lambda r: r.created_position, MessageView.of_row
        )

    def waiting(
        self,
        principal: Principal,
        agent_id: str,
        what: str,
        side: str,
        consistent_with: int | None = None,
    ) -> Read[list[MessageView]]:
        """Requests waiting for a reply (`what="reply"`) or messages waiting for an
        acknowledgement (`"ack"`), that the agent received (`side="received"`) or sent."""
        _may_read(principal, [agent_id])
        position = self._consistency.wait(self._reader, consistent_with)
        rows = self._reader.waiting(agent_id, what, side, MAX_PAGE)
        return Read([MessageView.of_row(r) for r in rows], position)


def _may_read(principal: Principal, agents: Sequence[str | None]) -> None:
    """Messages are read by the agents they involve, coordinators and auditors."""
    if principal.has_any_role(Role.COORDINATOR, Role.AUDITOR):
        return
    if principal.agent_id is not None and principal.agent_id in agents:
        return
    raise Forbidden(f"{principal.name} may not read these messages")
