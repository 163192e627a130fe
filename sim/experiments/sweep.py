"""Parameter sweeps: designs over a scenario's inputs, run on common random numbers, resumable.

A sweep varies some inputs of a scenario, named as the scenario names them
(``gates.km3_4.exit.stages.customs.lanes``, ``demand_steps.exit_level.factor``), over a design
(a full grid, a Latin hypercube, Saltelli's design for Sobol indices or Morris trajectories),
runs replications 0..R-1 of every point with the same seeds (replication i draws every input
the design does not fix identically at every point: common random numbers; in a calibrated
scenario, the same parameter set of its fitted ensemble), and summarises each point's outputs
as ``bordersim run`` does (mean, 95 % interval, spread). A calibrated scenario's fitted inputs
are swept only when named, over the ensemble's 5-95 % range (derive, ensemble_use).

How an input becomes a sweep parameter: the scenario is derived once, with every swept path
turned into an uncertain range spanning its values (a ``--set`` layer ``{uniform = [lo, hi]}``,
validated like any file), so every point is ``Point(derived, {name: value})`` on one shared
scenario; a plain number (lanes = 2) is swept as readily as an uncertain input. Integer fields
(lanes, limits, backlogs) take whole numbers: the design's values for them are rounded, as the
scenario rules round sampled values, and the table shows the value the model used.

Designs are drawn in the unit cube (SALib's samplers) and mapped to each parameter's values
(a list or integer range by equal shares, an interval linearly, a scenario's own triangular
range by its inverse distribution), so the sensitivity indices (sim.experiments.sensitivity) are read off
the same unit design.

This module is the experiment: a sweep checked before any work (prepare), its points run by
groups (run_points), its table and sensitivity (summarise). Its results folder (the command,
chunks of points to resume from, the final tables, plots and report) is sim.outputs.sweep's,
whose ``sweep`` is the entry point (``from sim import sweep``); its printed summary is
sim.outputs.text.sweep_report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import capacity
from ..model.adjust import override_warning, set_warnings
from ..base.errors import BordersimError, ScenarioError, did_you_mean, shorten
from .experiment import ENGINES, Point, iter_design
from ..statistics.metrics import (COST_METRICS, DIVERTED_COST, GROUP_METRICS, SUMMARY_COLUMNS, ReplicationResult,
                                  describe, metric_range)
from ..model.ranges import Range
from ..model.scenario import Layer, Scenario, from_dict, load, merge_layers, set_layer
from .sensitivity import MORRIS_LEVELS, analyse, tested_inputs, unit_problem
from .workers import resolve_workers

DESIGNS = ("grid", "lhs", "sobol", "morris")
SCHEDULERS = ("local", "dask")
DEFAULT_POINTS = {"lhs": 100, "sobol": 32, "morris": 10}  # lhs: points; sobol: base N; morris: trajectories
# The fewest points each design needs for its ranking (design_warning says why, each time it warns).
# assumption (this project's rules, from what each index is a mean of): Sobol's indices and
# their normal bootstrap intervals are ratios of means over the N base points, which wants some
# 30 of them (the usual rule for reading a mean as normal; SALib's and Saltelli et al. 2010's
# examples use hundreds); Morris's mu* is a plain mean of each input's r absolute effects, for
# which 10 trajectories is the usual screening size (Campolongo, Cariboni and Saltelli 2007);
# a hypercube's rule is lhs_points_needed.
MIN_SOBOL_BASE = 32
MIN_MORRIS_TRAJECTORIES = 10
MIN_LHS_POINTS = 10
FITTED_QUANTILES = (0.05, 0.95)  # an ensemble input swept alone: the central 90 % of its fitted values
MAX_POINTS = 100_000  # a table row per point and output: 100,000 points are some 40 M rows
MAX_REPS = 1_000_000
MAX_LIST = 10_000  # values of one list or integer range
STAT_COLUMNS = ["mean", "ci_low", "ci_high", "p05", "p95", "std", "n"]
LABELS = SUMMARY_COLUMNS[:5]  # gate, direction, metric, stage, class
OUTPUT_METRICS = GROUP_METRICS + ("held_by_limit_share", "corridor_share", "diverted_out") + COST_METRICS + (DIVERTED_COST,)
DEFAULT_OUTPUT = "time_in_system_mean_h"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_INTEGER = r"[+-]?\d+"


class SweepError(BordersimError):
    """A sweep that cannot be run as asked: a bad path, spec, design, output or folder."""


# ------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class Param:
    """One swept input: its stable name and the values the design may give it.

    kind: ``list`` (the values given), ``int_range`` (a..b, every whole number between),
    ``interval`` (lo:hi, continuous), ``range`` (the scenario's own uncertain range: ``dist``
    uniform or triangular, ``values`` as in the file) or ``fitted`` (an input the scenario's
    fitted ensemble sets: uniform over the 5-95 % range of its fitted values, ``prior`` the
    range the fit started from). integer: the field takes whole numbers (set from the scenario
    when the sweep is derived)."""

    name: str
    kind: str
    values: tuple[float, ...]
    spec: str = ""
    integer: bool = False
    dist: str = "uniform"
    prior: tuple[float, ...] = ()

    @property
    def discrete(self) -> bool:
        return self.kind in ("list", "int_range")

    def low(self) -> float:
        return min(self.values) if self.discrete else self.values[0]

    def high(self) -> float:
        return max(self.values) if self.discrete else self.values[-1]

    def levels(self) -> list[float] | None:
        """The values of a grid axis (None: continuous, no grid)."""
        return list(self.values) if self.discrete else None

    def uncertain_input(self) -> Range:
        """A continuous parameter as the uncertain input it is swept as (sim.model.ranges.Range):
        a scenario's own range with its distribution; an interval, or a fitted input's 5-95 %
        range, uniform."""
        if self.kind == "range":
            return Range((self.name,), self.dist, tuple(self.values))
        return Range((self.name,), "uniform", (self.values[0], self.values[-1]))

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Values for points of the unit interval: a list or integer range by equal shares of
        [0, 1], a continuous parameter by its distribution's inverse (Range.ppf); rounded to
        whole numbers for an integer field (as the scenario rounds sampled values)."""
        u = np.asarray(u, dtype=float)
        if self.discrete:
            k = len(self.values)
            return np.asarray(self.values, float)[np.clip(np.floor(u * k).astype(np.int64), 0, k - 1)]
        out = self.uncertain_input().ppf(u)
        return np.array([float(round(v)) for v in out]) if self.integer else out

    def identity(self) -> dict:
        """What the sweep's identity (sweep.json) records of it (and the report shows)."""
        out = {"name": self.name, "kind": self.kind, "values": list(self.values), "dist": self.dist}
        if self.kind == "fitted":
            out["prior"] = list(self.prior)
        return out

    def describe_values(self) -> str:
        return describe_param(self.identity())


def describe_param(identity: Mapping) -> str:
    """The values a parameter is swept over, in words, from what sweep.json records of it
    (Param.identity): the report and the messages say it alike."""
    vals = identity.get("values", [])
    kind = identity.get("kind")
    if kind == "interval":
        return f"interval {vals[0]:g} to {vals[-1]:g}"
    if kind == "range":
        return f"its own {identity.get('dist', '')} range {', '.join(f'{v:g}' for v in vals)}"
    if kind == "fitted":
        return (f"{vals[0]:.4g} to {vals[-1]:.4g}, the fitted ensemble's 5-95 % range (its prior: "
                f"{identity.get('dist', '')} {', '.join(f'{v:g}' for v in identity.get('prior', []))})")
    return ", ".join(f"{v:g}" for v in vals)


def parse_param(text: str) -> tuple[str, str | None]:
    """``PATH=SPEC`` or ``PATH`` (its own uncertain range) -> (path, spec or None)."""
    path, sep, spec = text.partition("=")
    path = path.strip()
    if not path or (sep and not spec.strip()):
        raise SweepError(None, "--param", f"'{shorten(text)}' is not PATH=SPEC (e.g. "
                                          "gates.km3_4.exit.stages.customs.lanes=1,2,3) or the PATH of an "
                                          "uncertain input")
    return path, (spec.strip() if sep else None)


def parse_spec(name: str, spec: str) -> Param:
    """A SPEC: a list ``1,2,3`` (or one value), an integer range ``1..4`` or an interval ``5:40``."""
    where = f"--param {shorten(name, 120)}"
    form = "a list (1,2,3), an integer range (1..4) or an interval (5:40)"
    text = spec.replace(" ", "")
    if ".." in text:
        a, _, b = text.partition("..")
        if not (re.fullmatch(_INTEGER, a) and re.fullmatch(_INTEGER, b)):
            raise SweepError(None, where, f"'{shorten(spec)}' is not an integer range: whole numbers a..b, e.g. 1..4")
        lo, hi = int(a), int(b)
        if lo > hi:
            raise SweepError(None, where, f"the integer range {lo}..{hi} is empty: it needs a <= b")
        if hi - lo + 1 > MAX_LIST:
            raise SweepError(None, where, f"the integer range {lo}..{hi} has {hi - lo + 1:,} values; "
                                          f"at most {MAX_LIST:,}; for a wide range use an interval {lo}:{hi}")
        return Param(name, "int_range", tuple(float(v) for v in range(lo, hi + 1)), spec)
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2 or not all(re.fullmatch(_NUMBER, p) for p in parts):
            raise SweepError(None, where, f"'{shorten(spec)}' is not an interval: two numbers lo:hi, e.g. 5:40")
        lo, hi = (_finite(p, where) for p in parts)
        if not lo < hi:
            raise SweepError(None, where, f"the interval {parts[0]}:{parts[1]} needs lo < hi")
        return Param(name, "interval", (lo, hi), spec)
    items = text.split(",")
    if not all(re.fullmatch(_NUMBER, p) for p in items):
        raise SweepError(None, where, f"'{shorten(spec)}' is not {form}")
    if len(items) > MAX_LIST:
        raise SweepError(None, where, f"lists {len(items):,} values; at most {MAX_LIST:,}")
    values = tuple(_finite(p, where) for p in items)
    dup = next((v for i, v in enumerate(values) if v in values[:i]), None)
    if dup is not None:
        raise SweepError(None, where, f"lists the value {dup:g} twice")
    return Param(name, "list", values, spec)


def _finite(text: str, where: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SweepError(None, where, f"{shorten(text)} is not a finite number")
    return value


# ------------------------------------------------------------------ the derived scenario


def derive(scenario: Scenario, params: Sequence[tuple[str, str | None]]) -> tuple[Scenario, list[Param]]:
    """The scenario in which every swept input is an uncertain range over its values, and the
    parameters with their kinds settled (a PATH alone: its own range, or for an input the
    scenario's fitted ensemble sets, the ensemble's 5-95 % range) and integer fields marked.
    Without params: the scenario's own uncertain inputs over their ranges, but those its fitted
    ensemble sets, which keep the ensemble's parameter sets. Each bad path or spec is one
    SweepError naming ``--param PATH``."""
    if not params:
        if not scenario.ranges:
            raise SweepError(scenario.path, "--param", "the scenario has no uncertain inputs to sweep; name inputs "
                                                       "with --param PATH=SPEC")
        fitted = _fitted_inputs(scenario)
        # a lever's cost range changes no simulated output (bordersim optimise prices it): not swept by default
        free = [r.name() for r in scenario.ranges if r.name() not in fitted and r.path[0] != "levers"]
        if not free:
            raise SweepError(scenario.path, "--param", f"every uncertain input of the scenario comes from its fitted "
                                                       f"ensemble ({ensemble_name(scenario)}), whose parameter sets "
                                                       "a sweep keeps; name the inputs to vary with --param PATH=SPEC, "
                                                       "or --param PATH for an input over the ensemble's 5-95 % range")
        return scenario, _mark_integers(scenario, [_own_range(scenario, n) for n in free])
    names = [p for p, _ in params]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise SweepError(None, f"--param {shorten(dup, 120)}", "is given twice; give each input once")
    parsed: list[Param | None] = [None if spec is None else parse_spec(path, spec) for path, spec in params]
    assignments = []
    for (path, _spec), p in zip(params, parsed):
        if p is None:
            continue
        rng = f"{{uniform = [{toml_number(p.low())}, {toml_number(p.high())}]}}"
        assignments.append((path, f"{path}={rng}"))
    base_layers = list(scenario.layers) or [Layer(scenario.path, scenario.raw)]
    merged = merge_layers(base_layers)
    try:
        layers = base_layers + ([set_layer([a for _, a in assignments], merged, scenario.path)] if assignments else [])
        derived = _from_layers(scenario, layers)
    except ScenarioError as together:
        # which --param it is: each alone (a build validates a fitted ensemble's rows again, so
        # only when the whole fails), the first that fails alone named, else the whole's error
        for path, assignment in assignments:
            try:
                _from_layers(scenario, base_layers + [set_layer([assignment], merged, scenario.path)])
            except ScenarioError as exc:
                raise _param_error(path, exc) from None
        raise SweepError(together.file, together.field,
                         f"{together.message} (with every --param at the ends of its values)") from None
    out = []
    for (path, _spec), p in zip(params, parsed):
        if p is None:
            p = _own_range(derived, path)
        elif path not in derived.by_name:  # pragma: no cover - a --set range is always an input
            raise SweepError(None, f"--param {shorten(path, 120)}", "did not become an input of the scenario")
        out.append(p)
    return derived, _mark_integers(derived, out)


def _from_layers(scenario: Scenario, layers: list[Layer]) -> Scenario:
    return from_dict(merge_layers(layers), scenario.path, base_dir=Path(scenario.path).resolve().parent,
                     layers=layers)


def toml_number(v: float) -> str:
    """A number as TOML writes it in a --set line: a whole number without its .0, else its repr."""
    return str(int(v)) if float(v).is_integer() and abs(v) < 2**53 else repr(float(v))


def _param_error(path: str, exc: ScenarioError) -> SweepError:
    """A scenario's error about a swept path, as one line naming ``--param PATH``; a path that
    names nothing, or no number, says what a PATH is."""
    field_ = exc.field or ""
    structural = field_.startswith("--set ") or "unknown key" in exc.message or "valid number" not in exc.message \
        and "should be" in exc.message and "valid" in exc.message
    field_ = field_.removeprefix("--set ")
    detail = f"{field_}: {exc.message}" if field_ and field_ != path else exc.message
    hint = " (a PATH names a number of the scenario by its keys, as `bordersim validate` lists inputs)" \
        if structural else ""
    return SweepError(None, f"--param {shorten(path, 120)}", detail + hint)


def _own_range(scenario: Scenario, name: str) -> Param:
    """An uncertain input named alone: over its own range, or, where the scenario's fitted
    ensemble sets it, over the 5-95 % range of its fitted values. The fitted range is what the
    calibration left of the prior (which it ruled out in part: a sweep over the prior explores
    values the observations contradict); uniform over the central 90 %, so that a few outlying
    parameter sets do not stretch it."""
    r: Range | None = scenario.by_name.get(name)
    if r is None:
        have = ", ".join(scenario.by_name) or "none"
        raise SweepError(None, f"--param {shorten(name, 120)}",
                         f"is not an uncertain input of the scenario, so it needs values: PATH=SPEC, SPEC a list "
                         f"(1,2,3), an integer range (1..4) or an interval (5:40) (uncertain inputs: {shorten(have, 200)})")
    if name in _fitted_inputs(scenario):
        lo, hi = (float(q) for q in np.quantile(scenario.ensemble[name].to_numpy(float), FITTED_QUANTILES))
        return Param(name, "fitted", (lo, hi), "", dist=r.kind, prior=tuple(r.values))
    if r.kind == "uniform" and r.values[0] == r.values[1] or r.kind == "triangular" and r.values[0] == r.values[2]:
        return Param(name, "list", (r.values[0],), "", dist=r.kind)
    return Param(name, "range", tuple(r.values), "", dist=r.kind)


def _fitted_inputs(scenario: Scenario) -> list[str]:
    """The uncertain inputs the scenario's fitted ensemble sets (its columns, less those a later
    file or a --param sets itself)."""
    return [] if scenario.ensemble is None else [str(c) for c in scenario.ensemble.columns]


def ensemble_name(scenario: Scenario) -> str:
    """The scenario's ensemble file, relative to the scenario file's folder (as a scenario names it)."""
    file = Path(scenario.ensemble_file or "")
    try:
        return os.path.relpath(file.resolve(), Path(scenario.path).resolve().parent)
    except ValueError:  # pragma: no cover - another drive (Windows)
        return file.name


def ensemble_use(base: Scenario, derived: Scenario, params: Sequence[Param]) -> dict | None:
    """What a sweep takes from the scenario's fitted ensemble (None: it has none): the file and
    its parameter sets (replication i takes the same set at every point: common random
    numbers), the inputs that keep its values (not swept), those swept over its 5-95 % range
    (``--param PATH``), and those given values by ``--param PATH=SPEC`` instead of its."""
    if base.ensemble is None:
        return None
    kinds = {p.name: p.kind for p in params}
    return {"file": ensemble_name(base), "parameter_sets": len(base.ensemble),
            "kept": [c for c in _fitted_inputs(derived) if c not in kinds],
            "fitted_range": [p.name for p in params if p.kind == "fitted"],
            "replaced": [c for c in _fitted_inputs(base) if c in kinds and kinds[c] != "fitted"]}


def _mark_integers(scenario: Scenario, params: list[Param]) -> list[Param]:
    """Mark the parameters whose field takes whole numbers; a list of such a field must hold
    whole numbers (an interval's values are rounded, as sampled values are)."""
    out = []
    for p in params:
        integer = _is_integer_field(scenario, scenario.by_name[p.name].path)
        if integer and p.discrete and not all(float(v).is_integer() for v in p.values):
            bad = next(v for v in p.values if not float(v).is_integer())
            raise SweepError(None, f"--param {shorten(p.name, 120)}",
                             f"takes whole numbers; {bad:g} is not one (give whole numbers, an integer range a..b, "
                             "or an interval lo:hi, whose values are rounded)")
        out.append(dataclasses.replace(p, integer=integer))
    return out


def _is_integer_field(scenario: Scenario, path: tuple) -> bool:
    """Whether the validated model holds a whole number at this input's path (lanes, limits,
    backlogs): found by walking the model by the path's keys (items of keyed lists by their
    name or id); False where the path cannot be followed (a float is the safe reading)."""
    from pydantic import BaseModel

    node: Any = scenario.nominal
    for key in path:
        if isinstance(node, BaseModel):
            fields = type(node).model_fields
            attr = key if key in fields else next((n for n, f in fields.items() if f.alias == key), None)
            if attr is None:
                return False
            node = getattr(node, attr)
        elif isinstance(node, dict):
            if key not in node:
                return False
            node = node[key]
        elif isinstance(node, list):
            node = next((it for it in node if getattr(it, "name", None) == key or getattr(it, "id", None) == key),
                        None)
            if node is None:
                return False
        else:
            return False
    return isinstance(node, int) and not isinstance(node, bool)


# ------------------------------------------------------------------ designs


@dataclass(frozen=True)
class Design:
    """Points of a sweep: ``values`` (points x parameters, each point's values, rounded for
    integer fields) and, for the continuous designs, ``unit`` (the same points in the unit
    cube, as SALib drew them: what its analyses read). ``size``: --points as resolved (lhs:
    points; sobol: Saltelli's base N; morris: trajectories; grid: the number of points)."""

    kind: str
    params: tuple[Param, ...]
    values: np.ndarray
    unit: np.ndarray | None
    size: int
    seed: int

    @property
    def points(self) -> int:
        return len(self.values)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    def point_values(self, i: int) -> dict[str, float]:
        return {p.name: float(v) for p, v in zip(self.params, self.values[i])}

    def frame(self) -> pd.DataFrame:
        """point and one column per parameter (integers for integer fields)."""
        out = pd.DataFrame({"point": np.arange(self.points, dtype=np.int64)})
        for j, p in enumerate(self.params):
            col = self.values[:, j]
            out[p.name] = col.astype(np.int64) if p.integer else col
        return out

    def sha256(self) -> str:
        h = hashlib.sha256()
        h.update(np.ascontiguousarray(self.values, dtype="<f8").tobytes())
        if self.unit is not None:
            h.update(np.ascontiguousarray(self.unit, dtype="<f8").tobytes())
        return h.hexdigest()


def default_design(params: Sequence[Param]) -> str:
    """grid when every parameter has a list of values, sobol otherwise."""
    return "grid" if all(p.discrete for p in params) else "sobol"


def point_count(kind: str, params: Sequence[Param], size: int | None) -> int:
    """How many points a design of this kind and size has."""
    d = len(params)
    if kind == "grid":
        return math.prod(len(p.values) for p in params)
    size = DEFAULT_POINTS[kind] if size is None else size
    return {"lhs": size, "sobol": size * (d + 2), "morris": size * (d + 1)}[kind]


def make_design(kind: str | None, params: Sequence[Param], size: int | None = None, seed: int = 0) -> Design:
    """The points of a design over the parameters; a design that does not fit them (a grid
    over an interval, a Sobol base that is not a power of two, too many points) is one
    SweepError. The continuous designs are SALib's (latin, sobol's Saltelli scheme without
    second-order terms, morris with 4 levels), drawn in the unit cube with ``seed``."""
    params = tuple(params)
    kind = kind or default_design(params)
    if kind not in DESIGNS:
        raise SweepError(None, "--design", f"'{shorten(kind)}' is not a design; allowed: {', '.join(DESIGNS)}")
    if not params:
        raise SweepError(None, "--param", "a sweep needs at least one parameter")
    if kind == "grid":
        cont = [p for p in params if not p.discrete]
        if cont:
            what = {"range": "its range", "fitted": "its fitted range"}.get(
                cont[0].kind, f"the interval {cont[0].low():g}:{cont[0].high():g}")
            raise SweepError(None, "--design grid", f"needs a list or an integer range for every parameter; "
                                                   f"{shorten(cont[0].name, 120)} has {what} (give values 1,2,3 or "
                                                   "a..b, or use --design lhs, sobol or morris)")
        if size is not None:
            raise SweepError(None, "--points", "a grid has a point per combination of the lists' values; leave out "
                                               "--points (it sets the size of lhs, sobol and morris designs)")
    elif size is not None and size < 1:
        raise SweepError(None, "--points", "must be at least 1")
    if kind == "sobol":
        n = DEFAULT_POINTS["sobol"] if size is None else size
        if n < 2 or n & (n - 1):
            low = 1 << max(1, n.bit_length() - 1)
            raise SweepError(None, "--points", f"a Sobol design's base N must be a power of two (its sequence is "
                                               f"balanced only then); {n} is not: try {low} or {low * 2} "
                                               f"(points = N x (parameters + 2))")
    if kind == "morris" and size is not None and size < 2:
        raise SweepError(None, "--points", "a Morris design needs at least 2 trajectories")
    total = point_count(kind, params, size)
    if total > MAX_POINTS:
        raise SweepError(None, "--points" if kind != "grid" else "--param",
                         f"the {kind} design has {total:,} points; at most {MAX_POINTS:,} are allowed")
    if kind == "grid":
        combos = np.array(list(itertools.product(*(p.levels() for p in params))), dtype=float)
        values = combos.reshape(total, len(params))
        return Design(kind, params, values, None, total, seed)
    size = DEFAULT_POINTS[kind] if size is None else size
    problem = unit_problem(params)
    rng_seed = seed % 2**32
    with np.errstate(all="ignore"):
        if kind == "lhs":
            from SALib.sample import latin

            unit = latin.sample(problem, size, seed=rng_seed)
        elif kind == "sobol":
            from SALib.sample import sobol

            unit = sobol.sample(problem, size, calc_second_order=False, scramble=True, seed=rng_seed)
        else:
            from SALib.sample import morris

            unit = morris.sample(problem, size, num_levels=MORRIS_LEVELS, seed=rng_seed)
    unit = np.asarray(unit, dtype=float).reshape(total, len(params))
    values = np.column_stack([p.from_unit(unit[:, j]) for j, p in enumerate(params)])
    return Design(kind, params, values, unit, size, seed)


def lhs_points_needed(inputs: int) -> int:
    """The fewest points of a Latin hypercube whose rank correlations can rank ``inputs`` inputs:
    1 + 2 D ln D, and 10 at least. Over n points an input with no effect still correlates with
    the output by chance (rho of standard deviation 1 / sqrt(n - 1): its values are a random
    permutation, independent of the inputs that drive the output), and the largest of D such
    chance correlations is about sqrt(2 ln D / (n - 1)); an input that has an even share of an
    additive output's variance has |rho| of about 1 / sqrt(D). With fewer points the largest
    chance correlation exceeds that, and inputs that do nothing outrank inputs that matter.
    Below 10 points any interval of rho spans most of [-1, 1]."""
    d = max(1, int(inputs))
    return max(MIN_LHS_POINTS, math.ceil(1 + 2 * d * math.log(d)))


def design_warning(dsg: Design) -> str | None:
    """One line when a design has too few points for its ranking, saying the rule and why; None
    when it has enough (a grid has no rule: its main effects are its points' own arithmetic)."""
    d = tested_inputs(dsg)
    if dsg.kind == "lhs" and dsg.points < lhs_points_needed(d):
        n, need = dsg.points, lhs_points_needed(d)
        if n < 2 or need == MIN_LHS_POINTS and n < MIN_LHS_POINTS:
            return (f"--design lhs: {n} points are too few: a rank correlation over fewer than {MIN_LHS_POINTS} "
                    f"points has an interval spanning most of [-1, 1]; use --points {MIN_LHS_POINTS} or more")
        chance = math.sqrt(2 * math.log(d) / (n - 1))
        return (f"--design lhs: {n} points are too few to rank {d} inputs: an input with no effect still has a "
                f"chance rank correlation with the output (standard deviation 1/sqrt(n - 1) = "
                f"{1 / math.sqrt(n - 1):.2f}), the largest of {d} such is about sqrt(2 ln D / (n - 1)) = "
                f"{chance:.2f}, above the |rho| of about 1/sqrt(D) = {1 / math.sqrt(d):.2f} of an input with an "
                f"even share of the output's variance, so inputs that do nothing can outrank inputs that matter; "
                f"use --points {need} or more (1 + 2 D ln D), or fewer inputs")
    if dsg.kind == "sobol" and dsg.size < MIN_SOBOL_BASE:
        return (f"--design sobol: a base N of {dsg.size} is too small: the Sobol indices and their bootstrap "
                f"intervals are ratios of means over the N base points, which want {MIN_SOBOL_BASE} or more for "
                f"their normal intervals to hold; use --points {MIN_SOBOL_BASE} or more "
                f"({MIN_SOBOL_BASE * (len(dsg.params) + 2):,} points)")
    if dsg.kind == "morris" and dsg.size < MIN_MORRIS_TRAJECTORIES:
        return (f"--design morris: {dsg.size} trajectories are too few: mu* and its bootstrap interval are a mean "
                f"over each input's {dsg.size} elementary effects, and screening wants "
                f"{MIN_MORRIS_TRAJECTORIES} or more; use --points {MIN_MORRIS_TRAJECTORIES} or more "
                f"({MIN_MORRIS_TRAJECTORIES * (len(dsg.params) + 1):,} points)")
    return None


# ------------------------------------------------------------------ outputs


@dataclass(frozen=True)
class Output:
    """An output the sensitivity analysis and the plots follow: a metric of a gate (``all``
    for the whole border), both directions."""

    metric: str
    gate: str

    @property
    def label(self) -> str:
        return f"{self.metric}@{self.gate}"


def parse_outputs(texts: Sequence[str], scenario: Scenario) -> list[Output]:
    """``METRIC[@GATE]`` each (METRIC alone: every gate and the whole border; for a corridor's
    metric, every corridor gate or every corridor); default: the mean time in system of every gate."""
    m = scenario.nominal
    where = {"corridor_share": [g for c in m.corridors.values() for g in c.gates], "diverted_out": list(m.corridors),
             DIVERTED_COST: list(m.corridors)}
    out: list[Output] = []
    for text in texts or [DEFAULT_OUTPUT]:
        metric, sep, gate = text.strip().partition("@")
        if metric not in OUTPUT_METRICS:
            raise SweepError(None, "--output", f"'{shorten(metric)}' is not a metric; "
                                               f"{did_you_mean(metric, OUTPUT_METRICS)}allowed: "
                                               f"{', '.join(OUTPUT_METRICS)} (as METRIC or METRIC@GATE)")
        if metric in (*COST_METRICS, DIVERTED_COST) and not any(c.costs for c in m.classes.values()):
            raise SweepError(None, "--output", f"'{metric}' prices waiting, and the scenario has no costs: "
                                               "give its classes [classes.<class>.costs] (README: Costs of waiting)")
        gates = where.get(metric, list(m.gates) + ["all"])
        if not gates:
            raise SweepError(None, "--output", f"'{metric}' is a corridor's metric; the scenario has no corridor")
        if sep and gate not in gates:
            what = "a corridor" if metric == "diverted_out" else "a gate"
            raise SweepError(None, "--output", f"'{shorten(gate)}' is not {what} of the scenario for {metric}; "
                                               f"allowed: {', '.join(gates)}")
        for g in ([gate] if sep else gates):
            o = Output(metric, g)
            if o not in out:
                out.append(o)
    return out


def output_matrix(table: pd.DataFrame, outputs: Sequence[Output], points: int) -> dict[Output, np.ndarray]:
    """Each output's mean at every point (NaN where a point does not report it)."""
    sel = table[(table["direction"] == "all") & (table["stage"] == "") & (table["class"] == "")]
    out = {}
    for o in outputs:
        rows = sel[(sel["metric"] == o.metric) & (sel["gate"] == o.gate)]
        y = np.full(points, np.nan)
        y[rows["point"].to_numpy(dtype=np.int64)] = rows["mean"].to_numpy(dtype=float)
        out[o] = y
    return out


# ------------------------------------------------------------------ per point


def values_only(result: ReplicationResult) -> ReplicationResult:
    """What a sweep keeps of a replication (in the worker, before it travels back): its
    metrics and input values, not the daily, hourly and histogram arrays."""
    return ReplicationResult(result.labels, result.values, {}, {}, {}, {}, {}, result.inputs)


def point_rows(point: int, values: Mapping[str, float], params: Sequence[Param],
               results: Sequence[ReplicationResult]) -> pd.DataFrame:
    """The tidy rows of one point: point, its parameter values, then gate, direction, metric,
    stage, class and the statistics over its replications (as summary.csv)."""
    labels = results[0].labels
    if any(r.labels != labels for r in results):
        raise ValueError("replications of one point report different metrics")
    m = np.vstack([r.values for r in results])
    lab = pd.DataFrame(list(labels), columns=LABELS)
    low, high = metric_range(lab["metric"])
    stats = describe(m, low=low, high=high)
    out = pd.DataFrame({"point": np.full(len(labels), point, dtype=np.int64)})
    for p in params:
        v = values[p.name]
        out[p.name] = np.full(len(labels), int(v) if p.integer else float(v),
                              dtype=np.int64 if p.integer else float)
    for c in LABELS:
        out[c] = lab[c].to_numpy()
    for c in STAT_COLUMNS:
        out[c] = stats[c].astype(np.int64) if c == "n" else stats[c]
    return out


# ------------------------------------------------------------------ the sweep


@dataclass
class SweepResult:
    """A finished sweep: the tidy table (sweep.parquet), the sensitivity indices (sobol: S1 and
    ST, morris: mu*, grid: main effects, lhs: Spearman's rho; sim.experiments.sensitivity), the design, and
    how this run went (points it computed, points an earlier run had left in the folder)."""

    scenario: Scenario
    design: Design
    reps: int
    seed: int
    engine: str
    outputs: list[Output]
    table: pd.DataFrame = field(repr=False)
    sensitivity: pd.DataFrame | None = field(repr=False)
    out: Path | None
    computed: int
    resumed: int
    wall_s: float
    warnings: list[str]
    workers: int = 1
    scheduler: str = "local"
    ensemble: dict | None = None  # what the sweep takes from the scenario's fitted ensemble (ensemble_use)

    @property
    def points(self) -> pd.DataFrame:
        return self.design.frame()


def scenario_sha256(scenario: Scenario) -> str:
    """A scenario's content: its merged tree and its ensemble's parameter sets (a resumed
    sweep or optimisation must be of the same content, not only of the same file name)."""
    h = hashlib.sha256(json.dumps(scenario.raw, default=str, ensure_ascii=False).encode("utf-8"))
    if scenario.ensemble is not None:
        h.update(scenario.ensemble.to_csv(index=False).encode("utf-8"))
    return h.hexdigest()


def identity(scenario: Scenario, design: Design, reps: int, seed: int, engine: str) -> dict:
    """What makes two sweeps the same: the scenario's content (its merged tree with the swept
    ranges, and its ensemble), the parameters, the design and its points, the replications,
    the seed and the engine (not the workers or the scheduler: the results do not depend on
    them)."""
    return {
        "scenario": scenario.name,
        "scenario_sha256": scenario_sha256(scenario),
        "params": [p.identity() for p in design.params],
        "design": design.kind,
        "size": design.size,
        "points": design.points,
        "design_sha256": design.sha256(),
        "reps": reps,
        "seed": seed,
        "engine": engine,
    }


@dataclass(frozen=True)
class SweepSetup:
    """A sweep checked before any work (prepare): the scenario as given (``base``) and derived
    (every swept input an uncertain range over its values), the parameters, the design with
    every point validated, the outputs followed, and how the points run."""

    base: Scenario
    scenario: Scenario
    params: list[Param]
    design: Design
    outputs: list[Output]
    reps: int
    seed: int
    engine: str
    scheduler: str
    address: str | None

    def identity(self) -> dict:
        return identity(self.scenario, self.design, self.reps, self.seed, self.engine)

    def ensemble(self) -> dict | None:
        return ensemble_use(self.base, self.scenario, self.params)


def prepare(scenario: str | Path | Scenario, params: Sequence[str] = (), design: str | None = None,
            points: int | None = None, reps: int = 20, seed: int = 20221130, engine: str = "fast",
            scheduler: str | None = None, address: str | None = None, outputs: Sequence[str] = (),
            sets: Sequence[str] = (), allow_overload: bool = False, warn=None) -> SweepSetup:
    """Check a sweep as sim.outputs.sweep.sweep is asked for it (the arguments are its), before
    any work: the engine, replications and scheduler, the scenario, its parameters, the design
    and every point of it, the outputs. A problem is one SweepError (or ScenarioError); what is
    doubtful is said through ``warn``."""
    warn = warn or (lambda _text: None)
    if engine not in ENGINES:
        raise SweepError(None, "--engine", f"'{shorten(engine)}' is not an engine; allowed: {', '.join(ENGINES)}")
    if not 1 <= reps <= MAX_REPS:
        raise SweepError(None, "--reps", f"must be 1 to {MAX_REPS:,}")
    scheduler = scheduler or ("dask" if address else "local")
    if scheduler not in SCHEDULERS:
        raise SweepError(None, "--scheduler", f"'{shorten(scheduler)}' is not a scheduler; allowed: local, dask")
    if address and scheduler != "dask":
        raise SweepError(None, "--address", "names a Dask scheduler; it goes with --scheduler dask")
    if address and not re.fullmatch(r"(tcp|tls|inproc|ucx|ws|wss)://\S+", address):
        raise SweepError(None, "--address", f"'{shorten(address)}' is not a scheduler address like tcp://HOST:PORT")
    if isinstance(scenario, Scenario) and sets:
        raise SweepError(scenario.path, "--set", "applies to a scenario file; a Scenario is given as it is "
                                                 "(load it with sets, or sweep the input with --param)")
    base = scenario if isinstance(scenario, Scenario) else load(scenario, sets=list(sets))
    derived, plist = derive(base, [parse_param(t) for t in params])
    by_name = {r.name(): r for r in derived.ranges}
    for p in plist:  # an input a dated adjustment replaces for a period: its sweep changes less than it seems
        w = override_warning(derived.nominal, f"--param {p.name}", by_name[p.name].path)
        if w:
            warn(w)
    for w in set_warnings(derived.nominal, list(sets)):
        warn(w)
    dsg = make_design(design, plist, points, seed)
    too_few = design_warning(dsg)
    if too_few:
        warn(too_few)
    outs = parse_outputs(outputs, derived)
    _validate_points(derived, dsg, allow_overload, warn)
    return SweepSetup(base, derived, plist, dsg, outs, reps, seed, engine, scheduler, address)


def summarise(setup: SweepSetup, table: pd.DataFrame, warn=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sweep's tidy table (from its points' rows in any order) and its sensitivity indices
    (sim.experiments.sensitivity.analyse) of the outputs followed."""
    table = _tidy(table, setup.design)
    sens = analyse(setup.design, output_matrix(table, setup.outputs, setup.design.points), setup.seed, warn=warn)
    return table, sens


def _tidy(table: pd.DataFrame, dsg: Design) -> pd.DataFrame:
    """The table's columns in order, sorted by point (as the chunks hold them), with a fresh index."""
    cols = ["point", *dsg.names, *LABELS, *STAT_COLUMNS]
    return table[cols].sort_values("point", kind="stable").reset_index(drop=True)


def _validate_points(scenario: Scenario, dsg: Design, allow_overload: bool, warn) -> None:
    """Build every point's scenario and check its load, before any work: an invalid point is
    one error naming it and its values. The inputs a point does not fix are at their middle,
    and those a fitted ensemble sets at the median of its values (the fit's, not the prior's:
    its middle may be a value the fit ruled out). As for ``bordersim run``, a scenario whose
    nominal load exceeds a stage's capacity over the horizon is an error unless allow_overload;
    points of the design that do (where a system tips over, as some replications of a run with
    uncertain inputs do) are counted in one warning, which names the first such point's
    overloaded gate, direction and stage. A point is built once however often the design
    repeats it (a design over lists or integer fields repeats points), so the warning counts
    distinct points, and says so when there are repeats."""
    nominal = {r.name(): r.nominal() for r in scenario.ranges}
    fitted = {c: float(np.median(scenario.ensemble[c].to_numpy(float))) for c in _fitted_inputs(scenario)}
    nominal.update(fitted)
    middle = dataclasses.replace(scenario, nominal=scenario.model_for(nominal)) if fitted else scenario
    for w in capacity.check(middle, allow_overload=allow_overload):
        warn(w)
    overloaded: list[tuple[int, list[capacity.Load]]] = []
    seen: dict[tuple, None] = {}
    for i in range(dsg.points):
        key = tuple(dsg.values[i])
        if key in seen:
            continue
        seen[key] = None
        vals = dsg.point_values(i)
        try:
            model = scenario.model_for({**nominal, **vals})
            found = capacity.overloads(dataclasses.replace(scenario, nominal=model))
        except BordersimError as exc:
            raise SweepError(exc.file, exc.field, f"{exc.message} (at point {i}: {_show(vals)})") from None
        if found:
            overloaded.append((i, found))
    if overloaded:
        of = (f"the design's {len(seen)} distinct points ({dsg.points} in all)" if len(seen) < dsg.points
              else f"the design's {dsg.points} points")
        i, found = overloaded[0]
        flows = "; ".join(f"gate {ld.gate}, {ld.direction}, stage '{ld.stage}' (load {ld.ratio:.2f})"
                          for ld in found[:3])
        more = f" and {len(found) - 3} more flows" if len(found) > 3 else ""
        warn(f"{len(overloaded)} of {of} have a stage whose demand exceeds its capacity over the horizon (their "
             f"backlog grows all horizon); the first, point {i} ({_show(dsg.point_values(i))}), overloads "
             f"{flows}{more}")


def _show(values: Mapping[str, float]) -> str:
    return shorten(", ".join(f"{k}={v:g}" for k, v in values.items()), 200)


@contextlib.contextmanager
def executor_for(scheduler: str, address: str | None, workers: int | None, executor, warn) -> Iterator[tuple]:
    """(executor, or None for the local pool; the number of workers it runs tasks on)."""
    if executor is not None:
        yield executor, workers or 1
        return
    if address and workers is not None:
        warn("--workers is left to the cluster at --address (it has the workers it has)")
    n, cut = resolve_workers(workers, 10**9)
    if cut and not address:
        warn(cut)
    if scheduler == "local":
        yield None, n
        return
    from .daskrun import dask_executor

    with dask_executor(address, n) as found:
        yield found


def run_points(setup: SweepSetup, groups: Sequence[Sequence[int]], todo: Sequence[int], executor, workers: int,
               progress: bool | None, while_waiting=None) -> Iterator[tuple[int, pd.DataFrame]]:
    """Run the points of the groups to do (``groups[c]``: the points of group c, in order) on
    ``executor`` (executor_for), each replication 0..reps-1 of every point on common random
    numbers; yield each group's rows (point_rows, in its points' order) as soon as its last
    point is in: (c, rows). ``while_waiting``: called while the workers simulate."""
    dsg = setup.design
    points = [Point(setup.scenario, dsg.point_values(p)) for c in todo for p in groups[c]]
    order = [p for c in todo for p in groups[c]]
    group_of = {p: c for c in todo for p in groups[c]}
    waiting: dict[int, list[pd.DataFrame]] = {c: [] for c in todo}
    stream = iter_design(points, setup.reps, setup.seed, setup.engine, executor=executor, workers=workers,
                         progress=progress, desc=f"sweep {dsg.points} points x {setup.reps} reps", keep=values_only,
                         unit="point", while_waiting=while_waiting)
    with contextlib.closing(stream) as done:
        for k, results in done:
            p = order[k]
            c = group_of[p]
            waiting[c].append(point_rows(p, points[k].values, dsg.params, results))
            if len(waiting[c]) == len(groups[c]):
                yield c, pd.concat(waiting.pop(c), ignore_index=True)


__all__ = ["DESIGNS", "Design", "Output", "Param", "SweepError", "SweepResult", "SweepSetup", "derive",
           "make_design", "parse_outputs", "parse_param", "parse_spec", "prepare", "run_points", "summarise"]
