"""The rooms of docs/architecture.md, checked on the code: no import cycle between modules, and no room imports
a room above it (imports inside functions and under TYPE_CHECKING count too)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edge_agent"
BASE = {"config", "events", "bus", "clock", "errors", "json_input", "secret_files", "profiles", "keys"}
COMPOSITION = {"__main__", "app", "cli", "demo", "devices"}
LOWER = ["store", "radio", "mqtt", "ops"]
# each room and the rooms it may import besides itself and the base
MAY_IMPORT: dict[str, set[str]] = {
    "store": set(),
    "radio": set(),
    "mqtt": set(),
    "ops": set(),
    "sources": {*LOWER},
    "presence": {*LOWER},
    "decide": {*LOWER, "presence"},
    "cloud": {"store", "mqtt", "ops"},
    "signage": {*LOWER, "sources", "presence", "decide"},
    "replay": {*LOWER, "sources", "presence"},
}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["edge_agent", *path.relative_to(PACKAGE).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Every edge_agent module this one imports, by its full name (a package's name for `from pkg import name`)."""
    path, is_package = MODULES[module]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join(here[: len(here) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {m for m in found if m.startswith("edge_agent") and m != module}


def room(module: str) -> str:
    """The room a module is in: its first name under edge_agent ("base" for the shared modules)."""
    first = module.split(".")[1] if "." in module else "base"
    return "base" if first in BASE else first


GRAPH = {m: _imports(m) for m in MODULES}


def test_every_module_is_in_a_known_room():
    known = {"base", *COMPOSITION, *MAY_IMPORT}
    assert {m: room(m) for m in MODULES if room(m) not in known} == {}


def test_no_import_cycle_between_modules():
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " → ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for target in sorted(GRAPH.get(module, ())):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(MODULES):
        visit(module, [])


def test_no_room_imports_a_room_above_it():
    wrong = []
    for module, targets in GRAPH.items():
        src = room(module)
        if src in COMPOSITION:
            continue
        allowed = {"base", src} if src == "base" else {"base", src, *MAY_IMPORT[src]}
        wrong += [f"{module} → {t}" for t in sorted(targets) if room(t) not in allowed]
    assert wrong == []


def test_a_channel_imports_no_other_channel():
    """sources/ble, checkin, pos, peers and vision share only the helpers at sources/ itself."""
    wrong = []
    for module, targets in GRAPH.items():
        parts = module.split(".")
        if len(parts) < 4 or parts[1] != "sources":
            continue
        wrong += [
            f"{module} → {t}"
            for t in sorted(targets)
            if t.startswith("edge_agent.sources.")
            and t.split(".")[2] != parts[2]
            and f"edge_agent.sources.{t.split('.')[2]}" in MODULES  # a module at sources/, not a channel package
            and MODULES[f"edge_agent.sources.{t.split('.')[2]}"][1]
        ]
    assert wrong == []


def test_the_checker_sees_the_imports_and_rooms_it_judges():
    """Without this, a parser that found no imports would pass every rule above."""
    assert room("edge_agent.store.db") == "store" and "decide" not in MAY_IMPORT["store"]
    assert room("edge_agent.clock") == "base" and room("edge_agent.sources.ble.scanner") == "sources"
    assert "edge_agent.decide.catalog" in GRAPH["edge_agent.decide.engine"]
    assert "edge_agent.radio.placer" in GRAPH["edge_agent.presence"]
