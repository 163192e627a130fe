"""The package's layout: each sub-package a layer (sim.base, sim.model, sim.engines,
sim.statistics, sim.experiments, sim.outputs, then the command line and the public API), no
module importing a layer above its own, no import circle; results folders written by one
mechanism (sim.base.outdir) alone; the public API's names importable from ``sim``.

Imports are read from the source (ast), lazy ones inside functions included: a lazy import
still ties the lower module to the higher one.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "sim"
LAYERS = ("base", "model", "engines", "statistics", "experiments", "outputs")  # low to high
# the calls that make a write whole and exclusive (temporary, flush, rename, lock): sim.base.outdir's alone
WRITE_MECHANISM = {("os", "fsync"), ("os", "replace"), ("os", "rename"), ("fcntl", "flock"), ("fcntl", "lockf")}


def _module(path: Path) -> str:
    parts = path.relative_to(SIM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(SIM.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The modules of sim that module ``name`` imports, anywhere in it."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sim"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "sim":
                target = node.module
            else:
                continue
            for alias in node.names:  # `from .outputs import plots` imports the module sim.outputs.plots
                found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target)
    return {m for m in found if m in MODULES}


def _layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


GRAPH = {m: _imports(m) - {m} for m in MODULES}


@pytest.mark.parametrize("name", [m for m in MODULES if _layer(m) < len(LAYERS)])
def test_no_module_imports_a_layer_above_its_own(name):
    above = sorted(d for d in GRAPH[name] if _layer(d) > _layer(name))
    assert not above, f"{name} imports {', '.join(above)}, a layer above its own"


def test_no_import_circle():
    try:
        graphlib.TopologicalSorter(GRAPH).prepare()
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


def test_only_the_results_folder_mechanism_flushes_renames_and_locks():
    """A temporary write, flush, rename and lock written again elsewhere is a second writer of
    results that the first's rules (what may be replaced, debris after a kill) do not cover."""
    found = []
    for name, path in MODULES.items():
        if name == "sim.base.outdir":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and (node.value.id, node.attr) in WRITE_MECHANISM):
                found.append(f"{name}:{node.lineno} {node.value.id}.{node.attr}")
    assert not found, found


def test_the_public_api_is_importable_from_sim():
    import sim
    from sim import compare, load, read_table, run, sweep, write_results  # noqa: F401

    assert set(sim.__all__) >= {"load", "run", "compare", "sweep", "write_results", "read_table"}
    assert callable(sweep) and sweep.__name__ == "sweep"
    assert all(getattr(sim, name) is not None for name in sim.__all__)
