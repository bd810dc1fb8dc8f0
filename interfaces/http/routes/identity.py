"""/v1/me: who the token speaks for, so a client (the MCP server among them) need not guess."""

from __future__ import annotations

from pydantic import Field
from starlette.responses import Response

from agentledger.interfaces.http.call import HttpCall
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.schemas import Strict


class MeOut(Strict):
    principal: str = Field(description="agent:NAME, user:NAME or service:NAME")
    agent_id: str | None = Field(description="The agent the token acts as (agent:NAME tokens).")
    roles: list[str] = Field(description="The token's roles, sorted.")


def get_me(call: HttpCall) -> Response:
    principal = call.principal
    me = MeOut(principal=principal.name, agent_id=principal.agent_id, roles=sorted(principal.roles))
    return Response(me.model_dump_json(), media_type="application/json")


OPERATIONS = [
    Operation(
        "GET",
        "/v1/me",
        get_me,
        "The caller: the token's principal, its agent and its roles",
        response=MeOut,
        tags=("sessions",),
    ),
]
