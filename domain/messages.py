"""Messages between agents: requests, responses, notifications and errors, in threads.

A message is its own aggregate, addressed to an agent or to every agent acting in a role (the
recipients are resolved when it is sent and recorded with it). Each recipient reads it once and,
when the sender asked for one, acknowledges it once; a response (or error) answers a request,
in the request's thread.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from agentledger.domain.errors import DomainError, InvalidValue
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.json_objects import validate_json_object
from agentledger.domain.names import NAME
from agentledger.domain.text import clean_optional_text, clean_text
from agentledger.domain.work_items import ROLE_NAME

ADDRESS_PATTERN = re.compile(rf"^(?:{NAME}|role:{ROLE_NAME})$")
ROLE_PREFIX = "role:"
MAX_SUBJECT = 200
MAX_BODY = 32_768
MAX_CONTEXT_BYTES = 16_384
MAX_CONTEXT_DEPTH = 8
MAX_RECIPIENTS = 256


class MessageType(StrEnum):
    REQUEST = "request"
    RESPONSE = "response"
    NOTIFICATION = "notification"
    ERROR = "error"

    @property
    def is_reply(self) -> bool:
        return self in (MessageType.RESPONSE, MessageType.ERROR)


IMPORTANCE = ("low", "normal", "high", "urgent")


class AlreadyMarked(DomainError):
    """A recipient reads a message once, and acknowledges it once."""

    def __init__(self, message_id: UUID, agent_id: str, what: str) -> None:
        self.what = what
        super().__init__(f"agent '{agent_id}' has already {what} message {message_id}")


class AckNotRequired(DomainError):
    def __init__(self, message_id: UUID) -> None:
        super().__init__(f"message {message_id} asked for no acknowledgement")


class NotARecipient(DomainError):
    def __init__(self, message_id: UUID, agent_id: str | None) -> None:
        super().__init__(
            f"{repr(agent_id) if agent_id else 'you'} is not a recipient of message {message_id}"
        )


class Message(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        sender: str
        sender_agent: str | None
        to: str
        recipients: list[str]
        type: str
        thread_id: UUID
        reply_to: UUID | None
        ack_required: bool
        read_by: list[str]
        acked_by: list[str]

    class MessageSent(LedgerAggregate.Created):
        sender: str  # the principal, e.g. agent:alice or user:bob
        sender_agent: str | None
        to: str  # as addressed: an agent id or role:<name>
        recipients: list[str]  # the agents it reached, resolved when sent
        type: str
        subject: str | None
        body: str
        context: dict[str, Any]
        thread_id: UUID
        reply_to: UUID | None
        importance: str
        ack_required: bool

        def apply(self, aggregate: Any) -> None:
            for name in ("sender", "sender_agent", "to", "type", "thread_id", "reply_to"):
                setattr(aggregate, name, getattr(self, name))
            aggregate.recipients = list(self.recipients)
            aggregate.ack_required = self.ack_required
            aggregate.read_by = []
            aggregate.acked_by = []

    class MessageRead(LedgerAggregate.Event):
        agent_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.read_by = [*aggregate.read_by, self.agent_id]

    class MessageAcked(LedgerAggregate.Event):
        agent_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.acked_by = [*aggregate.acked_by, self.agent_id]

    @classmethod
    def send(
        cls,
        ctx: EventContext,
        *,
        sender_agent: str | None,
        to: str,
        recipients: Sequence[str],
        type: str,
        body: str,
        subject: str | None = None,
        context: dict[str, Any] | None = None,
        replying_to: Message | None = None,
        thread: Message | None = None,
        importance: str = "normal",
        ack_required: bool = False,
        message_id: UUID | None = None,
    ) -> Message:
        """`replying_to`: the message this one answers (loaded by the caller); `thread`: the
        first message of the thread it joins, when it names one."""
        kind = _type(type)
        if not ADDRESS_PATTERN.fullmatch(to):
            raise InvalidValue("to must be an agent id or role:<name>", "to")
        if not recipients or len(recipients) > MAX_RECIPIENTS:
            raise InvalidValue(f"a message reaches 1-{MAX_RECIPIENTS} agents", "to")
        if importance not in IMPORTANCE:
            raise InvalidValue(f"importance must be one of {', '.join(IMPORTANCE)}", "importance")
        if not body.strip():
            raise InvalidValue("body must not be empty", "body")
        new_id = message_id or uuid4()
        thread_id = _thread_of(kind, sender_agent, replying_to, thread, new_id)
        return cls._begin(
            cls.MessageSent,
            ctx,
            new_id,
            sender=ctx.actor,
            sender_agent=sender_agent,
            to=to,
            recipients=sorted(set(recipients)),
            type=kind.value,
            subject=clean_optional_text(subject, "subject", MAX_SUBJECT),
            body=clean_text(body, "body", MAX_BODY),
            context=validate_json_object(
                context or {}, "context", MAX_CONTEXT_BYTES, MAX_CONTEXT_DEPTH
            ),
            thread_id=thread_id,
            reply_to=None if replying_to is None else replying_to.id,
            importance=importance,
            ack_required=ack_required,
        )

    def involves(self, agent_id: str | None) -> bool:
        return agent_id is not None and (
            agent_id == self.sender_agent or agent_id in self.recipients
        )

    def mark_read(self, ctx: EventContext, agent_id: str) -> None:
        self._ensure_recipient(agent_id)
        if agent_id in self.read_by:
            raise AlreadyMarked(self.id, agent_id, "read")
        self._record(self.MessageRead, ctx, agent_id=agent_id)

    def acknowledge(self, ctx: EventContext, agent_id: str) -> None:
        """Acknowledge (reading it too, if not read yet)."""
        self._ensure_recipient(agent_id)
        if not self.ack_required:
            raise AckNotRequired(self.id)
        if agent_id in self.acked_by:
            raise AlreadyMarked(self.id, agent_id, "acknowledged")
        if agent_id not in self.read_by:
            self._record(self.MessageRead, ctx, agent_id=agent_id)
        self._record(self.MessageAcked, ctx, agent_id=agent_id)

    def _ensure_recipient(self, agent_id: str) -> None:
        if agent_id not in self.recipients:
            raise NotARecipient(self.id, agent_id)


def _type(value: str) -> MessageType:
    try:
        return MessageType(value)
    except ValueError:
        raise InvalidValue(
            "type must be request, response, notification or error", "type"
        ) from None


def _thread_of(
    kind: MessageType,
    sender_agent: str | None,
    replying_to: Message | None,
    thread: Message | None,
    new_id: UUID,
) -> UUID:
    """A reply is in its original's thread; a message naming a thread joins it; any other
    starts a thread of its own (its id)."""
    if kind.is_reply and replying_to is None:
        raise InvalidValue(f"a {kind.value} answers a request: reply_to is required", "reply_to")
    if replying_to is not None:
        if kind.is_reply and replying_to.type != MessageType.REQUEST.value:
            raise InvalidValue(
                f"a {kind.value} answers a request, not a {replying_to.type}", "reply_to"
            )
        if not replying_to.involves(sender_agent):
            raise NotARecipient(replying_to.id, sender_agent)
        if thread is not None and thread.id != replying_to.thread_id:
            raise InvalidValue("a reply is in its original's thread", "thread_id")
        return replying_to.thread_id
    if thread is not None:
        if thread.thread_id != thread.id:
            raise InvalidValue("thread_id names the first message of a thread", "thread_id")
        return thread.id
    return new_id
