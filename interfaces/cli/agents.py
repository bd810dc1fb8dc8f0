"""`agentledger agents` and `agentledger messages`: the directory and what agents write to
each other, read from the read models as the local operator."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import click

from agentledger.application.agents import AgentView
from agentledger.application.messages import MessageView
from agentledger.application.readmodels import AgentFilter, MessageFilter
from agentledger.interfaces.cli.store import operator, runtime

STATUSES = ("busy", "active", "error", "inactive")
FOLLOW_WAIT_SECONDS = 10  # each --follow read long-polls this long


@click.group()
def agents() -> None:
    """The agent directory."""


@agents.command("list")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--capability")
@click.option("--kind")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def agents_list(
    status: str | None, capability: str | None, kind: str | None, as_json: bool
) -> None:
    """Every agent with its status (derived from its sessions and claims, as of now)."""
    where = AgentFilter(capability=capability, status=status, kind=kind)
    with runtime() as rt:
        rt.catch_up()
        cursor = None
        while True:
            page = rt.agents.list(where, limit=500, cursor=cursor)
            for agent in page.items:
                click.echo(_json(asdict(agent)) if as_json else _agent_line(agent))
            if not (cursor := page.next_cursor):
                break


def _agent_line(agent: AgentView) -> str:
    seen = agent.last_seen_at.strftime("%Y-%m-%d %H:%M:%S") if agent.last_seen_at else "-"
    capabilities = ",".join(agent.capabilities) or "-"
    return (
        f"{agent.agent_id:<20} {agent.status:<8} {agent.kind or '-':<14} {seen:<19} {capabilities}"
    )


@click.group()
def messages() -> None:
    """Messages between agents."""


@messages.command("tail")
@click.option("--agent", "agent_id", required=True, help="Whose inbox.")
@click.option("--lines", "-n", default=20, show_default=True, type=click.IntRange(1, 500))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new messages as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def messages_tail(agent_id: str, lines: int, follow: bool, as_json: bool) -> None:
    """Print the latest messages of an agent's inbox, oldest first; with --follow, keep going
    (waiting for each next message rather than polling)."""
    reader = operator("messages-tail").principal
    where = MessageFilter(agent_id)
    with runtime() as rt:
        rt.catch_up()
        found, cursor = [], None
        while True:  # the inbox is oldest first: read to its end, show the last lines
            page = rt.messages.inbox(reader, where, limit=500, cursor=cursor)
            found = (found + page.items)[-lines:]
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        for message in found:
            click.echo(_json(asdict(message)) if as_json else _message_line(message))
        last = max((m.position or 0 for m in found), default=0)
        try:
            while follow:
                fresh = rt.messages.since(reader, where, last, wait=FOLLOW_WAIT_SECONDS)
                for message in fresh:
                    click.echo(_json(asdict(message)) if as_json else _message_line(message))
                    last = max(last, message.position or 0)
        except KeyboardInterrupt:
            pass


def _message_line(message: MessageView) -> str:
    subject = f"[{message.subject}] " if message.subject else ""
    body = message.body.replace("\n", " ")[:120]
    return (
        f"{message.created_at:%Y-%m-%d %H:%M:%S} {message.sender:<20} {message.type:<12} "
        f"{subject}{body}"
    )


def _json(values: dict[str, Any]) -> str:
    return json.dumps(values, default=str)
