"""Helpers the test modules share: principals, concurrent starts, polling for a condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from agentledger.application.context import RequestContext
from agentledger.infrastructure.bootstrap import Runtime
from tests.conftest import issue_token


def agent_context(rt: Runtime, name: str) -> RequestContext:
    """A request context for `agent:<name>` holding a fresh token with the agent role."""
    principal = rt.access.authenticate(issue_token(rt, f"agent:{name}", "agent"))
    return RequestContext(principal, name)


def run_threads(targets: list[Callable[[], None]], timeout: float = 120.0) -> None:
    """Start every target at the same moment (a barrier) and wait for all; a target that
    raises, or does not finish in time, fails the test."""
    barrier = threading.Barrier(len(targets))
    errors: list[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def go() -> None:
            barrier.wait()
            try:
                target()
            except BaseException as exc:  # a crashed thread must fail the test
                errors.append(exc)

        return go

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "threads did not finish in time"
    assert errors == [], errors


def wait_until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)
