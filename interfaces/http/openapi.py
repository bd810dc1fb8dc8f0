"""OpenAPI 3.1 document built from the route table and the pydantic models.

It declares what the server enforces, so a client generated from it gets its requests
accepted: header formats, required preconditions, path parameter rules, and every status a
route can answer (derived from what the operation reads, plus the ones it lists itself).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from agentledger.application.errors import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from agentledger.interfaces.http.call import (
    ACCEPT_HEADER,
    CONSISTENT_WITH_HEADER,
    FENCE_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    IF_MATCH_HEADER,
    IF_NONE_MATCH_HEADER,
    POSITION_HEADER,
)
from agentledger.interfaces.http.idempotency import REPLAYED_HEADER, STORED_REFUSALS
from agentledger.interfaces.http.problems import PROBLEM_BASE, PROBLEM_JSON, PROBLEM_TYPES
from agentledger.interfaces.http.routing import JSON, TEXT, Operation
from agentledger.interfaces.http.schemas import PATH_RULES, UUID_PATH_PARAMETERS, ProblemOut

MARKDOWN = "text/markdown"
_PATH_PARAM = re.compile(r"\{(\w+)\}")
_LOG_POSITION = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}
_STRONG_TAG = r'^"[0-9]{1,18}"$'
HEADERS: dict[str, dict[str, Any]] = {
    IF_MATCH_HEADER: {
        "schema": {"type": "string", "pattern": r'^(\*|"[0-9]{1,18}")$'},
        "description": 'The version you expect, as an entity tag ("3"); * means any.',
    },
    IF_NONE_MATCH_HEADER: {
        "schema": {"type": "string", "enum": ["*"]},
        "description": "* : the resource must not exist yet (not with If-Match).",
    },
    FENCE_HEADER: {
        "schema": _LOG_POSITION,
        "description": "The fence of your claim on the item (holders must send it).",
    },
    CONSISTENT_WITH_HEADER: {
        "schema": _LOG_POSITION,
        "description": "A log position a write returned: wait until the read reflects it.",
    },
    IDEMPOTENCY_KEY_HEADER: {
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
        "description": "Your unique key for this write: sent again with the same key, the "
        "request is answered as the first time (Idempotent-Replayed: true) and writes "
        "nothing more; another request with the key: 422; while the first runs: 409.",
    },
    ACCEPT_HEADER: {
        "schema": {"type": "string"},
        "description": "Containing text/markdown: the report as markdown.",
    },
}
# Where a precondition is required, `*` counts as none (428): only a strong tag will do.
REQUIRED_HEADERS: dict[str, dict[str, Any]] = {
    IF_MATCH_HEADER: {
        "schema": {"type": "string", "pattern": _STRONG_TAG},
        "description": 'The version you expect, as an entity tag ("3"). Required.',
    },
}
_STATUS_TEXT = {
    200: "Success",
    201: "Created",
    204: "Nothing to do (no body)",
    400: "Malformed request (JSON, header or cursor)",
    401: "Missing or invalid bearer token",
    403: "The principal may not do this",
    404: "No such resource",
    409: "Refused by the current state",
    412: "If-Match does not match the current version",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid fields (each listed in `errors`)",
    428: "A precondition (If-Match, or a fence) is required",
    503: "Store unavailable, or read model not caught up (see Retry-After)",
}


# What an Idempotency-Key adds to a write's answers: its own problems (by status, each an
# example of the problem body), and the replay mark on every answer a replay can repeat.
_KEY_PROBLEMS = {
    InvalidIdempotencyKey: "The key is not 1-255 printable characters.",
    IdempotencyKeyReused: "The key was used before for another body or other preconditions.",
    IdempotencyInProgress: "The first request with the key still runs: retry after Retry-After.",
}
_REPLAYED = {
    "schema": {"type": "string", "enum": ["true"]},
    "description": "This is the stored answer of the first request with this Idempotency-Key; "
    "nothing was written.",
}
_RETRY_AFTER = {
    "schema": {"type": "integer", "minimum": 1},
    "description": "With idempotency-request-in-progress: the seconds until the first "
    "request's in-flight mark runs out.",
}


def build_openapi(operations: list[Operation], version: str) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, schemas)
    _add_schema(ProblemOut, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "AgentLedger", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def statuses_of(op: Operation) -> set[int]:
    """Every error status the operation can answer: what its inputs make possible, plus
    what its command or query refuses (`op.errors`)."""
    statuses = set(op.errors) | {422}  # unknown or repeated query parameters, at least
    if op.authenticated:
        statuses.add(401)
    if op.blocking:
        statuses.add(503)  # store-unavailable
    if op.body is not None:
        statuses |= {400, 413, 415}
    headers = set(op.headers)
    if headers:
        statuses.add(400)  # a header that cannot be read
    if IF_MATCH_HEADER in headers:
        statuses.add(412)
    if IDEMPOTENCY_KEY_HEADER in headers:
        statuses |= {409, 422}  # still in progress; the key reused for another request
    if op.required_headers:
        statuses.add(428)
    if op.query is not None and "cursor" in op.query.model_fields:
        statuses.add(400)
    return statuses


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.handler.__name__,
        "tags": list(op.tags),
        "parameters": _parameters(op),
        "responses": _responses(op, schemas),
    }
    if op.authenticated:
        spec["security"] = [{"bearer": []}]
    if op.body is not None:
        spec["requestBody"] = {
            "required": op.body_required,
            "content": {JSON: {"schema": _add_schema(op.body, schemas)}},
        }
    return spec


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params = [_path_parameter(name) for name in _PATH_PARAM.findall(op.path)]
    if op.query is not None:
        query_schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, prop in query_schema.get("properties", {}).items():
            param: dict[str, Any] = {"name": name, "in": "query", "required": False}
            if _is_array(prop):  # include=a,b: one comma-separated value
                param |= {"style": "form", "explode": False}
            params.append({**param, "schema": prop})
    for header in op.headers:
        required = header in op.required_headers
        declared = REQUIRED_HEADERS.get(header, HEADERS[header]) if required else HEADERS[header]
        params.append({"name": header, "in": "header", "required": required, **declared})
    return params


def _path_parameter(name: str) -> dict[str, Any]:
    if name in UUID_PATH_PARAMETERS:
        schema: dict[str, Any] = {"type": "string", "format": "uuid"}
    else:
        schema = PATH_RULES[name].json_schema()
    return {"name": name, "in": "path", "required": True, "schema": schema}


def _is_array(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "array" or any(
        option.get("type") == "array" for option in prop.get("anyOf", [])
    )


def _responses(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in (op.status, *op.also):
        responses[str(status)] = _success(op, status, schemas)
    keyed = IDEMPOTENCY_KEY_HEADER in op.headers
    for status in sorted(statuses_of(op)):
        problem: dict[str, Any] = {"schema": {"$ref": "#/components/schemas/ProblemOut"}}
        response: dict[str, Any] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {PROBLEM_JSON: problem},
        }
        if keyed:
            _declare_key_answers(response, problem, status)
        responses[str(status)] = response
    return responses


def _declare_key_answers(response: dict[str, Any], problem: dict[str, Any], status: int) -> None:
    """The key's own problems of this status (as examples), and the headers they carry."""
    headers: dict[str, Any] = {}
    for error, detail in _KEY_PROBLEMS.items():
        kind = PROBLEM_TYPES[error]
        if kind.status != status:
            continue
        value = {"type": PROBLEM_BASE + kind.slug, "title": kind.title, "status": status}
        problem.setdefault("examples", {})[kind.slug] = {"value": {**value, "detail": detail}}
        response["description"] += f"; or {kind.slug}"
        if error is IdempotencyInProgress:
            headers["Retry-After"] = _RETRY_AFTER
    if status in STORED_REFUSALS:  # a refusal is stored, so it may be a replay
        headers[REPLAYED_HEADER] = _REPLAYED
    if headers:
        response["headers"] = headers


def _success(op: Operation, status: int, schemas: dict[str, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "Success")}
    if IDEMPOTENCY_KEY_HEADER in op.headers:
        success["headers"] = {REPLAYED_HEADER: _REPLAYED}
    if status == 204:
        return success
    content: dict[str, Any] = {}
    if JSON in op.media:
        content[JSON] = {"schema": _add_schema(op.response, schemas)} if op.response else {}
    for text in (MARKDOWN, TEXT):
        if text in op.media:
            content[text] = {"schema": {"type": "string"}}
    success["content"] = content
    if op.authenticated:
        success.setdefault("headers", {})[POSITION_HEADER] = {"schema": {"type": "integer"}}
    return success


def _add_schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}
