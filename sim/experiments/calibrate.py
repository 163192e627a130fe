"""Calibration: fit a scenario's uncertain inputs to observed figures by ABC-SMC, and check the fit.

The method is approximate Bayesian computation by sequential Monte Carlo (pyabc's ABCSMC): a
population of parameter sets is drawn from the prior (the scenario's ranges, for the inputs the
targets file fits), each simulated (the mean of ``reps_per_draw`` replications on the fast
engine, as the counts are noisy), and kept while its distance to the fit targets (the largest
|simulated - observed| / (tolerance x observed)) is under a threshold that each generation
lowers (to the ``quantile`` of the last distances), the next population perturbing the last
one's survivors; it stops when the threshold
reaches 1 (every fit target within its tolerance), after ``generations`` populations, or after
``budget`` simulations. The final population, resampled by its weights, is the ensemble: the
fitted scenario extends the prior and takes one whole row of it in each replication, so the
inputs keep their joint distribution; inputs it does not fit keep their ranges.

Reproducible: each task of a generation draws with a seed derived from the calibration's seed,
the generation and the task (``SeededMappingSampler``), so the result depends only on the seed,
not on the number of workers.

``check`` runs the fitted scenario and tests each target as ``sim.experiments.targets`` defines it (a fit
target's mean over replications within its tolerance, a validation target's observed value
inside the 90 % band of single replications, 5 % to 95 %), as a run of a fitted scenario does for
its report. Validation targets are never used by the fit.

The fit's files (the ensemble, the fitted scenario, its report) and the check's table are
sim.outputs.calibration's.
"""

from __future__ import annotations

import os
import random
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..base import outdir
from ..base.errors import shorten
from .experiment import install_plans, installed_plan, replicate_plan
from ..model.plan import Plan, compile_plan
from ..model.ranges import Range
from .run import check_reps, run
from ..model.scenario import Scenario, load
from .targets import (  # noqa: F401 - the calibration's names, for callers of sim.experiments.calibrate
    BAND,
    CalibrationError,
    CheckRow,
    Target,
    Targets,
    check_against,
    load_targets,
    target_rows,
    target_values,
)

INFORMED = 0.7  # a posterior 90 % interval under this share of the prior's: the data pinned it down
DEFAULT_POPULATION = 200
DEFAULT_GENERATIONS = 8
DEFAULT_BUDGET = 40_000  # simulations (parameter sets) at most
DEFAULT_REPS_PER_DRAW = 2
DEFAULT_QUANTILE = 0.3  # each generation's threshold: this quantile of the last one's distances
DEFAULT_CHECK_REPS = 200
ENSEMBLE_ROWS = 200


# ------------------------------------------------------------------ the model pyabc runs


class _Simulator:
    """A parameter set (pyabc's keys p0, p1, ... for the fitted inputs) to the targets' values:
    the mean of a few replications, their indices drawn from numpy's generator, which the
    sampler seeds for each task. Its scenario's plan travels to a worker once (the pool's
    setup): pickled, a simulator carries only the plan's key."""

    def __init__(self, scen: Scenario, names: list[str], targets: list[Target], seed: int, reps: int):
        self.plan = compile_plan(scen)
        self.names, self.targets, self.seed, self.reps = names, targets, seed, reps
        self.scales = _scales(scen, names)

    def __getstate__(self):
        return {**self.__dict__, "plan": self.plan.key}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.plan = installed_plan(state["plan"])

    def __call__(self, par) -> dict[str, float]:
        values = _unscaled(par, self.names, self.scales)
        first = int(np.random.randint(0, 2**31 - self.reps))
        results = [replicate_plan(self.plan, self.seed, first + i, "fast", values) for i in range(self.reps)]
        v = target_values(results, self.targets, self.plan.model).mean(axis=0)
        return {t.name: float(v[j]) for j, t in enumerate(self.targets)}


class _Distance:
    """The largest relative error over the fit targets, in units of their tolerances."""

    def __init__(self, targets: list[Target]):
        self.fit = [(t.name, t.tolerance) for t in targets if t.use == "fit"]

    def __call__(self, x: dict, x0: dict) -> float:
        return max(abs(x[n] - x0[n]) / (tol * x0[n]) for n, tol in self.fit)


def _scales(scen: Scenario, names: list[str]) -> list[tuple[float, float]]:
    """(low, width) of each fitted input's range: pyabc works on each input scaled to [0, 1]."""
    by_name = {r.name(): r for r in scen.ranges}
    return [(by_name[n].low(), by_name[n].high() - by_name[n].low()) for n in names]


def _unscaled(par, names: list[str], scales: list[tuple[float, float]]) -> dict[str, float]:
    """A pyabc parameter set (p0, p1, ... on [0, 1]) as the inputs' values, by name."""
    return {n: lo + width * float(par[f"p{i}"]) for i, (n, (lo, width)) in enumerate(zip(names, scales))}


def _prior(scen: Scenario, names: list[str]):
    """The fitted inputs' ranges, each scaled to [0, 1]. On their own scales (a demand factor
    narrowed to +-0.003 beside a backlog of hundreds of vehicles) the proposal kernel's
    covariance spans more orders of magnitude than scipy's singularity cut-off allows; it is
    then taken as singular, proposals off its support get density 0 and weight 1/0 = inf, and
    pyabc stops with weights of nan."""
    import pyabc

    by_name = {r.name(): r for r in scen.ranges}
    rvs = {}
    for i, n in enumerate(names):
        dist, shape = by_name[n].scipy_form()  # the input's own distribution, on [0, 1]
        rvs[f"p{i}"] = pyabc.RV(dist, *shape, 0.0, 1.0)
    return pyabc.Distribution(**rvs)


# ------------------------------------------------------------------ calibrate


def width_ratio(prior: Range, q05: float, q95: float) -> float:
    """How much of an input's prior a fit left: the width of its fitted 5-95 % interval over
    that of its prior's (scipy's quantiles of the range); NaN for a prior of one value. Under
    INFORMED, the data pinned the input down."""
    width = prior.central_width(0.9)
    return (q95 - q05) / width if width > 0 else float("nan")


@dataclass
class Calibration:
    targets: Targets
    prior: Scenario
    seed: int
    names: list[str]  # the fitted inputs
    population: pd.DataFrame  # the final population's parameter sets (by input name)
    weights: np.ndarray
    simulated: pd.DataFrame  # the final population's target values (by target name)
    prior_simulated: pd.DataFrame  # target values of replications of the prior scenario
    epsilons: list[float]  # the threshold of each generation (tolerances)
    simulations: int
    reps_per_draw: int
    wall_s: float

    @property
    def ensemble(self) -> pd.DataFrame:
        """ENSEMBLE_ROWS parameter sets resampled from the final population by weight (notes:
        columns starting with '_')."""
        rng = np.random.default_rng([self.seed, 1])
        rows = rng.choice(len(self.population), size=ENSEMBLE_ROWS, p=self.weights / self.weights.sum())
        out = self.population.iloc[rows].reset_index(drop=True)
        if self.prior.ensemble is not None:
            # an earlier stage's inputs: each row takes one of its parameter sets at random, as
            # each replication of the fit did (independent of the parameter set simulated)
            given = self.prior.ensemble.iloc[rng.integers(len(self.prior.ensemble), size=ENSEMBLE_ROWS)]
            out = pd.concat([given.reset_index(drop=True), out], axis=1)
        for t in self.targets.targets:
            out[f"_sim_{t.name}"] = self.simulated[t.name].to_numpy()[rows]
        return out

    def identification(self) -> pd.DataFrame:
        """Per fitted input: prior and posterior 90 % intervals, their width ratio, and whether
        the data pinned it down."""
        rows = []
        by_name = {r.name(): r for r in self.prior.ranges}
        for n in self.names:
            r = by_name[n]
            post = _weighted_quantiles(self.population[n].to_numpy(), self.weights, [0.05, 0.5, 0.95])
            ratio = width_ratio(r, post[0], post[2])
            rows.append({"input": n, "prior_low": r.low(), "prior_high": r.high(), "posterior_median": post[1],
                         "posterior_q05": post[0], "posterior_q95": post[2], "width_ratio": ratio,
                         "identified": bool(ratio < INFORMED)})
        return pd.DataFrame(rows)


def given_inputs(prior: Scenario) -> list[str]:
    """The inputs an earlier stage fitted: the columns of the prior's ensemble (a prior may be a
    fitted scenario, whose rows each replication takes whole; the fit then conditions on them)."""
    return [] if prior.ensemble is None else list(prior.ensemble.columns)


def fitted_name(prior: Scenario) -> str:
    """The fitted scenario's name: the prior's, with '_calibrated' after it."""
    return f"{prior.name}_calibrated"


def _weighted_quantiles(x: np.ndarray, w: np.ndarray, qs) -> list[float]:
    o = np.argsort(x)
    cw = np.cumsum(w[o]) / w.sum()
    return [float(x[o][min(np.searchsorted(cw, q), len(x) - 1)]) for q in qs]


def calibrate(targets: Targets, population: int = DEFAULT_POPULATION, generations: int = DEFAULT_GENERATIONS,
              budget: int = DEFAULT_BUDGET, reps_per_draw: int = DEFAULT_REPS_PER_DRAW, seed: int | None = None,
              workers: int | None = None, progress: bool | None = None,
              quantile: float = DEFAULT_QUANTILE) -> Calibration:
    """ABC-SMC of the targets file's fitted inputs to its fit targets (see the module's doc)."""
    import logging

    import pyabc

    from .abc_sampler import SeededMappingSampler, TruncatedWeightTransition, truncated_weights
    from .workers import resolve_workers

    if not 0 < quantile < 1:
        raise CalibrationError(None, "--quantile", f"must be between 0 and 1, got {quantile}")
    if population < 10:
        raise CalibrationError(None, "--population", f"needs at least 10 parameter sets, got {population}")
    if budget < 2 * population:
        raise CalibrationError(None, "--budget", f"is below one generation: the prior sample that sets the first "
                                                 f"threshold and one population need at least 2 x {population} = "
                                                 f"{2 * population:,} simulations, got {budget:,}")
    prior = load(targets.scenario_path)
    if not prior.ranges:
        raise CalibrationError(str(targets.scenario_path), None, "has no uncertain inputs to calibrate")
    outdir.check_slug(fitted_name(prior), str(targets.scenario_path), "name (with '_calibrated' after it, the "
                                                                        "fitted scenario's)")
    check_against(targets, prior)
    check_reps(prior, budget * reps_per_draw, "--budget", writes_tables=False)
    names = targets.fitted_inputs(prior)
    given = given_inputs(prior)
    twice = [n for n in names if n in given]
    if twice:
        raise CalibrationError(str(targets.path), "fit_inputs", f"'{shorten(twice[0])}' is set by the prior's ensemble "
                               f"({Path(prior.ensemble_file).name}, an earlier stage's fit): fit it there, or leave "
                               "its column out of that file")
    seed = targets.spec.seed if seed is None else seed
    t0 = time.perf_counter()
    prior_run = run(prior, reps=ENSEMBLE_ROWS, seed=seed + 7, workers=workers, allow_overload=True,
                    progress=False)
    prior_sim = pd.DataFrame(target_values(prior_run.results, targets.targets, prior.nominal),
                             columns=[t.name for t in targets.targets])
    simulator = _Simulator(prior, names, targets.targets, seed, reps_per_draw)
    observed = {t.name: t.observed for t in targets.targets}
    logging.getLogger("ABC").setLevel(logging.WARNING)  # pyabc logs every generation at INFO
    logging.getLogger("Sampler").setLevel(logging.WARNING)
    # weights that sum to 1e-25 before they are normalised are no problem on [0, 1] scales (a
    # kernel in 15 dimensions has densities of that order); a failure is caught below
    logging.getLogger("ABC.Population").setLevel(logging.ERROR)
    n_workers, _ = resolve_workers(workers, population)
    # pyabc's database: a folder a kill -9 leaves is removed by the next fit (outdir.scratch_dir)
    with outdir.scratch_dir(ABC_PREFIX, _ABC_FILES) as tmp, _maybe_pool(n_workers, simulator.plan) as map_:
        sampler = SeededMappingSampler(seed, map_, budget)
        abc = pyabc.ABCSMC(simulator, _prior(prior, names), _Distance(targets.targets), population_size=population,
                           sampler=sampler,
                           eps=pyabc.QuantileEpsilon(alpha=quantile),
                           transitions=TruncatedWeightTransition())
        np.random.seed(seed)  # pyabc draws its calibration sample and kernels from numpy's generator
        random.seed(seed)
        abc.new("sqlite:///" + os.path.join(tmp, "abc.db"), observed)
        try:
            with np.errstate(divide="ignore", invalid="ignore"):  # pyabc's weights: a failure is caught below
                history = abc.run(minimum_epsilon=1.0, max_nr_populations=generations,
                                  max_total_nr_simulations=budget)
        except (AssertionError, ValueError, np.linalg.LinAlgError) as exc:  # a generation's weights degenerated
            history = abc.history
            if history.max_t < 0:
                raise CalibrationError(str(targets.path), "fit_inputs",
                                       f"ABC-SMC failed in its first generation ({shorten(exc, 120)}); fit fewer "
                                       "inputs or give --population more parameter sets") from None
            warnings.warn(f"ABC-SMC stopped in generation {history.max_t + 2} ({shorten(exc, 100)}); "
                          f"the fit is generation {history.max_t + 1}'s population")
        if history.max_t < 0:
            raise CalibrationError(None, "--budget", f"ran out within the first generation ({budget:,} simulations); "
                                                     "give more, or a smaller --population")
        particles = history.get_population(t=history.max_t).particles  # parameters, weights and sums aligned
        scales = _scales(prior, names)
        pop = pd.DataFrame([_unscaled(pt.parameter, names, scales) for pt in particles])
        weights = truncated_weights(np.array([pt.weight for pt in particles], dtype=float))
        sims = pd.DataFrame([{t.name: float(pt.sum_stat[t.name]) for t in targets.targets} for pt in particles])
        eps = [float(e) for e in history.get_all_populations()["epsilon"].to_numpy() if np.isfinite(e)]
        total = sampler.used  # those of a generation the budget cut short too
    return Calibration(targets, prior, seed, names, pop, weights, sims, prior_sim, eps, total, reps_per_draw,
                       time.perf_counter() - t0)


ABC_PREFIX = "bordersim-abc-"
_ABC_FILES = re.compile(r"abc\.db(?:-journal|-wal|-shm)?")  # what pyabc writes in its folder


class _maybe_pool:
    """The map the sampler's tasks run on: a local pool of bordersim workers, or the builtin map."""

    def __init__(self, workers: int, plan: Plan):
        self.workers, self.plan, self.cm = workers, plan, None

    def __enter__(self):
        if self.workers < 2:
            return map
        from .workers import local_pool

        self.cm = local_pool(self.workers, setup=install_plans, setup_args=([self.plan],))
        pool = self.cm.__enter__()
        return pool.map

    def __exit__(self, *exc):
        return self.cm.__exit__(*exc) if self.cm is not None else False


# ------------------------------------------------------------------ check


def check(targets: Targets, scenario_path: str | Path | None = None, reps: int = DEFAULT_CHECK_REPS,
          seed: int | None = None, engine: str = "fast", workers: int | None = None,
          progress: bool | None = None) -> list[CheckRow]:
    """Run the fitted scenario (or another) and test each target."""
    scen = load(scenario_path or targets.fitted_path)
    check_against(targets, scen)
    seed = targets.spec.seed + 1 if seed is None else seed  # not the calibration's own draws
    result = run(scen, reps=reps, seed=seed, workers=workers, engine=engine, allow_overload=True, progress=progress)
    return target_rows(result.results, targets.targets, scen)

