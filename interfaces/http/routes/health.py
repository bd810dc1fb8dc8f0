"""Liveness, readiness and the API description: no authentication needed."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from agentledger.infrastructure.metrics import CONTENT_TYPE, exposition, observe_runners
from agentledger.interfaces.http.call import HttpCall
from agentledger.interfaces.http.routing import TEXT, Operation


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
    sweeper = runtime.sweeper.status()
    # A process that does not sweep (`projections run`, tests) shows it stopped; failing is
    # what makes it not ready.
    ready = store and runtime.runners.healthy() and sweeper.state != "failed"
    body = {
        "status": "ready" if ready else "not-ready",
        "store": "reachable" if store else "unreachable",
        "runners": runners,
        "sweeper": {
            "state": sweeper.state,
            "passes": sweeper.passes,
            "restarts": sweeper.restarts,
            "last_error": sweeper.last_error,
        },
    }
    return JSONResponse(body, status_code=200 if ready else 503)


def openapi(call: HttpCall) -> Response:
    return JSONResponse(call.request.app.state.openapi)


def metrics(call: HttpCall) -> Response:
    # Counters answer even when the store does not; the runners' gauges then keep their
    # last values (`/readyz` says what is wrong).
    if call.runtime.is_store_reachable():
        observe_runners(call.runtime.runners.statuses())
    return Response(exposition(), media_type=CONTENT_TYPE)


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
        "The store is reachable, and projections, policies and the sweeper are not failing",
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
    Operation(
        "GET",
        "/metrics",
        metrics,
        "Metrics in the Prometheus text format: requests, refusals, 401s, projections",
        authenticated=False,
        media=(TEXT,),
        tags=("health",),
    ),
]
