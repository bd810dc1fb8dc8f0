"""Proof that concurrent writers really overlapped: a concurrency test that would pass with its
writers run one after another proves nothing.

`DecidedTogether` forces the overlap: it holds commands after they have decided (loaded what
they write and changed it) and before they save, until `parties` of them are held at once. Then
they are all in flight together, and those writing one aggregate must conflict. `Conflicts`
counts the version conflicts the command path met since it was made: conflicts reported (and
re-run or refused), never swallowed. Run serially, the held writers never meet and the barrier
times out, failing the test.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from agentledger.application.commands import UnitOfWork
from agentledger.infrastructure.bootstrap import Runtime

T = TypeVar("T")

# Background work (runners, sweeper) commits on its own threads; holding it would take a
# writer's place at the barrier.
BACKGROUND_THREADS = ("runner-", "sweeper")


class Conflicts:
    """Version conflicts met by the runtimes' command paths since this was made."""

    def __init__(self, *runtimes: Runtime) -> None:
        self._runtimes = runtimes
        self._before = self._total()

    def _total(self) -> int:
        return sum(rt.commands.conflicts for rt in self._runtimes)

    def since(self) -> int:
        return self._total() - self._before


class DecidedTogether:
    """Holds the first `parties` commands that changed something, between deciding and saving,
    until all of them are held; later commands (and re-runs after a conflict) pass.

    By default any command of a foreground thread is held (an HTTP request runs on the
    server's thread pool, not the test's); with `only_marked`, only calls wrapped in
    `marked()`. Commands that take turns in a process (`serialize_on`) decide inside their
    turn: hold at most one per runtime of those, or they wait for each other for ever.
    """

    def __init__(self, parties: int, *, only_marked: bool = False, timeout: float = 30.0) -> None:
        self.parties = parties
        self._only_marked = only_marked
        self._barrier = threading.Barrier(parties, timeout=timeout)
        self._lock = threading.Lock()
        self._admitted = 0
        self._marked = threading.local()
        self.let_go = 0  # how many the barrier let go together (all `parties`, or none)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> DecidedTogether:
        real_changed = UnitOfWork.changed
        gate = self

        def changed(uow: UnitOfWork) -> Any:
            found = real_changed(uow)
            if found and gate._admits():
                gate._hold()
            return found

        monkeypatch.setattr(UnitOfWork, "changed", changed)
        return self

    def marked(self, call: Callable[[], T]) -> Callable[[], T]:
        """`call`, whose first command that changes something is held (with `only_marked`)."""

        def run() -> T:
            self._marked.pending = True
            try:
                return call()
            finally:
                self._marked.pending = False

        return run

    def _admits(self) -> bool:
        if self._only_marked:
            if not getattr(self._marked, "pending", False):
                return False
            self._marked.pending = False
        elif threading.current_thread().name.startswith(BACKGROUND_THREADS):
            return False
        with self._lock:
            if self._admitted >= self.parties:
                return False
            self._admitted += 1
            return True

    def _hold(self) -> None:
        self._barrier.wait()  # raises BrokenBarrierError if the others never come
        with self._lock:
            self.let_go += 1

    @property
    def all_in_flight(self) -> bool:
        """Whether all `parties` commands were held at once (decided, none yet saved)."""
        return self.let_go == self.parties
