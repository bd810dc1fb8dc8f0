"""What /readyz and the CLI report of the background work."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RunnerStatus:
    name: str
    kind: str  # "projection" or "policy"
    state: str  # "running", "standby", "failed" or "stopped"
    position: int
    head: int
    last_error: str | None
    restarts: int

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


@dataclass(frozen=True)
class SweeperStatus:
    state: str  # "running", "failed" or "stopped"
    passes: int  # sweeps completed since it started
    last_error: str | None
    restarts: int
