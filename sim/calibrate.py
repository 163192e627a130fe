"""Calibration: fit a scenario's uncertain inputs to observed figures, and check the fit.

A targets file (TOML) names the scenario it calibrates (its prior: the scenario's ranges), the
fitted scenario to write, and each observed figure with its source, period, the model output it
is compared with and a relative tolerance.

The method is rejection approximate Bayesian computation (ABC) on the fast engine: draw
``budget`` parameter sets from the prior, simulate one replication of each (the replication's
own draws are the prior draws: ``param/<field>`` streams), and keep the ``accept`` fraction
whose outputs are closest to the targets, distance being the largest |simulated - observed| /
(tolerance x observed) over the targets. The kept sets are the ensemble (a sample of the
approximate posterior); the fitted scenario extends the prior scenario and takes a whole
parameter set from the ensemble in each replication, so the parameters keep their joint
distribution. Totals alone do not identify every parameter: the report says which ones the
data narrowed (posterior 90 % interval under ``INFORMED`` of the prior's) and which stayed
at their prior.

``check`` runs the fitted scenario and compares, for each target, the mean over replications
with the observed value (relative error within the tolerance) and the observed value with the
95 % prediction interval of single replications (2.5 % to 97.5 % quantiles).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import outdir
from .errors import BordersimError, OutputError, shorten
from .metrics import ALL, ReplicationResult
from .scenario import Scenario, load, read_toml

INFORMED = 0.7  # a posterior 90 % interval under this share of the prior's: the data pinned it down
DEFAULT_BUDGET = 2000
DEFAULT_ACCEPT = 0.1
DEFAULT_CHECK_REPS = 200


class CalibrationError(BordersimError):
    """A targets file that cannot be used, or a calibration that cannot run."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Output(_Model):
    gate: str = ALL
    direction: Literal["exit", "entry", "all"] = "all"
    metric: Literal["crossings"] = "crossings"


class Target(_Model):
    name: str = Field(min_length=1)
    observed: float = Field(gt=0)
    source: str = Field(min_length=1)
    period: tuple[dt.date, dt.date]
    output: Output = Field(default_factory=Output)
    tolerance: float = Field(gt=0, le=1, description="relative error of the mean allowed")
    note: str | None = None


class TargetsFile(_Model):
    scenario: str  # the prior scenario, relative to the targets file
    fitted: str  # the fitted scenario written by calibrate, relative to the targets file
    seed: int = Field(default=20221130, ge=0)
    targets: list[Target] = Field(min_length=1)


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
        msg = err["msg"]
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
    return Targets(p, spec)


def _check_against(targets: Targets, scen: Scenario) -> None:
    """Every target's output must exist in the scenario and its period lie in the horizon."""
    h = scen.nominal.horizon
    gates = set(scen.nominal.gates) | {ALL}
    flows = scen.nominal.flows()
    for i, t in enumerate(targets.targets):
        where = f"targets.{i}"
        g, d = t.output.gate, t.output.direction
        if g not in gates:
            raise CalibrationError(str(targets.path), f"{where}.output.gate",
                                   f"unknown gate '{g}' (allowed: {', '.join(sorted(gates))})")
        if d != ALL and not any(d == fd and g in (ALL, fg) for fg, fd in flows):
            raise CalibrationError(str(targets.path), f"{where}.output.direction",
                                   f"no '{d}' traffic at gate '{g}' in {scen.path}")
        if t.period[0] < h.start or t.period[1] > h.end:
            raise CalibrationError(str(targets.path), f"{where}.period",
                                   f"{t.period[0]} to {t.period[1]} is not inside the horizon {h.start} to {h.end}")


def target_values(results: list[ReplicationResult], targets: list[Target], start: dt.date) -> np.ndarray:
    """Each replication's value of each target (replications x targets): crossings summed over
    the target's days."""
    out = np.empty((len(results), len(targets)))
    for j, t in enumerate(targets):
        first = (t.period[0] - start).days
        last = (t.period[1] - start).days
        key = (t.output.gate, t.output.direction)
        for i, r in enumerate(results):
            out[i, j] = r.daily[key][first:last + 1].sum(dtype=np.float64)
    return out


# ------------------------------------------------------------------ ABC


@dataclass
class Calibration:
    targets: Targets
    prior: Scenario
    budget: int
    accept: float
    seed: int
    params: pd.DataFrame  # every draw's parameter values (budget x inputs)
    simulated: np.ndarray  # every draw's target values (budget x targets)
    distance: np.ndarray
    kept: np.ndarray  # indices of the ensemble's draws
    wall_s: float

    @property
    def ensemble(self) -> pd.DataFrame:
        out = self.params.iloc[self.kept].reset_index(drop=True)
        out["_distance"] = self.distance[self.kept]
        for j, t in enumerate(self.targets.targets):
            out[f"_sim_{t.name}"] = self.simulated[self.kept, j]
        return out

    def identification(self) -> pd.DataFrame:
        """Per uncertain input: prior and posterior 90 % intervals, their width ratio, and
        whether the data pinned it down."""
        rows = []
        for r in self.prior.ranges:
            name = r.name()
            prior = self.params[name].to_numpy()
            post = prior[self.kept]
            p_lo, p_hi = np.quantile(prior, [0.05, 0.95])
            q_lo, q_med, q_hi = np.quantile(post, [0.05, 0.5, 0.95])
            ratio = (q_hi - q_lo) / (p_hi - p_lo) if p_hi > p_lo else np.nan
            rows.append({
                "input": name, "prior_low": r.low(), "prior_high": r.high(),
                "posterior_median": q_med, "posterior_q05": q_lo, "posterior_q95": q_hi,
                "width_ratio": ratio, "identified": bool(ratio < INFORMED),
            })
        return pd.DataFrame(rows)


def drawn_inputs(scen: Scenario, results: list[ReplicationResult]) -> pd.DataFrame:
    """The values each replication's uncertain inputs took (one row per replication), as the
    replications themselves report them."""
    return pd.DataFrame([r.inputs for r in results], columns=[r.name() for r in scen.ranges])


def calibrate(targets: Targets, budget: int = DEFAULT_BUDGET, accept: float = DEFAULT_ACCEPT,
              seed: int | None = None, workers: int | None = None, progress: bool | None = None) -> Calibration:
    """Rejection ABC: ``budget`` prior draws, one fast replication each, the closest ``accept``
    fraction kept."""
    from .run import check_reps, run

    if budget < 10:
        raise CalibrationError(None, "--budget", f"needs at least 10 draws, got {budget}")
    if not 0 < accept <= 0.5:
        raise CalibrationError(None, "--accept", f"must be in (0, 0.5], got {accept}")
    prior = load(targets.scenario_path)
    if prior.ensemble is not None:
        raise CalibrationError(str(targets.scenario_path), "ensemble",
                               "the prior scenario must not be a fitted one (it samples an ensemble)")
    if not prior.ranges:
        raise CalibrationError(str(targets.scenario_path), None, "has no uncertain inputs to calibrate")
    _check_against(targets, prior)
    check_reps(prior, budget, "--budget")  # one replication per draw
    seed = targets.spec.seed if seed is None else seed
    result = run(prior, reps=budget, seed=seed, workers=workers, engine="fast", allow_overload=True, progress=progress)
    sim = target_values(result.results, targets.targets, prior.nominal.horizon.start)
    obs = np.array([t.observed for t in targets.targets])
    tol = np.array([t.tolerance for t in targets.targets])
    distance = np.max(np.abs(sim - obs) / (tol * obs), axis=1)
    n_keep = max(2, int(round(accept * budget)))
    kept = np.sort(np.argsort(distance, kind="stable")[:n_keep])
    return Calibration(targets, prior, budget, accept, seed, drawn_inputs(prior, result.results), sim, distance,
                       kept, result.wall_s)


# ------------------------------------------------------------------ check


@dataclass
class CheckRow:
    target: Target
    simulated_mean: float
    pi_low: float
    pi_high: float

    @property
    def relative_error(self) -> float:
        return (self.simulated_mean - self.target.observed) / self.target.observed

    @property
    def within_tolerance(self) -> bool:
        return abs(self.relative_error) <= self.target.tolerance

    @property
    def inside_interval(self) -> bool:
        return self.pi_low <= self.target.observed <= self.pi_high

    def ok(self, need_interval: bool = True) -> bool:
        return self.within_tolerance and (self.inside_interval or not need_interval)


def check(targets: Targets, scenario_path: str | Path | None = None, reps: int = DEFAULT_CHECK_REPS,
          seed: int | None = None, engine: str = "fast", workers: int | None = None,
          progress: bool | None = None) -> list[CheckRow]:
    """Run the fitted scenario (or another) and compare each target."""
    from .run import run

    scen = load(scenario_path or targets.fitted_path)
    _check_against(targets, scen)
    seed = targets.spec.seed + 1 if seed is None else seed  # not the calibration's own draws
    result = run(scen, reps=reps, seed=seed, workers=workers, engine=engine, allow_overload=True, progress=progress)
    values = target_values(result.results, targets.targets, scen.nominal.horizon.start)
    return [
        CheckRow(t, float(values[:, j].mean()), *np.quantile(values[:, j], [0.025, 0.975]))
        for j, t in enumerate(targets.targets)
    ]


def check_table(rows: list[CheckRow], need_interval: bool = True) -> str:
    lines = [f"{'target':<22}{'observed':>10}{'simulated':>11}{'95 % prediction':>22}{'rel. error':>11}"
             f"{'tolerance':>10}  verdict"]
    for r in rows:
        why = []
        if not r.within_tolerance:
            why.append("mean off by more than the tolerance")
        if need_interval and not r.inside_interval:
            why.append("observed outside the 95 % prediction interval")
        verdict = "ok" if not why else "FAIL: " + "; ".join(why)
        lines.append(f"{r.target.name:<22}{r.target.observed:>10,.0f}{r.simulated_mean:>11,.0f}"
                     f"{f'[{r.pi_low:,.0f}, {r.pi_high:,.0f}]':>22}{r.relative_error:>+10.2%} "
                     f"{r.target.tolerance:>9.1%}  {verdict}")
    return "\n".join(lines)


# ------------------------------------------------------------------ outputs


def ensemble_path(targets: Targets) -> Path:
    return targets.fitted_path.with_name(targets.fitted_path.stem + "_ensemble.csv")


def output_paths(targets: Targets) -> list[Path]:
    """What write_calibration writes, beside the fitted scenario: the ensemble, the fitted
    scenario, the report and its two plots."""
    fitted = targets.fitted_path
    stem = fitted.stem.replace("fitted", "report")
    report = [fitted.with_name(f"{stem}{suffix}") for suffix in (".md", "_fit.png", "_marginals.png")]
    return [ensemble_path(targets), fitted, *report]


def check_outputs(targets: Targets) -> None:
    """Refuse, before any work, a calibration that would write over a file bordersim did not
    write (the targets file's ``fitted`` path could name a scenario of the user's)."""
    try:
        outdir.check_files(output_paths(targets))
    except OutputError as exc:
        raise CalibrationError(str(targets.path), "fitted", f"would write {exc.one_line()}") from None


def write_calibration(cal: Calibration) -> list[Path]:
    """The ensemble (CSV), the fitted scenario (TOML) and a report (Markdown + 2 PNGs), beside
    the fitted scenario's path; each file written whole or not at all, and none if any of them
    would replace a file bordersim did not write."""
    import os

    from . import plots

    t = cal.targets
    check_outputs(t)
    ens_path, fitted, report, fit_png, marg_png = output_paths(t)
    ident = cal.identification()
    kept = len(cal.kept)
    eps = float(cal.distance[cal.kept].max())
    header = (f"rejection ABC on the fast engine: {cal.budget} prior draws (seed {cal.seed}), one replication "
              f"each, the {kept} closest kept ({cal.accept:.1%}; largest distance kept {eps:.2f} tolerances); "
              f"{cal.wall_s:.0f} s")

    with outdir.atomic_file(ens_path) as tmp:
        cal.ensemble.to_csv(tmp, index=False, float_format="%.6g")
    rel_prior = os.path.relpath(t.scenario_path.resolve(), fitted.parent.resolve())
    toml = "\n".join([
        f"# Written by `bordersim calibrate {t.path.name}`: {header}.",
        f"# Targets and their sources: {t.path.name}. Each replication takes one whole parameter set",
        f"# of {ens_path.name} (the fitted ensemble, an approximate posterior); the uncertain inputs",
        "# it does not list keep their ranges from the prior scenario.",
        f'extends = "{rel_prior}"',
        f'name = "{cal.prior.name}_calibrated"',
        f'description = "{cal.prior.nominal.description} - calibrated to {", ".join(x.name for x in t.targets)}"',
        f'ensemble = "{ens_path.name}"',
        "",
    ])
    with outdir.atomic_file(fitted) as tmp:
        tmp.write_text(toml, encoding="utf-8")
    with outdir.atomic_file(fit_png) as tmp:
        plots.calibration_fit(cal, tmp)
    with outdir.atomic_file(marg_png) as tmp:
        plots.calibration_marginals(cal, tmp)

    obs = np.array([x.observed for x in t.targets])
    lines = [f"# Calibration report: {cal.prior.name}", "", header + ".", "",
             "## Targets", "", "| target | observed | source | period | prior 95 % | ensemble 95 % | ensemble mean |",
             "|---|---|---|---|---|---|---|"]
    for j, x in enumerate(t.targets):
        pr = np.quantile(cal.simulated[:, j], [0.025, 0.975])
        po = np.quantile(cal.simulated[cal.kept, j], [0.025, 0.975])
        lines.append(f"| {x.name} | {obs[j]:,.0f} | {x.source} | {x.period[0]} to {x.period[1]} | "
                     f"[{pr[0]:,.0f}, {pr[1]:,.0f}] | [{po[0]:,.0f}, {po[1]:,.0f}] | {cal.simulated[cal.kept, j].mean():,.0f} |")
    lines += ["", f"![observed against simulated]({fit_png.name})", "",
              "## Inputs: what the data pinned down",
              "", f"An input counts as pinned down when its ensemble 90 % interval is under {INFORMED:.0%} of the "
              "prior's (width ratio).", "",
              "| input | prior | ensemble median | ensemble 90 % | width ratio | pinned down |", "|---|---|---|---|---|---|"]
    for _, r in ident.iterrows():
        lines.append(f"| {r['input']} | [{r.prior_low:g}, {r.prior_high:g}] | {r.posterior_median:.4g} | "
                     f"[{r.posterior_q05:.4g}, {r.posterior_q95:.4g}] | {r.width_ratio:.2f} | "
                     f"{'yes' if r.identified else 'no'} |")
    lines += ["", f"![prior and ensemble of each input]({marg_png.name})", ""]
    with outdir.atomic_file(report) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return [ens_path, fitted, report, fit_png, marg_png]
