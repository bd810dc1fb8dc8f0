"""Idempotency keys: a write sent again with the same key is answered as it was the first time.

A request claims its key in a short transaction of its own; the command then runs, and its
outcome is stored in the transaction that holds its events (the runner hands the completion
to the recorder), so a key is never "done but not recorded" nor "recorded but not done".
The interface then stores the answer it rendered (opaque bytes), which a replay sends back.
Should the process die between the two, a replay runs the same handler with the command path
returning the stored outcome instead of deciding again, so it is rendered as the first was.
The outcome is stored as JSON by field name (`idempotency_codec`): reading a row builds only
plain values and the application's own dataclasses. One it cannot read (tampered, or the
pickles of this table's unreleased first version) fails that replay (`UnreadableOutcome`,
a 500): the key stays done, since running its command again would do the work twice.
Refusals (no events) are stored only as their rendered answer, in their own transaction.
"""

from __future__ import annotations

import hashlib
import math
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentledger.application.clock import Clock
from agentledger.application.errors import IdempotencyInProgress, IdempotencyKeyReused
from agentledger.application.idempotency_codec import decode_outcome, encode_outcome

DAY_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class Completion:
    """What the transaction holding a command's events also writes: the key turned done."""

    scope: str
    token: str
    outcome: bytes
    # The command's last event, whose notification id is the position the answer names.
    last_event: tuple[str, int] | None
    position: int | None


@dataclass(frozen=True)
class StoredKey:
    fingerprint: str
    state: str  # "in_flight" or "done"
    in_flight_until: float
    outcome: bytes | None  # (value, events_written) of a command that succeeded, as JSON
    position: int | None
    response: bytes | None  # a refusal, as the interface rendered it


class IdempotencyStore(Protocol):
    def claim_key(
        self, scope: str, fingerprint: str, token: str, now: float, until: float, expires: float
    ) -> StoredKey | None:
        """Take the key (new, expired, or abandoned in flight): None; else the row found."""

    def complete_key(self, completion: Completion) -> bool: ...

    def store_response(self, scope: str, token: str, response: bytes) -> bool: ...

    def release_key(self, scope: str, token: str) -> None: ...

    def remove_expired_keys(self, now: float, limit: int) -> int: ...


@dataclass
class Claim:
    """A key this request holds while its command runs."""

    scope: str
    token: str
    completed: bool = False


@dataclass(frozen=True)
class Replay:
    """A key already done: what the command path returns instead of deciding again."""

    value: Any
    events_written: int
    position: int


@dataclass
class _Current:
    claim: Claim | None = None
    replay: Replay | None = None
    pending: list[Completion] = field(default_factory=list)


_current: ContextVar[_Current | None] = ContextVar("idempotency", default=None)


def current_claim() -> Claim | None:
    state = _current.get()
    return state.claim if state else None


def current_replay() -> Replay | None:
    state = _current.get()
    return state.replay if state else None


def scope_of(principal: str, method: str, route: str, key: str) -> str:
    """Keys are the client's: two principals (or two routes) never share one."""
    text = "\x1f".join((principal, method, route, key))
    return hashlib.sha256(text.encode()).hexdigest()


# Failed keys remembered for release (beyond, the oldest are left to their in-flight mark).
MAX_UNRELEASED = 10_000


class IdempotencyService:
    def __init__(
        self,
        store: IdempotencyStore,
        clock: Clock,
        ttl_seconds: float = DAY_SECONDS,
        in_flight_seconds: float = 30.0,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl_seconds
        self._in_flight = in_flight_seconds
        # Keys of failed requests whose release failed too (the store was out), by scope:
        # released by the next request for the same key, before it claims it, so that a
        # client's retry after the outage is not told its dead first attempt still runs.
        self._unreleased: dict[str, list[str]] = {}
        self._unreleased_lock = threading.Lock()

    @contextmanager
    def attempt(self, scope: str, fingerprint: str) -> Iterator[bytes | None]:
        """Hold the key while the block runs the request. Yields a stored refusal to answer
        with (and the block should send it), else None: the block runs the request, its
        command either deciding afresh or (for a key done before) returning the stored
        outcome. A failure that stored nothing frees the key at once."""
        self._release_unreleased(scope)
        now = self._clock.now().timestamp()
        token = f"{random.getrandbits(128):032x}"
        try:
            found = self._store.claim_key(
                scope, fingerprint, token, now, now + self._in_flight, now + self._ttl
            )
        except Exception:
            # The claim may have committed with its acknowledgement lost (the store went
            # down at that moment): free it once the store is back, as a failed request's.
            self._keep_unreleased(scope, token)
            raise
        if found is not None:
            yield from self._answer_found(found, fingerprint, now)
            return
        state = _Current(claim=Claim(scope, token))
        reset = _current.set(state)
        try:
            yield None
        except BaseException:
            assert state.claim is not None
            if not state.claim.completed:
                self._release(scope, token)
            raise
        finally:
            _current.reset(reset)

    def _release(self, scope: str, token: str) -> None:
        try:
            self._store.release_key(scope, token)
        except Exception:  # the store is out, as it likely was for the request itself
            self._keep_unreleased(scope, token)

    def _keep_unreleased(self, scope: str, token: str) -> None:
        with self._unreleased_lock:
            if len(self._unreleased) >= MAX_UNRELEASED:  # the oldest run out on their own
                del self._unreleased[next(iter(self._unreleased))]
            self._unreleased.setdefault(scope, []).append(token)

    def _release_unreleased(self, scope: str) -> None:
        if not self._unreleased:  # read without the lock: the common case costs nothing
            return
        with self._unreleased_lock:
            tokens = self._unreleased.pop(scope, [])
        for token in tokens:  # a release is conditional on the token: only ours goes
            self._release(scope, token)

    def _answer_found(
        self, found: StoredKey, fingerprint: str, now: float
    ) -> Iterator[bytes | None]:
        if found.fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for a request with another body or preconditions"
            )
        if found.state != "done":
            raise IdempotencyInProgress(max(1, math.ceil(found.in_flight_until - now)))
        if found.response is not None:
            yield found.response
            return
        assert found.outcome is not None and found.position is not None
        value, written = decode_outcome(found.outcome)
        reset = _current.set(_Current(replay=Replay(value, written, found.position)))
        try:
            yield None
        finally:
            _current.reset(reset)

    def store_answer(self, claim: Claim, response: bytes) -> None:
        """The answer as the interface rendered it: a refusal (which wrote nothing), or a
        success after its events' transaction stored its outcome. A replay then sends these
        bytes; only if the process died between the two does it render the outcome again."""
        if self._store.store_response(claim.scope, claim.token, response):
            claim.completed = True

    def remove_expired(self, limit: int = 500) -> int:
        return self._store.remove_expired_keys(self._clock.now().timestamp(), limit)


__all__ = [
    "Claim",
    "Completion",
    "IdempotencyService",
    "IdempotencyStore",
    "Replay",
    "StoredKey",
    "current_claim",
    "current_replay",
    "encode_outcome",
    "scope_of",
]
