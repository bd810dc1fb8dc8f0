"""Request and response shapes of messages between agents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from agentledger.application.messages import MAX_WAIT_SECONDS, MessageView
from agentledger.domain.messages import ADDRESS_PATTERN, MAX_BODY, MAX_SUBJECT
from agentledger.interfaces.http.schemas import (
    CursorToken,
    LooseUUID,
    Query,
    Strict,
    response_model,
    text,
)

MessageTypeName = Literal["request", "response", "notification", "error"]
Address = Annotated[
    str,
    Field(
        pattern=ADDRESS_PATTERN.pattern,
        description="An agent id, or role:<name> for every agent with a live session acting "
        "in that role.",
    ),
]


class SendMessage(Strict):
    to: Address
    type: MessageTypeName
    subject: str | None = text(MAX_SUBJECT)
    body: str = text(MAX_BODY, required=True)
    context: dict[str, Any] = Field(
        default_factory=dict, description="A JSON object: at most 16 KiB, 8 levels deep."
    )
    thread_id: LooseUUID | None = Field(
        default=None, description="Join this thread (the id of its first message)."
    )
    reply_to: LooseUUID | None = Field(
        default=None, description="The message answered: a response or error needs a request."
    )
    importance: Literal["low", "normal", "high", "urgent"] = "normal"
    ack_required: bool = False
    session_id: LooseUUID | None = Field(
        default=None, description="Your active session: the message is in its timeline."
    )


class InboxQuery(Query):
    unread: bool | None = None
    type: MessageTypeName | None = None
    thread_id: LooseUUID | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: CursorToken | None = None
    wait: float = Field(
        default=0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for a message when none matches (long-poll).",
    )


class PageQuery(Query):
    limit: int = Field(default=50, ge=1, le=500)
    cursor: CursorToken | None = None


class WaitingQuery(Query):
    side: Literal["received", "sent"] = Field(
        default="received", description="What the agent received, or what it sent."
    )


MessageOut = response_model(
    "MessageOut",
    MessageView,
    described={
        "recipients": "The agents it reached (resolved when sent).",
        "answered_at": "A request's first answer from one of its recipients.",
        "read_at": "In an inbox: when its agent read it.",
        "acked_at": "In an inbox: when its agent acknowledged it.",
        "position": "Where in the log it was sent.",
    },
)


class MessageWritten(MessageOut):
    position: int  # the send's position in the log


class MessagePage(Strict):
    items: list[MessageOut]
    next_cursor: str | None
    position: int


class MessageList(Strict):
    items: list[MessageOut]
    position: int


class Marked(Strict):
    id: LooseUUID
    position: int
