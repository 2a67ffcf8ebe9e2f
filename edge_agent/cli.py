"""`edge-agent run | demo | check-config | db status`: the operator's entry points."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from . import __version__, config
from .ops import logs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edge-agent", description=__doc__)
    parser.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the agent with a config file")
    run.add_argument("--config", required=True, type=Path)

    check = commands.add_parser("check-config", help="validate a config file and exit 0 if it is good")
    check.add_argument("file", type=Path)

    demo = commands.add_parser("demo", help="a demo store with simulated shoppers; no broker or hardware")
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long and print a JSON summary")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--dir", type=Path, default=None, help="where to keep the demo's config and database")
    demo.add_argument("--no-players", action="store_true", help="no headless screen players; browsers only")

    db = commands.add_parser("db", help="look at the local database")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    status = db_commands.add_parser("status", help="schema version and row counts as JSON")
    status.add_argument("--config", required=True, type=Path)

    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "run":
        return _run(args.config)
    if args.command == "demo":
        return _demo(args)
    return _db_status(args.config)


def _load(path: Path) -> config.Settings | None:
    try:
        return config.load(path)
    except config.ConfigError as exc:
        print(exc, file=sys.stderr)
        return None


def _check_config(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    from .signage.sign_profile import ProfileError, load

    for i, sign in enumerate(settings.surfaces.signs):
        try:
            load(sign.profile)
        except ProfileError as exc:
            print(f"invalid configuration {path}:\n  surfaces.signs[{i}].profile: {exc}", file=sys.stderr)
            return 2
    print(
        f"{path}: ok (store {settings.store.id}, {len(settings.zones)} zones, "
        f"{len(settings.touchpoints)} touchpoints, database {settings.database.path})"
    )
    return 0


def _run(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    logs.setup(logging.getLogger().level, settings.ops.log_format)
    from .app import Agent

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await Agent(settings).run(stop)

    asyncio.run(serve())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    summary = asyncio.run(run_demo(args.seconds, args.port, args.dir, players=not args.no_players))
    print(json.dumps(summary), flush=True)
    return 0 if summary["errors"] == 0 else 1


def _db_status(path: Path) -> int:
    settings = _load(path)
    if settings is None:
        return 2
    from .store import open_store
    from .store.migrate import version

    store = open_store(settings.database.path)
    try:
        report = {
            "path": str(settings.database.path),
            "schema_version": version(store.db),
            "offers": store.offers.count(),
            "customers": store.roster.count(),
            "decisions": store.decisions.count(),
            "impressions": store.impressions.count(),
            "outbox_depth": store.outbox.depth(),
        }
    finally:
        store.close()
    print(json.dumps(report))
    return 0
