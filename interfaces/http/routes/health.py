"""Liveness, readiness and the API description: no authentication needed."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from agentledger.interfaces.http.call import HttpCall
from agentledger.interfaces.http.routing import Operation


def healthz(call: HttpCall) -> Response:
    return JSONResponse({"status": "ok"})


def readyz(call: HttpCall) -> Response:
    runtime = call.runtime
    store = runtime.is_store_reachable()
    runners = [
        {
            "name": s.name,
            "kind": s.kind,
            "state": s.state,
            "position": s.position,
            "lag": s.lag,
            "restarts": s.restarts,
            "last_error": s.last_error,
        }
        for s in (runtime.runners.statuses() if store else [])
    ]
    ready = store and runtime.runners.healthy()
    body = {
        "status": "ready" if ready else "not-ready",
        "store": "reachable" if store else "unreachable",
        "runners": runners,
    }
    return JSONResponse(body, status_code=200 if ready else 503)


def openapi(call: HttpCall) -> Response:
    return JSONResponse(call.request.app.state.openapi)


OPERATIONS = [
    Operation(
        "GET",
        "/healthz",
        healthz,
        "The process is up",
        authenticated=False,
        blocking=False,
        tags=("health",),
    ),
    Operation(
        "GET",
        "/readyz",
        readyz,
        "The store is reachable and projections are running",
        authenticated=False,
        errors=(503,),
        tags=("health",),
    ),
    Operation(
        "GET",
        "/openapi.json",
        openapi,
        "This API description",
        authenticated=False,
        tags=("health",),
    ),
]
