"""`agentledger`: run the service and administer it from the machine that holds the store.

Commands run with the store's own credentials, so the operator acts as `system:cli:<os user>`
and is recorded as such on every event they cause.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Any
from uuid import UUID

import click

from agentledger.application.entries import EntryView
from agentledger.application.errors import NotFound
from agentledger.application.readmodels import EntryFilter
from agentledger.application.status import render_markdown
from agentledger.infrastructure.bootstrap import Runtime
from agentledger.interfaces.cli.agents import agents, messages
from agentledger.interfaces.cli.approvals import approvals
from agentledger.interfaces.cli.audit import audit
from agentledger.interfaces.cli.mcp import mcp
from agentledger.interfaces.cli.output import emit
from agentledger.interfaces.cli.projections import projections
from agentledger.interfaces.cli.store import open_runtime, operator, runtime

# `-h` as well as `--help`, on every command: subcommands inherit the group's context settings.
HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


@click.group(context_settings=HELP_OPTIONS)
@click.version_option(
    package_name="agentledger", prog_name="agentledger", message="%(prog)s %(version)s"
)
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(context: click.Context, debug: bool) -> None:
    """AgentLedger: event-sourced coordination for multi-agent AI systems."""
    context.obj = {"debug": debug}
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # One line per request of the MCP tools' in-process API calls would drown the log.
    logging.getLogger("httpx2").setLevel(logging.WARNING)


# --- serve ---------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port (one per core); the runners run once among them.",
)
def serve(host: str, port: int, workers: int) -> None:
    """Run the HTTP API, the projections and the lease sweeper."""
    import uvicorn

    from agentledger.interfaces.http.app import create_app

    rt = open_runtime(writable=True)
    settings = rt.settings
    click.echo(f"AgentLedger on {settings.store_description}, http://{host}:{port}")
    rt.catch_up()
    if not rt.access.has_active_admin():
        click.echo(
            "No admin token yet: create one with "
            "`agentledger tokens issue --principal user:admin --role admin`"
        )
    edge = {  # the limits at the edge (interfaces/http/edge.py)
        "http": "agentledger.interfaces.http.edge:EdgeProtocol",
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": settings.keep_alive_seconds,
    }
    if workers == 1:
        app = create_app(rt, manage_runtime=True)
        uvicorn.run(app, host=host, port=port, log_level="info", **edge)  # type: ignore[arg-type]
        return
    # One Python process serves on one core at most (the GIL): several processes share the
    # socket, each with its own runtime. Every runner's lock lets one of them run it, the others
    # stand by; the aggregate cache reads what other processes wrote before every command.
    rt.close()
    uvicorn.run(
        f"{__name__}:served_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="info",
        **edge,  # type: ignore[arg-type]
    )


def served_app() -> Any:
    """The app one `serve --workers N` process runs (uvicorn imports and calls this)."""
    from agentledger.interfaces.http.app import create_app

    return create_app(open_runtime(writable=True), manage_runtime=True)


# --- tokens --------------------------------------------------------------------------------


@cli.group()
def tokens() -> None:
    """Issue, revoke and list bearer tokens (each is an audited event)."""


@tokens.command("issue")
@click.option("--principal", required=True, help="agent:NAME, user:NAME or service:NAME")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help="agent, coordinator, auditor, admin, approver:NAME or worker:ROLE (repeatable)",
)
@click.option("--label", default=None, help="A note for `tokens list`.")
@click.option("--json", "as_json", is_flag=True)
def tokens_issue(principal: str, roles: tuple[str, ...], label: str | None, as_json: bool) -> None:
    """Issue a token. The secret is printed once and never stored."""
    with runtime() as rt:
        issued = rt.access.issue(operator("tokens-issue"), principal, list(roles), label).value
    if as_json:
        click.echo(
            json.dumps(
                {
                    "token_id": str(issued.token_id),
                    "principal": issued.principal,
                    "roles": issued.roles,
                    "token": issued.secret,
                }
            )
        )
        return
    click.echo(f"token_id:  {issued.token_id}", err=True)
    click.echo(f"principal: {issued.principal} ({', '.join(issued.roles)})", err=True)
    click.echo("token (shown once, keep it safe):", err=True)
    click.echo(issued.secret)


@tokens.command("revoke")
@click.argument("token_id", type=click.UUID)
@click.option("--reason", default=None)
def tokens_revoke(token_id: UUID, reason: str | None) -> None:
    """Revoke a token by its id; it stops working at once."""
    with runtime() as rt:
        try:
            rt.access.revoke(operator("tokens-revoke"), token_id, reason)
        except NotFound:
            raise click.ClickException(f"no token with id {token_id}") from None
    click.echo(f"revoked {token_id}")


@tokens.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked tokens.")
@click.option("--json", "as_json", is_flag=True)
def tokens_list(include_revoked: bool, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    with runtime() as rt:
        rt.catch_up()
        rows = rt.access.list(include_revoked=include_revoked).value
    emit(
        [
            {
                "id": str(r.id),
                "principal": r.principal,
                "roles": r.roles,
                "label": r.label,
                "issued_at": r.issued_at.isoformat(),
                "issued_by": r.issued_by,
                "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None,
            }
            for r in rows
        ],
        ["id", "principal", "roles", "label", "issued_at", "issued_by", "revoked_at"],
        as_json,
    )


# --- sessions ------------------------------------------------------------------------------


@cli.group()
def sessions() -> None:
    """Agent sessions."""


@sessions.command("sweep")
@click.option("--json", "as_json", is_flag=True)
def sessions_sweep(as_json: bool) -> None:
    """Record `SessionExpired` for every session whose lease has lapsed."""
    with runtime() as rt:
        rt.catch_up()
        expired = rt.sessions.sweep(operator("sessions-sweep"))
    click.echo(json.dumps({"expired": expired}) if as_json else f"expired {expired} session(s)")


@sessions.command("archive")
@click.option("--older-than", "older_than", required=True, help="e.g. 30d, 12h, 2w")
def sessions_archive(older_than: str) -> None:
    """Put sessions that ended longer ago than --older-than out of the default session lists
    (they stay in the log and the audit)."""
    age = parse_duration(older_than)
    with runtime() as rt:
        rt.catch_up()
        archived = rt.sessions.archive(operator("sessions-archive"), age)
    click.echo(f"archived {archived} session(s) ended more than {older_than} ago")


# --- projects and the progress log ---------------------------------------------------------


@cli.group()
def projects() -> None:
    """Projects: named bodies of work agents select and log progress to."""


@projects.command("create")
@click.argument("name")
@click.option("--description", default=None)
def projects_create(name: str, description: str | None) -> None:
    """Create a project (names are unique, case-sensitive slugs)."""
    with runtime() as rt:
        project = rt.projects.create(operator("projects-create"), name, description).value
    click.echo(f"created {project.name}")


@projects.command("archive")
@click.argument("name")
@click.option("--reason", default=None)
def projects_archive(name: str, reason: str | None) -> None:
    """Archive a project: no new entries or selections; current selections are cleared."""
    with runtime() as rt:
        rt.projects.archive(operator("projects-archive"), name, reason)
    click.echo(f"archived {name}")


@projects.command("list")
@click.option("--archived/--active", "archived", default=None, help="Only archived / active.")
@click.option("--json", "as_json", is_flag=True)
def projects_list(archived: bool | None, as_json: bool) -> None:
    """List projects by name."""
    with runtime() as rt:
        rt.catch_up()
        found, cursor = [], None
        while True:
            page = rt.projects.list(archived=archived, limit=500, cursor=cursor)
            found += page.items
            if not (cursor := page.next_cursor):
                break
    emit(
        [
            {
                "name": p.name,
                "archived": p.archived,
                "version": p.version,
                "created_at": p.created_at.isoformat(),
                "description": p.description,
            }
            for p in found
        ],
        ["name", "archived", "version", "created_at", "description"],
        as_json,
    )


@cli.group()
def entries() -> None:
    """The progress log."""


@entries.command("tail")
@click.option("--project", required=True)
@click.option("--lines", "-n", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def entries_tail(project: str, lines: int, follow: bool, as_json: bool) -> None:
    """Print a project's latest entries, oldest first; with --follow, keep going."""
    with runtime() as rt:
        rt.catch_up()
        newest = rt.entries.list(EntryFilter(project=project), limit=lines).items
        last = _print_entries(list(reversed(newest)), as_json, 0)
        try:
            while follow:
                time.sleep(1.0)
                rt.catch_up()
                last = _print_entries(_entries_after(rt, project, last), as_json, last)
        except KeyboardInterrupt:
            pass


def _entries_after(rt: Runtime, project: str, last: int) -> list[EntryView]:
    """Every entry newer than `last`, oldest first (paging back as far as needed)."""
    fresh: list[EntryView] = []
    cursor = None
    while True:
        page = rt.entries.list(EntryFilter(project=project), limit=500, cursor=cursor)
        newer = [e for e in page.items if e.position > last]
        fresh += newer
        if len(newer) < len(page.items) or not (cursor := page.next_cursor):
            return list(reversed(fresh))


def _print_entries(found: list[EntryView], as_json: bool, last: int) -> int:
    for e in found:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        **asdict(e),
                        "id": str(e.id),
                        "session_id": str(e.session_id),
                        "created_at": e.created_at.isoformat(),
                    }
                )
            )
        else:
            meta = " ".join(f"{k}={v}" for k, v in e.metadata.items())
            click.echo(
                f"{e.created_at:%Y-%m-%d %H:%M:%S} {e.agent_id:<16} {e.status:<7} "
                f"{e.message}{'  [' + meta + ']' if meta else ''}"
            )
        last = max(last, e.position)
    return last


# --- work items and status -----------------------------------------------------------------

_DURATION = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """`365d`, `12h`, `30m`, `90s`, `2w`."""
    number, unit = text[:-1], text[-1:].lower()
    if unit not in _DURATION or not number.isdigit():
        raise click.BadParameter(f"'{text}' is not a duration such as 365d, 12h, 30m or 2w")
    return timedelta(seconds=int(number) * _DURATION[unit])


cli.add_command(agents)
cli.add_command(messages)
cli.add_command(approvals)
cli.add_command(audit)
cli.add_command(projections)
cli.add_command(mcp)


@cli.group("work-items")
def work_items() -> None:
    """Work items: the project's plan."""


@work_items.command("tree")
@click.option("--project", required=True)
@click.option("--json", "as_json", is_flag=True)
def work_items_tree(project: str, as_json: bool) -> None:
    """Print the project's items as a tree (archived items left out)."""
    with runtime() as rt:
        rt.catch_up()
        rt.projects.get(project)  # an unknown project is an error, not an empty tree
        items = rt.work_items.tree(project).value
    if as_json:
        click.echo(json.dumps([asdict(i) for i in items], default=str, indent=2))
        return
    if not items:
        click.echo("(no items)")
    for item in items:
        holder = f"  @{item.assignee}" if item.assignee else ""
        click.echo(
            f"{'  ' * (item.depth or 0)}- [{item.status}] {item.title} "
            f"({item.kind}, {str(item.id)[:8]}){holder}"
        )


@work_items.command("archive-done")
@click.option("--older-than", "older_than", required=True, help="e.g. 365d, 12h, 2w")
def work_items_archive_done(older_than: str) -> None:
    """Archive done and cancelled items finished longer ago than --older-than."""
    age = parse_duration(older_than)
    with runtime() as rt:
        rt.catch_up()
        archived = rt.work_items.archive_done(operator("work-items-archive-done"), age)
    click.echo(f"archived {archived} item(s) finished more than {older_than} ago")


@cli.command("status")
@click.option("--project", required=True)
@click.option("--markdown", is_flag=True, help="The report for people.")
@click.option("--json", "as_json", is_flag=True, help="The report for programs (the default).")
def status(project: str, markdown: bool, as_json: bool) -> None:
    """A project's status report: counts, work in progress, blocked, ready, done, sessions."""
    if markdown and as_json:
        raise click.UsageError("--markdown and --json are alternatives: give one")
    with runtime() as rt:
        rt.catch_up()
        read = rt.status.report(project)
    if markdown:
        click.echo(render_markdown(read.value), nl=False)
    else:
        click.echo(
            json.dumps({**asdict(read.value), "position": read.position}, default=str, indent=2)
        )
