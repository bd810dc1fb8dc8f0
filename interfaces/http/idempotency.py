"""`Idempotency-Key` on write routes (IETF draft-ietf-httpapi-idempotency-key-header): a write
sent again with the same key is answered as the first time, with `Idempotent-Replayed: true`,
and does nothing more.

The key's scope is the principal, the method, the route template and the key; the request's
fingerprint is its canonical JSON body and its precondition headers. Successes are stored by
the command path with their events; the domain's refusals (409, 412, 428, domain 422s) are
stored here, rendered, in a transaction of their own (they wrote nothing). Validation of
the request, authentication and authorisation are not stored, nor are transient failures
(409 concurrency-conflict, 503): the key stays free, and the request sent again runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from starlette.responses import Response

from agentledger.application.errors import (
    ConcurrencyConflict,
    InvalidIdempotencyKey,
    InvalidRequest,
)
from agentledger.application.idempotency import current_claim, current_replay, scope_of
from agentledger.interfaces.http.call import (
    FENCE_HEADER,
    IDEMPOTENCY_KEY_HEADER,
    IF_MATCH_HEADER,
    IF_NONE_MATCH_HEADER,
    HttpCall,
)
from agentledger.interfaces.http.problems import problem_type_of, to_problem

if TYPE_CHECKING:
    from agentledger.interfaces.http.routing import Operation

REPLAYED_HEADER = "Idempotent-Replayed"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What a refusal may be stored as: the state's (409), the preconditions' (412, 428) and the
# domain's validation (422); authentication, authorisation and request validation are not.
STORED_REFUSALS = frozenset({409, 412, 422, 428})
# Answers of those statuses that are not the request's own fate: its body's validation (the
# client corrects it), and a 409 concurrency-conflict, where concurrent writers kept winning
# and the same request sent again may well succeed. Like 503s, they leave the key free.
NOT_STORED = (InvalidRequest, ConcurrencyConflict)
_PRECONDITIONS = (IF_MATCH_HEADER, IF_NONE_MATCH_HEADER, FENCE_HEADER)
MAX_KEY_LENGTH = 255


def idempotency_key(call: HttpCall) -> str | None:
    """The key (1-255 printable ASCII characters; a draft-style quoted string is unquoted)."""
    raw = call.header(IDEMPOTENCY_KEY_HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all(" " <= ch <= "~" for ch in key):
        raise InvalidIdempotencyKey(
            f"{IDEMPOTENCY_KEY_HEADER} must be 1-{MAX_KEY_LENGTH} printable characters"
        )
    return key


def fingerprint(body: bytes, headers: Mapping[str, str]) -> str:
    """The same request in other bytes (key order, spacing) has the same fingerprint."""
    digest = hashlib.sha256()
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        digest.update(b"json\x00" + canonical.encode())
    except ValueError:  # not JSON (or empty): the bytes themselves
        digest.update(b"raw\x00" + body)
    for name in _PRECONDITIONS:
        value = headers.get(name)
        digest.update(f"\x00{name}:{'' if value is None else value.strip()}".encode())
    return digest.hexdigest()


def run_idempotently(operation: Operation, call: HttpCall, key: str) -> Response:
    scope = scope_of(call.principal.name, operation.method, operation.path, key)
    service = call.runtime.idempotency
    with service.attempt(scope, fingerprint(call.raw_body, call.request.headers)) as stored:
        if stored is not None:
            return _replayed(_decode(stored))
        replaying = current_replay() is not None
        try:
            response = operation.handler(call)
        except Exception as exc:
            claim = current_claim()
            if claim is not None and _is_refusal(exc):
                service.store_answer(claim, _encode(to_problem(call.request, exc)))
            raise
        claim = current_claim()
        if claim is not None:
            # Sent back as it is by every replay, whatever the handler would do today (a
            # claim-next replayed on an empty queue must still answer with its item).
            service.store_answer(claim, _encode(response))
    return _replayed(response) if replaying else response


def _is_refusal(exc: Exception) -> bool:
    """A refusal of the request as it stands (sent again, it would be refused again): not a
    request the client still has to correct, nor one that lost a race it may win next time."""
    kind = problem_type_of(exc)
    return kind is not None and kind.status in STORED_REFUSALS and not isinstance(exc, NOT_STORED)


def _replayed(response: Response) -> Response:
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _encode(response: Response) -> bytes:
    return json.dumps(
        {
            "status": response.status_code,
            "headers": [
                [k.decode("latin-1"), v.decode("latin-1")] for k, v in response.raw_headers
            ],
            "body": base64.b64encode(bytes(response.body)).decode(),
        }
    ).encode()


def _decode(stored: bytes) -> Response:
    data = json.loads(stored)
    response = Response(base64.b64decode(data["body"]), status_code=data["status"])
    response.raw_headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in data["headers"]
        if k.lower() != "content-length"
    ] + [(b"content-length", str(len(response.body)).encode())]
    return response
