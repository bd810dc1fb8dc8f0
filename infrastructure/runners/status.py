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

    @property
    def version(self) -> int:
        """A read model's version is the `_v<N>` its stable name ends with (a new schema is a
        new name, built afresh); a policy without one is at version 1."""
        _, _, suffix = self.name.rpartition("_v")
        return int(suffix) if suffix.isdigit() else 1


@dataclass(frozen=True)
class SweeperStatus:
    state: str  # "running", "failed" or "stopped"
    passes: int  # sweeps completed since it started
    last_error: str | None
    restarts: int
