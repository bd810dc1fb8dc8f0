"""The `agentledger` CLI on both stores: tokens, sweeping, projection status and rebuild."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentledger.application.approvals import NewApproval
from agentledger.application.context import RequestContext, local_operator
from agentledger.application.entries import NewEntry
from agentledger.application.work_items import NewWorkItem
from agentledger.infrastructure.bootstrap import build_runtime
from agentledger.infrastructure.settings import Settings
from agentledger.interfaces.cli.main import cli

CLI = str(Path(sys.executable).with_name("agentledger"))


def test_tokens_issue_list_revoke(run, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    issued = run("tokens", "issue", "--principal", "agent:alice", "--role", "agent", "--json")
    assert issued.exit_code == 0, issued.output
    token = json.loads(issued.output)
    assert token["token"].startswith("alt_") and token["principal"] == "agent:alice"

    listed = json.loads(run("tokens", "list", "--json").output)
    assert [(t["id"], t["principal"]) for t in listed] == [(token["token_id"], "agent:alice")]
    assert token["token"] not in run("tokens", "list").output  # secrets are never shown again

    rt = build_runtime(settings)
    try:
        principal = rt.access.authenticate(token["token"])
        assert principal.name == "agent:alice"
        events = list(rt.ledger.events.get(principal.token_id))  # type: ignore[arg-type]
        assert events[0].actor.startswith("system:cli:")  # who granted access is audited
    finally:
        rt.close()

    revoked = run("tokens", "revoke", token["token_id"], "--reason", "rotated")
    assert revoked.exit_code == 0
    assert json.loads(run("tokens", "list", "--json").output) == []
    assert len(json.loads(run("tokens", "list", "--all", "--json").output)) == 1
    again = CliRunner().invoke(cli, ["tokens", "revoke", token["token_id"]])
    assert again.exit_code == 1 and "already revoked" in again.output


def test_tokens_issue_refuses_bad_roles(run) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(
        cli, ["tokens", "issue", "--principal", "user:bob", "--role", "agent"]
    )
    assert result.exit_code == 1
    assert "only for agent:NAME principals" in result.output


def test_sweep_and_projection_commands(run) -> None:  # type: ignore[no-untyped-def]
    run("tokens", "issue", "--principal", "user:admin", "--role", "admin")
    assert json.loads(run("sessions", "sweep", "--json").output) == {"expired": 0}
    status = json.loads(run("projections", "status", "--json").output)
    assert {s["name"] for s in status if s["kind"] == "projection"} == {
        "sessions_v3",
        "tokens_v1",
        "projects_v1",
        "selections_v1",
        "entries_v2",
        "work_items_v4",
        "approvals_v1",
        "handovers_v1",
        "messages_v1",
        "agents_v1",
        "timeline_v1",
        "seal_v1",
    }
    assert {s["name"] for s in status if s["kind"] == "policy"} == {
        "policy_archived_project_clears_selections",
        "policy_session_end_releases_claims",
    }
    # the sweep caught the read models up
    assert all(s["lag"] == 0 for s in status if s["kind"] == "projection")
    rebuilt = run("projections", "rebuild", "tokens_v1")
    assert rebuilt.exit_code == 0 and "rebuilt tokens_v1 blue/green: 1 events" in rebuilt.output
    unknown = CliRunner().invoke(cli, ["projections", "rebuild", "nope"])
    assert unknown.exit_code == 1 and "unknown projection" in unknown.output
    # The seal is never rebuilt: that would seal whatever the log holds now.
    seal = CliRunner().invoke(cli, ["projections", "rebuild", "seal_v1"])
    assert seal.exit_code == 1 and "unknown projection" in seal.output


def test_projects_commands(run) -> None:  # type: ignore[no-untyped-def]
    assert run("projects", "create", "alpha", "--description", "first").exit_code == 0
    assert run("projects", "create", "beta").exit_code == 0
    again = CliRunner().invoke(cli, ["projects", "create", "alpha"])
    assert again.exit_code == 1 and "already exists" in again.output
    assert run("projects", "archive", "beta", "--reason", "done").exit_code == 0
    listed = json.loads(run("projects", "list", "--json").output)
    assert [(p["name"], p["archived"]) for p in listed] == [("alpha", False), ("beta", True)]
    active = json.loads(run("projects", "list", "--active", "--json").output)
    assert [p["name"] for p in active] == ["alpha"]


def test_entries_tail_prints_oldest_first_and_follows(run, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    rt = build_runtime(settings)
    try:
        operator = RequestContext(local_operator("tester"), "t")
        rt.projects.create(operator, "alpha")
        token = rt.access.issue(operator, "agent:alice", ["agent"]).value.secret
        alice = RequestContext(rt.access.authenticate(token), "t")
        session = rt.sessions.start(alice).value.id
        for i in range(3):
            rt.entries.append(alice, "alpha", NewEntry(message=f"step {i}", session_id=session))
        tail = run("entries", "tail", "--project", "alpha", "-n", "2", "--json")
        assert [json.loads(line)["message"] for line in tail.output.splitlines()] == [
            "step 1",
            "step 2",
        ]
        env = {**os.environ}
        follower = subprocess.Popen(
            [CLI, "entries", "tail", "--project", "alpha", "-n", "1", "--follow"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            lines = lines_of(follower)
            assert "step 2" in lines.get(timeout=30)
            rt.entries.append(alice, "alpha", NewEntry(message="live one", session_id=session))
            assert "live one" in lines.get(timeout=30)  # printed as it arrives
        finally:
            follower.terminate()
            follower.wait(10)
    finally:
        rt.close()


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[str]:
    """Lines a process prints, readable with a timeout (a hung follower fails, not hangs)."""
    found: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            found.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return found


def test_work_items_tree_status_and_archive_done(run, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from agentledger.application.clock import ManualClock
    from agentledger.application.work_items import NewWorkItem

    clock = ManualClock(datetime.now(UTC) - timedelta(days=400))  # the CLI runs at "now"
    rt = build_runtime(settings, clock)
    try:
        ctx = RequestContext(local_operator("test"), "setup")
        rt.projects.create(ctx, "apollo")
        epic = rt.work_items.create(ctx, NewWorkItem("apollo", "epic", "Parser")).value
        task = rt.work_items.create(ctx, NewWorkItem("apollo", "task", "Lexer", parent_id=epic.id))
        old = rt.work_items.create(ctx, NewWorkItem("apollo", "task", "Old work")).value
        for step in ("in_progress", "in_review", "done"):
            rt.work_items.transition(ctx, old.id, step, None, fence=None)
    finally:
        rt.close()

    tree = run("work-items", "tree", "--project", "apollo")
    assert tree.exit_code == 0, tree.output
    lines = tree.output.splitlines()
    assert lines[0].startswith("- [open] Parser (epic, ")
    assert lines[1].startswith("  - [open] Lexer (task, ")
    assert lines[2].startswith("- [done] Old work (task, ")
    assert str(task.value.id)[:8] in lines[1]

    markdown = run("status", "--project", "apollo", "--markdown")
    assert markdown.exit_code == 0, markdown.output
    assert "# Status of project `apollo`" in markdown.output
    assert "- Old work (task) — done" in markdown.output
    report = json.loads(run("status", "--project", "apollo").output)
    assert report["total"] == 3 and report["by_status"] == {"done": 1, "open": 2}
    explicit = json.loads(run("status", "--project", "apollo", "--json").output)
    # --json names the default, as on every other command (only the report's time moves)
    assert {**explicit, "generated_at": None} == {**report, "generated_at": None}
    both = CliRunner().invoke(cli, ["status", "--project", "apollo", "--json", "--markdown"])
    assert both.exit_code == 2 and "alternatives" in both.output

    bad = run("work-items", "archive-done", "--older-than", "a year")
    assert bad.exit_code == 2 and "not a duration" in bad.output
    kept = run("work-items", "archive-done", "--older-than", "500d")
    assert "archived 0 item(s)" in kept.output
    archived = run("work-items", "archive-done", "--older-than", "365d")
    assert archived.exit_code == 0, archived.output
    assert "archived 1 item(s)" in archived.output
    after = json.loads(run("status", "--project", "apollo").output)
    assert after["total"] == 2  # archived items leave the report, and nothing was deleted
    assert "Old work" not in run("work-items", "tree", "--project", "apollo").output


def test_version_comes_from_the_installed_package() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output == f"agentledger {version('agentledger')}\n"
    installed = subprocess.run([CLI, "--version"], capture_output=True, text=True, check=True)
    assert installed.stdout == result.output  # the console script says the same


@pytest.mark.parametrize(
    "command",
    [[], ["tokens"], ["tokens", "issue"], ["work-items", "archive-done"], ["status"]],
)
def test_h_is_help_on_every_command(command: list[str]) -> None:
    short = CliRunner().invoke(cli, [*command, "-h"])
    long = CliRunner().invoke(cli, [*command, "--help"])
    assert short.exit_code == 0, short.output
    assert short.output == long.output and "Usage: " in short.output
    assert "-h, --help" in short.output


def test_approvals_list_and_decide_as_the_approver(  # type: ignore[no-untyped-def]
    run, settings: Settings
) -> None:
    def token(principal: str, role: str) -> str:
        issued = run("tokens", "issue", "--principal", principal, "--role", role, "--json")
        return str(json.loads(issued.output)["token"])

    approver, other = token("user:ann", "approver:security"), token("agent:ned", "agent")
    rt = build_runtime(settings)
    try:
        ctx = RequestContext(local_operator("tester"), "test-setup")
        rt.projects.create(ctx, "apollo")
        item = rt.work_items.create(ctx, NewWorkItem("apollo", "task", "Ship")).value
        approval = rt.approvals.request(ctx, item.id, NewApproval("security", "auth")).value
    finally:
        rt.close()
    approval_id = str(approval.approval.id)

    queue_ = json.loads(run("approvals", "list", "--role", "security", "--json").output)
    assert [(a["id"], a["status"]) for a in queue_] == [(approval_id, "pending")]
    assert "(none)" in run("approvals", "list", "--status", "approved").output

    refused = CliRunner().invoke(
        cli, ["approvals", "decide", approval_id, "approved", "--token", other]
    )
    assert refused.exit_code == 1 and "approver:security" in refused.output
    unknown = CliRunner().invoke(cli, ["approvals", "decide", approval_id, "approved"], env={})
    assert unknown.exit_code == 2  # no token: the decision must be someone's

    decided = run(
        "approvals", "decide", approval_id, "rejected", "--notes", "not yet", "--token", approver
    )
    assert decided.exit_code == 0, decided.output
    assert decided.output.strip() == f"rejected {approval_id} by user:ann"
    listed = json.loads(run("approvals", "list", "--status", "rejected", "--json").output)
    assert [(a["decided_by"], a["notes"]) for a in listed] == [("user:ann", "not yet")]
