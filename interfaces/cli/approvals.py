"""`agentledger approvals`: the approval queue, and deciding one as the approver.

A decision is a person's judgement, recorded under their name: `decide` acts with the
approver's own bearer token (`--token` or AGENTLEDGER_TOKEN), never as the operator.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from uuid import UUID

import click

from agentledger.application.approvals import ApprovalView
from agentledger.application.context import RequestContext
from agentledger.application.errors import Unauthenticated
from agentledger.application.readmodels import ApprovalFilter
from agentledger.interfaces.cli.output import emit
from agentledger.interfaces.cli.store import runtime

STATUSES = ("pending", "approved", "rejected", "expired")
COLUMNS = ("id", "status", "approver_role", "work_item_id", "requested_by", "reason", "decided_by")


@click.group()
def approvals() -> None:
    """Approvals: work that waits for a person (or a reviewer agent) to approve it."""


@approvals.command("list")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="As of now.")
@click.option("--role", "approver_role", default=None, help="The approver role (approver:ROLE).")
@click.option("--work-item", "work_item_id", type=click.UUID, default=None)
@click.option("--project", default=None)
@click.option("--json", "as_json", is_flag=True)
def approvals_list(
    status: str | None,
    approver_role: str | None,
    work_item_id: UUID | None,
    project: str | None,
    as_json: bool,
) -> None:
    """List approvals, oldest request first (a role's queue: --role R --status pending)."""
    where = ApprovalFilter(status, approver_role, work_item_id, project)
    with runtime() as rt:
        rt.catch_up()
        found: list[ApprovalView] = []
        cursor = None
        while True:
            page = rt.approvals.list(where, limit=500, cursor=cursor)
            found += page.items
            if not (cursor := page.next_cursor):
                break
    emit([_row(a) for a in found], COLUMNS, as_json)


@approvals.command("decide")
@click.argument("approval_id", type=click.UUID)
@click.argument("decision", type=click.Choice(("approved", "rejected")))
@click.option("--notes", default=None, help="Why: kept with the decision.")
@click.option(
    "--token",
    envvar="AGENTLEDGER_TOKEN",
    required=True,
    help="The approver's bearer token (or AGENTLEDGER_TOKEN): the decision is theirs.",
)
@click.option("--json", "as_json", is_flag=True)
def approvals_decide(
    approval_id: UUID, decision: str, notes: str | None, token: str, as_json: bool
) -> None:
    """Approve or reject an approval, as the holder of the token (approver:ROLE)."""
    with runtime() as rt:
        try:
            principal = rt.access.authenticate(token)
        except Unauthenticated as exc:
            raise click.ClickException(str(exc)) from None
        request = RequestContext(principal, f"cli-approvals-decide-{uuid.uuid4().hex[:16]}")
        outcome = rt.approvals.decide(request, approval_id, decision, notes)
    decided = outcome.value
    if as_json:
        click.echo(json.dumps({**_row(decided), "position": outcome.position}, default=str))
        return
    click.echo(f"{decided.status} {decided.id} by {decided.decided_by}")


def _row(approval: ApprovalView) -> dict[str, Any]:
    return {
        "id": str(approval.id),
        "status": approval.status,
        "approver_role": approval.approver_role,
        "work_item_id": str(approval.work_item_id),
        "requested_by": approval.requested_by,
        "reason": approval.reason,
        "expires_at": approval.expires_at.isoformat() if approval.expires_at else None,
        "decided_by": approval.decided_by,
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
        "notes": approval.notes,
    }
