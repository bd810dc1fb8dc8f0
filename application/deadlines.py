"""A request's deadline: the moment by which it must have committed or failed.

An interface sets it when a request arrives (`within`); everything the request then does on
the store (waiting for a connection, the library's retries, a turn in group commit) gives up
once it has passed, with `DeadlineExceeded`, which interfaces answer as "store unavailable,
retry later". Background work sets none and keeps retrying on its own schedule.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("agentledger_deadline", default=None)
_budget: ContextVar[float] = ContextVar("agentledger_deadline_budget", default=0.0)


class DeadlineExceeded(Exception):
    """The request's time ran out before the store answered; what it did not commit it never
    will (a command waiting for its turn leaves the queue)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(f"the store did not answer within the request's {seconds:g} s")


@contextmanager
def within(seconds: float) -> Iterator[None]:
    """Run the block with a deadline `seconds` from now (an outer, earlier one stands)."""
    deadline = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    budget = _budget.set(seconds)
    try:
        yield
    finally:
        _deadline.reset(token)
        _budget.reset(budget)


@contextmanager
def until(deadline: float | None) -> Iterator[None]:
    """Run the block with exactly this deadline (a `time.monotonic()` moment; None: none),
    whatever the caller's: group commit writes a batch under its latest member's."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


@contextmanager
def renewed() -> Iterator[None]:
    """A fresh deadline of the same length for the block: each look of a long-poll is a
    request's worth of store work of its own (the waiting between them is not the store's)."""
    if _deadline.get() is None:
        yield
        return
    with until(time.monotonic() + _budget.get()):
        yield


def current() -> float | None:
    """The deadline in force, as a `time.monotonic()` moment (None: none)."""
    return _deadline.get()


def remaining() -> float | None:
    """Seconds left before the deadline (negative once passed); None: no deadline."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def check() -> None:
    """Raise `DeadlineExceeded` if the deadline has passed."""
    left = remaining()
    if left is not None and left <= 0:
        raise DeadlineExceeded(_budget.get())
