"""`python -m bench NAME [--quick]` runs one benchmark; `python -m bench all [--quick]` runs them all."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys

BENCHMARKS = [
    "checkin",
    "surfaces",
    "sync",
    "decide",
    "ble",
    "vision",
    "fleet",
    "soak",
    "startup",
    "faults",
    "intruder",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("name", choices=[*BENCHMARKS, "all"])
    parser.add_argument("--quick", action="store_true", help="a short run, under a minute")
    args = parser.parse_args(argv)
    names = BENCHMARKS if args.name == "all" else [args.name]
    results = {}
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        results[name] = asyncio.run(module.run(quick=args.quick))
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    print(json.dumps(results if args.name == "all" else results[args.name]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
