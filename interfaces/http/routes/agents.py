"""/v1/agents: the directory, agents' metrics; and /v1/sessions/{id}/timeline."""

from __future__ import annotations

from starlette.responses import Response

from agentledger.application.agents import ProfileDraft
from agentledger.application.readmodels import AgentFilter
from agentledger.interfaces.http.agent_schemas import (
    AgentOut,
    AgentPage,
    AgentWritten,
    ListAgentsQuery,
    MetricsOut,
    PutAgent,
    TimelineEntryOut,
    TimelinePage,
    TimelineQuery,
)
from agentledger.interfaces.http.call import (
    CONSISTENT_WITH_HEADER,
    IF_MATCH_HEADER,
    IF_NONE_MATCH_HEADER,
    HttpCall,
)
from agentledger.interfaces.http.routing import Operation


def put_agent(call: HttpCall) -> Response:
    body = call.body(PutAgent)
    agent_id = call.path("agent_id")
    outcome = call.runtime.agents.put(
        call.context(), agent_id, ProfileDraft(**body.model_dump()), call.precondition()
    )
    put = outcome.value
    out = AgentOut.model_validate(put.agent, from_attributes=True)
    written = AgentWritten(**out.model_dump(), position=outcome.position)
    return call.written(
        outcome,
        written,
        put.agent.version,
        status=201 if put.created else 200,
        location=f"/v1/agents/{agent_id}" if put.created else None,
    )


def get_agent(call: HttpCall) -> Response:
    read = call.runtime.agents.get(call.path("agent_id"), consistent_with=call.consistent_with())
    out = AgentOut.model_validate(read.value, from_attributes=True)
    return call.read(out, read.position, read.value.version or None)


def list_agents(call: HttpCall) -> Response:
    query = call.query(ListAgentsQuery)
    page = call.runtime.agents.list(
        AgentFilter(query.capability, query.status, query.kind),
        limit=query.limit,
        cursor=query.cursor,
        consistent_with=call.consistent_with(),
    )
    body = AgentPage(
        items=[AgentOut.model_validate(a, from_attributes=True) for a in page.items],
        next_cursor=page.next_cursor,
        position=page.position,
    )
    return call.read(body, page.position)


def agent_metrics(call: HttpCall) -> Response:
    read = call.runtime.agents.metrics(
        call.path("agent_id"), consistent_with=call.consistent_with()
    )
    return call.read(MetricsOut.model_validate(read.value, from_attributes=True), read.position)


def session_timeline(call: HttpCall) -> Response:
    query = call.query(TimelineQuery)
    page = call.runtime.agents.timeline(
        call.principal,
        call.path_uuid("session_id", "session"),
        limit=query.limit,
        cursor=query.cursor,
        consistent_with=call.consistent_with(),
    )
    body = TimelinePage(
        items=[TimelineEntryOut.model_validate(r, from_attributes=True) for r in page.items],
        next_cursor=page.next_cursor,
        position=page.position,
    )
    return call.read(body, page.position)


_READ = (CONSISTENT_WITH_HEADER,)
_TAGS = ("agents",)
OPERATIONS = [
    Operation(
        "PUT",
        "/v1/agents/{agent_id}",
        put_agent,
        "Register or update an agent's profile (the agent itself or a coordinator)",
        body=PutAgent,
        response=AgentWritten,
        also=(201,),
        errors=(400, 403, 409, 412, 413, 415),
        headers=(IF_MATCH_HEADER, IF_NONE_MATCH_HEADER),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/agents",
        list_agents,
        "The agent directory, by agent id, with each agent's derived status",
        query=ListAgentsQuery,
        response=AgentPage,
        errors=(400,),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/agents/{agent_id}",
        get_agent,
        "One agent of the directory",
        response=AgentOut,
        errors=(400, 404),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/agents/{agent_id}/metrics",
        agent_metrics,
        "An agent's metrics: work done, answers given, sessions failed or expired",
        response=MetricsOut,
        errors=(400, 404),
        headers=_READ,
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/sessions/{session_id}/timeline",
        session_timeline,
        "Everything a session did, in log order (its agent, coordinators, auditors)",
        query=TimelineQuery,
        response=TimelinePage,
        errors=(400, 403, 404),
        headers=_READ,
        tags=("sessions",),
    ),
]
