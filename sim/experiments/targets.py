"""Observed figures a scenario is calibrated to or checked against, and the model's value of each.

A targets file (TOML) names the scenario it calibrates (its prior: the scenario's ranges), the
fitted scenario to write, which inputs the calibration fits, and each observed figure: its
source, its period, the unit it is counted in, the model output it is compared with, a relative
tolerance, and whether it is used to **fit** the inputs or kept out of the fit to **validate**
them.

Outputs: ``crossings`` of a gate (or several, or all) and a direction summed over the period's
days; ``queue_end``, vehicles waiting at the end of a day (the period's one day). Units: the
model counts crossings (each exit and each entry once, what the province reports: *lượt*);
``board_vehicles`` (the gates' boards: Vietnamese vehicles out plus Chinese vehicles in, each
once) are the crossings divided by the scenario's ``observation.crossings_per_board_vehicle``,
an uncertain input like any other.

Each target's simulated value (``target_values``) and its verdict (``CheckRow``) are defined here
once: ``bordersim calibrate --check`` uses them, and so does a run of a scenario a targets file
fitted, which writes them to its results folder (``targets.csv``) for its report.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..base.days import inclusive_span
from ..base.errors import BordersimError, shorten
from ..statistics.metrics import ALL, ReplicationResult
from ..model.scenario import Scenario, ScenarioModel, read_toml

BOARD_RATIO = "observation.crossings_per_board_vehicle"
BAND = (0.05, 0.95)  # the band of single replications a validation target must fall in


class CalibrationError(BordersimError):
    """A targets file that cannot be used, or a calibration that cannot run."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Output(_Model):
    gate: str = ALL  # a gate, or 'all'
    gates: list[str] | None = None  # or several gates, summed
    direction: Literal["exit", "entry", "all"] = "all"
    metric: Literal["crossings", "queue_end"] = "crossings"

    def gate_list(self) -> list[str]:
        return list(self.gates) if self.gates else [self.gate]


class Target(_Model):
    name: str = Field(min_length=1)
    observed: float = Field(gt=0)
    source: str = Field(min_length=1)
    period: tuple[dt.date, dt.date]
    output: Output = Field(default_factory=Output)
    unit: Literal["crossings", "board_vehicles", "vehicles"] = "crossings"
    use: Literal["fit", "validate"] = "fit"
    tolerance: float = Field(gt=0, le=1, description="fit: relative error of the mean allowed")
    derived: str | None = None  # how the figure was worked out from the source, where it was
    note: str | None = None
    # a validation target the model is known to miss, and why: --check prints it as a miss and
    # lists it, but does not fail on it (it fails if the target comes inside its band, so that
    # the record is removed when the model gets it right)
    known_miss: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _unit_fits_metric(self):
        if self.known_miss is not None and self.use != "validate":
            raise ValueError("known_miss is for validation targets: a fit target must hold")
        if self.output.metric == "queue_end" and self.unit != "vehicles":
            raise ValueError("a queue is counted in vehicles: unit = 'vehicles'")
        if self.output.metric == "crossings" and self.unit == "vehicles":
            raise ValueError("crossings are counted as 'crossings' or 'board_vehicles'")
        if self.output.metric == "queue_end" and self.period[0] != self.period[1]:
            raise ValueError("a queue at a day's end has a period of one day: [date, date]")
        return self


class TargetsFile(_Model):
    scenario: str  # the prior scenario, relative to the targets file
    fitted: str  # the fitted scenario written by calibrate, relative to the targets file
    seed: int = Field(default=20221130, ge=0)
    # the inputs the calibration fits (names or prefixes ending in '*'); the others keep their
    # ranges and are drawn in every replication as before (default: all uncertain inputs)
    fit_inputs: list[str] | None = None
    targets: list[Target] = Field(min_length=1)

    @field_validator("scenario", "fitted")
    @classmethod
    def _a_toml_file(cls, value: str) -> str:
        """Each names a TOML file (the fitted one is written, with its ensemble and report beside it)."""
        name = Path(value).name
        if not value.strip() or name in ("", ".", "..") or not name.endswith(".toml"):
            raise ValueError("must name a .toml file, relative to this targets file (e.g. fitted_2022.toml)")
        return value


@dataclass
class Targets:
    path: Path
    spec: TargetsFile

    @property
    def scenario_path(self) -> Path:
        return self.path.parent / self.spec.scenario

    @property
    def fitted_path(self) -> Path:
        return self.path.parent / self.spec.fitted

    @property
    def targets(self) -> list[Target]:
        return self.spec.targets

    @property
    def fit(self) -> list[Target]:
        return [t for t in self.targets if t.use == "fit"]

    def fitted_inputs(self, scen: Scenario) -> list[str]:
        """The uncertain inputs of the scenario the calibration fits, in the scenario's order."""
        names = [r.name() for r in scen.ranges]
        if self.spec.fit_inputs is None:
            return names
        out = []
        for i, pattern in enumerate(self.spec.fit_inputs):
            hit = [n for n in names if (n.startswith(pattern[:-1]) if pattern.endswith("*") else n == pattern)]
            if not hit:
                raise CalibrationError(str(self.path), f"fit_inputs[{i}]", f"'{shorten(pattern)}' names no uncertain "
                                       f"input of {scen.path} (inputs: {shorten(', '.join(names), 300)})")
            out += hit
        return [n for n in names if n in set(out)]


def load_targets(path: str | Path) -> Targets:
    p = Path(path)
    raw = read_toml(p, CalibrationError, "targets file")
    try:
        spec = TargetsFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # a misspelt key also makes its field "missing": name the misspelling first
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")  # a rule of this module's, said as it is
        if err["type"] == "extra_forbidden":
            model = Target if "targets" in err["loc"] else (Output if "output" in err["loc"] else TargetsFile)
            msg = f"unknown key '{shorten(err['loc'][-1], 40)}' (allowed: {', '.join(model.model_fields)})"
        raise CalibrationError(str(p), where, msg) from None
    names = [t.name for t in spec.targets]
    if len(set(names)) != len(names):
        raise CalibrationError(str(p), "targets", "target names must be unique")
    for i, t in enumerate(spec.targets):
        if t.period[1] < t.period[0]:
            raise CalibrationError(str(p), f"targets.{i}.period", "the period ends before it starts")
    if not any(t.use == "fit" for t in spec.targets):
        raise CalibrationError(str(p), "targets", "needs at least one target with use = 'fit'")
    return Targets(p, spec)


def check_against(targets: Targets, scen: Scenario) -> None:
    """Every target's output must exist in the scenario and its period lie in the horizon."""
    h = scen.nominal.horizon
    gates = set(scen.nominal.gates) | {ALL}
    flows = scen.nominal.flows()
    for i, t in enumerate(targets.targets):
        where = f"targets.{i}"
        d = t.output.direction
        for g in t.output.gate_list():
            if g not in gates:
                raise CalibrationError(str(targets.path), f"{where}.output.gate",
                                       f"unknown gate '{g}' (allowed: {', '.join(sorted(gates))})")
            if d != ALL and not any(d == fd and g in (ALL, fg) for fg, fd in flows):
                raise CalibrationError(str(targets.path), f"{where}.output.direction",
                                       f"no '{d}' traffic at gate '{g}' in {scen.path}")
        if t.period[0] < h.start or t.period[1] > h.end:
            raise CalibrationError(str(targets.path), f"{where}.period",
                                   f"{t.period[0]} to {t.period[1]} is not inside the horizon {h.start} to {h.end}")


def target_values(results: list[ReplicationResult], targets: list[Target], model: ScenarioModel) -> np.ndarray:
    """Each replication's value of each target (replications x targets), in the target's unit;
    model: the scenario's (nominal) model, for its horizon and its crossings per board vehicle
    where a replication does not sample that."""
    h = model.horizon
    nominal_ratio = model.observation.crossings_per_board_vehicle
    out = np.empty((len(results), len(targets)))
    for j, t in enumerate(targets):
        first, after = inclusive_span(t.period[0], t.period[1], h.start, h.days)  # inside the horizon: check_against
        for i, r in enumerate(results):
            if t.output.metric == "queue_end":
                v = sum(float(r.daily_queue_end[(g, t.output.direction)][first]) for g in t.output.gate_list())
            else:
                v = sum(float(r.daily[(g, t.output.direction)][first:after].sum(dtype=np.float64))
                        for g in t.output.gate_list())
                if t.unit == "board_vehicles":
                    v /= r.inputs.get(BOARD_RATIO, nominal_ratio)
            out[i, j] = v
    return out


@dataclass
class CheckRow:
    """A target against replications of a scenario: their mean and the 90 % band of single
    replications, and the verdict."""

    target: Target
    simulated_mean: float
    band_low: float
    band_high: float

    @property
    def relative_error(self) -> float:
        return (self.simulated_mean - self.target.observed) / self.target.observed

    @property
    def within_tolerance(self) -> bool:
        return abs(self.relative_error) <= self.target.tolerance

    @property
    def inside_band(self) -> bool:
        return self.band_low <= self.target.observed <= self.band_high

    def ok(self) -> bool:
        """A fit target: its mean within its tolerance; a validation target: the observed value
        inside the 90 % band of single replications, or outside it where the targets file
        records that the model misses it (``known_miss``), and not inside then."""
        if self.target.use == "fit":
            return self.within_tolerance
        return self.inside_band != (self.target.known_miss is not None)

    def verdict(self) -> str:
        if self.target.use == "fit":
            return "ok" if self.ok() else "FAIL: mean off by more than the tolerance"
        if self.target.known_miss is None:
            return "ok (inside the band)" if self.ok() else "FAIL: observed outside the 90 % band"
        return ("MISS, known: outside the 90 % band" if self.ok()
                else "FAIL: inside the band now; remove its known_miss")


def target_rows(results: list[ReplicationResult], targets: list[Target], scen: Scenario) -> list[CheckRow]:
    """Each target against the replications: its verdict and the figures behind it."""
    values = target_values(results, targets, scen.nominal)
    return [CheckRow(t, float(values[:, j].mean()), *(float(q) for q in np.quantile(values[:, j], BAND)))
            for j, t in enumerate(targets)]


def fitted_by(scen: Scenario) -> Targets | None:
    """The targets file that fitted this scenario, or a scenario it extends: a ``targets*.toml``
    beside the scenario's ensemble whose fitted scenario is one of the scenario's files, and
    whose targets the scenario can be measured against (gates there, periods in the horizon)."""
    if scen.ensemble_file is None:
        return None
    files = set()
    for layer in scen.layers:
        try:
            files.add(Path(layer.file).resolve())
        except (OSError, RuntimeError):  # a --set layer's name, or a path that no longer resolves
            continue
    for path in sorted(Path(scen.ensemble_file).parent.glob("targets*.toml")):
        try:
            targets = load_targets(path)
            if targets.fitted_path.resolve() in files:
                check_against(targets, scen)
                return targets
        except (BordersimError, OSError, RuntimeError):  # not this scenario's targets, or not readable
            continue
    return None


TABLE_COLUMNS = ["target", "use", "unit", "period_start", "period_end", "observed", "simulated_mean", "band_low",
                 "band_high", "relative_error", "tolerance", "verdict", "holds", "known_miss", "source",
                 "targets_file", "fitted_scenario"]


def targets_table(scen: Scenario, results: list[ReplicationResult]) -> pd.DataFrame | None:
    """targets.csv of a run: each target of the targets file that fitted the scenario (``fitted_by``)
    against the run's replications, with its verdict; None for a scenario no targets file fitted."""
    targets = fitted_by(scen)
    if targets is None:
        return None
    rows = []
    for r in target_rows(results, targets.targets, scen):
        t = r.target
        rows.append([t.name, t.use, t.unit, t.period[0].isoformat(), t.period[1].isoformat(), t.observed,
                     r.simulated_mean, r.band_low, r.band_high, r.relative_error,
                     t.tolerance if t.use == "fit" else float("nan"), r.verdict(), r.ok(), t.known_miss or "",
                     t.source + (f" ({t.derived})" if t.derived else ""), targets.path.name,
                     targets.fitted_path.name])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)
