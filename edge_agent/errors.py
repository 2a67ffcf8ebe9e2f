"""The one shape every refusal at a boundary takes: a stable `code` for counters and a `reason` for people."""

from __future__ import annotations


class Refused(Exception):
    """Input refused at a boundary; subclasses name the boundary (a token, an advert, a claim, ...)."""

    def __init__(self, code: str, reason: str):
        super().__init__(reason)
        self.code = code
        self.reason = reason
