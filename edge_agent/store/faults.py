"""A full or failing disk is an outage, not a bug: the write is refused with a reason, counted, logged once per
episode, and the component that tried keeps running, so writing resumes by itself once space returns.

SQLite reports ENOSPC as SQLITE_FULL ("database or disk is full") and a failed write as SQLITE_IOERR ("disk
I/O error"); both reach Python as `sqlite3.OperationalError`, like a locked database or a bad query, so the
message tells them apart.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import Refused

log = logging.getLogger(__name__)

_STORAGE_MESSAGES = ("database or disk is full", "disk i/o error")


def is_storage_error(exc: BaseException) -> bool:
    """Whether `exc` says the disk is full or failing (rather than anything about the data or the code)."""
    return isinstance(exc, sqlite3.OperationalError) and any(m in str(exc).lower() for m in _STORAGE_MESSAGES)


class StorageRefused(Refused):
    """A write refused because the database's disk is full or failing; retry once space returns."""

    def __init__(self, what: str):
        super().__init__("storage_full", f"{what} could not be stored: the agent's disk is full or failing; try again")


class StorageFaults:
    """Write failures per component, and whether the disk is failing now (since the last failure, no write)."""

    def __init__(self) -> None:
        self.failures: Counter[str] = Counter()
        self.episodes = 0
        self._since: float | None = None
        self._refused_now = 0  # in this episode

    @property
    def failing(self) -> bool:
        return self._since is not None

    def failed(self, component: str, exc: BaseException) -> None:
        """Count a refused write; the first of an episode is logged (the rest would only flood the log)."""
        self.failures[component] += 1
        self._refused_now += 1
        if self._since is None:
            self._since = time.monotonic()
            self.episodes += 1
            log.error("storage: %s cannot write (%s); writes are refused until the disk has room again", component, exc)

    def wrote(self) -> None:
        """A write went through: an episode, if any, is over."""
        if self._since is not None:
            log.warning(
                "storage: writing again after %.1f s; %d writes were refused meanwhile",
                time.monotonic() - self._since,
                self._refused_now,
            )
            self._since, self._refused_now = None, 0

    @contextmanager
    def writing(self, component: str, what: str | None = None) -> Iterator[None]:
        """Run a write: a full or failing disk becomes `StorageRefused` (counted, logged once); success ends an
        episode. Other errors pass through untouched."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if not is_storage_error(exc):
                raise
            self.failed(component, exc)
            raise StorageRefused(what or component) from exc
        self.wrote()
