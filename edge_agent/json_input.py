"""JSON from outside the agent: input nested deeper than the parser can go is malformed like any other."""

from __future__ import annotations

import json
from typing import Any


def loads(data: str | bytes | bytearray) -> Any:
    """`json.loads`, but `[[[[…` nested past the interpreter's recursion limit raises JSONDecodeError (a
    ValueError, which every boundary already refuses with a reason) instead of RecursionError."""
    try:
        return json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
