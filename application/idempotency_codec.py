"""A command's outcome as JSON, by field name, for its idempotency key's record.

Read back, a record can build plain values (JSON's own, lists, dicts, tuples, UUIDs and
datetimes) and the application's own dataclasses, nothing else: a stored row names a type,
and the type is looked up among the application's modules already loaded, never imported, so
no row can run code when read (as a pickle's could). Every JSON object in the encoding is a
tagged one (`"$"`), so a dict of the outcome can never be taken for a tag.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from typing import Any
from uuid import UUID

# Where a stored type name may point: the application's views (and what they nest).
ALLOWED_PACKAGE = "agentledger.application"
_SCALARS = (str, int, float, bool, type(None))


class UnencodableOutcome(TypeError):
    """An outcome holding a value the codec does not know: a programming error, found by the
    test that encodes every command's outcome type."""


class UnreadableOutcome(ValueError):
    """A stored outcome that is not one this codec wrote (tampered, or of an older format)."""


def encode_outcome(value: object, events_written: int) -> bytes:
    document = {"value": _encode(value), "events_written": events_written}
    return json.dumps(document, allow_nan=False, separators=(",", ":")).encode()


def decode_outcome(data: bytes) -> tuple[Any, int]:
    """The outcome and how many events its command wrote; `UnreadableOutcome` for anything
    this codec did not write."""
    try:
        document = json.loads(data)
        written = document["events_written"]
        if type(written) is not int:
            raise UnreadableOutcome("events_written is not an integer")
        return _decode(document["value"]), written
    except UnreadableOutcome:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UnreadableOutcome(f"stored outcome cannot be read: {exc}") from exc


def _encode(value: object) -> object:
    if type(value) in _SCALARS:
        return value
    if type(value) is list:
        return [_encode(item) for item in value]
    if type(value) is tuple:
        return {"$": "tuple", "items": [_encode(item) for item in value]}
    if type(value) is dict:
        if not all(type(k) is str for k in value):
            raise UnencodableOutcome("only dicts with string keys can be stored")
        return {"$": "dict", "items": {k: _encode(v) for k, v in value.items()}}
    if type(value) is UUID:
        return {"$": "uuid", "value": str(value)}
    if type(value) is datetime:
        return {"$": "datetime", "value": value.isoformat()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _encode_dataclass(value)
    raise UnencodableOutcome(f"cannot store a {type(value).__qualname__} in an outcome")


def _encode_dataclass(value: Any) -> object:
    kind = type(value)
    name = f"{kind.__module__}:{kind.__qualname__}"
    if _allowed(name) is not kind:
        raise UnencodableOutcome(f"{name} is not an application dataclass")
    return {
        "$": "dataclass",
        "type": name,
        "fields": {
            f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init
        },
    }


def _decode(data: object) -> object:
    if type(data) in _SCALARS:
        return data
    if type(data) is list:
        return [_decode(item) for item in data]
    if type(data) is not dict:
        raise UnreadableOutcome(f"unexpected {type(data).__name__}")
    tag = data.get("$")
    if tag == "tuple":
        return tuple(_decode(item) for item in _of(data["items"], list))
    if tag == "dict":
        return {k: _decode(v) for k, v in _of(data["items"], dict).items()}
    if tag == "uuid":
        return UUID(_of(data["value"], str))
    if tag == "datetime":
        return datetime.fromisoformat(_of(data["value"], str))
    if tag == "dataclass":
        return _decode_dataclass(_of(data["type"], str), _of(data["fields"], dict))
    raise UnreadableOutcome(f"unknown tag {tag!r}")


def _decode_dataclass(name: str, stored: dict[str, Any]) -> object:
    kind = _allowed(name)
    if kind is None:
        raise UnreadableOutcome(f"{name!r} is not an application dataclass")
    init = {f.name for f in dataclasses.fields(kind) if f.init}
    if set(stored) != init:
        raise UnreadableOutcome(f"{name}: stored fields are not its fields")
    return kind(**{k: _decode(v) for k, v in stored.items()})


def _allowed(name: str) -> type | None:
    """The dataclass `module:qualname` names, if its module is the application's and loaded
    (a command's outcome type is: the code producing it is running); never an import."""
    module_name, _, qualname = name.partition(":")
    if module_name != ALLOWED_PACKAGE and not module_name.startswith(ALLOWED_PACKAGE + "."):
        return None
    found: object = sys.modules.get(module_name)
    for part in qualname.split("."):
        if found is None or not part.isidentifier() or part.startswith("_"):
            return None
        found = getattr(found, part, None)
    if not isinstance(found, type) or not dataclasses.is_dataclass(found):
        return None
    if found.__module__ != module_name or found.__qualname__ != qualname:
        return None  # a name imported into the module, not one defined there
    return found


def _of(value: object, kind: type[Any]) -> Any:
    if type(value) is not kind:
        raise UnreadableOutcome(f"expected {kind.__name__}, found {type(value).__name__}")
    return value


__all__ = [
    "UnencodableOutcome",
    "UnreadableOutcome",
    "decode_outcome",
    "encode_outcome",
]
