"""The package's layout is its architecture: each sub-package is a layer and imports only its own
layer and those below it, and no modules import each other in a circle.

Layers, low to high: sim.base, sim.model, sim.engines, sim.statistics, sim.experiments,
sim.outputs, then the command line (sim.cli) and the public API (sim/__init__.py). Imports are
read from the source with ast, at module level and inside functions alike (a lazy import is
still a dependency), so the test needs nothing imported and names the file and line of each
offending import. Results folders are written by one mechanism (sim.base.outdir) alone.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "sim"
LAYERS = ("sim.base", "sim.model", "sim.engines", "sim.statistics", "sim.experiments", "sim.outputs")
TOP = ("sim.cli", "sim.__main__", "sim")  # the command line and the public API, above every layer
# the calls that make a write whole and exclusive (temporary, flush, rename, lock): sim.base.outdir's alone
WRITE_MECHANISM = {("os", "fsync"), ("os", "replace"), ("os", "rename"), ("fcntl", "flock"), ("fcntl", "lockf")}


@dataclass(frozen=True)
class Import:
    """One import statement's dependency of one module on another module of sim."""

    importer: str
    imported: str
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} imports {self.imported}"


def module_files() -> dict[str, Path]:
    """Every module and package of sim by its dotted name."""
    out = {}
    for path in sorted(SIM.rglob("*.py")):
        parts = path.relative_to(SIM.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(modules: dict[str, Path]) -> list[Import]:
    """The imports of sim's modules that reach another module of sim (module and function level)."""
    found = []
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        where = str(path.relative_to(SIM.parent))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=where)):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                # `from package import module` depends on that module; `from module import name` on the module
                targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                           for alias in node.names]
            for target in dict.fromkeys(targets):
                if target == "sim" or target.startswith("sim."):
                    found.append(Import(name, target, where, node.lineno))
    return found


def layer(module: str) -> int:
    """The rank of a module's layer: its index in LAYERS, or one above them all for the top."""
    for rank, package in enumerate(LAYERS):
        if module == package or module.startswith(package + "."):
            return rank
    assert module in TOP, f"{module} belongs to no layer: put it in one of {', '.join(LAYERS)} (tests/test_layout.py)"
    return len(LAYERS)


def layer_name(module: str) -> str:
    rank = layer(module)
    return LAYERS[rank] if rank < len(LAYERS) else "the top (sim.cli, sim/__init__.py)"


def circles(edges: list[Import]) -> list[tuple[list[str], list[Import]]]:
    """Each group of modules that import each other (a strongly connected component of the import
    graph), sorted, with one shortest circle of imports through its first module. Written here (a
    reachability closure and a breadth-first search) because the standard library's graphlib
    reports only the first circle it meets, and the test should name them all."""
    graph: dict[str, dict[str, Import]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, {}).setdefault(edge.imported, edge)

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), {}):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reach = {module: reachable(module) for module in graph}
    found, done = [], set()
    for module in sorted(graph):
        if module in done or module not in reach[module]:
            continue
        group = {m for m in reach[module] if module in reach.get(m, set())}
        done |= group
        # the shortest way back from module to itself, through the group
        back: dict[str, Import] = {}
        todo = [module]
        while todo and module not in back:
            step = []
            for m in todo:
                for nxt, edge in sorted(graph[m].items()):
                    if nxt in group and nxt not in back:
                        back[nxt] = edge
                        step.append(nxt)
            todo = step
        path, at = [], module
        while True:
            path.append(back[at])
            at = back[at].importer
            if at == module:
                break
        found.append((sorted(group), path[::-1]))
    return found


MODULES = module_files()
IMPORTS = imports(MODULES)


def test_the_imports_are_read():
    """The reading finds what the layout is known to hold, so the checks below cannot pass empty."""
    assert {"sim", "sim.cli", "sim.base.errors", "sim.engines.des", "sim.outputs.report"} <= MODULES.keys()
    pairs = {(i.importer, i.imported) for i in IMPORTS}
    assert ("sim", "sim.model.scenario") in pairs  # relative, module level
    assert ("sim.experiments.run", "sim.experiments.capacity") in pairs  # `from . import capacity`
    assert ("sim.outputs.results", "sim.outputs.plots") in pairs  # inside a function
    assert all(i.imported in MODULES for i in IMPORTS), [str(i) for i in IMPORTS if i.imported not in MODULES]


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        layer(module)


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{i} ({layer_name(i.importer)} may not import {layer_name(i.imported)})"
              for i in IMPORTS if layer(i.imported) > layer(i.importer)]
    if upward:
        pytest.fail("imports of a layer above the importer's (layers, low to high: " + ", ".join(LAYERS)
                    + ", then sim.cli and sim/__init__.py):\n" + "\n".join(upward), pytrace=False)


def test_no_import_circles():
    found = circles(IMPORTS)
    if found:
        pytest.fail("modules that import each other in a circle:\n" + "\n".join(
            f"{', '.join(group)}; for example:\n    " + "\n    ".join(map(str, path)) for group, path in found),
            pytrace=False)


def test_the_layout_check_sees_an_upward_import_and_a_circle():
    """The rules above catch what they exist for, on a made-up pair of modules."""
    up = Import("sim.engines.fast.engine", "sim.outputs.plots", "sim/engines/fast/engine.py", 3)
    assert layer(up.imported) > layer(up.importer)
    a = Import("sim.experiments.sweep", "sim.experiments.sensitivity", "sim/experiments/sweep.py", 1)
    b = Import("sim.experiments.sensitivity", "sim.experiments.sweep", "sim/experiments/sensitivity.py", 2)
    c = Import("sim.experiments.sweep", "sim.base.errors", "sim/experiments/sweep.py", 3)
    assert circles([a, b, c]) == [(["sim.experiments.sensitivity", "sim.experiments.sweep"], [b, a])]
    assert circles([a, c]) == []


def test_flow_records_are_not_defined_in_the_simpy_engine():
    """The statistics and the fast engine read FlowRecord: it lives below both engines."""
    engine = SIM / "engines" / "des"
    defined = [f"{path.relative_to(SIM.parent)}:{node.lineno}" for path in engine.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.Assign)) and "FlowRecord" in _names(node)]
    assert not defined, f"FlowRecord is defined in the SimPy engine: {', '.join(defined)}"


def _names(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Assign):
        return {t.id for t in node.targets if isinstance(t, ast.Name)}
    return {node.name}


def test_only_the_results_folder_mechanism_flushes_renames_and_locks():
    """A temporary write, flush, rename and lock written again elsewhere is a second writer of
    results that the first's rules (what may be replaced, debris after a kill) do not cover."""
    found = [f"{path.relative_to(SIM.parent)}:{node.lineno}: {node.value.id}.{node.attr}"
             for name, path in MODULES.items() if name != "sim.base.outdir"
             for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
             and (node.value.id, node.attr) in WRITE_MECHANISM]
    assert not found, "results written outside sim/base/outdir.py:\n" + "\n".join(found)


def test_the_public_api_is_importable_from_sim():
    import sim
    from sim import compare, load, read_table, run, sweep, write_results

    assert all(callable(f) for f in (load, run, compare, sweep, write_results, read_table))
    assert set(sim.__all__) >= {"load", "run", "compare", "sweep", "write_results", "read_table"}
    assert sweep.__name__ == "sweep" and all(getattr(sim, name) is not None for name in sim.__all__)
