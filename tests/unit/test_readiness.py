"""Readiness, defined once: each condition that makes an item not ready gives its reason."""

from __future__ import annotations

from uuid import UUID

from agentledger.domain.readiness import readiness

A, B = UUID(int=1), UUID(int=2)


def test_an_open_unclaimed_item_whose_dependencies_are_done_is_ready() -> None:
    result = readiness(status="open", archived=False, claimed_by=None, dependencies={A: "done"})
    assert (result.ready, result.reasons) == (True, ())


def test_every_reason_is_reported_in_a_stable_order() -> None:
    result = readiness(
        status="blocked",
        archived=True,
        claimed_by="alice",
        dependencies={B: "in_progress", A: "open"},
    )
    assert result.ready is False
    assert tuple(map(str, result.reasons)) == (
        "status:blocked",
        "archived",
        "claimed_by:alice",
        f"blocked_by:{A}",
        f"blocked_by:{B}",
    )


def test_a_cancelled_dependency_still_blocks() -> None:
    # Only done releases a dependant: a cancelled prerequisite needs a person's decision.
    result = readiness(
        status="open", archived=False, claimed_by=None, dependencies={A: "cancelled"}
    )
    assert tuple(map(str, result.reasons)) == (f"blocked_by:{A}",)
