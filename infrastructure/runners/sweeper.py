"""The session sweeper: records lapsed sessions as expired every few seconds (and handoff
offers past their time, and parked claims nobody resumed), supervised like the runners. Every
`serve` process runs one, without a lock: expiry is decided against the session's version, so
of two sweepers expiring one session only one write succeeds."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agentledger.application.idempotency import IdempotencyService
from agentledger.application.sessions import SessionService
from agentledger.infrastructure.runners.status import SweeperStatus
from agentledger.infrastructure.runners.supervised import Supervised

log = logging.getLogger("agentledger.sweeper")


class Sweeper(Supervised):
    def __init__(
        self,
        sessions: SessionService,
        interval_seconds: float,
        idempotency: IdempotencyService | None = None,
        claims: Callable[[], int] | None = None,
    ) -> None:
        """`claims`: what records handoff offers past their time and releases parked claims
        nobody resumed (`WorkItemHandoffs.sweep_claims`)."""
        super().__init__("sweeper", "sweeper")
        self._sessions = sessions
        self._idempotency = idempotency
        self._claims = claims
        self._interval = interval_seconds
        self.passes = 0

    def status(self) -> SweeperStatus:
        return SweeperStatus(self.state, self.passes, self.last_error, self.restarts)

    def _run(self) -> None:
        self.state = "running"
        while not self._stop.wait(self._interval):
            expired = self._sessions.sweep()
            if self._claims is not None:
                self._claims()
            if self._idempotency is not None:
                # Expired keys already behave as new; removing them (a batch per pass, by
                # the expiry index) only keeps the table small.
                self._idempotency.remove_expired()
            self.passes += 1
            self._recovered()
            if expired:
                log.info("sweeper recorded %d expired session(s)", expired)

    def _interrupt(self) -> None:
        pass  # it waits on `_stop` itself

    def _let_go(self) -> None:
        pass  # it holds no lock: every process sweeps
