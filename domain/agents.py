"""Agent profiles: what an agent says of itself in the directory (name, kind, capabilities,
workspace, endpoints, config). One aggregate per agent, its id derived from the agent id.

Liveness is not here: an agent's status is derived from its sessions and claims by the
directory read model, never set. A profile is written whole (PUT); writing what is already
there records nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from agentledger.domain.errors import InvalidValue
from agentledger.domain.events import EventContext, LedgerAggregate
from agentledger.domain.json_objects import validate_json_object
from agentledger.domain.names import validate_agent_id
from agentledger.domain.text import clean_optional_text, clean_text

SLUG = r"[a-z0-9][a-z0-9._-]{0,63}"
SLUG_PATTERN = re.compile(f"^{SLUG}$")  # kinds, capabilities, endpoint names
MAX_DISPLAY_NAME = 200
MAX_WORKSPACE = 1000
MAX_CAPABILITIES = 64
MAX_ENDPOINTS = 16
MAX_URL_LENGTH = 2048
MAX_CONFIG_BYTES = 16384  # of the config's compact JSON encoding
MAX_CONFIG_DEPTH = 8  # objects and arrays nested in the config object, itself included
PROFILE_FIELDS = ("display_name", "kind", "capabilities", "workspace", "endpoints", "config")


def profile_id(agent_id: str) -> UUID:
    return uuid5(NAMESPACE_URL, f"agentledger:agent:{agent_id}")


class AgentProfile(LedgerAggregate):
    if TYPE_CHECKING:  # set by events' apply(); not constructor arguments
        agent_id: str
        display_name: str | None
        kind: str | None
        capabilities: list[str]
        workspace: str | None
        endpoints: dict[str, str]
        config: dict[str, Any]

    class AgentRegistered(LedgerAggregate.Created):
        agent_id: str
        display_name: str | None
        kind: str | None
        capabilities: list[str]
        workspace: str | None
        endpoints: dict[str, str]
        config: dict[str, Any]

        def apply(self, aggregate: Any) -> None:
            aggregate.agent_id = self.agent_id
            _set_profile(aggregate, self)

    class AgentProfileUpdated(LedgerAggregate.Event):
        # The whole profile after the update (a PUT writes it whole), and which fields changed.
        display_name: str | None
        kind: str | None
        capabilities: list[str]
        workspace: str | None
        endpoints: dict[str, str]
        config: dict[str, Any]
        changed: list[str]

        def apply(self, aggregate: Any) -> None:
            _set_profile(aggregate, self)

    @classmethod
    def register(cls, ctx: EventContext, agent_id: str, profile: Profile) -> AgentProfile:
        return cls._begin(
            cls.AgentRegistered,
            ctx,
            profile_id(validate_agent_id(agent_id)),
            agent_id=agent_id,
            **profile.fields(),
        )

    def update(self, ctx: EventContext, profile: Profile) -> bool:
        """Replace the profile; the same profile again writes nothing (returns False)."""
        new = profile.fields()
        changed = [name for name in PROFILE_FIELDS if getattr(self, name) != new[name]]
        if not changed:
            return False
        self._record(self.AgentProfileUpdated, ctx, changed=changed, **new)
        return True


def _set_profile(aggregate: Any, event: Any) -> None:
    # Copies: the event stays what was recorded whatever is done with the aggregate's state.
    aggregate.display_name = event.display_name
    aggregate.kind = event.kind
    aggregate.capabilities = list(event.capabilities)
    aggregate.workspace = event.workspace
    aggregate.endpoints = dict(event.endpoints)
    aggregate.config = json.loads(json.dumps(event.config))


class Profile:
    """A profile as written, validated whole: every field bounded, nothing shared with the
    caller's input (the inputs are copied, never changed, so a retried decision sees them
    as sent)."""

    def __init__(
        self,
        *,
        display_name: str | None = None,
        kind: str | None = None,
        capabilities: Sequence[str] = (),
        workspace: str | None = None,
        endpoints: Mapping[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.display_name = clean_optional_text(display_name, "display_name", MAX_DISPLAY_NAME)
        self.kind = None if kind is None else _slug(kind, "kind")
        self.capabilities = _capabilities(capabilities)
        self.workspace = clean_optional_text(workspace, "workspace", MAX_WORKSPACE)
        self.endpoints = _endpoints(endpoints or {})
        self.config = validate_config(config or {})

    def fields(self) -> dict[str, Any]:
        return {
            "display_name": self.display_name,
            "kind": self.kind,
            "capabilities": list(self.capabilities),
            "workspace": self.workspace,
            "endpoints": dict(self.endpoints),
            "config": json.loads(json.dumps(self.config)),
        }


def _slug(value: str, field: str) -> str:
    if not isinstance(value, str) or not SLUG_PATTERN.fullmatch(value):
        raise InvalidValue(
            f"{field} must be a lowercase slug: 1-64 of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit",
            field=field,
        )
    return value


def _capabilities(values: Sequence[str]) -> list[str]:
    if len(values) > MAX_CAPABILITIES:
        raise InvalidValue(
            f"{len(values)} capabilities; at most {MAX_CAPABILITIES}", field="capabilities"
        )
    found = [_slug(v, "capabilities") for v in values]
    if len(set(found)) != len(found):
        raise InvalidValue("capabilities must not repeat", field="capabilities")
    return found


def _endpoints(values: Mapping[str, str]) -> dict[str, str]:
    if len(values) > MAX_ENDPOINTS:
        raise InvalidValue(f"{len(values)} endpoints; at most {MAX_ENDPOINTS}", field="endpoints")
    return {_slug(name, "endpoints"): _url(url, name) for name, url in values.items()}


def _url(value: str, name: str) -> str:
    field = f"endpoints.{name}"
    if not isinstance(value, str) or len(value) > MAX_URL_LENGTH or not value.isascii():
        raise InvalidValue(f"{field} must be an ASCII URL of at most {MAX_URL_LENGTH}", field)
    clean_text(value, field, MAX_URL_LENGTH)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise InvalidValue(f"{field} is not a URL", field=field) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c in value for c in " "):
        raise InvalidValue(f"{field} must be an http:// or https:// URL with a host", field)
    return value


def validate_config(config: Mapping[str, Any]) -> dict[str, Any]:
    return validate_json_object(config, "config", MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH)
