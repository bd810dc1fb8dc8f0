"""`http-floor`: the floor's raw `INSERT` + `COMMIT` behind the same HTTP stack AgentLedger
serves on: uvicorn with AgentLedger's edge protocol (httptools) and limits, uvloop, the same
number of worker processes, a Starlette route run on the thread pool, a psycopg pool of the
same size, JSON in and out, and `Server-Timing` measured the same way. Driven by the same load
generator (`bench.http_client`), it shows what this stack can do at all on this machine, so
AgentLedger over HTTP is compared with that as well as with the raw-socket floor.

Every command is one request: `POST /floor/<command>` with a small JSON body, answered `201`
with the row's id once the row is committed.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from bench.core import Operation
from bench.harness import free_port, server_process
from bench.http_client import Client
from bench.http_work_items import server_seconds
from bench.sql_competitors import EVENT_STATE, throwaway_schema

URL_VARIABLE, SCHEMA_VARIABLE = "BENCH_FLOOR_DATABASE_URL", "BENCH_FLOOR_SCHEMA"
POOL_VARIABLE = "BENCH_FLOOR_POOL"  # "size,overflow", as AgentLedger's workers get


def create_app() -> Starlette:
    """One worker process's app (uvicorn calls this in each)."""
    schema = os.environ[SCHEMA_VARIABLE]
    size, overflow = (int(n) for n in os.environ[POOL_VARIABLE].split(","))
    # As large as an AgentLedger worker's, but holding nothing between its cells (connections
    # close after a second idle): the competitors share the server's max_connections, and the
    # next cell is another competitor's. Each cell's first requests open their connections.
    pool = psycopg_pool.ConnectionPool(
        os.environ[URL_VARIABLE], min_size=0, max_size=size + overflow, max_idle=1.0, open=True
    )
    statement = (
        f'INSERT INTO "{schema}".bench_floor_events (stream, version, topic, state)'
        " VALUES (%s, %s, %s, %s) RETURNING id"
    )

    def insert(command: str, body: dict[str, Any]) -> int:
        stream = uuid.UUID(str(body["stream"]))
        with pool.connection() as conn:  # commits on leaving
            row = conn.execute(
                statement, (stream, int(body["version"]), command, EVENT_STATE), prepare=True
            ).fetchone()
        assert row is not None
        return int(row[0])

    async def write(request: Request) -> Response:
        body = await request.json()
        row = await run_in_threadpool(insert, request.path_params["command"], body)
        return Response(json.dumps({"id": row}), status_code=201, media_type="application/json")

    app = Starlette(routes=[Route("/floor/{command}", write, methods=["POST"])])
    return _Timed(app)  # type: ignore[return-value]


class _Timed:
    """`Server-Timing: app;dur=<ms>` from the request's arrival to its answer's start, as
    AgentLedger's own middleware measures it."""

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()

        async def timed(message: dict) -> None:  # type: ignore[type-arg]
            if message["type"] == "http.response.start":
                elapsed_ms = (time.perf_counter() - started) * 1000
                message.setdefault("headers", []).append(
                    (b"server-timing", f"app;dur={elapsed_ms:.2f}".encode())
                )
            await send(message)

        await self.app(scope, receive, timed)


def serve(port: int, workers: int) -> None:
    """uvicorn as `agentledger serve` runs it: its edge protocol, limits and loop."""
    import uvicorn

    from agentledger.infrastructure.settings import Settings

    settings = Settings()
    uvicorn.run(
        "bench.http_floor:create_app",
        factory=True,
        workers=workers,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        http="agentledger.interfaces.http.edge:EdgeProtocol",
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_seconds,
    )


@contextmanager
def floor_served(url: str, schema: str, workers: int, pool: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, URL_VARIABLE: url, SCHEMA_VARIABLE: schema, POOL_VARIABLE: pool}
    command = [sys.executable, "-m", "bench.http_floor", str(port), str(workers)]
    with server_process(command, env, port, _probe) as base:
        yield base


def _probe(base: str) -> None:
    probe = Client(base)
    try:
        probe.post("/floor/probe", json={"stream": str(uuid.uuid4()), "version": 1})
    finally:
        probe.close()


class HttpFloor:
    name = "http-floor"
    # The targets compare at 16 clients; 1 shows a request's own cost. (A full run must fit
    # in ten minutes.)
    concurrencies = (1, 16)

    def __init__(self, database_url: str, workers: int, pool: dict[str, int]) -> None:
        self.url = database_url
        self.workers = workers
        # Each worker's share of the pool, as `agentledger-http` splits its overflow.
        overflow = max(2, pool["pool_max_overflow"] // workers)
        self.pool = f"{pool['pool_size']},{overflow}"
        self.schema = throwaway_schema("httpfloor")
        self.clients: list[Client] = []

    def open(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.schema}"')
            conn.execute(
                f'CREATE TABLE "{self.schema}".bench_floor_events (id bigserial UNIQUE,'
                " stream uuid NOT NULL, version int NOT NULL, topic text NOT NULL,"
                " state bytea NOT NULL, PRIMARY KEY (stream, version))"
            )
        self._served = floor_served(self.url, self.schema, self.workers, self.pool)
        self.base = self._served.__enter__()

    def prepare(self, scenario: str, clients: int, claimable: int) -> list[Operation]:
        while len(self.clients) < clients:
            self.clients.append(Client(self.base))
        return [self._client(c) for c in self.clients[:clients]]

    def _client(self, client: Client) -> Operation:
        stream = str(uuid.UUID(int=random.getrandbits(128)))
        versions = itertools.count(1)

        def op(command: str) -> float | None:
            body = {"stream": stream, "version": next(versions), "message": f"{command} step"}
            response = client.post(f"/floor/{command}", json=body)
            if response.status_code != 201:
                raise RuntimeError(f"{response.status_code} {response.text[:200]}")
            return server_seconds(response)

        return op

    def cell_extra(self, scenario: str, ops: int) -> dict[str, Any]:
        return {"writes": ops}

    def close(self) -> None:
        for client in self.clients:
            client.close()
        try:
            self._served.__exit__(None, None, None)
        finally:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
