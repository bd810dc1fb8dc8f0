"""A piece of background work on a thread of its own, restarted with back-off when it fails."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod

from agentledger.infrastructure.store_errors import is_store_outage

log = logging.getLogger("agentledger.runners")

FIRST_BACKOFF_SECONDS = 0.5
MAX_BACKOFF_SECONDS = 5.0
# While the store is out, the work is tried again this often: a try then costs one refused
# connection, and the work resumes within this long of the store's return (a back-off at its
# ceiling, plus a first try that meets a server still starting, made /readyz wait over 10 s).
OUTAGE_RETRY_SECONDS = 1.0


class Supervised(ABC):
    """Runs `_run` on a daemon thread until stopped; when it raises, it is `faulted`: records
    the error, counts a restart, and runs it again: every second while the store is out (one
    warning for the whole outage), otherwise after a back-off of 0.5 s doubling up to 5 s,
    back to 0.5 s once the work succeeds again (`_recovered`). `state`, `restarts` and
    `last_error` are what /readyz shows."""

    def __init__(self, name: str, thread_name: str) -> None:
        self.name = name
        self._thread_name = thread_name
        self.state = "stopped"
        self.last_error: str | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = FIRST_BACKOFF_SECONDS
        self._in_outage = False  # whether the last failure was the store being out

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._supervise, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s did not stop within %.0fs", self.name, timeout)
            self._thread = None
        self._let_go()
        self.state = "stopped"

    @abstractmethod
    def _run(self) -> None:
        """Do the work: return once `_stop` is set, raise on failure."""

    @abstractmethod
    def _interrupt(self) -> None:
        """Wake `_run` from whatever it waits on, so that it sees `_stop`."""

    @abstractmethod
    def _let_go(self) -> None:
        """Release what the work held, after a failure and on stopping."""

    def _recovered(self) -> None:
        """The work succeeded: a later failure starts the back-off afresh (one long outage
        must not leave every later restart at the ceiling)."""
        self._backoff = FIRST_BACKOFF_SECONDS
        self.last_error = None
        self._in_outage = False

    def _faulted(self, exc: Exception) -> None:
        self.state = "faulted"
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _supervise(self) -> None:
        while not self._stop.is_set():
            try:
                self._run()
            except Exception as exc:  # supervised: any failure restarts the work
                self.restarts += 1
                outage_went_on = self.last_error is not None and self._in_outage
                self._faulted(exc)
                self._in_outage = is_store_outage(exc)
                if self._in_outage:  # expected while the store is out: no trace, once
                    wait = OUTAGE_RETRY_SECONDS
                    if not outage_went_on:
                        log.warning(
                            "%s: store unavailable (%s); retrying every %.0fs",
                            self.name,
                            self.last_error,
                            wait,
                        )
                else:
                    wait = self._backoff
                    self._backoff = min(MAX_BACKOFF_SECONDS, self._backoff * 2)
                    log.exception("%s faulted; restarting in %.1fs", self.name, wait)
                self._let_go()
                self._stop.wait(wait)
