"""A policy's worker: saves each reaction's events with the position of the event that caused
it in one transaction (the library's process recorder), so each reaction happens once."""

from __future__ import annotations

from eventsourcing.persistence import Tracking

from agentledger.application.commands import CommandRunner
from agentledger.application.context import SYSTEM_POLICY, RequestContext
from agentledger.application.ledger import Ledger
from agentledger.application.policies import Policy
from agentledger.application.projections import followed_topics
from agentledger.infrastructure.runners.log_tail import LogTail

# A policy records its position with each reaction; between reactions it records it only this
# often (re-reading events it ignores after a restart is harmless, and saves a write per event).
POLICY_CHECKPOINT_EVERY = 1000


class PolicyWorker:
    kind = "policy"

    def __init__(
        self, ledger: Ledger, tail: LogTail, commands: CommandRunner, policy: Policy
    ) -> None:
        self.ledger = ledger
        self.tail = tail
        self.commands = commands
        self.policy = policy
        self.name = policy.name
        self.topics = frozenset(followed_topics(policy))
        self._recorded = 0

    def position(self) -> int:
        self._recorded = max(self._recorded, self.ledger.tracked_position(self.name))
        return self._recorded

    def step(self, after: int, fresh_since: int) -> int:
        batch = self.tail.read(after, fresh_since, self.topics)
        if batch.last == after:
            return after
        for position, event in zip(batch.positions, batch.events, strict=True):
            decision = self.policy.decision(event, position)
            if decision is None:
                continue
            request = RequestContext(SYSTEM_POLICY, getattr(event, "trace_id", self.name))
            outcome = self.commands.run(
                request,
                f"policy.{self.name}",
                decision,
                tracking=Tracking(self.name, position),
            )
            if outcome.events_written:
                self._recorded = position
        last = batch.last
        if last - self._recorded >= POLICY_CHECKPOINT_EVERY:
            self.ledger.record_position(Tracking(self.name, last))
            self._recorded = last
        return last

    def settle(self, position: int) -> None:
        """Nothing to record: the position goes with each reaction and every
        POLICY_CHECKPOINT_EVERY events, and no reader waits on a policy's position."""

    def passed_over(self, position: int) -> None:
        """Nothing to record either: its runner's position is where it goes on from."""
