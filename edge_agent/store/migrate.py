"""Numbered schema migrations, `migrations/NNNN_name.sql`, applied in order inside one transaction each.

The schema version lives in SQLite's `user_version`, so a half-applied migration is impossible: the
script and the version bump commit together or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from sqlite_utils import Database

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    numbers = [m.number for m in found]
    if numbers != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {numbers}")
    return found


def version(db: Database) -> int:
    user_version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return user_version


def migrate(db: Database, target: int | None = None) -> list[int]:
    """Apply every migration above the database's version (up to `target`); returns those applied."""
    applied = []
    current = version(db)
    for m in available():
        if m.number <= current or (target is not None and m.number > target):
            continue
        try:
            db.conn.executescript(f"BEGIN IMMEDIATE;\n{m.sql}\nPRAGMA user_version = {m.number};\nCOMMIT;")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise
        applied.append(m.number)
    return applied
