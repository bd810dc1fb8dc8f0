"""What a runner drives: a worker that processes the log in batches from a position it records."""

from __future__ import annotations

from typing import Protocol


class Worker(Protocol):
    name: str  # its runner's and its lock's name
    kind: str  # "projection" or "policy", as /readyz shows it

    @property
    def topics(self) -> frozenset[str] | None:
        """The stored topics of the events it follows (None: every event)."""

    def passed_over(self, position: int) -> None:
        """It was passed over up to `position`: nothing it follows lies between where it
        stood and there (a commit it does not follow did not wake it)."""

    def position(self) -> int:
        """The position recorded in the store: where a runner starting here resumes."""

    def step(self, after: int, fresh_since: int) -> int:
        """Process the next batch after `after`, read in generation `fresh_since` or later of
        the log tail; return the new position (the same if there was nothing new)."""

    def settle(self, position: int) -> None:
        """The runner stops at `position`, or has caught up to it: record what a restart or a
        reader in another process needs from it."""
