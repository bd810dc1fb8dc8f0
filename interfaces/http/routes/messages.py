"""/v1/messages, inboxes, threads and conversations: what agents tell each other."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.application.messages import MessageView, NewMessage
from agentledger.application.readmodels import MessageFilter
from agentledger.interfaces.http.call import CONSISTENT_WITH_HEADER, HttpCall
from agentledger.interfaces.http.message_schemas import (
    InboxQuery,
    Marked,
    MessageList,
    MessageOut,
    MessagePage,
    MessageWritten,
    PageQuery,
    SendMessage,
    WaitingQuery,
)
from agentledger.interfaces.http.routing import Handler, Operation
from agentledger.interfaces.http.schemas import EmptyBody


def _out(view: MessageView) -> MessageOut:
    return MessageOut.model_validate(view, from_attributes=True)


def send_message(call: HttpCall) -> Response:
    body = call.body(SendMessage)
    outcome = call.runtime.messages.send(call.context(), NewMessage(**body.model_dump()))
    sent = outcome.value
    written = MessageWritten(**{**_out(sent).model_dump(), "position": outcome.position})
    return call.written(outcome, written, None, status=201, location=f"/v1/messages/{sent.id}")


def get_message(call: HttpCall) -> Response:
    read = call.runtime.messages.get(
        call.principal,
        call.path_uuid("message_id", "message"),
        consistent_with=call.consistent_with(),
    )
    return call.read(_out(read.value), read.position)


def inbox(call: HttpCall) -> Response:
    query = call.query(InboxQuery)
    where = MessageFilter(call.path("agent_id"), query.unread, query.type, query.thread_id)
    page = call.runtime.messages.inbox(
        call.principal,
        where,
        limit=query.limit,
        cursor=query.cursor,
        wait=query.wait,
        consistent_with=call.consistent_with(),
    )
    body = MessagePage(
        items=[_out(m) for m in page.items], next_cursor=page.next_cursor, position=page.position
    )
    return call.read(body, page.position)


def _mark(action: str) -> Handler:
    def handler(call: HttpCall) -> Response:
        call.body(EmptyBody)
        command = getattr(call.runtime.messages, action)
        outcome = command(call.context(), call.path_uuid("message_id", "message"))
        return call.written(outcome, Marked(id=outcome.value, position=outcome.position), None)

    handler.__name__ = f"{action}_message"
    return handler


mark_read = _mark("mark_read")
acknowledge = _mark("acknowledge")


def get_thread(call: HttpCall) -> Response:
    read = call.runtime.messages.thread(
        call.principal,
        call.path_uuid("thread_id", "thread"),
        consistent_with=call.consistent_with(),
    )
    return call.read(
        MessageList(items=[_out(m) for m in read.value], position=read.position), read.position
    )


def conversation(call: HttpCall) -> Response:
    query = call.query(PageQuery)
    page = call.runtime.messages.conversation(
        call.principal,
        call.path("agent_id"),
        call.path("other_agent_id"),
        limit=query.limit,
        cursor=query.cursor,
        consistent_with=call.consistent_with(),
    )
    body = MessagePage(
        items=[_out(m) for m in page.items], next_cursor=page.next_cursor, position=page.position
    )
    return call.read(body, page.position)


def _waiting(what: str) -> Handler:
    def handler(call: HttpCall) -> Response:
        query = call.query(WaitingQuery)
        read = call.runtime.messages.waiting(
            call.principal,
            call.path("agent_id"),
            what,
            query.side,
            consistent_with=call.consistent_with(),
        )
        body = MessageList(items=[_out(m) for m in read.value], position=read.position)
        return call.read(body, read.position)

    handler.__name__ = f"waiting_for_{what}"
    return handler


_READ = (CONSISTENT_WITH_HEADER,)
_TAGS = ("messages",)
_AGENT = "/v1/agents/{agent_id}"
OPERATIONS = [
    Operation(
        "POST",
        "/v1/messages",
        send_message,
        "Send a message to an agent or to every agent acting in a role",
        body=SendMessage,
        body_required=True,
        response=MessageWritten,
        status=201,
        errors=(400, 403, 404, 409, 413, 415),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/messages/{message_id}",
        get_message,
        "Get one message (its sender, recipients, coordinators, auditors)",
        response=MessageOut,
        errors=(400, 403, 404),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "POST",
        "/v1/messages/{message_id}/read",
        mark_read,
        "Mark a message read (a recipient, once)",
        body=EmptyBody,
        response=Marked,
        errors=(400, 403, 404, 409, 413, 415),
        tags=_TAGS,
    ),
    Operation(
        "POST",
        "/v1/messages/{message_id}/ack",
        acknowledge,
        "Acknowledge a message that asked for it (a recipient, once)",
        body=EmptyBody,
        response=Marked,
        errors=(400, 403, 404, 409, 413, 415),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        _AGENT + "/inbox",
        inbox,
        "An agent's inbox, oldest first; wait= long-polls for the next message",
        query=InboxQuery,
        response=MessagePage,
        errors=(400, 403),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/threads/{thread_id}",
        get_thread,
        "A thread, oldest first",
        response=MessageList,
        errors=(400, 403, 404),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        _AGENT + "/conversations/{other_agent_id}",
        conversation,
        "What two agents sent each other, newest first",
        query=PageQuery,
        response=MessagePage,
        errors=(400, 403),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        _AGENT + "/requests/unanswered",
        _waiting("reply"),
        "Requests waiting for a reply (received, or sent with side=sent)",
        query=WaitingQuery,
        response=MessageList,
        errors=(400, 403),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        _AGENT + "/messages/unacked",
        _waiting("ack"),
        "Messages waiting for an acknowledgement (received, or sent with side=sent)",
        query=WaitingQuery,
        response=MessageList,
        errors=(400, 403),
        headers=_READ,
        tags=_TAGS,
    ),
]
