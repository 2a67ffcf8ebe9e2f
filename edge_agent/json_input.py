"""JSON from outside the agent: input nested deeper than the parser can go is malformed like any other."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def loads(data: str | bytes | bytearray) -> Any:
    """`json.loads`, but `[[[[…` nested past the interpreter's recursion limit raises JSONDecodeError (a
    ValueError, which every boundary already refuses with a reason) instead of RecursionError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def exact_object(
    data: bytes, keys: tuple[str, ...], *, max_bytes: int, refuse: Callable[[str, str], Exception], what: str
) -> dict[str, Any]:
    """A JSON object with exactly `keys`, at most `max_bytes` long; otherwise `refuse(code, reason)` is raised,
    naming `what` was wrong (`too_large` or `malformed`)."""
    if len(data) > max_bytes:
        raise refuse("too_large", f"{what} of {len(data)} bytes, at most {max_bytes}")
    try:
        found = loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise refuse("malformed", f"{what} is not UTF-8 JSON ({exc})") from None
    if not isinstance(found, dict) or set(found) != set(keys):
        raise refuse("malformed", f"{what} must be an object with exactly {', '.join(keys)}")
    return found
