"""The runners of one process, started and stopped together, and the status of each as the
whole deployment sees it (merged with what other processes note in the registry)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from agentledger.application.ledger import Ledger
from agentledger.infrastructure.runners.log_tail import LogTail, Read
from agentledger.infrastructure.runners.policy_worker import PolicyWorker
from agentledger.infrastructure.runners.projection_runner import ProjectionRunner
from agentledger.infrastructure.runners.registry import (
    REBUILD,
    RUNNER,
    RunnerRecord,
    RunnerRegistry,
)
from agentledger.infrastructure.runners.runner import Runner
from agentledger.infrastructure.runners.seal_worker import SealWorker
from agentledger.infrastructure.runners.status import RebuildProgress, RunnerStatus

HEALTHY = frozenset({"running", "catching-up", "standby"})


class RunnerSet:
    def __init__(
        self,
        tail: LogTail,
        projections: list[ProjectionRunner],
        policies: list[Runner[PolicyWorker]],
        seal: Runner[SealWorker] | None = None,
        registry: RunnerRegistry | None = None,
    ) -> None:
        self._tail = tail  # the one all these runners read through
        self.projections = {r.name: r for r in projections}
        self.policies = {r.name: r for r in policies}
        # Kept apart from the projections: the seal is never rebuilt (see readmodels/seal.py).
        self.seal = seal
        self.registry = registry
        tail.on_read(self._passed_over)

    def all(self) -> list[Runner[Any]]:
        sealing = [self.seal] if self.seal is not None else []
        return [*self.projections.values(), *sealing, *self.policies.values()]

    def start(self) -> None:
        for runner in self.all():
            runner.start()

    def stop(self) -> None:
        for runner in self.all():
            runner.stop()
        if self.registry is not None:
            self.registry.close()  # their last states stored before the store is closed

    def nudge(self, position: int | None = None, topics: frozenset[str] | None = None) -> None:
        """A commit was made (at `position`, of events of `topics`; None: not known): wake the
        runners that follow any of them. The others sleep on; the read the woken ones share
        passes them over (`_passed_over`). Waking all fourteen for each commit took a
        third of the projections process's interpreter time."""
        self._tail.nudged()  # before any runner wakes: they share this generation's reads
        for runner in self.all():
            if runner.follows_any(topics):
                runner.nudge(position)

    def _passed_over(self, read: Read) -> None:
        for runner in self.all():
            runner.passed_over(read)

    def statuses(self) -> list[RunnerStatus]:
        """Each runner's status: this process's own where it runs the runner, else what the
        process holding it last noted (or `stopped`); with a rebuild's progress beside it,
        and the lag in seconds."""
        runners = self.all()
        if not runners:
            return []
        ledger = runners[0].ledger
        head = ledger.head_position()  # one query, not one each
        records = self.registry.records() if self.registry is not None else {}
        lag_clock = _LagClock(ledger)
        statuses = []
        for runner in runners:
            status = runner.status(head)
            held = records.get((runner.name, RUNNER))
            if not runner.holds and held is not None:
                status = _as_noted(status, held)
            rebuild = records.get((runner.name, REBUILD))
            if rebuild is not None:
                status = _with_rebuild(status, rebuild)
            statuses.append(replace(status, lag_seconds=lag_clock.lag(status)))
        return statuses

    def first_builds(self) -> list[str]:
        """Read models this process is building for the first time (a new version)."""
        return [r.name for r in self.projections.values() if r.first_build_under_way()]

    def healthy(self, statuses: list[RunnerStatus] | None = None) -> bool:
        """No runner faulted or stopped (in this process or the one holding it)."""
        if statuses is None:
            return all(r.state in HEALTHY for r in self.all())
        return all(s.state in HEALTHY | {"rebuilding"} for s in statuses)


def _as_noted(status: RunnerStatus, record: RunnerRecord) -> RunnerStatus:
    """A runner another process holds: its state there (the position is the store's)."""
    if record.state == "stopped" and status.state == "standby":
        return status  # the holder is gone; this process will take the lock shortly
    return replace(
        status,
        state=record.state,
        holder=record.holder or None,
        faulted_at=record.faulted_at,
        last_error=record.error,
    )


def _with_rebuild(status: RunnerStatus, record: RunnerRecord) -> RunnerStatus:
    running = record.state == "rebuilding"
    progress = RebuildProgress(record.holder, record.done or 0, record.total or 0, running)
    if running and status.state != "faulted":  # a fault of the live runner shows first
        return replace(status, state="rebuilding", rebuild=progress)
    return replace(status, rebuild=progress)


class _LagClock:
    """How old the oldest event a runner has not processed is: one read of the log per
    position asked (runners at the same position share it)."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._now = datetime.now(UTC)
        self._seen: dict[int, float] = {}

    def lag(self, status: RunnerStatus) -> float:
        if status.lag == 0:
            return 0.0
        if status.position not in self._seen:
            found = self._ledger.read_log(status.position, 1)
            age = 0.0
            if found:
                moment = self._ledger.to_event(found[0]).timestamp
                age = max(0.0, (self._now - moment).total_seconds())
            self._seen[status.position] = age
        return self._seen[status.position]
