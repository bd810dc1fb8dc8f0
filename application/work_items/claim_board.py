"""The claim board: which items this process's claim-next calls are taking, and took since the
read model last caught up."""

from __future__ import annotations

import threading
from uuid import UUID

from agentledger.application.readmodels import WorkItemsReader

FORGET_AFTER = 10_000  # claims remembered before those the read model has seen are dropped
# At most this many of them are left out of the ready query itself (the rest the board still
# turns away one by one).
EXCLUDED_AT_MOST = 256


class ClaimBoard:
    """Without it, concurrent callers all see the same best candidate: all but one lose the
    race, then all race for the next, and items already claimed stay candidates until the
    projection catches up. With it, callers here spread over the candidates, as `SKIP LOCKED`
    would; callers in other processes still meet the aggregates' checks."""

    def __init__(self, reader: WorkItemsReader) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._taking: set[UUID] = set()
        self._taken: dict[UUID, int] = {}  # item -> position of its claim

    def reserve(self, item_id: UUID, seen: int) -> bool:
        """Take `item_id` for one claim attempt, unless another caller here is taking it or
        took it after position `seen` (which the candidates were read at or after)."""
        with self._lock:
            if item_id in self._taking:
                return False
            position = self._taken.get(item_id)
            if position is not None and position > seen:
                return False
            self._taken.pop(item_id, None)
            self._taking.add(item_id)
            return True

    def unseen(self, seen: int) -> list[UUID]:
        """Items a caller here is taking, or took after position `seen`: still ready in a
        read model at `seen`, and no candidates (the ready query leaves them out)."""
        with self._lock:
            found = [*self._taking, *(i for i, p in self._taken.items() if p > seen)]
        return found[:EXCLUDED_AT_MOST]

    def drop(self, item_id: UUID) -> None:
        with self._lock:
            self._taking.discard(item_id)

    def taken(self, item_id: UUID, position: int) -> None:
        with self._lock:
            self._taking.discard(item_id)
            self._taken[item_id] = position
            crowded = len(self._taken) > FORGET_AFTER
        if crowded:  # forget what the read model has long since seen
            seen = self._reader.position()
            with self._lock:
                self._taken = {i: p for i, p in self._taken.items() if p > seen}
