"""SQLite through sqlite-utils: one module per aggregate, one connection that writes."""

from .db import Store, open_store

__all__ = ["Store", "open_store"]
