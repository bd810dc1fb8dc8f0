"""One precondition type for every versioned write: what each expectation accepts."""

from __future__ import annotations

import pytest

from agentledger.application.errors import PreconditionFailed, PreconditionRequired
from agentledger.application.preconditions import Precondition, check, required


def test_a_version_matches_only_that_version_of_an_existing_resource() -> None:
    Precondition.at(3).check(3)
    with pytest.raises(PreconditionFailed) as stale:
        Precondition.at(3).check(4, current_project="p")
    assert (stale.value.expected, stale.value.current, stale.value.details) == (
        3,
        4,
        {"current_project": "p"},
    )
    with pytest.raises(PreconditionFailed):
        Precondition.at(0).check(None)  # "version 0" is not "does not exist"


def test_absent_matches_only_a_resource_that_does_not_exist() -> None:
    Precondition.absent().check(None)
    with pytest.raises(PreconditionFailed) as exists:
        Precondition.absent().check(1)
    assert exists.value.expected is None
    assert "If-None-Match" in str(exists.value)


def test_a_weak_tag_never_matches() -> None:
    for current in (None, 0, 1):
        with pytest.raises(PreconditionFailed, match="weak"):
            Precondition.weak().check(current)


def test_no_precondition_accepts_anything_unless_one_is_required() -> None:
    check(None, 7)
    with pytest.raises(PreconditionRequired, match="If-Match"):
        required(None, 'send If-Match: "<version>"')
    assert required(Precondition.at(1), "unused") == Precondition.at(1)
