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

A sweep with an output folder is resumable: the folder holds ``sweep.json`` (the command, with
the scenario's content hash and the design's), and ``chunks/chunk-NNNNN.parquet``, each the
summarised points of one chunk, written whole (temporary file, then rename); a sweep started
again with the same command runs only the chunks missing, a different command is refused. The
final table is assembled from the chunks, so it is the same however often the sweep stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import json
import math
import os
import re
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import capacity
from ..model.adjust import override_warning, set_warnings
from ..base.errors import BordersimError, OutputError, ScenarioError, shorten
from .experiment import ENGINES, Point, iter_design
from ..statistics.metrics import GROUP_METRICS, SUMMARY_COLUMNS, ReplicationResult, describe, metric_range
from ..base.outdir import IN_USE, MARKER, atomic_dir, atomic_file, check_target, read_marker, version
from ..model.ranges import Range
from ..model.scenario import Layer, Scenario, from_dict, load, merge_layers, set_layer
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
MORRIS_LEVELS = 4
MAX_POINTS = 100_000  # a table row per point and output: 100,000 points are some 40 M rows
MAX_REPS = 1_000_000
MAX_LIST = 10_000  # values of one list or integer range
CHUNK_REPS = 2_000  # replications a chunk of points holds at most (about a minute and a half on one core)
STAT_COLUMNS = ["mean", "ci_low", "ci_high", "p05", "p95", "std", "n"]
LABELS = SUMMARY_COLUMNS[:5]  # gate, direction, metric, stage, class
OUTPUT_METRICS = GROUP_METRICS + ("held_by_limit_share",)
DEFAULT_OUTPUT = "time_in_system_mean_h"
SPEC_FILE = "sweep.json"
CHUNKS = "chunks"
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_INTEGER = r"[+-]?\d+"
_CHUNK_NAME = re.compile(r"chunk-(\d{5,})\.parquet")
_CHUNK_TMP = re.compile(r"\.chunk-\d{5,}\.parquet\.tmp-[0-9a-f]{8}")


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

    def from_unit(self, u: np.ndarray) -> np.ndarray:
        """Values for points of the unit interval: a list or integer range by equal shares of
        [0, 1], an interval linearly, a triangular range by its inverse distribution; rounded
        to whole numbers for an integer field (as the scenario rounds sampled values)."""
        u = np.asarray(u, dtype=float)
        if self.discrete:
            k = len(self.values)
            return np.asarray(self.values, float)[np.clip(np.floor(u * k).astype(np.int64), 0, k - 1)]
        if self.kind == "range" and self.dist == "triangular":
            lo, mode, hi = self.values
            out = np.full(u.shape, lo, float)
            if hi > lo:
                cut = (mode - lo) / (hi - lo)
                left = u < cut
                out = np.where(left, lo + np.sqrt(u * (hi - lo) * (mode - lo)),
                               hi - np.sqrt(np.maximum(1 - u, 0) * (hi - lo) * (hi - mode)))
        else:
            lo, hi = self.values[0], self.values[-1]
            out = lo + u * (hi - lo)
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
        free = [r.name() for r in scenario.ranges if r.name() not in fitted]
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
        rng = f"{{uniform = [{_toml_number(p.low())}, {_toml_number(p.high())}]}}"
        assignments.append((path, f"{path}={rng}"))
    base_layers = list(scenario.layers) or [Layer(scenario.path, scenario.raw)]
    merged = merge_layers(base_layers)
    for path, assignment in assignments:  # each alone first: an error names its own --param
        try:
            layer = set_layer([assignment], merged, scenario.path)
            _from_layers(scenario, base_layers + [layer])
        except ScenarioError as exc:
            raise _param_error(path, exc) from None
    try:
        layers = base_layers + ([set_layer([a for _, a in assignments], merged, scenario.path)] if assignments else [])
        derived = _from_layers(scenario, layers)
    except ScenarioError as exc:
        raise SweepError(exc.file, exc.field, f"{exc.message} (with every --param at the ends of its values)") from None
    out = []
    for (path, _spec), p in zip(params, parsed):
        if p is None:
            p = _own_range(derived, path)
        elif path not in derived._by_name:  # pragma: no cover - a --set range is always an input
            raise SweepError(None, f"--param {shorten(path, 120)}", "did not become an input of the scenario")
        out.append(p)
    return derived, _mark_integers(derived, out)


def _from_layers(scenario: Scenario, layers: list[Layer]) -> Scenario:
    return from_dict(merge_layers(layers), scenario.path, base_dir=Path(scenario.path).resolve().parent,
                     layers=layers)


def _toml_number(v: float) -> str:
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
    r: Range | None = scenario._by_name.get(name)
    if r is None:
        have = ", ".join(scenario._by_name) or "none"
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
        integer = _is_integer_field(scenario, scenario._by_name[p.name].path)
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


def unit_problem(params: Sequence[Param]) -> dict:
    """SALib's problem: every parameter on [0, 1] (Param.from_unit maps it to its values)."""
    return {"num_vars": len(params), "names": [p.name for p in params], "bounds": [[0.0, 1.0]] * len(params)}


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
    from .sensitivity import tested_inputs

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
    """``METRIC[@GATE]`` each (METRIC alone: every gate and the whole border); default: the mean
    time in system of every gate."""
    gates = list(scenario.nominal.gates) + ["all"]
    out: list[Output] = []
    for text in texts or [DEFAULT_OUTPUT]:
        metric, sep, gate = text.strip().partition("@")
        if metric not in OUTPUT_METRICS:
            raise SweepError(None, "--output", f"'{shorten(metric)}' is not a metric; allowed: "
                                               f"{', '.join(OUTPUT_METRICS)} (as METRIC or METRIC@GATE)")
        if sep and gate not in gates:
            raise SweepError(None, "--output", f"'{shorten(gate)}' is not a gate of the scenario; allowed: "
                                               f"{', '.join(gates)}")
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


def identity(scenario: Scenario, design: Design, reps: int, seed: int, engine: str) -> dict:
    """What makes two sweeps the same: the scenario's content (its merged tree with the swept
    ranges, and its ensemble), the parameters, the design and its points, the replications,
    the seed and the engine (not the workers or the scheduler: the results do not depend on
    them)."""
    h = hashlib.sha256(json.dumps(scenario.raw, default=str, ensure_ascii=False).encode("utf-8"))
    if scenario.ensemble is not None:
        h.update(scenario.ensemble.to_csv(index=False).encode("utf-8"))
    return {
        "scenario": scenario.name,
        "scenario_sha256": h.hexdigest(),
        "params": [p.identity() for p in design.params],
        "design": design.kind,
        "size": design.size,
        "points": design.points,
        "design_sha256": design.sha256(),
        "reps": reps,
        "seed": seed,
        "engine": engine,
    }


def sweep(scenario: str | Path | Scenario, params: Sequence[str] = (), design: str | None = None,
          points: int | None = None, reps: int = 20, seed: int = 20221130, engine: str = "fast",
          out: str | Path | None = None, workers: int | None = None, scheduler: str | None = None,
          address: str | None = None, executor=None, outputs: Sequence[str] = (), sets: Sequence[str] = (),
          allow_overload: bool = False, make_plots: bool = True, report: bool = True, progress: bool | None = None,
          warn=None, chunk_points: int | None = None, on_start=None) -> SweepResult:
    """Run a sweep (the Python form of ``bordersim sweep``) and return its tables.

    params: ``PATH=SPEC`` (SPEC a list 1,2,3, an integer range 1..4 or an interval 5:40) or a
    PATH of an uncertain input (its own range; for an input a fitted ensemble sets, the
    ensemble's 5-95 % range); none: every uncertain input of the scenario over its range, but
    those its fitted ensemble sets (they keep its parameter sets, as every input the sweep does
    not vary: replication i takes the same set at every point). design: grid, lhs, sobol or
    morris (default: grid for lists, sobol otherwise); points: its size (lhs: points; sobol: base N, a power of two, giving N x (D+2)
    points; morris: trajectories, N x (D+1) points). out: a folder to write to and resume from
    (None: nothing written). scheduler ``local`` (a pool of ``workers`` processes) or ``dask``
    (the cluster at ``address``, or a LocalCluster of ``workers`` processes); executor: any
    concurrent.futures.Executor instead. outputs: ``METRIC[@GATE]`` for the sensitivity and
    the plots. on_start(done, todo): called once the work is known (the CLI reports a resume).
    Every point is validated before any work; a problem is one SweepError (or ScenarioError)."""
    t0 = time.perf_counter()
    warnings: list[str] = []

    def _warn(text: str) -> None:
        warnings.append(text)
        if warn:
            warn(text)

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
            _warn(w)
    for w in set_warnings(derived.nominal, list(sets)):
        _warn(w)
    dsg = make_design(design, plist, points, seed)
    too_few = design_warning(dsg)
    if too_few:
        _warn(too_few)
    outs = parse_outputs(outputs, derived)
    _validate_points(derived, dsg, allow_overload, _warn)
    spec = identity(derived, dsg, reps, seed, engine)
    target = Path(out) if out is not None else None
    folder = _SweepFolder.open(target, spec, dsg, reps, chunk_points) if target is not None else None
    with contextlib.ExitStack() as stack:
        if folder is not None:
            stack.callback(folder.close)
        chunk = folder.chunk_points if folder is not None else (chunk_points or default_chunk(dsg.points, reps))
        chunks = [list(range(i, min(i + chunk, dsg.points))) for i in range(0, dsg.points, chunk)]
        done = folder.done_chunks(len(chunks), chunks) if folder is not None else set()
        todo = [c for c in range(len(chunks)) if c not in done]
        n_done = sum(len(chunks[c]) for c in done)
        if on_start:
            on_start(n_done, dsg.points - n_done)
        frames: dict[int, pd.DataFrame] = {}
        todo_points = [p for c in todo for p in chunks[c]]
        n_workers = 1
        if todo_points:
            with _executor(scheduler, address, workers, executor, _warn) as (ex, n_workers):
                frames = _run_points(derived, dsg, reps, seed, engine, ex, n_workers, progress, chunks, todo,
                                     folder, make_plots)
        if folder is not None:
            table = folder.read_table(len(chunks))
        else:
            table = pd.concat([frames[c] for c in range(len(chunks))], ignore_index=True)
        table = _tidy(table, dsg)
        from .sensitivity import analyse

        sens = analyse(dsg, output_matrix(table, outs, dsg.points), seed, warn=_warn)
        result = SweepResult(derived, dsg, reps, seed, engine, outs, table, sens, target, len(todo_points), n_done,
                             time.perf_counter() - t0, warnings, n_workers, scheduler, ensemble_use(base, derived, plist))
        if folder is not None:
            folder.write_outputs(result, make_plots, report)
    return result


def default_chunk(points: int, reps: int) -> int:
    """Points per chunk file: at most CHUNK_REPS replications and a tenth of the points, so a
    kill loses little and the folder holds at most a few hundred files a thousand points."""
    return max(1, min(-(-CHUNK_REPS // reps), -(-points // 10)))


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
def _executor(scheduler: str, address: str | None, workers: int | None, executor, warn) -> Iterator[tuple]:
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


def _run_points(scenario, dsg, reps, seed, engine, executor, workers, progress, chunks, todo, folder, make_plots):
    """Run the points of the chunks to do; each chunk is written (or kept, without a folder)
    as soon as its last point is in."""
    from ..outputs.results import prepare_writing

    points = [Point(scenario, dsg.point_values(p)) for c in todo for p in chunks[c]]
    order = [p for c in todo for p in chunks[c]]
    chunk_of = {p: c for c in todo for p in chunks[c]}
    waiting: dict[int, list[pd.DataFrame]] = {c: [] for c in todo}
    frames: dict[int, pd.DataFrame] = {}
    stream = iter_design(points, reps, seed, engine, executor=executor, workers=workers, progress=progress,
                         desc=f"sweep {dsg.points} points x {reps} reps", keep=values_only, unit="point",
                         while_waiting=lambda: prepare_writing(make_plots))
    with contextlib.closing(stream) as done:
        for k, results in done:
            p = order[k]
            c = chunk_of[p]
            waiting[c].append(point_rows(p, points[k].values, dsg.params, results))
            if len(waiting[c]) == len(chunks[c]):
                frame = pd.concat(waiting.pop(c), ignore_index=True)
                if folder is not None:
                    folder.write_chunk(c, frame)
                else:
                    frames[c] = frame
    return frames


RANKING_HEADS = {
    "sobol": "Sobol total index ST and first-order S1",
    "morris": "Morris mu* (mean |effect|)",
    "grid": "main effect (the range of the output's mean over the parameter's levels, the others' levels "
            "averaged over; no interval)",
    "lhs": "Spearman's rank correlation rho with the output (ranked by |rho|)",
}
NOT_SIGNIFICANT = "not significant"  # the printed mark of an input whose interval reaches 0


def interval_words(kind: str, tested: int) -> str:
    """How a design's intervals are read, in a few words: their level, corrected for the inputs
    tested (sim.experiments.sensitivity.interval_level), kept within each index's range."""
    from .sensitivity import CONF_LEVEL, interval_level

    if kind == "grid":
        return ""
    level = f"{100 * interval_level(tested):.4g} %"
    together = (f" ({100 * CONF_LEVEL:g} % for the {tested} inputs together, Bonferroni)" if tested > 1 else "")
    within = {"sobol": ", cut to [0, 1]", "morris": ", cut at 0"}.get(kind, "")
    return f"with {level} intervals{together}{within}"


def interval_meta(dsg: Design) -> dict:
    """What metadata.json records of the sensitivity intervals: their level (None for a grid,
    which has none) and the number of inputs it is corrected for."""
    from .sensitivity import CONF_LEVEL, interval_level, tested_inputs

    tested = tested_inputs(dsg)
    return {"level": None if dsg.kind == "grid" else interval_level(tested), "inputs_tested": tested,
            "correction": f"Bonferroni: each input's interval at 1 - {1 - CONF_LEVEL:g} / inputs_tested"}


def sweep_report(result: SweepResult, top: int = 5) -> str:
    """What the CLI prints: the sweep, where it went, what it took from a fitted ensemble, and
    per output its most influential parameters (Sobol ST and S1, Morris mu*, a grid's main
    effects or a hypercube's Spearman rho, with their intervals where the measure has one;
    those whose interval reaches 0 marked not significant)."""
    from .sensitivity import tested_inputs

    d = result.design
    lines = [f"sweep of {result.scenario.name}: {d.kind} design, {d.points} points x {result.reps} replications "
             f"(seed {result.seed}, engine {result.engine}), {result.workers} workers ({result.scheduler}), "
             f"{result.wall_s:.1f} s; {result.computed} points run now, {result.resumed} found done"]
    lines += ensemble_lines(result.ensemble)
    sens = result.sensitivity
    if sens is not None and not sens.empty:
        from .sensitivity import ranking

        words = interval_words(d.kind, tested_inputs(d))
        mark = f"; '{NOT_SIGNIFICANT}': its interval reaches 0" if words else ""
        lines.append(f"most influential parameters, {RANKING_HEADS[d.kind]}{', ' + words if words else ''}{mark}:")
        for o in result.outputs:
            r = ranking(sens, o.gate, o.metric)
            if r.empty:
                continue
            lines.append(f"  {o.metric} @ {o.gate}:")
            for _, row in r.head(top).iterrows():
                lines.append(f"    {int(row['rank']):>2}. {row.param}  {_ranking_stats(d.kind, row)}")
    if result.out is not None:
        out = Path(result.out)
        files = (["sweep.parquet", "sweep.csv"] + (["sensitivity.csv"] if sens is not None else [])
                 + (["report.html"] if (out / "report.html").exists() else [])
                 + (["plots"] if any(out.glob("*.png")) else []))
        lines.append(f"written to {result.out}/ ({', '.join(files)})")
    return "\n".join(lines)


def ensemble_lines(use: Mapping | None, limit: int | None = 3) -> list[str]:
    """What a sweep took from a fitted ensemble (ensemble_use), as printed lines, each naming
    at most ``limit`` inputs (None: all)."""
    if not use:
        return []
    out = [f"fitted ensemble {use['file']} ({use['parameter_sets']} parameter sets): replication i takes the same "
           "set at every point"]
    for key, what in (("kept", "from its parameter sets, not swept"),
                      ("fitted_range", "swept over its 5-95 % range, not the prior"),
                      ("replaced", "swept over --param values instead of its")):
        names = use.get(key) or []
        if names:
            cut = len(names) if limit is None else limit
            shown = ", ".join(names[:cut]) + (f" and {len(names) - cut} more (metadata.json lists them)"
                                              if len(names) > cut else "")
            out.append(f"  {len(names)} input{'s' if len(names) > 1 else ''} {what}: {shown}")
    return out


def _ranking_stats(kind: str, row: pd.Series) -> str:
    """One parameter's indices in a printed ranking (a row of sim.experiments.sensitivity.ranking): each
    with its interval, an estimate outside its index's range said to be the estimator's noise,
    and the mark of one whose ranked index's interval reaches 0."""
    from .sensitivity import RANKED_INDEX, outside_range

    def shown(index: str, label: str, fmt: str) -> str:
        est = row[index]
        text = f"{label} {est:{fmt}} [{row[index + '_low']:{fmt}}, {row[index + '_high']:{fmt}}]"
        where = outside_range(index, est)
        return text + (f" ({where}: the estimator's noise)" if where else "")

    if kind == "sobol":
        text = f"{shown('ST', 'ST', '.3f')}  {shown('S1', 'S1', '.3f')}"
    elif kind == "morris":
        text = f"{shown('mu_star', 'mu*', '.4g')}  sigma {row.sigma:.4g}"
    elif kind == "grid":
        return f"main effect {row.main_effect:.4g}"
    elif pd.isna(row.get("spearman")):
        return "rho – (the parameter has one value)"
    elif pd.isna(row.get("spearman_low")):
        return f"rho {row.spearman:.3f} (no interval: too few points)"
    else:
        text = shown("spearman", "rho", ".3f")
    significant = row.get(f"{RANKED_INDEX[kind]}_significant")
    return text + (f"  {NOT_SIGNIFICANT}" if pd.notna(significant) and not significant else "")


# ------------------------------------------------------------------ the folder


class _SweepFolder:
    """A sweep's folder: its identity (sweep.json), its chunks, its final tables. Held under an
    exclusive lock (on its marker, sim.base.outdir) while the sweep runs, so two sweeps never write
    one folder and no other command replaces it meanwhile."""

    def __init__(self, out: Path, spec: dict, chunk_points: int, lock_fd: int):
        self.out = out
        self.spec = spec
        self.chunk_points = chunk_points
        self._lock_fd = lock_fd

    @classmethod
    def open(cls, out: Path, command: dict, dsg: Design, reps: int, chunk_points: int | None) -> "_SweepFolder":
        """Create the folder (atomically, with its marker and sweep.json) or reopen it to resume:
        refused if it holds anything but a sweep of this very command."""
        marker = read_marker(out) if os.path.isdir(out) and not os.path.islink(out) else None
        if marker is not None:
            kind = marker.get("kind")
            if kind != "sweep":
                raise OutputError(str(out), None, f"holds a bordersim {kind or 'output'}, not a sweep; choose another "
                                                  "--out")
            try:
                spec = json.loads((out / SPEC_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise OutputError(str(out), SPEC_FILE, f"cannot be read ({shorten(exc, 120)}); this folder's sweep "
                                                       "cannot be resumed: choose another --out") from None
            _same_command(out, spec.get("command", {}), command)
        else:
            check_target(out, "sweep")  # absent or empty: created below; anything else refused
            n = chunk_points or default_chunk(dsg.points, reps)
            spec = {"written_by": "bordersim", "kind": "sweep", "version": version(), "command": command,
                    "chunk_points": n, "chunks": -(-dsg.points // n),
                    "common_random_numbers": "replication i of every point uses the same seed"}
            with atomic_dir(out, "sweep") as staged:
                (staged.dir / SPEC_FILE).write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n",
                                                    encoding="utf-8")
                (staged.dir / CHUNKS).mkdir()
        fd = os.open(out / MARKER, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # a sweep started at the same instant may have put its own folder in place meanwhile
            if os.fstat(fd).st_ino != os.stat(out / MARKER).st_ino:
                raise OutputError(str(out), None, "another bordersim sweep started in this folder at the same time; "
                                                  "run again to resume it, or choose another --out")
            _same_command(out, json.loads((out / SPEC_FILE).read_text(encoding="utf-8")).get("command", {}), command)
        except BlockingIOError:
            os.close(fd)
            raise OutputError(str(out), None, f"{IN_USE} or choose another --out") from None
        except BaseException:
            os.close(fd)
            raise
        (out / CHUNKS).mkdir(exist_ok=True)
        return cls(out, spec, int(spec["chunk_points"]), fd)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _chunk_path(self, c: int) -> Path:
        return self.out / CHUNKS / f"chunk-{c:05d}.parquet"

    def done_chunks(self, n: int, chunks: list[list[int]]) -> set[int]:
        """The chunks already written whole (a killed run's temporaries are removed; a chunk
        that cannot be read or holds other points is run again)."""
        folder = self.out / CHUNKS
        for entry in os.scandir(folder):
            if _CHUNK_TMP.fullmatch(entry.name):  # a killed writer's: no live one, we hold the lock
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        done = set()
        for c in range(n):
            path = self._chunk_path(c)
            if not path.exists():
                continue
            try:
                got = pd.read_parquet(path, columns=["point"])["point"].unique().tolist()
            except Exception:  # noqa: BLE001 - any unreadable file is run again
                got = None
            if got is not None and sorted(got) == chunks[c]:
                done.add(c)
            else:
                os.unlink(path)
        return done

    def write_chunk(self, c: int, frame: pd.DataFrame) -> None:
        """One chunk's rows, whole: a temporary file beside it, flushed, then renamed."""
        path = self._chunk_path(c)
        tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
        try:
            with open(tmp, "xb") as fh:
                frame.to_parquet(fh, index=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        _fsync_dir(path.parent)

    def read_table(self, n: int) -> pd.DataFrame:
        return pd.concat([pd.read_parquet(self._chunk_path(c)) for c in range(n)], ignore_index=True)

    def write_outputs(self, result: SweepResult, make_plots: bool, report: bool = True) -> None:
        """sweep.parquet, sweep.csv, sensitivity.csv, the plots and report.html, each written whole."""
        from ..outputs.results import FLOAT_FORMAT, seen_from, write_large_csv

        with atomic_file(self.out / "sweep.parquet", "sweep") as tmp:
            result.table.to_parquet(tmp, index=False)
        with atomic_file(self.out / "sweep.csv", "sweep") as tmp:
            write_large_csv(result.table, tmp)
        if result.sensitivity is not None:
            with atomic_file(self.out / "sensitivity.csv", "sweep") as tmp:
                result.sensitivity.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
        if make_plots:
            from ..outputs import sweep_plots

            for name, draw in sweep_plots.figures(result):
                with atomic_file(self.out / name, "sweep") as tmp:
                    draw(tmp)
        meta = {"scenario_file": seen_from(self.out, result.scenario.path), "points": result.design.points,
                "reps": result.reps,
                "computed_this_run": result.computed, "found_done": result.resumed,
                "outputs": [o.label for o in result.outputs], "ensemble": result.ensemble,
                "intervals": interval_meta(result.design),
                "workers": result.workers, "scheduler": result.scheduler, "wall_time_s": round(result.wall_s, 2),
                "warnings": result.warnings, "bordersim_version": version()}
        with atomic_file(self.out / "metadata.json", "sweep") as tmp:
            tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if report:
            from ..outputs.report import build_report

            html = build_report(self.out, draw_missing=False)
            with atomic_file(self.out / "report.html", "sweep", record=False) as tmp:
                tmp.write_text(html, encoding="utf-8")


def _same_command(out: Path, had: dict, now: dict) -> None:
    """Refuse to resume a folder written by another command: one line naming the first difference."""
    words = {"scenario_sha256": "the scenario (its content, with the swept ranges)", "params": "--param",
             "design": "--design", "size": "--points", "reps": "--reps", "seed": "--seed", "engine": "--engine",
             "design_sha256": "the design's points", "points": "the number of points", "scenario": "the scenario"}
    for key in now:
        if had.get(key) != now[key]:
            what = words.get(key, key)
            shown = ""
            if key in ("design", "size", "reps", "seed", "engine", "points"):
                shown = f" (it was {had.get(key)}, now {now[key]})"
            raise OutputError(str(out), None, f"holds a sweep of another command: {what} differs{shown}; run the "
                                              "same command to resume it, or choose another --out")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["DESIGNS", "Design", "Output", "Param", "SweepError", "SweepResult", "derive", "make_design",
           "parse_outputs", "parse_param", "parse_spec", "sweep", "sweep_report"]
