"""What `serve` and `agentledger projections run` do in the background, on both stores."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from application.clock import ManualClock
from application.context import RequestContext
from domain.sessions import AgentSession
from infrastructure.bootstrap import build_runtime, runner_lock
from infrastructure.settings import Settings
from tests.conftest import issue_token
from tests.support.helpers import wait_until

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
        time.sleep(0.3)  # several more sweeps: none may expire it again
        assert len(list(rt.ledger.events.get(sid))) == 2
    finally:
        rt.close()


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
        wait_until(lambda: all(held_elsewhere(settings, name) for name in rt.runners.runners))
        rt.start_runners()
        try:
            wait_until(lambda: all(s.state == "standby" for s in rt.runners.statuses()))
        except AssertionError:
            states = {s.name: s.state for s in rt.runners.statuses()}
            raise AssertionError(f"{states}\nworker log:\n{log_path.read_text()}") from None
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
