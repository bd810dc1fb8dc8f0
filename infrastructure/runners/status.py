"""What /readyz and the CLI report of the background work."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class RebuildProgress:
    holder: str  # host:pid of the rebuilding process ("" once it is gone)
    done: int  # the position the rebuilt model has reached
    total: int  # the head of the log when it last looked
    running: bool  # False: interrupted (the process is gone); run the rebuild again to resume


@dataclass(frozen=True)
class RunnerStatus:
    name: str
    kind: str  # "projection" (the read models and the seal) or "policy"
    # "catching-up", "running", "faulted", "standby", "stopped" (or "rebuilding", see below)
    state: str
    position: int
    head: int
    last_error: str | None
    restarts: int
    faulted_at: int | None = None  # the event a projection's handler failed on
    holder: str | None = None  # host:pid of the process running it, where known
    lag_seconds: float | None = None  # age of the oldest event not yet processed
    rebuild: RebuildProgress | None = None  # a blue/green rebuild under way beside it

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)

    def as_json(self) -> dict[str, Any]:
        """What `projections status --json` and `GET /v1/projections` show of it."""
        return {
            "name": self.name,
            "version": self.version,
            "kind": self.kind,
            "state": self.state,
            "position": self.position,
            "head": self.head,
            "lag": self.lag,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            "holder": self.holder,
            "faulted_at": self.faulted_at,
            "last_error": self.last_error,
            "restarts": self.restarts,
            "rebuild": None if self.rebuild is None else asdict(self.rebuild),
        }

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
