"""Flat metadata objects: small, JSON-safe, bounded so one client cannot bloat the log."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, TypeAlias

from agentledger.domain.errors import InvalidValue
from agentledger.domain.text import clean_text

Scalar: TypeAlias = str | int | float | bool | None
Metadata: TypeAlias = dict[str, Scalar]

MAX_KEYS = 64
MAX_KEY_LENGTH = 64
MAX_TOTAL_BYTES = 8192


def validate_metadata(value: Mapping[str, object]) -> Metadata:
    """Return a copy of a flat metadata object, or raise `InvalidValue` saying what is wrong."""
    if len(value) > MAX_KEYS:
        raise InvalidValue(
            f"metadata has {len(value)} keys; at most {MAX_KEYS} allowed", field="metadata"
        )
    clean: Metadata = {}
    for key, item in value.items():
        if not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidValue(
                f"metadata keys must be 1-{MAX_KEY_LENGTH} characters", field="metadata"
            )
        if not isinstance(item, str | int | float | bool) and item is not None:
            raise InvalidValue(
                f"metadata['{key}'] must be a string, number, boolean or null", field="metadata"
            )
        clean_text(key, "metadata key", MAX_KEY_LENGTH)
        if isinstance(item, str):
            clean_text(item, f"metadata['{key}']", MAX_TOTAL_BYTES)
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidValue(f"metadata['{key}'] must be a finite number", field="metadata")
        clean[key] = item
    size = len(json.dumps(clean, separators=(",", ":")).encode())
    if size > MAX_TOTAL_BYTES:
        raise InvalidValue(
            f"metadata is {size} bytes; at most {MAX_TOTAL_BYTES} allowed", field="metadata"
        )
    return clean


def merge_patch(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """JSON merge patch (RFC 7396) of an object's top level: null removes a key."""
    merged = dict(current)
    for key, item in patch.items():
        if item is None:
            merged.pop(key, None)
        else:
            merged[key] = item
    return merged


def merge_metadata(current: Metadata, patch: Mapping[str, object]) -> Metadata:
    """A merge patch of a flat metadata object, validated."""
    return validate_metadata(merge_patch(current, patch))
