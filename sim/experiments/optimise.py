"""Simulation optimisation over a scenario's levers, on common random numbers.

The search is optuna's (TPESampler with constraints, two objectives: the levers' annual cost
and a measure of performance), asked for trials in batches of a fixed size; each batch's
trials run as points of one design (sim.experiments.experiment.iter_design: replication i has
the same seed at every trial), so two trials differ only by their levers. The sampler is made
afresh for each trial with a seed derived from ``--seed`` and the trial's number, and sees only
the trials of earlier batches, so the trials depend on the seed alone: not on the workers,
the scheduler, nor on a stop and resume (a trial asked and not yet told when the search
stopped is run again with the values it was given).

What the search minimises (the objective):
- ``lever_cost``: the levers' annual cost, subject to the constraints (the planner's "least
  we must build"); its second axis is the first constraint's metric, at its worst gate;
- ``total_cost``: the levers' annual cost plus the waiting cost (``cost_total_vnd`` of all
  gates, per year of the horizon after its warm-up);
- ``METRIC[@GATE]``: a metric as ``bordersim sweep --output`` names it (no gate: the whole
  border), against the levers' cost.
Constraints are ``METRIC[@GATE] <= LIMIT`` or ``>= LIMIT`` on a trial's mean (no gate: at every
gate). The recommendation is the feasible trial with the least objective; its evidence is a
fresh set of replications (a seed derived from ``--seed``, named ``optimise/evidence``) of it
and of the scenario as given, paired.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..base.errors import BordersimError, did_you_mean, shorten
from ..base.days import per_year as years_per
from ..base.rng import derived_seed
from ..model.scenario import Scenario, load
from ..statistics.metrics import ReplicationResult, describe, metric_range
from .experiment import ENGINES, KeptPool, iter_design, replicate
from .levers import LeverSpace
from .workers import local_pool
from .sweep import (OUTPUT_METRICS, SCHEDULERS, SweepError, executor_for, parse_outputs, scenario_sha256,
                    values_only)

OBJECTIVES = ("lever_cost", "total_cost")  # besides a metric, METRIC[@GATE]
WAITING_COST = "cost_total_vnd"  # the waiting cost of a run (VND over the horizon after its warm-up), gate all
# a trial's levers' cost (expected; with its bounds, _low and _high) and, for total_cost, that
# plus each replication's waiting cost
LEVER_COST = "lever_cost_vnd_per_year"
TOTAL_COST = "total_cost_vnd_per_year"
STUDY = "bordersim-optimise"
DEFAULT_TRIALS = 100
DEFAULT_REPS = 20
DEFAULT_BATCH = 10
MAX_TRIALS = 100_000
MAX_REPS = 10_000
EVIDENCE_STREAM = "optimise/evidence"
SAMPLER_STREAM = "optimise/sampler"
_CONSTRAINT = re.compile(r"\s*([A-Za-z0-9_]+)(?:@([A-Za-z0-9_.-]+))?\s*(<=|>=)\s*"
                         r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*")


class OptimiseError(BordersimError):
    """An optimisation that cannot be run as asked: a bad objective, constraint, lever or folder."""


# ------------------------------------------------------------------ what is measured


@dataclass(frozen=True)
class Measure:
    """A metric at a gate (both directions), as a sweep's output names it: ``METRIC@GATE``."""

    metric: str
    gate: str

    @property
    def label(self) -> str:
        return f"{self.metric}@{self.gate}"


@dataclass(frozen=True)
class Constraint:
    """``measure op limit`` on a trial's mean; ``slack`` is <= 0 where it holds."""

    measure: Measure
    op: str
    limit: float

    @property
    def label(self) -> str:
        return f"{self.measure.label} {self.op} {self.limit:g}"

    def slack(self, value: float) -> float:
        """How far the value is past the limit (> 0: violated); inf where the value is undefined
        (NaN: no vehicle to measure), which no trial may count as meeting a limit."""
        if not math.isfinite(value):
            return math.inf
        return value - self.limit if self.op == "<=" else self.limit - value


def parse_measure(text: str, scenario: Scenario, option: str) -> list[Measure]:
    """``METRIC[@GATE]`` (sim.experiments.sweep.parse_outputs: the same names, the same checks)
    as its measures: METRIC alone is every gate and ``all``."""
    try:
        return [Measure(o.metric, o.gate) for o in parse_outputs([text], scenario)]
    except SweepError as exc:
        raise OptimiseError(exc.file, option, exc.message) from None


def parse_constraint(text: str, scenario: Scenario) -> list[Constraint]:
    """``METRIC[@GATE] <= LIMIT`` or ``>= LIMIT``; METRIC alone: one constraint at every gate."""
    m = _CONSTRAINT.fullmatch(text)
    if m is None:
        raise OptimiseError(None, "--constraint", f"'{shorten(text)}' is not METRIC[@GATE] <= LIMIT or "
                                                  "METRIC[@GATE] >= LIMIT (e.g. 'time_in_system_p95_h@km3_4 <= 24')")
    metric, gate, op, limit = m.groups()
    value = float(limit)
    if not math.isfinite(value):
        raise OptimiseError(None, "--constraint", f"'{shorten(text)}': the limit must be a finite number")
    measures = parse_measure(f"{metric}@{gate}" if gate else metric, scenario, "--constraint")
    low, high = (float(x[0]) for x in metric_range([metric]))
    if (op == "<=" and value < low) or (op == ">=" and value > high):
        bound = f"at least {low:g}" if op == "<=" else f"at most {high:g}"
        raise OptimiseError(None, "--constraint", f"'{shorten(text)}' can never hold: {metric} is {bound}")
    if not gate:
        measures = [ms for ms in measures if ms.gate != "all"] or measures
    return [Constraint(ms, op, value) for ms in measures]


@dataclass(frozen=True)
class Objective:
    """What the search minimises: ``lever_cost``, ``total_cost`` or a measure; and the
    performance it is traded against on the front (the second of the study's two objectives)."""

    name: str
    measure: Measure | None  # the measure minimised (a metric objective) or the waiting cost (total_cost)

    @property
    def label(self) -> str:
        return self.measure.label if self.name == "metric" else self.name


def parse_objective(text: str, scenario: Scenario, constraints: Sequence[Constraint]) -> Objective:
    text = text.strip()
    if text == "lever_cost":
        if not constraints:
            raise OptimiseError(None, "--objective", "lever_cost needs a --constraint: without one, the cheapest "
                                                     "is to change nothing")
        return Objective("lever_cost", None)
    if text == "total_cost":
        try:
            parse_outputs([f"{WAITING_COST}@all"], scenario)
        except SweepError:
            raise OptimiseError(scenario.path, "--objective", f"total_cost needs the waiting-cost metric "
                                                              f"{WAITING_COST}, and the scenario has no costs "
                                                              "([classes.<class>.costs]); give lever_cost or a "
                                                              "METRIC[@GATE]") from None
        return Objective("total_cost", Measure(WAITING_COST, "all"))
    if text in OBJECTIVES or "@" not in text and text.endswith("_cost"):
        raise OptimiseError(None, "--objective", f"'{shorten(text)}' is not an objective; allowed: "
                                                 f"{', '.join(OBJECTIVES)} or METRIC[@GATE]")
    try:
        measures = parse_measure(text, scenario, "--objective")
    except OptimiseError as exc:
        metric = text.partition("@")[0]
        if "is not a metric" not in exc.message:
            raise
        hint = did_you_mean(metric, [*OBJECTIVES, *OUTPUT_METRICS])
        raise OptimiseError(None, "--objective", f"'{shorten(metric)}' is neither an objective nor a metric; {hint}"
                                                 f"allowed: {', '.join(OBJECTIVES)}, or METRIC[@GATE] with METRIC "
                                                 f"one of {', '.join(OUTPUT_METRICS)}") from None
    measure = next(ms for ms in measures if ms.gate == "all") if "@" not in text else measures[0]
    return Objective("metric", measure)


def per_year(scenario: Scenario) -> float:
    """Years per horizon: a waiting cost over the horizon after its warm-up times 365 / its days
    is a cost a year, as the levers' costs are."""
    return years_per(scenario.nominal.horizon.priced_days)


# ------------------------------------------------------------------ the setup


@dataclass(frozen=True)
class OptimiseSetup:
    """An optimisation checked before any work (prepare)."""

    scenario: Scenario
    space: LeverSpace
    objective: Objective
    constraints: tuple[Constraint, ...]
    trials: int
    reps: int
    batch: int
    seed: int
    engine: str
    scheduler: str
    address: str | None
    sets: tuple[str, ...] = ()  # the --set lines the scenario was given (its content is in scenario_sha256)

    @property
    def measures(self) -> list[Measure]:
        """Every measure a trial records: the objective's, then the constraints'."""
        out = [self.objective.measure] if self.objective.measure is not None else []
        for c in self.constraints:
            if c.measure not in out:
                out.append(c.measure)
        return out

    @property
    def performance_label(self) -> str:
        """The front's second axis: the objective's measure, the waiting cost a year, or for
        lever_cost the first constraint's measure at its worst gate."""
        if self.objective.name == "total_cost":
            return "waiting_cost_vnd_per_year"
        if self.objective.name == "metric":
            return self.objective.measure.label
        same = self.performance_constraints
        return same[0].measure.label if len(same) == 1 else f"{same[0].measure.metric}@worst"

    @property
    def performance_constraints(self) -> list[Constraint]:
        """For lever_cost, the constraints the front's second axis is the worst of: the first
        one and those of its metric, operator and limit at other gates."""
        first = self.constraints[0]
        return [c for c in self.constraints if c.measure.metric == first.measure.metric and c.op == first.op
                and c.limit == first.limit]

    def identity(self) -> dict:
        """What makes two optimisations the same (a folder resumes only the same one)."""
        return {"scenario": self.scenario.name, "scenario_sha256": scenario_sha256(self.scenario),
                "levers": list(self.space.levers), "objective": self.objective.label,
                "constraints": [c.label for c in self.constraints], "trials": self.trials, "reps": self.reps,
                "batch": self.batch, "seed": self.seed, "engine": self.engine}

    def distributions(self) -> dict:
        """Each lever's values as optuna's distribution."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        out = {}
        for lid, lv in self.space.levers.items():
            if lv.kind == "integer":
                out[lid] = IntDistribution(int(lv.integer[0]), int(lv.integer[1]))
            elif lv.kind == "real":
                out[lid] = FloatDistribution(float(lv.real[0]), float(lv.real[1]))
            else:
                out[lid] = CategoricalDistribution(list(lv.choices))
        return out


def prepare(scenario: str | Path | Scenario, objective: str = "lever_cost", constraints: Sequence[str] = (),
            levers: Sequence[str] = (), trials: int = DEFAULT_TRIALS, reps: int = DEFAULT_REPS,
            batch: int = DEFAULT_BATCH, seed: int = 20221130, engine: str = "fast", scheduler: str | None = None,
            address: str | None = None, sets: Sequence[str] = ()) -> OptimiseSetup:
    """Check an optimisation before any work: the numbers, the scenario and its levers (each
    path, range and choice), the constraints and the objective. A problem is one error."""
    if engine not in ENGINES:
        raise OptimiseError(None, "--engine", f"'{shorten(engine)}' is not an engine; allowed: {', '.join(ENGINES)}")
    for option, value, high in (("--trials", trials, MAX_TRIALS), ("--reps", reps, MAX_REPS),
                                ("--batch", batch, MAX_TRIALS)):
        if not 1 <= value <= high:
            raise OptimiseError(None, option, f"must be 1 to {high:,} (got {value})")
    if reps < 2:
        raise OptimiseError(None, "--reps", "needs at least 2 replications for a trial's interval")
    scheduler = scheduler or ("dask" if address else "local")
    if scheduler not in SCHEDULERS:
        raise OptimiseError(None, "--scheduler", f"'{shorten(scheduler)}' is not a scheduler; allowed: local, dask")
    if address and scheduler != "dask":
        raise OptimiseError(None, "--address", "names a Dask scheduler; it goes with --scheduler dask")
    base = scenario if isinstance(scenario, Scenario) else load(scenario, sets=list(sets))
    space = LeverSpace.of(base, levers)
    cons = tuple(c for text in constraints for c in parse_constraint(text, base))
    obj = parse_objective(objective, base, cons)
    setup = OptimiseSetup(base, space, obj, cons, trials, reps, batch, seed, engine, scheduler, address, tuple(sets))
    if obj.name == "total_cost":
        _check_reported(setup)
    return setup


def _check_reported(setup: OptimiseSetup) -> None:
    """The waiting cost is a metric only some scenarios report (those that price waiting): one
    replication of the scenario as given says whether this one does."""
    result = replicate(setup.scenario, setup.seed, 0, setup.engine)
    want = (WAITING_COST, "all")
    if not any((lab[2], lab[0]) == want and lab[1] == "all" and not lab[3] and not lab[4] for lab in result.labels):
        raise OptimiseError(setup.scenario.path, "--objective", f"total_cost needs the waiting-cost metric "
                                                                f"{WAITING_COST} of all gates, which this scenario's "
                                                                "results do not have (it prices no waiting); give "
                                                                "lever_cost or a METRIC[@GATE]")


# ------------------------------------------------------------------ trials


@dataclass
class TrialOutcome:
    """One trial: its lever values, their cost, and each measure's mean with its 95 % interval
    over the trial's replications (and the replications' values, for pairing)."""

    number: int
    values: dict[str, Any]
    capital: float
    operating: float
    stats: dict[str, tuple[float, float, float]]  # measure label -> (mean, ci_low, ci_high)
    state: str = "complete"  # or "failed": a measure of the search is undefined (no vehicle crossed)
    per_rep: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def lever_cost(self) -> float:
        """The levers' expected cost (VND a year)."""
        return self.capital + self.operating


def measure_values(results: Sequence[ReplicationResult], measures: Sequence[Measure]) -> dict[str, np.ndarray]:
    """Each measure's value in each replication (NaN where a replication does not report it)."""
    index = {(lab[0], lab[2]): i for i, lab in enumerate(results[0].labels)
             if lab[1] == "all" and not lab[3] and not lab[4]}
    out = {}
    for ms in measures:
        i = index.get((ms.gate, ms.metric))
        out[ms.label] = np.array([r.values[i] if i is not None else math.nan for r in results], dtype=float)
    return out


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, ci_low, ci_high): the t-interval of the mean (sim.statistics.metrics.describe)."""
    d = describe(np.asarray(values, dtype=float)[:, None])
    return float(d["mean"][0]), float(d["ci_low"][0]), float(d["ci_high"][0])


def waiting_a_year(setup: OptimiseSetup, waiting):
    """A waiting cost over the horizon after its warm-up (cost_total_vnd) as a cost a year, as
    the levers' costs are; numbers or arrays."""
    return waiting * per_year(setup.scenario)


def with_waiting(setup: OptimiseSetup, lever_cost, waiting):
    """The total cost a year (total_cost's objective): the levers' cost a year plus a waiting
    cost over the horizon after its warm-up, made a year's; numbers or arrays."""
    return lever_cost + waiting_a_year(setup, waiting)


def derived(setup: OptimiseSetup, outcome: TrialOutcome) -> dict[str, tuple[float, float, float]]:
    """The quantities of a trial the search and the tables read, beyond its measures: the
    objective (with its interval), the performance (the front's second axis) and each
    constraint's value."""
    out: dict[str, tuple[float, float, float]] = {}
    if setup.objective.name == "total_cost":
        m, lo, hi = outcome.stats[setup.objective.measure.label]
        out["waiting_cost_vnd_per_year"] = tuple(waiting_a_year(setup, x) for x in (m, lo, hi))
        # a trial told before the total's own interval was kept: the sum of the two
        out["objective"] = outcome.stats.get(TOTAL_COST, tuple(with_waiting(setup, outcome.lever_cost, x)
                                                               for x in (m, lo, hi)))
        out["performance"] = out["waiting_cost_vnd_per_year"]
    elif setup.objective.name == "metric":
        out["objective"] = out["performance"] = outcome.stats[setup.objective.measure.label]
    else:
        out["objective"] = (outcome.lever_cost,) * 3
        worst = max(setup.performance_constraints, key=lambda c: c.slack(outcome.stats[c.measure.label][0]))
        out["performance"] = outcome.stats[worst.measure.label]
    return out


def feasible(setup: OptimiseSetup, outcome: TrialOutcome) -> bool:
    return all(c.slack(outcome.stats[c.measure.label][0]) <= 0 for c in setup.constraints)


def evaluate(setup: OptimiseSetup, trials: Sequence[tuple[int, Mapping[str, Any]]], executor, workers: int,
             progress: bool | None, seed: int | None = None) -> list[TrialOutcome]:
    """Replications 0..reps-1 of each trial's point (one design: common random numbers), with
    root seed ``seed`` (the search's by default)."""
    points = [setup.space.point(values) for _n, values in trials]
    out: list[TrialOutcome | None] = [None] * len(trials)
    first, last = trials[0][0], trials[-1][0]
    stream = iter_design(points, setup.reps, setup.seed if seed is None else seed, setup.engine, executor=executor,
                         workers=workers, progress=progress, desc=f"trials {first}-{last} of {setup.trials}",
                         keep=values_only, unit="point")
    with contextlib.closing(stream) as done:
        for k, results in done:
            number, values = trials[k]
            cost = setup.space.cost(values)
            per_rep = measure_values(results, setup.measures)
            if setup.objective.name == "total_cost":
                per_rep[TOTAL_COST] = with_waiting(setup, cost.total, per_rep[setup.objective.measure.label])
            out[k] = TrialOutcome(number, dict(values), cost.capital, cost.operating,
                                  {label: interval(v) for label, v in per_rep.items()}, per_rep)
    return out  # type: ignore[return-value]


def lever_key(setup: OptimiseSetup, values: Mapping[str, Any]) -> tuple:
    """A set of lever values as a key: two trials with the same key are the same point."""
    return tuple(values[lid] for lid in setup.space.levers)


def evaluate_new(setup: OptimiseSetup, trials: Sequence[tuple[int, Mapping[str, Any]]],
                 known: Sequence[TrialOutcome], executor, workers: int, progress: bool | None) -> list[TrialOutcome]:
    """evaluate, running only the lever values no trial before has (a sampler proposes a value
    of a small space again): a repeat takes the first one's outcome, which its replications
    would give again to the bit (the same point, the same seeds)."""
    first: dict[tuple, TrialOutcome] = {lever_key(setup, o.values): o for o in reversed(known)}
    todo, queued = [], set()
    for number, values in trials:
        key = lever_key(setup, values)
        if key not in first and key not in queued:
            todo.append((number, values))
            queued.add(key)
    run = {o.number: o for o in (evaluate(setup, todo, executor, workers, progress) if todo else [])}
    first.update((lever_key(setup, o.values), o) for o in run.values())
    out = []
    for number, values in trials:
        if number in run:
            out.append(run[number])
        else:
            o = first[lever_key(setup, values)]
            out.append(TrialOutcome(number, dict(values), o.capital, o.operating, dict(o.stats), o.state, o.per_rep))
    return out


# ------------------------------------------------------------------ the search


def _sampler(setup: OptimiseSetup, number: int):
    """Trial ``number``'s sampler: TPE (it reads each trial's constraints, Trial.set_constraint),
    its seed derived from --seed and the number alone (so a resumed search proposes what an
    uninterrupted one would)."""
    import optuna

    return optuna.samplers.TPESampler(seed=derived_seed(setup.seed, SAMPLER_STREAM, number) % 2**32)


def _asked(setup: OptimiseSetup, study, frozen, dists: dict) -> dict:
    """A trial asked before a stop: its values. A stop between optuna's creating the trial and its
    writing the values (separate records of the journal) leaves some out; they are asked again
    as ``ask`` asked them, by the trial's own seeded sampler on the same trials before it, so
    the values are the ones an uninterrupted search gave."""
    if set(frozen.params) >= set(dists):
        return dict(frozen.params)
    from optuna.trial import Trial

    study.sampler = _sampler(setup, frozen.number)
    trial = Trial(study, frozen._trial_id)
    # Trial._suggest is what study.ask(fixed_distributions) calls for each name (no public form
    # takes a distribution as it is); a value already written is returned as it is
    return {name: trial._suggest(name, dist) for name, dist in dists.items()}


def search(setup: OptimiseSetup, storage=None, executor=None, workers: int = 1, progress: bool | None = None):
    """Run the search to ``setup.trials`` trials in ``storage`` (optuna's; None: in memory),
    resuming what it holds; return the study. The first trial is every lever at its base (the
    scenario as given)."""
    import optuna
    from optuna.trial import Trial, TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = storage if storage is not None else optuna.storages.InMemoryStorage()
    study = optuna.create_study(storage=storage, study_name=STUDY, directions=["minimize", "minimize"],
                                load_if_exists=True)
    study_id = storage.get_study_id_from_name(STUDY)
    dists = setup.distributions()
    if not study.get_trials(deepcopy=False):
        study.enqueue_trial(setup.space.base())
    while True:
        trials = [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]
        running = [t for t in trials if t.state == TrialState.RUNNING]
        n = len(trials)
        if n >= setup.trials and not running:
            break
        if n % setup.batch:  # a batch the last run stopped asking for: ask the rest of it
            end = -(-n // setup.batch) * setup.batch
        else:
            end = n if running else n + setup.batch
        batch = [(t.number, _asked(setup, study, t, dists)) for t in running]
        for number in range(n, min(end, setup.trials)):
            study.sampler = _sampler(setup, number)
            trial = study.ask(dists)
            batch.append((trial.number, dict(trial.params)))
        batch.sort(key=lambda item: item[0])
        for outcome in evaluate_new(setup, batch, outcomes(setup, study), executor, workers, progress):
            values = [outcome.lever_cost, derived(setup, outcome)["performance"][0]]
            trial = Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, outcome.number))
            trial.set_user_attr("capital", outcome.capital)
            trial.set_user_attr("operating", outcome.operating)
            trial.set_user_attr("stats", {k: list(v) for k, v in outcome.stats.items()})
            for c in setup.constraints:
                # an undefined measure (slack inf) as a violation larger than any real one, finite for the sampler
                trial.set_constraint(c.label, min(c.slack(outcome.stats[c.measure.label][0]), 1e300))
            if all(math.isfinite(v) for v in values):
                study.tell(trial, values)
            else:  # a measure no replication defines (no vehicle crossed): the trial has no value
                study.tell(trial, state=TrialState.FAIL)
    return study


def outcomes(setup: OptimiseSetup, study) -> list[TrialOutcome]:
    """Every finished trial of the study, by number, from what the storage holds."""
    from optuna.trial import TrialState

    out = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        stats = {k: tuple(float(x) for x in v) for k, v in t.user_attrs.get("stats", {}).items()}
        out.append(TrialOutcome(t.number, dict(t.params), float(t.user_attrs["capital"]),
                                float(t.user_attrs["operating"]), stats,
                                "complete" if t.state == TrialState.COMPLETE else "failed"))
    return sorted(out, key=lambda o: o.number)


def trials_table(setup: OptimiseSetup, study) -> pd.DataFrame:
    """trials.csv: a row per trial: its number, lever values, lever cost (capital, operating,
    total, VND a year), the objective and every measure with its 95 % interval, each
    constraint's slack, whether it is feasible and on the Pareto front, and its state."""
    front = {t.number for t in study.best_trials}
    seen: set[tuple] = set()
    rows = []
    for o in outcomes(setup, study):
        key = lever_key(setup, o.values)
        if key in seen:  # a repeat of an earlier trial's levers: that one stands on the front
            front.discard(o.number)
        seen.add(key)
        row: dict[str, Any] = {"trial": o.number}
        for lid, lv in setup.space.levers.items():
            v = o.values[lid]
            row[lid] = int(v) if lv.kind == "integer" else v
        row["lever_capital_vnd_per_year"] = o.capital
        row["lever_operating_vnd_per_year"] = o.operating
        row[LEVER_COST] = o.lever_cost
        # every cost range at its low end, at its high end: what the levers may cost
        row[f"{LEVER_COST}_low"], row[f"{LEVER_COST}_high"] = (setup.space.cost(o.values, end).total
                                                               for end in ("low", "high"))
        d = derived(setup, o)
        quantities = {"objective": d.pop("objective"), **{k: v for k, v in d.items() if k != "performance"},
                      **{k: v for k, v in o.stats.items() if k != TOTAL_COST}}  # the total is the objective
        for label, stat in quantities.items():
            for suffix, x in zip(("mean", "ci_low", "ci_high"), stat):
                row[f"{label}_{suffix}"] = x
        for c in setup.constraints:
            row[f"slack[{c.label}]"] = c.slack(o.stats[c.measure.label][0])
        row["feasible"] = feasible(setup, o)
        row["front"] = o.number in front
        row["state"] = o.state
        rows.append(row)
    return pd.DataFrame(rows)


def recommend(setup: OptimiseSetup, table: pd.DataFrame) -> pd.Series | None:
    """The feasible trial with the least objective (ties: the cheaper levers, then the lower
    performance measure, then the earlier trial); None where no trial is feasible."""
    ok = table[table["feasible"] & (table["state"] == "complete")]
    if ok.empty:
        return None
    perf = _perf_column(setup)
    order = ok.sort_values(["objective_mean", "lever_cost_vnd_per_year", perf, "trial"], kind="stable")
    return order.iloc[0]


def at_range_end(setup: OptimiseSetup, values: Mapping[str, Any]) -> list[str]:
    """The number levers the recommendation sets at an end of their range other than their base
    (within a thousandth of the range): a wider range might have done better."""
    out = []
    for lid, lv in setup.space.levers.items():
        if lv.kind == "choices":
            continue
        lo, hi = getattr(lv, lv.kind)
        v, close = float(values[lid]), (hi - lo) * 1e-3
        for end, word in ((lo, "bottom"), (hi, "top")):
            if abs(v - end) <= close and abs(float(lv.base) - end) > close:
                out.append(f"the recommended {lid} = {v:.4g} is at the {word} of its range ({lo:g} to {hi:g}): a "
                           "wider range might do better")
    return out


def _perf_column(setup: OptimiseSetup) -> str:
    if setup.objective.name == "total_cost":
        return "waiting_cost_vnd_per_year_mean"
    if setup.objective.name == "metric":
        return f"{setup.objective.measure.label}_mean"
    return "objective_mean"


def front_table(setup: OptimiseSetup, table: pd.DataFrame) -> pd.DataFrame:
    """The Pareto front (feasible trials no other beats on both lever cost and performance), by
    lever cost, with its performance column named."""
    front = table[table["front"]].sort_values(["lever_cost_vnd_per_year", "trial"], kind="stable")
    return front.reset_index(drop=True)


def performance_values(setup: OptimiseSetup, table: pd.DataFrame, stat: str = "mean") -> pd.Series:
    """Each trial's performance (the front's second axis), recomputed from its row's measures:
    its mean, or (``stat`` ci_low, ci_high) its interval's end, of the measure the mean is of."""
    if setup.objective.name == "total_cost":
        return table[f"waiting_cost_vnd_per_year_{stat}"]
    if setup.objective.name == "metric":
        return table[f"{setup.objective.measure.label}_{stat}"]
    same = setup.performance_constraints
    labels = [c.measure.label for c in same]
    means = table[[f"{x}_mean" for x in labels]].to_numpy(dtype=float)
    # the worst gate's (a gate without a value, NaN, is passed over, as max and min do)
    worst = (np.argmax(np.nan_to_num(means, nan=-np.inf), axis=1) if same[0].op == "<="
             else np.argmin(np.nan_to_num(means, nan=np.inf), axis=1))
    values = table[[f"{x}_{stat}" for x in labels]].to_numpy()
    return pd.Series(values[np.arange(len(table)), worst], index=table.index)


# ------------------------------------------------------------------ evidence


def evidence_seed(seed: int) -> int:
    """The root seed of the evidence: derived from --seed under its own name, so its
    replications are not those the recommendation was chosen on."""
    return derived_seed(seed, EVIDENCE_STREAM)


def evidence(setup: OptimiseSetup, values: Mapping[str, Any], executor=None, workers: int = 1,
             progress: bool | None = None) -> pd.DataFrame:
    """The recommended levers and the scenario as given, on fresh replications paired by index
    (common random numbers, root seed evidence_seed): per quantity (the levers' cost, the
    objective, each constraint's measure) both means with intervals, the difference
    recommended - as given with its interval, and for a constraint its limit and whether the
    recommended mean and its interval's far end meet it."""
    seed = evidence_seed(setup.seed)
    base_values = setup.space.base()
    with contextlib.closing(iter_design([setup.space.as_given(), setup.space.point(values)], setup.reps, seed,
                                        setup.engine, executor=executor, workers=workers, progress=progress,
                                        desc="evidence", keep=values_only, unit="point")) as done:
        results = dict(done)
    given, rec = (measure_values(results[k], setup.measures) for k in (0, 1))
    rows = []
    n = setup.reps
    cost_given, cost_rec = (np.full(n, setup.space.cost(v).total) for v in (base_values, values))

    def row(quantity: str, a: np.ndarray, b: np.ndarray, limit=None, op=None) -> dict:
        out = {"quantity": quantity}
        for name, v in (("as_given", a), ("recommended", b), ("difference", b - a)):
            out[f"{name}_mean"], out[f"{name}_ci_low"], out[f"{name}_ci_high"] = interval(v)
        out["limit"] = limit
        if op is not None:
            far = out["recommended_ci_high"] if op == "<=" else out["recommended_ci_low"]
            out["holds"] = bool(out["recommended_mean"] <= limit if op == "<=" else out["recommended_mean"] >= limit)
            out["holds_at_95"] = bool(far <= limit if op == "<=" else far >= limit)
        return out

    rows.append(row(LEVER_COST, cost_given, cost_rec))
    if setup.objective.name == "total_cost":
        label = setup.objective.measure.label
        rows.append(row("waiting_cost_vnd_per_year", waiting_a_year(setup, given[label]),
                        waiting_a_year(setup, rec[label])))
        rows.append(row(TOTAL_COST, with_waiting(setup, cost_given, given[label]), with_waiting(setup, cost_rec, rec[label])))
    elif setup.objective.name == "metric":
        label = setup.objective.measure.label
        rows.append(row(label, given[label], rec[label]))
    for c in setup.constraints:
        rows.append(row(c.measure.label, given[c.measure.label], rec[c.measure.label], c.limit, c.op))
    table = pd.DataFrame(rows)
    table.insert(1, "constraint", [next((c.label for c in setup.constraints if c.measure.label == q and
                                         c.limit == lim), "") for q, lim in zip(table["quantity"], table["limit"])])
    return table


@contextlib.contextmanager
def executor_of(setup: OptimiseSetup, workers: int | None, executor, warn):
    """(executor, or None for this process alone; workers): sweep's executor_for, its local
    pool kept for the whole search and the evidence (KeptPool): a pool per batch would start
    its workers afresh ten times in a search of 100 trials."""
    with executor_for(setup.scheduler, setup.address, workers, executor, warn) as (found, n):
        if found is not None or n == 1:
            yield found, n
            return
        with local_pool(n) as pool:
            yield KeptPool(pool), n


__all__ = ["Constraint", "Measure", "Objective", "OptimiseError", "OptimiseSetup", "TrialOutcome", "evaluate",
           "evidence", "evidence_seed", "front_table", "outcomes", "parse_constraint", "parse_objective", "prepare",
           "recommend", "search", "trials_table"]
