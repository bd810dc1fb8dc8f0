"""Names shared by tokens and sessions: an agent id is the NAME of its `agent:NAME` principal."""

from __future__ import annotations

import re

from agentledger.domain.errors import InvalidValue

NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
AGENT_ID_PATTERN = re.compile(rf"^{NAME}$")


def validate_agent_id(agent_id: str) -> str:
    if not AGENT_ID_PATTERN.fullmatch(agent_id):
        raise InvalidValue(
            "agent_id must be 1-128 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
            field="agent_id",
        )
    return agent_id
