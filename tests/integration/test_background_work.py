"""What `serve` and `agentledger projections run` do in the background, on both stores."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from agentledger.application.clock import ManualClock
from agentledger.application.context import RequestContext
from agentledger.domain.sessions import AgentSession
from agentledger.infrastructure.bootstrap import build_runtime, runner_lock
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.http.app import create_app
from tests.cli.test_readme_example import free_port
from tests.conftest import bearer, issue_token
from tests.support.helpers import run_threads, wait_until

CLI = str(Path(sys.executable).with_name("agentledger"))


def test_serve_sweeps_lapsed_sessions_in_the_background(settings: Settings) -> None:
    clock = ManualClock()
    rt = build_runtime(settings.model_copy(update={"sweep_interval_seconds": 0.05}), clock=clock)
    rt.start_background()
    try:
        alice = RequestContext(rt.access.authenticate(issue_token(rt, "agent:alice", "agent")), "t")
        sid = rt.sessions.start(alice, ttl_seconds=60).value.id
        clock.advance(60)
        wait_until(
            lambda: isinstance(list(rt.ledger.events.get(sid))[-1], AgentSession.SessionExpired)
        )
        passes = rt.sweeper.passes
        wait_until(lambda: rt.sweeper.passes >= passes + 3)  # none may expire it again
        assert len(list(rt.ledger.events.get(sid))) == 2
    finally:
        rt.close()


def test_a_failing_sweep_shows_in_readyz_and_the_sweeper_recovers(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = ManualClock()
    rt = build_runtime(settings.model_copy(update={"sweep_interval_seconds": 0.05}), clock=clock)
    rt.start_background()
    try:
        client = TestClient(create_app(rt))
        wait_until(lambda: client.get("/readyz").json()["sweeper"]["passes"] >= 1)
        ready = client.get("/readyz")
        assert ready.status_code == 200
        running = ready.json()["sweeper"]
        assert (running["state"], running["restarts"], running["last_error"]) == (
            "running",
            0,
            None,
        )

        mended = threading.Event()
        sweep = rt.sessions.sweep

        def sweep_when_mended() -> int:
            if not mended.is_set():
                raise RuntimeError("store hiccup")
            return sweep()

        monkeypatch.setattr(rt.sessions, "sweep", sweep_when_mended)
        # It fails on every pass until mended: the failure shows, and the process is not ready.
        seen: list[Any] = []
        wait_until(lambda: readyz_while_failing(client, seen))
        (failed,) = seen
        assert failed.status_code == 503
        assert failed.json()["status"] == "not-ready"
        assert failed.json()["sweeper"]["last_error"] == "RuntimeError: store hiccup"
        assert failed.json()["sweeper"]["restarts"] >= 1
        assert all(r["state"] == "running" for r in failed.json()["runners"])

        mended.set()
        alice = RequestContext(rt.access.authenticate(issue_token(rt, "agent:alice", "agent")), "t")
        sid = rt.sessions.start(alice, ttl_seconds=60).value.id
        clock.advance(60)
        # Restarted after its back-off (doubling with each failure), it sweeps again.
        wait_until(
            lambda: isinstance(list(rt.ledger.events.get(sid))[-1], AgentSession.SessionExpired),
            timeout=40,
        )
        wait_until(lambda: client.get("/readyz").status_code == 200)
        recovered = client.get("/readyz").json()["sweeper"]
        assert (recovered["state"], recovered["last_error"]) == ("running", None)
        assert recovered["restarts"] >= 1
    finally:
        rt.close()


def readyz_while_failing(client: TestClient, seen: list[Any]) -> bool:
    """Keeps the /readyz answer given while the sweeper is failing (it is running in between,
    during each new attempt)."""
    response = client.get("/readyz")
    if response.json()["sweeper"]["state"] != "faulted":
        return False
    seen.append(response)
    return True


def test_projections_run_as_their_own_process(settings: Settings) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["AGENTLEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
        env["AGENTLEDGER_POSTGRES_SCHEMA"] = settings.postgres_schema
    rt = build_runtime(settings)  # writes and reads here; projections run elsewhere
    log_path = settings.data_dir.parent / "worker.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - closed in finally
    worker = subprocess.Popen(
        [CLI, "projections", "run"], env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    try:
        alice = RequestContext(rt.access.authenticate(issue_token(rt, "agent:alice", "agent")), "t")
        outcome = rt.sessions.start(alice)
        rt.consistency.timeout = 20  # the worker process may still be starting up
        assert rt.sessions.get(outcome.value.id, consistent_with=outcome.position).value
        # Once that process holds every runner's lock, this one stands by instead of competing.
        wait_until(lambda: all(held_elsewhere(settings, r.name) for r in rt.runners.all()))
        rt.start_runners()
        try:
            wait_until(lambda: all(r.state == "standby" for r in rt.runners.all()))
        except AssertionError:
            states = {r.name: r.state for r in rt.runners.all()}
            raise AssertionError(f"{states}\nworker log:\n{log_path.read_text()}") from None
        # The status this process gives is the holder's: running, in the worker process.
        holder = f"{socket.gethostname()}:{worker.pid}"
        shown = rt.runners.statuses
        wait_until(lambda: {(s.state, s.holder) for s in shown()} == {("running", holder)})
    finally:
        worker.terminate()
        worker.wait(10)
        log_file.close()
        rt.close()


def held_elsewhere(settings: Settings, name: str) -> bool:
    probe = runner_lock(settings, name)
    if probe.try_acquire():
        probe.release()
        return False
    return True


def test_serve_with_two_workers_loses_no_concurrent_write(settings: Settings) -> None:
    """`serve --workers 2`: two processes share the port, each with its runtime; 24 concurrent
    session starts all land, each once, and every one is visible through either process."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["AGENTLEDGER_DATA_DIR"] = str(settings.data_dir)
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
        env["AGENTLEDGER_POSTGRES_SCHEMA"] = settings.postgres_schema
    rt = build_runtime(settings)  # issues the token; no runners here
    token = issue_token(rt, "agent:alice", "agent")
    rt.close()
    port = free_port()
    server = subprocess.Popen(
        [CLI, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/readyz"), timeout=60)
        wait_until(lambda: len(_children(server.pid)) >= 2, timeout=30)
        responses: list[httpx.Response] = []

        def start() -> None:
            with httpx.Client(base_url=base, headers=bearer(token), timeout=30) as client:
                responses.append(client.post("/v1/sessions", json={"ttl_seconds": 300}))

        run_threads([start] * 24)
        assert [r.status_code for r in responses] == [201] * 24
        ids = {r.json()["id"] for r in responses}
        assert len(ids) == 24
        head = max(int(r.headers["AgentLedger-Position"]) for r in responses)
        for _ in range(6):  # fresh connections: either process may answer
            listed = httpx.get(
                f"{base}/v1/sessions",
                params={"agent_id": "alice", "limit": 100},
                headers={**bearer(token), "AgentLedger-Consistent-With": str(head)},
                timeout=30,
            )
            assert listed.status_code == 200, listed.text
            assert {s["id"] for s in listed.json()["items"]} == ids
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(20)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found
