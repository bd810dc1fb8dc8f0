"""What a writer believes about the resource it writes, checked one way for every aggregate.

HTTP spells it `If-Match: "<version>"` or `If-None-Match: *`; the use cases only see a
`Precondition` and call `check` once, inside the decision, against the version they loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from agentledger.application.errors import PreconditionFailed, PreconditionRequired


class Expectation(Enum):
    VERSION = "version"  # the resource exists at exactly this version
    ABSENT = "absent"  # the resource does not exist yet (`If-None-Match: *`)
    NEVER = "never"  # a weak entity tag: strong comparison never matches it (RFC 9110)


@dataclass(frozen=True)
class Precondition:
    expectation: Expectation
    version: int | None = None

    @classmethod
    def at(cls, version: int) -> Precondition:
        return cls(Expectation.VERSION, version)

    @classmethod
    def absent(cls) -> Precondition:
        return cls(Expectation.ABSENT)

    @classmethod
    def weak(cls) -> Precondition:
        return cls(Expectation.NEVER)

    def describe(self) -> str:
        if self.expectation is Expectation.ABSENT:
            return "expected no existing resource (If-None-Match: *)"
        if self.expectation is Expectation.NEVER:
            return "a weak ETag never matches"
        return f"expected version {self.version}"

    def check(self, current: int | None, **details: object) -> None:
        """Raise `PreconditionFailed` unless the resource (at `current`, None when it does
        not exist) is what the writer expected; `details` go into the refusal."""
        if self.expectation is Expectation.ABSENT:
            holds = current is None
        else:
            holds = self.expectation is Expectation.VERSION and current == self.version
        if not holds:
            raise PreconditionFailed(self.describe(), self.version, current or 0, **details)


def check(precondition: Precondition | None, current: int | None, **details: object) -> None:
    """No precondition means the writer accepts whatever version is there."""
    if precondition is not None:
        precondition.check(current, **details)


def required(precondition: Precondition | None, how: str) -> Precondition:
    """Writes that would lose updates without one demand it; `how` tells the client what
    to send."""
    if precondition is None:
        raise PreconditionRequired(how)
    return precondition
