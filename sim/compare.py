"""Compare scenarios on common random numbers: paired differences with intervals, per gate.

Every scenario runs replications 0..reps-1 with the same root seed, so replication i of each
sees the same arrivals, service draws and closures wherever the scenarios agree (the streams
are named by gate, direction, class and stage); the difference alt_i - base_i then holds only
what the change did, and its interval over replications is much tighter than the difference
of two independent means.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from . import capacity
from .errors import BordersimError
from .experiment import Point, run_design
from .metrics import (
    SUMMARY_COLUMNS,
    ReplicationResult,
    daily_table,
    describe,
    queue_by_hour_table,
    summarise,
    tis_hist_table,
)
from .scenario import Scenario
from .workers import resolve_workers

KEYS = ["gate", "direction", "metric", "stage", "class"]
COMPARE_COLUMNS = ["scenario", *KEYS, "base_mean", "alt_mean", "diff_mean", "diff_ci_low", "diff_ci_high",
                   "rel_diff", "excludes_zero", "n"]
# what the printed table shows per gate: (metric, heading, digits)
HEADLINE = [("wait_mean_h", "mean wait h", 2), ("time_in_system_p95_h", "p95 time in system h", 1),
            ("crossings", "crossings", 0), ("gave_up", "gave up", 0), ("held_by_limit_share", "held by limit", 3)]
QUIET_WHEN_ZERO = {"gave_up"}  # left out of the printed table where nobody gave up in either scenario


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
        the interval excludes 0."""
        base = _values(self.results[0])
        frames = [paired(base, _values(res), scen.name) for scen, res in zip(self.scenarios[1:], self.results[1:])]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COMPARE_COLUMNS)

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Each scenario's own summary (as `bordersim run` writes it), with a scenario column."""
        return _stacked(self, lambda res, _scen: summarise(res))

    @cached_property
    def daily(self) -> pd.DataFrame:
        return _stacked(self, lambda res, scen: daily_table(res, scen.nominal.horizon.start))

    @cached_property
    def queue_by_hour(self) -> pd.DataFrame:
        return _stacked(self, lambda res, _scen: queue_by_hour_table(res))

    @cached_property
    def time_in_system_hist(self) -> pd.DataFrame:
        return _stacked(self, lambda res, _scen: tis_hist_table(res))


def _stacked(cmp: Comparison, make) -> pd.DataFrame:
    """A table per scenario, stacked, with a scenario column first."""
    frames = []
    for scen, res in zip(cmp.scenarios, cmp.results):
        frame = make(res, scen)
        frame.insert(0, "scenario", scen.name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _values(results: list[ReplicationResult]) -> pd.DataFrame:
    """Replications x metrics (columns: the labels)."""
    labels = results[0].labels
    return pd.DataFrame(np.vstack([r.values for r in results]), columns=pd.MultiIndex.from_tuples(labels, names=KEYS))


def paired(base: pd.DataFrame, alt: pd.DataFrame, name: str) -> pd.DataFrame:
    """The paired differences alt - base of every metric both report (replication by
    replication), and the metrics only one of them has (their other side NaN)."""
    cols = base.columns.union(alt.columns, sort=False)
    b = base.reindex(columns=cols).to_numpy(dtype=float)
    a = alt.reindex(columns=cols).to_numpy(dtype=float)
    diff = describe(a - b)  # NaN where either is: pairs only where both have a value
    out = pd.DataFrame(list(cols), columns=KEYS)
    out.insert(0, "scenario", name)
    out["base_mean"] = describe(b)["mean"]
    out["alt_mean"] = describe(a)["mean"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["diff_mean"] = diff["mean"]
        out["diff_ci_low"] = diff["ci_low"]
        out["diff_ci_high"] = diff["ci_high"]
        out["rel_diff"] = np.where(out["base_mean"] != 0, out["diff_mean"] / out["base_mean"], np.nan)
    out["excludes_zero"] = (out["diff_ci_low"] > 0) | (out["diff_ci_high"] < 0)
    out["n"] = diff["n"]
    return out[COMPARE_COLUMNS]


def compare(base: Scenario, alternatives: list[Scenario], reps: int = 20, seed: int = 20221130,
            engine: str = "fast", workers: int | None = None, allow_overload: bool = False,
            progress: bool | None = None, warn=None, executor=None) -> Comparison:
    """Run the base and each alternative on common random numbers (replication i of each with
    the same seed)."""
    scenarios = [base, *alternatives]
    names = [s.name for s in scenarios]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise CompareError(None, "name", f"two scenarios are both named '{dup}'; give each a name of its own")
    if not alternatives:
        raise CompareError(None, None, "needs at least one alternative to compare with the base")
    from .run import check_reps, ensemble_warning

    check_reps(scenarios, reps)  # before anything that grows with reps
    warnings = []
    for s in scenarios:
        warnings += capacity.check(s, allow_overload=allow_overload)
    warnings += list(dict.fromkeys(w for s in scenarios if (w := ensemble_warning(s, reps))))
    workers, cut = resolve_workers(workers, len(scenarios) * reps)
    if cut:
        warnings.append(cut)
    for w in warnings if warn else ():
        warn(w)
    t0 = time.perf_counter()
    results = run_design([Point(s) for s in scenarios], reps, seed, engine, executor=executor, workers=workers,
                         progress=progress, desc=f"compare {len(scenarios)} scenarios ({engine})")
    return Comparison(scenarios, seed, reps, engine, results, time.perf_counter() - t0, warnings, workers)


def headline_table(cmp: Comparison, alt: str) -> str:
    """Per gate (both directions), for one alternative: base and alternative means and the
    paired difference with its 95 % interval (* where it excludes 0), for the headline
    metrics, one line each: narrow enough for a terminal."""
    lines = [f"{'gate':<16}{'metric':<22}{'base':>10}{'alt':>10}  difference [95 % interval]"]
    for g, head, digits, m in headline_rows(cmp.table, alt):
        mark = " *" if m.excludes_zero else ""
        lines.append(f"{g:<16}{head:<22}{_f(m.base_mean, digits):>10}{_f(m.alt_mean, digits):>10}  "
                     f"{_s(m.diff_mean, digits)} [{_s(m.diff_ci_low, digits)}, {_s(m.diff_ci_high, digits)}]{mark}")
    return "\n".join(lines)


def headline_rows(table: pd.DataFrame, alt: str, metrics=HEADLINE):
    """(gate, heading, digits, row of compare.csv) of one alternative's headline metrics, both
    directions together: per gate first, all gates last."""
    t = table[(table.scenario == alt) & (table.direction == "all") & (table.stage == "") & (table["class"] == "")]
    for g in [g for g in dict.fromkeys(t.gate) if g != "all"] + ["all"]:
        for metric, head, digits in metrics:
            m = t[(t.gate == g) & (t.metric == metric)]
            if m.empty or (metric in QUIET_WHEN_ZERO and m.iloc[0].base_mean == 0 and m.iloc[0].alt_mean == 0):
                continue
            yield g, head, digits, m.iloc[0]


def _f(v: float, digits: int) -> str:
    return "-" if pd.isna(v) else f"{v:,.{digits}f}"


def _s(v: float, digits: int) -> str:
    """A signed difference: with up to three more decimals where it would round to 0 (a
    difference of 0.3 crossings is not "+0", and one of -0.2 not "-0"); "0" when it is exactly 0,
    "~0" when it is smaller than that."""
    if pd.isna(v):
        return "-"
    if v == 0:
        return "0"
    d = digits
    while round(abs(v), d) == 0 and d < digits + 3:
        d += 1
    return "~0" if round(abs(v), d) == 0 else f"{v:+,.{d}f}"


__all__ = ["COMPARE_COLUMNS", "CompareError", "Comparison", "compare", "headline_table", "paired", "SUMMARY_COLUMNS"]
