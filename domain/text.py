"""Free text the log stores: bounded, and free of control characters.

NUL in particular cannot be stored by PostgreSQL's text columns while SQLite accepts it; the
rule is the domain's so both stores hold exactly the same log.
"""

from __future__ import annotations

import re

from agentledger.domain.errors import InvalidValue

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(value: str, field: str, max_length: int) -> str:
    """Return `value` if it is at most `max_length` characters without control characters
    (tab and newlines are allowed); otherwise raise `InvalidValue` naming the field."""
    if len(value) > max_length:
        raise InvalidValue(f"{field} is longer than {max_length} characters", field=field)
    if _CONTROL.search(value):
        raise InvalidValue(f"{field} must not contain control characters", field=field)
    return value


def clean_optional_text(value: str | None, field: str, max_length: int) -> str | None:
    return None if value is None else clean_text(value, field, max_length)
