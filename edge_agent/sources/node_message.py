"""Opening a JSON message that another node of the store published (a scanner node, a peer agent).

Pure, no I/O. Both formats share the same outer checks: size, a JSON object, only known keys, the version,
and a sender id that matches the topic it came on; each refusal is raised as the caller's own error type.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import json_input
from ..errors import Refused

NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def open_message(
    payload: bytes,
    *,
    refuse: type[Refused],
    max_bytes: int,
    version: int,
    sender_key: str,
    keys: set[str],
    topic_sender: str | None,
) -> tuple[dict[str, Any], str]:
    """The decoded message and its sender id, or `refuse(code, reason)` naming what was wrong."""
    if len(payload) > max_bytes:
        raise refuse("too_large", f"message of {len(payload)} bytes, at most {max_bytes}")
    try:
        data = json_input.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise refuse("malformed", f"not UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise refuse("malformed", "message must be a JSON object")
    extra = set(data) - keys
    if extra:
        raise refuse("malformed", f"unknown keys {sorted(extra)}; expected {', '.join(sorted(keys))}")
    if data.get("v") != version:
        raise refuse("version", f"v must be {version}, got {data.get('v')!r}")
    sender = data.get(sender_key)
    if not isinstance(sender, str) or not NODE_ID.match(sender):
        raise refuse("malformed", f"{sender_key} must be an id of 1..64 letters, digits, '_', '.', '-'")
    if topic_sender is not None and sender != topic_sender:
        raise refuse("wrong_topic", f"{sender_key} {sender!r} published on the topic of {topic_sender!r}")
    return data, sender
