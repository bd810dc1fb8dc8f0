"""Free-form JSON objects the log stores (an agent's config, a message's context): copied,
bounded in size and nesting, strings free of control characters, numbers finite."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from agentledger.domain.errors import InvalidValue
from agentledger.domain.text import clean_text


def validate_json_object(
    value: Mapping[str, Any], field: str, max_bytes: int, max_depth: int
) -> dict[str, Any]:
    """A copy of `value`, at most `max_depth` levels deep (itself included) and `max_bytes`
    in compact JSON, or `InvalidValue` naming `field`."""
    if not isinstance(value, Mapping):
        raise InvalidValue(f"{field} must be a JSON object", field=field)
    copy = _copy(value, 1, field, max_bytes, max_depth)
    size = len(json.dumps(copy, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        raise InvalidValue(f"{field} is {size} bytes encoded; at most {max_bytes}", field=field)
    return dict(copy)


def _copy(value: Any, depth: int, field: str, max_bytes: int, max_depth: int) -> Any:
    if isinstance(value, Mapping | list):
        if depth > max_depth:
            raise InvalidValue(f"{field} is nested more than {max_depth} levels deep", field)
        if len(value) > max_bytes:  # before walking a huge container
            raise InvalidValue(f"{field} is larger than {max_bytes} bytes", field)
        if isinstance(value, list):
            return [_copy(v, depth + 1, field, max_bytes, max_depth) for v in value]
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValue(f"{field} keys must be strings", field=field)
            clean_text(key, f"{field} key", max_bytes)
            out[key] = _copy(item, depth + 1, field, max_bytes, max_depth)
        return out
    if isinstance(value, str):
        return clean_text(value, f"{field} value", max_bytes)
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidValue(f"{field} numbers must be finite", field=field)
    if value is None or isinstance(value, bool | int | float):
        return value
    raise InvalidValue(f"{field} holds only JSON values", field=field)
