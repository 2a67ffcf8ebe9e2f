"""Structured logs: one JSON object per line on stderr, which journald keeps as the message.

Secrets never reach a log line through these formatters: values of fields whose names look like secrets are
replaced, and so are secrets inside the text itself (an exception's repr, a URL): the password of a
`scheme://user:password@host` URL, a bearer token, a `token=...` / `password: ...` pair, a signed query.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

_SECRET = re.compile(r"(password|secret|token|private|credential|key)", re.IGNORECASE)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
_IN_TEXT = (
    (re.compile(r"([a-z][a-z0-9+.-]*://[^\s/@:]*:)[^\s/@]*@", re.IGNORECASE), r"\1[redacted]@"),
    (re.compile(r"(\bBearer\s+)[^\s'\",;]+", re.IGNORECASE), r"\1[redacted]"),
    (
        re.compile(
            r"(\b[\w-]*(?:password|passwd|secret|token|signature|api[_-]?key|private[_-]?key|credential)s?[\w-]*"
            r"['\"]?\s*[=:]\s*['\"]?)[^\s'\",;&)}\]]+",
            re.IGNORECASE,
        ),
        r"\1[redacted]",
    ),
)


def redact(text: str) -> str:
    """The text with anything that looks like a secret replaced by [redacted]."""
    for pattern, replacement in _IN_TEXT:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = "[redacted]" if _SECRET.search(name) else _jsonable(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _jsonable(value: object) -> object:
    if isinstance(value, int | float | bool | type(None)):
        return value
    return redact(value if isinstance(value, str) else repr(value))


def setup(level: int | str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
