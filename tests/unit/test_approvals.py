"""The approval rules without storage: separation of duties, decided once, expiry computed
against the caller's clock, and the done gate over the latest request per role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from agentledger.domain.approvals import Approval, ApprovalStatus, require_approved
from agentledger.domain.errors import (
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalRequired,
    InvalidTransition,
    InvalidValue,
    SelfApproval,
)
from agentledger.domain.events import EventContext
from agentledger.domain.work_items import WorkItem

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float = 0, actor: str = "user:boss") -> EventContext:
    return EventContext(actor, "trace", "test", "cmd", T0 + timedelta(seconds=seconds))


def requested(role: str = "security", expires_in: int | None = None) -> Approval:
    return Approval.request(
        at(),
        work_item_id=uuid4(),
        project="alpha",
        approver_role=role,
        reason="auth code",
        expires_in_seconds=expires_in,
    )


def test_the_requester_never_decides_and_nothing_is_recorded() -> None:
    approval = requested()
    with pytest.raises(SelfApproval):
        approval.decide(at(1, "user:boss"), "approved")
    assert approval.status_at(T0) is ApprovalStatus.PENDING and not approval.pending_events[1:]


def test_decided_once_the_same_decision_by_the_same_principal_writes_nothing() -> None:
    approval = requested()
    assert approval.decide(at(1, "user:alice"), "approved", "fine") is True
    assert approval.decide(at(2, "user:alice"), "approved", "fine") is False
    with pytest.raises(ApprovalAlreadyDecided):
        approval.decide(at(3, "user:alice"), "rejected")
    with pytest.raises(ApprovalAlreadyDecided):
        approval.decide(at(3, "user:bob"), "approved")
    assert (approval.state, approval.decided_by, approval.notes) == (
        "approved",
        "user:alice",
        "fine",
    )


def test_expiry_is_computed_against_the_clock_given() -> None:
    approval = requested(expires_in=60)
    assert approval.status_at(T0 + timedelta(seconds=59)) is ApprovalStatus.PENDING
    assert approval.status_at(T0 + timedelta(seconds=60)) is ApprovalStatus.EXPIRED
    with pytest.raises(ApprovalExpired):
        approval.decide(at(60, "user:alice"), "approved")
    decided = requested(expires_in=60)
    decided.decide(at(10, "user:alice"), "approved")
    assert decided.status_at(T0 + timedelta(days=1)) is ApprovalStatus.APPROVED  # final


@pytest.mark.parametrize(
    ("role", "reason", "expires_in"),
    [("Security", "x", None), ("a:b", "x", None), ("ok", " ", None), ("ok", "x", 59)],
)
def test_requests_are_validated(role: str, reason: str, expires_in: int | None) -> None:
    with pytest.raises(InvalidValue):
        Approval.request(
            at(),
            work_item_id=uuid4(),
            project="alpha",
            approver_role=role,
            reason=reason,
            expires_in_seconds=expires_in,
        )


def test_the_gate_names_every_approval_not_approved() -> None:
    good, pending, rejected = requested("a"), requested("b"), requested("c")
    good.decide(at(1, "user:alice"), "approved")
    rejected.decide(at(1, "user:alice"), "rejected")
    require_approved([good], T0)
    with pytest.raises(ApprovalRequired) as refused:
        require_approved([good, pending, rejected], T0)
    assert [(role, status) for _, role, status in refused.value.approvals] == [
        ("b", "pending"),
        ("c", "rejected"),
    ]


def test_an_item_keeps_the_latest_request_per_role_and_refuses_one_when_finished() -> None:
    item = WorkItem.create(at(), project="alpha", kind="task", title="Ship")
    first, second, other = uuid4(), uuid4(), uuid4()
    item.attach_approval(at(), first, "security")
    item.attach_approval(at(), other, "legal")
    item.attach_approval(at(), second, "security")
    assert sorted(map(str, item.approval_ids)) == sorted(map(str, (second, other)))
    item.transition(at(), "cancelled")
    with pytest.raises(InvalidTransition):
        item.attach_approval(at(), uuid4(), "security")
