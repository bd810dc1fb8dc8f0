"""`projections verify`: every read model equals a replay of its projection from the log at
the same position; a row changed behind the projection's back is found and shown."""

from __future__ import annotations

from click.testing import CliRunner

from agentledger.application.work_items import NewWorkItem
from agentledger.infrastructure.bootstrap import Runtime
from agentledger.infrastructure.readmodels.verify import check
from agentledger.interfaces.cli.main import cli
from tests.support.helpers import agent_context


def _history(runtime: Runtime) -> None:
    agent = agent_context(runtime, "alice")
    runtime.projects.create(agent, "apollo")
    session = runtime.sessions.start(agent, agent_id="alice").value
    for n in range(5):
        runtime.work_items.create(
            agent, NewWorkItem(project="apollo", kind="task", title=f"item {n}")
        )
    runtime.sessions.heartbeat(agent, session.id)
    runtime.catch_up()


def test_every_read_model_equals_its_replay(runtime: Runtime) -> None:
    _history(runtime)
    for runner in runtime.runners.projections.values():
        result = check(runtime.ledger, runner.worker.read_model, runner.worker.projection)
        assert result.identical, (result.name, result.shown)
        assert result.position == runner.worker.position()
    items = runtime.runners.projections["work_items_v4"].worker
    assert check(runtime.ledger, items.read_model, items.projection).rows >= 5


def test_a_row_changed_behind_the_projection_is_shown(runtime: Runtime, run) -> None:  # type: ignore[no-untyped-def]
    _history(runtime)
    items = runtime.runners.projections["work_items_v4"].worker.read_model
    with items._store.transaction(commit=True) as cursor:
        cursor.execute(
            items.sql("UPDATE {work_items} SET title = %(t)s WHERE title = %(o)s"),
            {"t": "forged", "o": "item 3"},
        )
    worker = runtime.runners.projections["work_items_v4"].worker
    result = check(runtime.ledger, worker.read_model, worker.projection)
    assert result.differences == 1
    (difference,) = result.shown
    assert difference.table == "work_items"
    assert difference.live is not None and difference.live["title"] == "forged"
    assert difference.replayed is not None and difference.replayed["title"] == "item 3"
    cli_result = run("projections", "verify", "work_items_v4")
    assert cli_result.exit_code == 1
    assert "work_items_v4: 1 rows differ" in cli_result.output
    assert "forged" in cli_result.output
    assert run("projections", "verify", "tokens_v1").exit_code == 0
    assert CliRunner().invoke(cli, ["projections", "verify"]).exit_code == 2
