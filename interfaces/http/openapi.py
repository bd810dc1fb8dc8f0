"""OpenAPI 3.1 document built from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from agentledger.interfaces.http.call import CONSISTENT_WITH_HEADER, POSITION_HEADER
from agentledger.interfaces.http.routing import Operation
from agentledger.interfaces.http.schemas import ProblemOut

_PATH_PARAM = re.compile(r"\{(\w+)\}")
_STATUS_TEXT = {
    400: "Malformed request (JSON, header or cursor)",
    401: "Missing or invalid bearer token",
    403: "The principal may not do this",
    404: "No such resource",
    409: "Refused by the current state",
    412: "If-Match does not match the current version",
    413: "Body too large",
    415: "Body is not JSON",
    422: "Invalid fields (each listed in `errors`)",
    428: "If-Match (or If-None-Match: *) is required",
    503: "Read model not caught up (see Retry-After)",
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


def _operation(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.handler.__name__,
        "tags": list(op.tags),
        "parameters": _parameters(op, schemas),
        "responses": _responses(op, schemas),
    }
    if op.authenticated:
        spec["security"] = [{"bearer": []}]
    if op.body is not None:
        spec["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _add_schema(op.body, schemas)}},
        }
    return spec


def _parameters(op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)
    ]
    if op.query is not None:
        query_schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, prop in query_schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": False, "schema": prop})
    for header in op.headers:
        params.append(
            {"name": header, "in": "header", "required": False, "schema": {"type": "string"}}
        )
    return params


def _responses(op: Operation, schemas: dict[str, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": _add_schema(op.response, schemas)}}
    if op.authenticated:
        success["headers"] = {POSITION_HEADER: {"schema": {"type": "integer"}}}
    responses: dict[str, Any] = {str(op.status): success}
    statuses = set(op.errors) | ({401, 422} if op.authenticated else set())
    if any(h == CONSISTENT_WITH_HEADER for h in op.headers):
        statuses.add(503)
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemOut"}}
            },
        }
    return responses


def _add_schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas[name] = definition
    schemas[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}
