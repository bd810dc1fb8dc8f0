"""/v1/projections: the read models, the seal and the policies, as operators watch them."""

from __future__ import annotations

import json
from dataclasses import asdict

from starlette.responses import JSONResponse, Response

from agentledger.application.errors import NotFound
from agentledger.domain.access import Role
from agentledger.infrastructure.readmodels.verify import check
from agentledger.interfaces.http.call import HttpCall
from agentledger.interfaces.http.routing import Operation


def list_projections(call: HttpCall) -> Response:
    call.principal.require_any_role(Role.AUDITOR)  # admins too
    statuses = call.runtime.runners.statuses()
    return JSONResponse({"projections": [s.as_json() for s in statuses]})


def verify_projection(call: HttpCall) -> Response:
    """Replays the read model from the log and compares (see `readmodels/verify.py`); reads
    the whole of it, so admins only."""
    call.principal.require_any_role(Role.ADMIN)
    name = call.path("projection")
    runner = call.runtime.runners.projections.get(name)
    if runner is None:
        raise NotFound("projection", name)
    result = check(call.runtime.ledger, runner.worker.read_model, runner.worker.projection)
    body = {**asdict(result), "identical": result.identical}
    return JSONResponse(_jsonable(body))


def _jsonable(value: object) -> object:
    # Row values include times and ids: as text, the way the rest of the API writes them.
    return json.loads(json.dumps(value, default=str))


_TAGS = ("projections",)
OPERATIONS = [
    Operation(
        "GET",
        "/v1/projections",
        list_projections,
        "Each read model, the seal and each policy: version, state, position, lag (auditor "
        "or admin)",
        errors=(403,),
        tags=_TAGS,
    ),
    Operation(
        "GET",
        "/v1/projections/{projection}/verification",
        verify_projection,
        "Replay a read model from the log and compare it row by row with the live one (admin)",
        errors=(403, 404),
        tags=_TAGS,
    ),
]
