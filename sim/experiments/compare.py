"""Compare scenarios on common random numbers: paired differences with intervals, per gate.

Every scenario runs replications 0..reps-1 with the same root seed, so replication i of each
sees the same arrivals, service draws and closures wherever the scenarios agree (the streams
are named by gate, direction, class and stage); the difference alt_i - base_i then holds only
what the change did, and its interval over replications is much tighter than the difference
of two independent means. The same pairing gives the differences of every metric (compare.csv),
of each month's figures (compare_monthly.csv) and of each day's (compare_daily.csv): one
function, ``paired``, for all three.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from . import capacity
from ..base.errors import BordersimError
from .experiment import Point, run_design
from ..statistics.metrics import (
    ALL,
    SHARES,
    SUMMARY_COLUMNS,
    ReplicationResult,
    corridor_rows,
    corridor_shape,
    crossings_by_group,
    daily_matrix,
    daily_table,
    describe,
    monthly_matrix,
    monthly_table,
    queue_by_hour_table,
    summarise,
    tis_hist_table,
)
from ..model.scenario import Scenario, with_sets
from .workers import resolve_workers

KEYS = ["gate", "direction", "metric", "stage", "class"]
DIFF_COLUMNS = ["base_mean", "alt_mean", "diff_mean", "diff_ci_low", "diff_ci_high", "rel_diff", "excludes_zero", "n"]
COMPARE_COLUMNS = ["scenario", *KEYS, *DIFF_COLUMNS]
class CompareError(BordersimError):
    """Scenarios that cannot be compared."""


@dataclass
class Comparison:
    """Several scenarios run on common random numbers; the first is the base."""

    scenarios: list[Scenario]
    seed: int
    reps: int
    engine: str
    results: list[list[ReplicationResult]] = field(repr=False)
    wall_s: float
    warnings: list[str]
    workers: int = 1  # processes the replications ran in (writing may use as many)

    @property
    def base(self) -> Scenario:
        return self.scenarios[0]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.scenarios]

    @cached_property
    def table(self) -> pd.DataFrame:
        """compare.csv: per alternative and metric, base and alternative means and the paired
        difference (alt - base) with its 95 % interval, relative to the base mean, and whether
        the interval excludes 0. An empty stage or class is "" (``sim.read_table`` reads the
        CSV back so). A corridor that some scenarios lack has its rows in theirs too, from their
        own crossings (nobody leaves a scenario without the corridor), so the change of each
        gate's share shows."""
        corridors = _corridors(self.scenarios)
        return self._differences(lambda res, _scen: _values(res, corridors), COMPARE_COLUMNS)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Each scenario's own summary (as `bordersim run` writes it), with a scenario column."""
        return _stacked(self, lambda res, _scen: summarise(res))

    @cached_property
    def daily(self) -> pd.DataFrame:
        return _stacked(self, lambda res, scen: daily_table(res, scen.nominal.horizon.start))

    @cached_property
    def monthly(self) -> pd.DataFrame:
        """monthly.csv: each scenario's figures by calendar month (sim.statistics.metrics.monthly_table)."""
        return _stacked(self, lambda res, scen: monthly_table(res, scen.nominal.horizon.start))

    @cached_property
    def monthly_differences(self) -> pd.DataFrame:
        """compare_monthly.csv: per alternative, gate, direction, month and monthly metric, the
        paired difference (alt - base, replication by replication) with its 95 % interval."""
        return self._differences(lambda res, scen: _frame(*monthly_matrix(res, scen.nominal.horizon.start)),
                                 ["scenario", "gate", "direction", "month", "metric", *DIFF_COLUMNS])

    @cached_property
    def daily_differences(self) -> pd.DataFrame:
        """compare_daily.csv: the same per calendar day, for the daily table's metrics (the
        queue_by_date plot draws its differences and bands from it)."""
        return self._differences(lambda res, scen: _frame(*daily_matrix(res, scen.nominal.horizon.start)),
                                 ["scenario", "gate", "direction", "date", "metric", *DIFF_COLUMNS])

    @cached_property
    def queue_by_hour(self) -> pd.DataFrame:
        return _stacked(self, lambda res, _scen: queue_by_hour_table(res))

    @cached_property
    def time_in_system_hist(self) -> pd.DataFrame:
        return _stacked(self, lambda res, _scen: tis_hist_table(res))

    def _differences(self, values, columns: list[str]) -> pd.DataFrame:
        """Each alternative's paired differences to the base of the replications' values
        (values(results, scenario): replications x labelled columns)."""
        base = values(self.results[0], self.scenarios[0])
        frames = [paired(base, values(res, scen), scen.name) for scen, res in zip(self.scenarios[1:], self.results[1:])]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _stacked(cmp: Comparison, make) -> pd.DataFrame:
    """A table per scenario, stacked, with a scenario column first."""
    frames = []
    for scen, res in zip(cmp.scenarios, cmp.results):
        frame = make(res, scen)
        frame.insert(0, "scenario", scen.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _corridors(scenarios: list[Scenario]) -> tuple:
    """Every corridor of the scenarios (sim.statistics.metrics.corridor_shape), the first's where
    two share an id."""
    out: dict[str, tuple] = {}
    for s in scenarios:
        for item in corridor_shape(s.nominal):
            out.setdefault(item[0], item)
    return tuple(out.values())


def _values(results: list[ReplicationResult], corridors: tuple = ()) -> pd.DataFrame:
    """Replications x metrics (columns: the labels); with the rows of the ``corridors`` the
    results lack but whose gates and directions they have, from their crossings (none diverted)."""
    labels = results[0].labels
    values = np.vstack([r.values for r in results])
    have = set(labels)
    missing = tuple(c for c in corridors if (c[0], ALL, "diverted_out", "", "") not in have
                    and all((g, d, "crossings", "", "") in have for d, gates, _c in c[1] for g in gates))
    if missing:
        priced = {} if any(lab[2] == "cost_total_vnd" for lab in labels) else None  # none left: nothing to price
        extra = [corridor_rows(crossings_by_group(r.labels, r.values), missing, {}, priced) for r in results]
        labels = labels + extra[0][0]
        values = np.hstack([values, np.vstack([x for _l, x in extra])])
    return pd.DataFrame(values, columns=pd.MultiIndex.from_tuples(labels, names=KEYS))


def _frame(labels: pd.DataFrame, values: np.ndarray) -> pd.DataFrame:
    """Replications x labelled columns, from a table of labels and a (replications x labels) matrix."""
    return pd.DataFrame(values, columns=pd.MultiIndex.from_frame(labels))


def paired(base: pd.DataFrame, alt: pd.DataFrame, name: str) -> pd.DataFrame:
    """The paired differences alt - base of every column both report (replication by
    replication), and the columns only one of them has (their other side NaN); the columns'
    labels (their MultiIndex levels) lead each row, after the scenario."""
    cols = base.columns.union(alt.columns, sort=False)
    b = base.reindex(columns=cols).to_numpy(dtype=float)
    a = alt.reindex(columns=cols).to_numpy(dtype=float)
    diff = describe(a - b, spread=False)  # NaN where either is: pairs only where both have a value
    keys = list(cols.names)
    out = pd.DataFrame(list(cols), columns=keys)
    out.insert(0, "scenario", name)
    out["base_mean"] = describe(b, spread=False)["mean"]
    out["alt_mean"] = describe(a, spread=False)["mean"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["diff_mean"] = diff["mean"]
        out["diff_ci_low"] = diff["ci_low"]
        out["diff_ci_high"] = diff["ci_high"]
        out["rel_diff"] = np.where(out["base_mean"] != 0, out["diff_mean"] / out["base_mean"], np.nan)
    out["excludes_zero"] = (out["diff_ci_low"] > 0) | (out["diff_ci_high"] < 0)
    out["n"] = diff["n"]
    return out[["scenario", *keys, *DIFF_COLUMNS]]


def distinct_names(names: list[str], sets_suffix: bool = False) -> list[str]:
    """Names of a comparison's scenarios, each its own, as its tables tell them apart: the base
    keeps its name; an alternative whose name is taken gets ``_set`` (where ``--set`` changed
    it: sets_suffix) or else ``_2``, ``_3``, ... (still a plain name, as a folder's must be)."""
    out: list[str] = []
    for i, name in enumerate(names):
        mine = f"{name}_set" if i and sets_suffix and name in out else name
        k = 2
        while mine in out:
            mine = f"{name}_{k}"
            k += 1
        out.append(mine)
    return out


def compare(base: Scenario, alternatives: list[Scenario], reps: int = 20, seed: int = 20221130,
            engine: str = "fast", workers: int | None = None, allow_overload: bool = False,
            progress: bool | None = None, warn=None, executor=None, sets: list[str] | None = None) -> Comparison:
    """Run the base and each alternative on common random numbers (replication i of each with
    the same seed).

    ``sets``: ``PATH=VALUE`` changes (as ``bordersim compare --set``, e.g.
    ``["gates.km3_4.exit.stages.customs.lanes=3"]``) applied to every alternative, not the base:
    ``compare(base, [base], sets=[...])`` is a quick what-if. Scenarios that share a name are told
    apart: an alternative named as an earlier scenario is named ``NAME_set`` where ``sets``
    changed it, else ``NAME_2``, ``NAME_3``, ... (``Comparison.names``). ``warn``, if given, is
    called with each warning as soon as it is known (they are also in the result). ``executor``:
    any ``concurrent.futures.Executor`` (default: a local pool of ``workers`` processes)."""
    scenarios, warnings = prepare(base, alternatives, reps, allow_overload, sets)
    workers, cut = resolve_workers(workers, len(scenarios) * reps)
    if cut:
        warnings.append(cut)
    for w in warnings if warn else ():
        warn(w)
    t0 = time.perf_counter()
    results = run_design([Point(s) for s in scenarios], reps, seed, engine, executor=executor, workers=workers,
                         progress=progress, desc=f"compare {len(scenarios)} scenarios ({engine})")
    return Comparison(scenarios, seed, reps, engine, results, time.perf_counter() - t0, warnings, workers)


def prepare(base: Scenario, alternatives: list[Scenario], reps: int, allow_overload: bool = False,
            sets: list[str] | None = None) -> tuple[list[Scenario], list[str]]:
    """A comparison's scenarios before any replication (the base first, each alternative with
    ``sets`` applied and named as ``compare`` names it) and its warnings; the replications
    refused (too many) and an overloaded scenario too (without ``allow_overload``)."""
    if not alternatives:
        raise CompareError(None, None, "needs at least one alternative to compare with the base")
    from ..model.adjust import set_warnings
    from .run import check_reps, ensemble_warning

    warnings = []
    if sets:
        alternatives = [with_sets(a, sets) for a in alternatives]
        warnings += list(dict.fromkeys(w for a in alternatives for w in set_warnings(a.nominal, list(sets))))
    scenarios = [s if name == s.name else s.renamed(name) for s, name in
                 zip([base, *alternatives], distinct_names([base.name, *(a.name for a in alternatives)], bool(sets)))]
    check_reps(scenarios, reps)  # before anything that grows with reps
    for s in scenarios:
        warnings += capacity.check(s, allow_overload=allow_overload)
    warnings += list(dict.fromkeys(w for s in scenarios if (w := ensemble_warning(s, reps))))
    return scenarios, warnings


__all__ = ["COMPARE_COLUMNS", "CompareError", "Comparison", "compare", "paired", "prepare", "SUMMARY_COLUMNS"]
