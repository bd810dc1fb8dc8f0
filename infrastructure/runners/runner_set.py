"""The runners of one process, started and stopped together."""

from __future__ import annotations

from typing import Any

from agentledger.infrastructure.runners.policy_worker import PolicyWorker
from agentledger.infrastructure.runners.projection_runner import ProjectionRunner
from agentledger.infrastructure.runners.runner import Runner
from agentledger.infrastructure.runners.seal_worker import SealWorker
from agentledger.infrastructure.runners.status import RunnerStatus


class RunnerSet:
    def __init__(
        self,
        projections: list[ProjectionRunner],
        policies: list[Runner[PolicyWorker]],
        seal: Runner[SealWorker] | None = None,
    ) -> None:
        self.projections = {r.name: r for r in projections}
        self.policies = {r.name: r for r in policies}
        # Kept apart from the projections: the seal is never rebuilt (see readmodels/seal.py).
        self.seal = seal

    def all(self) -> list[Runner[Any]]:
        sealing = [self.seal] if self.seal is not None else []
        return [*self.projections.values(), *sealing, *self.policies.values()]

    def start(self) -> None:
        for runner in self.all():
            runner.start()

    def stop(self) -> None:
        for runner in self.all():
            runner.stop()

    def nudge(self, position: int | None = None) -> None:
        for runner in self.all():
            runner.nudge(position)

    def statuses(self) -> list[RunnerStatus]:
        runners = self.all()
        head = runners[0].ledger.head_position() if runners else 0  # one query, not one each
        return [r.status(head) for r in runners]

    def healthy(self) -> bool:
        return all(r.state in ("running", "standby") for r in self.all())
