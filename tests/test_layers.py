"""The package's layers, low to high: sim.base, sim.model, sim.engines, sim.statistics,
sim.experiments, sim.outputs, then the command line and sim itself. A module imports from its own
layer and those below it only, imports inside functions included, so that an experiment runs
without the code that writes its files and an output reads what the layers below computed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parent.parent / "sim"
LAYERS = ["base", "model", "engines", "statistics", "experiments", "outputs"]


def _modules() -> dict[str, Path]:
    """Every module of the package by its dotted name (a package by its own)."""
    out = {}
    for f in SIM.rglob("*.py"):
        parts = f.relative_to(SIM.parent).with_suffix("").parts
        out[".".join(parts[:-1] if f.name == "__init__.py" else parts)] = f
    return out


def imports(module: str) -> set[str]:
    """The sim modules a module imports, anywhere in its text (a lazy import in a function too)."""
    f = _modules()[module]
    package = module if f.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            names = [node.module] if node.module else [a.name for a in node.names]
            found |= {".".join(base + [n]) for n in names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sim":
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sim"}
    return found


def layer(module: str) -> int:
    """A module's layer: its sub-package's place in LAYERS; the command line and sim above all."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else len(LAYERS)


def upward(module: str) -> list[str]:
    return sorted(m for m in imports(module) if layer(m) > layer(module))


def cycle(start: str, within: str) -> list[str]:
    """A chain of imports from start back to itself through modules named within.* ([] if none)."""
    mods, seen, todo = _modules(), set(), [[start]]
    while todo:
        path = todo.pop()
        for m in sorted(imports(path[-1])):
            if m == start:
                return path + [m]
            if m in mods and m.startswith(within + ".") and m not in seen:
                seen.add(m)
                todo.append(path + [m])
    return []


def test_the_layer_reader_sees_lazy_imports_and_ranks_the_command_line_on_top():
    # the check can fail: an import inside a function counts (the command line imports the
    # calibration's outputs only when it calibrates), and the command line is above every layer
    assert "sim.outputs.calibration" in imports("sim.cli")
    assert upward("sim.outputs.calibration") == [] and "sim.experiments.calibrate" in imports("sim.outputs.calibration")
    assert layer("sim.cli") > layer("sim.outputs") > layer("sim.experiments.calibrate")


@pytest.mark.parametrize("module", ["sim.experiments.calibrate", "sim.experiments.targets",
                                    "sim.experiments.abc_sampler"])
def test_the_calibration_fit_imports_no_output(module):
    # the fit and its check compute; the ensemble, the fitted scenario, the plots and the tables
    # are sim.outputs.calibration's
    assert upward(module) == []


def test_the_report_reads_result_folders_and_imports_none_of_their_writers():
    # the writers of a run's or a comparison's folder write its page with the report; the report
    # reads the folder's files (and what it records of its scenarios: sim.outputs.provenance)
    pages = [m for m in _modules() if m == "sim.outputs.report" or m.startswith("sim.outputs.report.")]
    assert {m for m in pages for i in imports(m) if i.startswith("sim.outputs.results")} == set()
    assert "sim.outputs.report" in imports("sim.outputs.results")


def test_the_outputs_import_one_another_without_a_circle():
    outputs = [m for m in _modules() if m.startswith("sim.outputs.")]
    assert {m: cycle(m, "sim.outputs") for m in outputs if cycle(m, "sim.outputs")} == {}
