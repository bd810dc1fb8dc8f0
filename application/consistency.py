"""Read-your-writes: wait, briefly and with a fast poll, until a read model reaches a position."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from agentledger.application.errors import NotCaughtUp, PositionNotInLog


class Positioned(Protocol):
    def position(self) -> int: ...


class Consistency:
    """Bounded wait for a read model; polls every few ms (the library's wait sleeps 100 ms)."""

    def __init__(
        self,
        timeout: float = 2.0,
        poll_interval: float = 0.002,
        head: Callable[[], int] | None = None,
    ) -> None:
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._head = head

    def wait(self, read_model: Positioned, position: int | None) -> int:
        """Return the read model's position once it is at least `position` (or at once if None).
        A position the log has not reached was never issued: refused at once, not waited on."""
        reached = read_model.position()
        if position is None or reached >= position:
            return reached
        if self._head is not None and position > self._head():
            raise PositionNotInLog(position)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            time.sleep(self.poll_interval)
            reached = read_model.position()
            if reached >= position:
                return reached
        raise NotCaughtUp(position, reached)
