"""Imports follow the flow's order (DESIGN.md, "Package layout"): a module imports only from its own
layer or the layers below it, and never from a layer above.

    core, envs, nets  <  data  <  policies  <  algos  <  collect  <  train  <  bench  <  commands  <  cli

Every module of ``offmarl`` is parsed with ``ast`` (nothing is imported), so an import inside a function
counts as much as one at the top of a file.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "offmarl"

# Each layer's rank; a module may import from a layer of rank <= its own.
LAYERS: dict[str, int] = {
    "core": 0, "errors": 0, "envs": 0, "nets": 0,
    "data": 1,
    "policies": 2,
    "algos": 3,
    "collect": 4,
    "train": 5,
    "bench": 6,
    "commands": 7,
    "cli": 8,
}
# Layers that import nothing of offmarl but the leaf modules of their own rank 0.
INDEPENDENT = {"envs": {"errors"}, "nets": {"errors"}, "core": {"errors"}}


def _layer(module: str) -> str | None:
    """``offmarl.algos.base`` -> ``algos``; the package root (``offmarl``, its version) has no layer."""
    parts = module.split(".")
    if parts[0] != "offmarl" or len(parts) < 2 or parts[1] in ("__init__", "__main__"):
        return None
    return parts[1]


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == "offmarl" or name.startswith("offmarl.")]


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if own is None:
            continue
        if own not in LAYERS:
            out.append(f"{path.relative_to(PACKAGE.parent)}: layer {own!r} is not in the published order")
            continue
        for line, target in _imports(path):
            other = _layer(target)
            if other is None or other == own:
                continue
            where = f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
            if other not in LAYERS:
                out.append(f"{where}: layer {other!r} is not in the published order")
            elif LAYERS[other] > LAYERS[own]:
                out.append(f"{where}: {own} may not import {other} (a layer above it)")
            elif own in INDEPENDENT and other not in INDEPENDENT[own]:
                out.append(f"{where}: {own} imports nothing of offmarl but {sorted(INDEPENDENT[own]) or 'nothing'}")
    return out


def test_every_import_follows_the_flow():
    violations = _violations()
    assert not violations, "imports against the flow's order:\n" + "\n".join(violations)


@pytest.mark.parametrize("source, own, expect", [
    ("from offmarl.train.loop import fit\n", "algos", "algos may not import train"),
    ("import offmarl.commands.train\n", "bench", "bench may not import commands"),
    ("def f():\n    from offmarl.data import io\n", "envs", "envs may not import data"),
    ("from offmarl.nets.mlp import MLP\n", "envs", "envs imports nothing of offmarl"),
])
def test_a_violation_is_reported(tmp_path, monkeypatch, source, own, expect):
    """The checker itself: an import against the order, at the top or inside a function, is named."""
    fake = tmp_path / "offmarl"
    (fake / own).mkdir(parents=True)
    (fake / own / "mod.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    violations = _violations()
    assert len(violations) == 1 and expect in violations[0] and f"{own}/mod.py:" in violations[0]


def test_relative_imports_are_resolved(tmp_path, monkeypatch):
    fake = tmp_path / "offmarl"
    (fake / "data").mkdir(parents=True)
    (fake / "data" / "mod.py").write_text("from ..algos import base\nfrom . import io\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _violations() == ["offmarl/data/mod.py:1 imports offmarl.algos: "
                             "data may not import algos (a layer above it)"]
