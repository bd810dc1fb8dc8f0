"""Supervised background work: while the store is out it is tried again every second, with
one warning for the whole outage, and no back-off builds up; other failures back off."""

from __future__ import annotations

import logging
import threading

import psycopg
import pytest

from agentledger.infrastructure.runners import supervised
from agentledger.infrastructure.runners.supervised import FIRST_BACKOFF_SECONDS, Supervised
from tests.support.helpers import wait_until


class Scripted(Supervised):
    """Raises the scripted failures one per run, then succeeds and waits to be stopped."""

    def __init__(self, failures: list[Exception]) -> None:
        super().__init__("scripted", "scripted")
        self.failures = failures
        self.backoffs: list[float] = []
        self.succeeded = threading.Event()

    def _run(self) -> None:
        self.backoffs.append(self._backoff)
        if self.failures:
            raise self.failures.pop(0)
        self._recovered()
        self.state = "running"
        self.succeeded.set()
        self._stop.wait()

    def _interrupt(self) -> None:
        pass

    def _let_go(self) -> None:
        pass


def outage() -> Exception:
    return psycopg.OperationalError("connection refused")  # no SQLSTATE: never answered


def test_an_outage_is_retried_without_back_off_and_warned_of_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supervised, "OUTAGE_RETRY_SECONDS", 0.01)
    work = Scripted([outage() for _ in range(6)])
    with caplog.at_level(logging.WARNING, logger="agentledger.runners"):
        work.start()
        try:
            assert work.succeeded.wait(10)
        finally:
            work.stop()
    assert work.restarts == 6
    assert work.backoffs == [FIRST_BACKOFF_SECONDS] * 7  # the outage left no back-off behind
    warnings = [r for r in caplog.records if "store unavailable" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert work.last_error is None


def test_other_failures_back_off_doubling_and_reset_on_success(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(supervised, "FIRST_BACKOFF_SECONDS", 0.01)
    work = Scripted([ValueError("bad event"), ValueError("bad event"), ValueError("bad event")])
    work._backoff = 0.01
    work.start()
    try:
        assert work.succeeded.wait(10)
        wait_until(lambda: work.state == "running", timeout=5)
    finally:
        work.stop()
    assert work.backoffs == [0.01, 0.02, 0.04, 0.08]
    assert work._backoff == supervised.FIRST_BACKOFF_SECONDS  # reset by the success
