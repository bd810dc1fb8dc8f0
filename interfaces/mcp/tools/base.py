"""What a tool is: a name, a description written for a model, the arguments it takes (a strict
pydantic model, published as the tool's input schema), what it answers (an HTTP response model,
published as its output schema) and the API calls it makes."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field

from agentledger.interfaces.http.idempotency import MAX_KEY_LENGTH
from agentledger.interfaces.http.schemas import LooseUUID
from agentledger.interfaces.mcp.api import Caller

MAX_COUNTER = 10**18 - 1  # what the API's version and fence headers take (18 digits)


class ToolArgs(BaseModel):
    """A tool's arguments: unknown ones refused, no coercion (`"3"` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)


IdempotencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        pattern=r"^[ -~]+$",
        description="Any unique string (e.g. a UUID) for this write. Sent again with the same "
        "key and arguments, the call answers as the first time and writes nothing more: retry "
        "with the same key whenever you are unsure a write was applied.",
    ),
]
ExpectedVersion = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_COUNTER,
        description="The version you last saw (0: there is none yet). If it is stale the call "
        "is refused with the current version; read again, decide again, retry.",
    ),
]
Fence = Annotated[
    int,
    Field(
        ge=0,
        le=MAX_COUNTER,
        description="The fence of your claim (claim.fence in claim / claim_next results): "
        "required when you write an item you hold.",
    ),
]
SessionId = Annotated[
    LooseUUID | None,
    Field(description="Your session. Default: your newest live session (start_session)."),
]
ItemId = Annotated[LooseUUID, Field(description="The work item's id.")]


class Mutating(ToolArgs):
    """Every tool that writes takes an idempotency key, as every HTTP write does."""

    idempotency_key: IdempotencyKey | None = None


Run = Callable[[Caller, Any], Awaitable[Any]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[ToolArgs]
    output: type[BaseModel]
    run: Run
    read_only: bool
    # Calls with the same arguments land in the same state (the MCP idempotentHint).
    idempotent: bool = False

    @cached_property
    def input_schema(self) -> dict[str, Any]:
        return self.args.model_json_schema()

    @cached_property
    def output_schema(self) -> dict[str, Any]:
        return self.output.model_json_schema(mode="serialization")


@dataclass
class Toolbox:
    """The tools of one area, registered by decorating their functions."""

    tools: list[Tool] = field(default_factory=list)

    def tool(
        self, output: type[BaseModel], *, read_only: bool = False, idempotent: bool = False
    ) -> Callable[[Run], Run]:
        def register(run: Run) -> Run:
            args = get_type_hints(run)["args"]
            description = inspect.getdoc(run) or ""
            self.tools.append(
                Tool(run.__name__, description, args, output, run, read_only, idempotent)
            )
            return run

        return register


def body(args: BaseModel, model: type[BaseModel], **values: Any) -> dict[str, Any]:
    """The HTTP body of `model` from the arguments the caller gave (left-out ones are left
    to the API's defaults), with `values` filled in by the tool."""
    given = args.model_dump(mode="json", include=set(model.model_fields), exclude_unset=True)
    return {**given, **{k: v for k, v in values.items() if v is not None}}
