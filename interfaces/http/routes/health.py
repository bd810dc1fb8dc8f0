"""Liveness, readiness and the API description: no authentication needed."""

from __future__ import annotations

from starlette.responses import JSONResponse, Response

from agentledger.infrastructure.metrics import (
    CONTENT_TYPE,
    exposition,
    observe_runners,
    observe_sessions,
    observe_store_pool,
)
from agentledger.infrastructure.readmodels.sessions import SessionsReadModel
from agentledger.interfaces.http.call import HttpCall
from agentledger.interfaces.http.routing import TEXT, Operation


def healthz(call: HttpCall) -> Response:
    return JSONResponse({"status": "ok"})


def readyz(call: HttpCall) -> Response:
    runtime = call.runtime
    store = runtime.is_store_reachable()
    statuses = runtime.runners.statuses() if store else []
    runners = [s.as_json() for s in statuses]
    sweeper = runtime.sweeper.status()
    # A process that does not sweep (`projections run`, tests) shows it stopped; failing is
    # what makes it not ready.
    ready = store and runtime.runners.healthy(statuses) and sweeper.state != "faulted"
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
    # Counters answer even when the store does not; the gauges read from it then keep their
    # last values (`/readyz` says what is wrong).
    runtime = call.runtime
    observe_store_pool(runtime.ledger.recorder)  # the pool's own counts: no store access
    if runtime.is_store_reachable():
        observe_runners(runtime.runners.statuses())
        sessions = runtime.read_models[SessionsReadModel.name]
        if isinstance(sessions, SessionsReadModel):
            observe_sessions(sessions, runtime.clock.now())
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
