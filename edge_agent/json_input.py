"""JSON from outside the agent: input nested deeper than the parser can go is malformed like any other."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def loads(data: str | bytes | bytearray) -> Any:
    """`json.loads`, but `[[[[…` nested past the interpreter's recursion limit raises JSONDecodeError (a
    ValueError, which every boundary already refuses with a reason) instead of RecursionError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None


def short_id(value: Any, name: str, code: str, refuse: Callable[[str, str], Exception]) -> str:
    """A string of 1..64 characters (an id a page made up); otherwise `refuse(code, reason)`."""
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise refuse(code, f"{name} must be a string of 1..64 characters")
    return value


def aware_time(value: Any, name: str, code: str, refuse: Callable[[str, str], Exception]) -> datetime:
    """An ISO 8601 time with its zone (a browser's `toISOString()`), as UTC; otherwise `refuse(code, reason)`."""
    if not isinstance(value, str) or len(value) > 40:
        raise refuse(code, f"{name} must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise refuse(code, f"{name} must be an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise refuse(code, f"{name} needs a time zone (UTC 'Z')")
    return parsed.astimezone(UTC)


def number(value: Any, name: str, low: float, high: float, refuse: Callable[[str, str], Exception]) -> float:
    """A JSON number (not a boolean) within low..high, as a float; otherwise `refuse("bad_field", reason)`."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not low <= value <= high:
        raise refuse("bad_field", f"{name} must be a number in {low:g}..{high:g}")
    return float(value)


def any_object(data: bytes, *, max_bytes: int, refuse: Callable[[str, str], Exception], what: str) -> dict[str, Any]:
    """A JSON object of at most `max_bytes` (whatever its keys: firmware that adds fields); otherwise
    `refuse(code, reason)` is raised, naming `what` was wrong (`too_large` or `malformed`)."""
    found = _decoded(data, max_bytes, refuse, what)
    if not isinstance(found, dict):
        raise refuse("malformed", f"{what} must be a JSON object")
    return found


def exact_object(
    data: bytes, keys: tuple[str, ...], *, max_bytes: int, refuse: Callable[[str, str], Exception], what: str
) -> dict[str, Any]:
    """A JSON object with exactly `keys`, at most `max_bytes` long; otherwise `refuse(code, reason)` is raised,
    naming `what` was wrong (`too_large` or `malformed`)."""
    found = _decoded(data, max_bytes, refuse, what)
    if not isinstance(found, dict) or set(found) != set(keys):
        raise refuse("malformed", f"{what} must be an object with exactly {', '.join(keys)}")
    return found


def _decoded(data: bytes, max_bytes: int, refuse: Callable[[str, str], Exception], what: str) -> Any:
    if len(data) > max_bytes:
        raise refuse("too_large", f"{what} of {len(data)} bytes, at most {max_bytes}")
    try:
        return loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise refuse("malformed", f"{what} is not UTF-8 JSON ({exc})") from None
