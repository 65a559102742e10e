"""The package map of docs/ARCHITECTURE.md, checked: imports point one way and modules stay small.

Every import of every module is read from its source (``import``, ``from … import``, and module
names given to ``importlib`` as strings), so that an import pointing up the stack fails here
instead of showing up as a cycle or a surprise in a newcomer's reading.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tds", "supervisor", "actors", "tds_daemon")
MAX_LINES = 400

# Highest first. A module may import its own layer and the layers below it, never one above.
LAYERS = [
    ("command", ["tds"]),
    ("supervisor", ["supervisor"]),
    ("actors", ["actors"]),
    ("http", ["tds_daemon.api"]),
    ("care", ["tds_daemon.care"]),
    ("intake, pull and publish", ["tds_daemon.intake", "tds_daemon.pull", "tds_daemon.publish"]),
    ("apply", ["tds_daemon.apply"]),
    ("guard", ["tds_daemon.guard"]),
    ("store", ["tds_daemon.store"]),
    ("root", ["tds_daemon"]),
]
# The simulator stands apart: a Zoho of its own, which shares only the root's plain helpers with
# TDS, and which nothing but the command starts.
SIMULATOR = "tds_daemon.simulator"


def _layer(module: str) -> int | None:
    """The index in LAYERS of the longest prefix that names ``module``'s layer."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = i, len(p)
    return best


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield ".".join(parts), path


def _imports(module: str, path: Path):
    """Every (line, imported module) of a source file, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield node.lineno, full if full in KNOWN else base
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if func in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value
        elif isinstance(node, ast.Constant) and node.value in KNOWN and "." in node.value:
            yield node.lineno, node.value  # a module named in a string: "-m", a child's command


KNOWN = {m for m, _ in _modules()}


def _ours(name: str) -> bool:
    return name.split(".")[0] in PACKAGES


def test_imports_point_one_way():
    wrong = []
    for module, path in _modules():
        src_layer = _layer(module)
        in_simulator = module == SIMULATOR or module.startswith(SIMULATOR + ".")
        for line, name in _imports(module, path):
            if not _ours(name) or name == module:
                continue
            target_sim = name == SIMULATOR or name.startswith(SIMULATOR + ".")
            where = f"{path.relative_to(ROOT)}:{line} imports {name}"
            if in_simulator and not target_sim and _layer(name) != len(LAYERS) - 1:
                wrong.append(f"{where} (the simulator shares only the root's helpers)")
            elif target_sim and not in_simulator and src_layer != 0:
                wrong.append(f"{where} (only the command starts the simulator)")
            elif not in_simulator and not target_sim and _layer(name) < src_layer:
                wrong.append(f"{where} ({LAYERS[src_layer][0]} must not import {LAYERS[_layer(name)][0]})")
    assert not wrong, "imports pointing up the stack:\n" + "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    """The check itself works: a core module importing an actor is caught."""
    path = tmp_path / "x.py"
    path.write_text("import importlib\nfrom actors import worker\nimportlib.import_module('supervisor.run')\n")
    found = [name for _, name in _imports("tds_daemon.pull.x", path) if _ours(name)]
    assert "actors.worker" in found and "supervisor.run" in found
    assert all(_layer(n) < _layer("tds_daemon.pull.x") for n in found)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_longer_than_the_limit(package):
    long = [f"{path.relative_to(ROOT)}: {n} lines"
            for _, path in _modules() if path.relative_to(ROOT).parts[0] == package
            for n in [len(path.read_text().splitlines())] if n > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines:\n" + "\n".join(long)
