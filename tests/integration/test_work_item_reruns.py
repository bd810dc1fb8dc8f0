"""A work-item decision re-run after a version conflict computes from its inputs again: what
the first attempt made of them never leaks into the second."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentledger.application.clock import ManualClock
from agentledger.application.preconditions import Precondition
from agentledger.application.work_items import NewWorkItem
from agentledger.domain.work_items import WorkItem
from agentledger.infrastructure.bootstrap import Runtime, build_runtime
from agentledger.infrastructure.settings import Settings
from tests.integration.work_items_support import Team


@pytest.fixture
def other_server(runtime: Runtime, settings: Settings, clock: ManualClock) -> Iterator[Runtime]:
    """A second runtime on the runtime's store: a second server, without background work."""
    second = build_runtime(settings, clock)
    yield second
    second.close()


def test_a_metadata_key_deleted_by_an_update_stays_deleted_when_the_update_is_rerun(
    runtime: Runtime, other_server: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The update deletes a key (null) and moves the item; while it saves, another server
    adds an item to the same plan, so the update's save conflicts on the plan and the whole
    decision runs again on an item whose version has not changed."""
    team = Team(runtime)
    home = team.item("new home", kind="epic").id
    item = team.item("keeps notes", kind="chore", metadata={"keep": 1, "drop": 2}).id
    runtime.catch_up()
    # The other server's write must land inside this save, in this thread.
    monkeypatch.setattr(runtime.commands, "committer", None)
    real_save = runtime.ledger.record_events
    rivals: list[Any] = []

    def another_server_edits_the_plan_first(
        events: Any, aggregates: Any, tracking: Any = None
    ) -> Any:
        if not rivals:
            new = NewWorkItem("apollo", "task", "rival")
            rivals.append(other_server.work_items.create(team.boss, new).value.id)
        return real_save(events, aggregates, tracking)

    monkeypatch.setattr(runtime.ledger, "record_events", another_server_edits_the_plan_first)
    conflicts = runtime.commands.conflicts
    outcome = runtime.work_items.update(
        team.boss,
        item,
        {"metadata": {"drop": None}, "parent_id": home},
        precondition=Precondition.at(1),
        fence=None,
    )
    monkeypatch.undo()

    assert rivals and runtime.commands.conflicts == conflicts + 1  # the decision did re-run
    assert (outcome.value.metadata, outcome.value.parent_id) == ({"keep": 1}, home)
    updates = [e for e in team.events(item) if isinstance(e, WorkItem.WorkItemUpdated)]
    assert [u.changes for u in updates] == [{"metadata": {"keep": 1}}]
    assert runtime.ledger.repository.get(item).metadata == {"keep": 1}
