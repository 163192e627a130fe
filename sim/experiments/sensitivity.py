"""Sensitivity indices of a sweep's outputs: which inputs matter, with intervals, for every design.

- Sobol (variance-based): on Saltelli's design (``--design sobol``: N x (D + 2) points, no
  second-order terms), the first-order index S1 of an input (the share of the output's
  variance it explains alone) and the total index ST (alone and with the others), each with a
  bootstrap confidence interval (SALib.analyze.sobol).
- Morris (elementary effects, for screening many inputs cheaply): on Morris trajectories
  (``--design morris``: N x (D + 1) points, 4 levels), mu* (the mean absolute effect of moving
  an input, in the output's unit per the input's whole range) with its bootstrap interval,
  mu and sigma (SALib.analyze.morris).
- A grid's main effects (``--design grid``): per input, the range (highest minus lowest) of the
  output's mean over the input's levels, each level's mean taken over every combination of the
  other inputs' levels (main_effects), in the output's unit. No interval: see main_effects.
- A Latin hypercube's rank correlations (``--design lhs``): Spearman's rho between each input's
  values and the output over the points, with Fisher's interval; ranked by |rho|
  (rank_correlations).

Sobol and Morris read the design in the unit cube it was drawn in (sim.experiments.sweep.Design.unit),
whatever each input's values, so an index says how much an input's range of values matters;
the grid and the hypercube read the values the model used. The output at a point is its mean
over the point's replications, which share their seeds with every other point (common random
numbers): an input that provably does nothing gives the same output at every point it alone
changes, and Sobol, Morris and grid indices of exactly 0 (a hypercube's rho of such an input is
the chance correlation of its values with the output the other inputs drive: of standard
deviation 1 / sqrt(n - 1) over n points, and among many inputs some are large, which is why
the intervals are corrected for the number of inputs, below, and sim.experiments.sweep warns of a
hypercube with too few points for its inputs).

Intervals, per output: each input's interval is at level 1 - 0.05 / D for the D inputs the
design varies (Bonferroni; interval_level), so that all D hold together with at least 95 %
confidence and an input is called significant (its interval excludes 0) with a 5 % chance at
most of naming any input that does nothing. Each interval lies within its index's range
(INDEX_RANGE): Sobol's and Morris's normal bootstrap intervals (estimate -+ z x the bootstrap's
standard deviation) are cut to it, Fisher's interval of rho is inside (-1, 1) by construction.
An estimate itself is never changed: Saltelli's S1 estimator can fall below 0 and Jansen's ST
estimator above 1 by their noise (the true index cannot), and such an estimate is shown as
estimated, with its interval cut to the range (outside_range says so).
``ishigami`` checks the Sobol path against a function whose indices are known.
"""

from __future__ import annotations

import math
import warnings as _warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

SENSITIVITY_COLUMNS = ["method", "gate", "direction", "metric", "param", "index", "estimate", "conf", "ci_low",
                       "ci_high", "level", "significant", "rank"]
CONF_LEVEL = 0.95  # what every input's interval of one output holds together (interval_level)
NUM_RESAMPLES = 1000
# the values each index can take: its interval is kept inside (cut, for the bootstrap intervals)
INDEX_RANGE = {"S1": (0.0, 1.0), "ST": (0.0, 1.0), "mu_star": (0.0, math.inf), "spearman": (-1.0, 1.0)}
RANKED_INDEX = {"sobol": "ST", "morris": "mu_star", "grid": "main_effect", "lhs": "spearman"}
MORRIS_LEVELS = 4  # the levels of a Morris design's grid: its sampler and its analysis must agree


def unit_problem(params) -> dict:
    """SALib's problem of a design's parameters (each with a ``name``): every one on [0, 1], as
    the designs are drawn (sim.experiments.sweep.make_design) and analysed here; each parameter
    maps the unit interval to its own values (sim.experiments.sweep.Param.from_unit)."""
    return {"num_vars": len(params), "names": [p.name for p in params], "bounds": [[0.0, 1.0]] * len(params)}


def interval_level(tested: int, family: float = CONF_LEVEL) -> float:
    """The level of each input's interval when ``tested`` inputs are tested at once: Bonferroni's
    1 - (1 - family) / D, so that all D intervals hold together with probability ``family`` at
    least. Bonferroni rather than Sidak's 1 - family^(1/D), which needs the intervals to be
    independent (those of one output share its points), and rather than Holm's steps, which
    adjust p-values, not intervals."""
    return 1.0 - (1.0 - family) / max(1, int(tested))


def outside_range(index: str, estimate: float) -> str | None:
    """'below 0' or 'above 1' for an estimate outside its index's range (the estimator's noise:
    the true index cannot be there); None inside it, or for an index without a range."""
    low, high = INDEX_RANGE.get(index, (-math.inf, math.inf))
    if estimate < low:
        return f"below {low:g}"
    if estimate > high:
        return f"above {high:g}"
    return None


def _seed(seed: int) -> int:
    """SALib's Sobol analysis draws its bootstrap from the global generator when the seed is 0."""
    return int(seed) % (2**31 - 1) + 1


def sobol_indices(design, y: np.ndarray, seed: int = 0, conf_level: float = CONF_LEVEL,
                  num_resamples: int = NUM_RESAMPLES) -> pd.DataFrame:
    """S1 and ST of each parameter, with the half-widths of their intervals (S1_conf, ST_conf),
    from the outputs ``y`` at the points of a Sobol design."""
    from SALib.analyze import sobol

    y = np.asarray(y, dtype=float)
    with np.errstate(all="ignore"), _warnings.catch_warnings():
        _warnings.simplefilter("ignore", RuntimeWarning)
        res = sobol.analyze(unit_problem(design.params), y, calc_second_order=False, num_resamples=num_resamples,
                            conf_level=conf_level, seed=_seed(seed))
    return pd.DataFrame({"param": design.names, "S1": res["S1"], "S1_conf": res["S1_conf"], "ST": res["ST"],
                         "ST_conf": res["ST_conf"]})


def morris_indices(design, y: np.ndarray, seed: int = 0, conf_level: float = CONF_LEVEL,
                   num_resamples: int = NUM_RESAMPLES) -> pd.DataFrame:
    """mu*, its interval's half-width, mu and sigma of each parameter, from the outputs ``y`` at
    the points of a Morris design (effects per the unit range of each input)."""
    from SALib.analyze import morris

    y = np.asarray(y, dtype=float)
    with np.errstate(all="ignore"), _warnings.catch_warnings():
        _warnings.simplefilter("ignore", RuntimeWarning)
        res = morris.analyze(unit_problem(design.params), design.unit, y, num_resamples=num_resamples,
                             conf_level=conf_level, num_levels=MORRIS_LEVELS, seed=_seed(seed))
    return pd.DataFrame({"param": design.names, "mu_star": np.asarray(res["mu_star"], float),
                         "mu_star_conf": np.asarray(res["mu_star_conf"], float), "mu": np.asarray(res["mu"], float),
                         "sigma": np.asarray(res["sigma"], float)})


def main_effects(design, y: np.ndarray) -> pd.DataFrame:
    """Each parameter's main effect on the outputs ``y`` at the points of a full grid: the range
    (highest minus lowest) of the output's mean over the parameter's levels, where the mean at
    a level is over every point with that level, so over every combination of the other
    parameters' levels alike (the grid holds each once). In the output's unit; 0 for an input
    whose levels all give the same mean, and for an input of one level. It is the grid's own
    arithmetic, exact for the points' means; an input that acts only together with another (its
    effect reversing with the other's level) can show a small main effect: the response plot
    draws a line per combination of the others.

    No interval: the sweep keeps each point's summary, not its replications, and under common
    random numbers the points' errors are correlated, so the points' own intervals do not add
    up to one for a difference of their means. Written here (a group-by) because no library
    reads a grid of any levels: SALib's analyses each read their own sampler's design (its ff
    analysis a two-level fractional factorial)."""
    y = np.asarray(y, dtype=float)
    rows = []
    for j, name in enumerate(design.names):
        means = pd.Series(y).groupby(np.asarray(design.values[:, j], dtype=float)).mean()
        rows.append((name, float(means.max() - means.min()), len(means)))
    return pd.DataFrame(rows, columns=["param", "main_effect", "levels"])


def rank_correlations(design, y: np.ndarray, conf_level: float = CONF_LEVEL) -> pd.DataFrame:
    """Spearman's rank correlation rho between each parameter's values at the points of a Latin
    hypercube (the values the model used, rounded for integer fields) and the outputs ``y``,
    with its interval: Fisher's z = atanh(rho) is about normal with variance 1.06 / (n - 3)
    (Fieller, Hartley and Pearson, 1957, for Spearman's rho; n > 3 points, else no interval).
    rho is +1 or -1 for an output that only rises or only falls with the input, whatever the
    shape; an effect that rises and then falls over the range shows as a small rho (use
    ``--design sobol`` or ``morris`` for such an input). NaN for a parameter of one value.

    Why rho and not SALib's analyses that take any sample (rbd_fast's first-order index,
    delta): RBD-FAST's bias correction needs more than 2 x 10 harmonics = 20 points and its
    half-sample bootstrap more than 40, and delta estimates densities over classes of at least
    10 points (SALib's examples draw 1,000), while a hypercube of a few dozen points is a
    common first look; rho has an interval from 4 points, and queue outputs mostly move one
    way with lanes, service times, demand and limits. scipy.stats.spearmanr gives rho; its
    interval is written here because scipy gives none for Spearman (pearsonr's interval,
    applied to ranks, uses Pearson's variance 1 / (n - 3), too narrow for rho)."""
    from scipy.stats import norm, spearmanr

    y = np.asarray(y, dtype=float)
    n = len(y)
    half = norm.ppf(0.5 + conf_level / 2.0) * math.sqrt(1.06 / (n - 3)) if n > 3 else math.nan
    rows = []
    for j, name in enumerate(design.names):
        x = np.asarray(design.values[:, j], dtype=float)
        if np.ptp(x) == 0:
            rows.append((name, math.nan, math.nan, math.nan))
            continue
        rho = float(spearmanr(x, y).statistic)
        with np.errstate(divide="ignore"):
            z = np.arctanh(rho)  # +-inf at rho = +-1: the interval is then that one value
        # built on the z scale and mapped back by tanh, the interval stays inside [-1, 1] whatever its level
        rows.append((name, rho, float(np.tanh(z - half)), float(np.tanh(z + half))))
    return pd.DataFrame(rows, columns=["param", "rho", "ci_low", "ci_high"])


def tested_inputs(design) -> int:
    """How many inputs a design tests: those it gives more than one value (at least 1)."""
    values = np.asarray(design.values, dtype=float)
    return max(1, int((np.ptp(values, axis=0) > 0).sum())) if values.size else 1


def analyse(design, outputs: Mapping, seed: int = 0, warn=None) -> pd.DataFrame:
    """The tidy sensitivity table (sensitivity.csv) of each output (sim.experiments.sweep.Output -> its mean
    at every point): per parameter, Sobol S1 and ST, Morris mu*, mu and sigma, a grid's main
    effect or a Latin hypercube's Spearman rho, each with its interval at interval_level (none
    for a grid's main effect, Morris's mu and sigma) inside the index's range, whether that
    interval excludes 0 (``significant``), and the parameter's rank for the output (1: the
    largest ST, mu*, main effect or |rho|). An output missing at some point, or the same at
    every point, has no indices (a warning says so)."""
    level = interval_level(tested_inputs(design))
    frames = []
    for o, y in outputs.items():
        y = np.asarray(y, dtype=float)
        if not np.isfinite(y).all():
            if warn:
                warn(f"sensitivity: {o.label} is missing at {int((~np.isfinite(y)).sum())} points; no indices for it")
            continue
        if np.ptp(y) == 0:
            if warn:
                warn(f"sensitivity: {o.label} is {y[0]:g} at every point; no indices for it")
            continue
        if design.kind == "sobol":
            t = sobol_indices(design, y, seed, conf_level=level)
            rows = _with_intervals([(p, "S1", s1, c1) for p, s1, c1 in zip(t.param, t.S1, t.S1_conf)]
                                   + [(p, "ST", st, ct) for p, st, ct in zip(t.param, t.ST, t.ST_conf)])
            rank_by = dict(zip(t.param, t.ST))
        elif design.kind == "morris":
            t = morris_indices(design, y, seed, conf_level=level)
            rows = _with_intervals([(p, "mu_star", m, c) for p, m, c in zip(t.param, t.mu_star, t.mu_star_conf)]
                                   + [(p, "mu", m, math.nan) for p, m in zip(t.param, t.mu)]
                                   + [(p, "sigma", s, math.nan) for p, s in zip(t.param, t.sigma)])
            rank_by = dict(zip(t.param, t.mu_star))
        elif design.kind == "grid":
            t = main_effects(design, y)
            rows = _with_intervals([(p, "main_effect", m, math.nan) for p, m in zip(t.param, t.main_effect)])
            rank_by = dict(zip(t.param, t.main_effect))
        else:  # lhs; conf is the half-width of Fisher's interval, which is not centred on rho
            t = rank_correlations(design, y, conf_level=level)
            rows = [(p, "spearman", r, (hi - lo) / 2, lo, hi) for p, r, lo, hi in zip(t.param, t.rho, t.ci_low,
                                                                                       t.ci_high)]
            rank_by = dict(zip(t.param, t.rho.abs()))
        order = sorted(rank_by, key=lambda p: (-np.nan_to_num(rank_by[p], nan=-np.inf), design.names.index(p)))
        rank = {p: i + 1 for i, p in enumerate(order)}
        f = pd.DataFrame(rows, columns=["param", "index", "estimate", "conf", "ci_low", "ci_high"])
        has_interval = f["ci_low"].notna() & f["ci_high"].notna()
        f["level"] = np.where(has_interval, level, math.nan)
        excludes_zero = (f["ci_low"] > 0) | (f["ci_high"] < 0)
        f["significant"] = pd.array(np.where(has_interval, excludes_zero, pd.NA), dtype="boolean")
        f.insert(0, "metric", o.metric)
        f.insert(0, "direction", "all")
        f.insert(0, "gate", o.gate)
        f.insert(0, "method", design.kind)
        f["rank"] = f["param"].map(rank).astype(np.int64)
        frames.append(f[SENSITIVITY_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def _with_intervals(rows: list[tuple]) -> list[tuple]:
    """(param, index, estimate, conf) rows with their interval: estimate -+ conf (SALib's normal
    bootstrap interval), cut to the index's range (a mean of absolute effects is at least 0, a
    Sobol index within [0, 1]). The estimate is left as estimated, even outside the range."""
    out = []
    for p, ix, est, conf in rows:
        low, high = INDEX_RANGE.get(ix, (-math.inf, math.inf))
        lo, hi = est - conf, est + conf  # NaN where the index has no interval
        if not math.isnan(conf):
            lo, hi = min(max(lo, low), high), min(max(hi, low), high)
        out.append((p, ix, est, conf, lo, hi))
    return out


def ranking(sens: pd.DataFrame, gate: str, metric: str) -> pd.DataFrame:
    """One output's parameters, most influential first: rank, param and the indices side by
    side, each as INDEX (the estimate), INDEX_conf, INDEX_low and INDEX_high (its interval) and
    INDEX_significant (whether the interval excludes 0); columns with no value at all, as a
    grid's intervals, are left out; a parameter with no value, as a hypercube's rho of a
    parameter of one value, is kept, last."""
    t = sens[(sens.gate == gate) & (sens.metric == metric)]
    if t.empty:
        return t
    suffix = {"estimate": "", "conf": "_conf", "ci_low": "_low", "ci_high": "_high"}
    keys = ["rank", "param"]
    wide = t.pivot(index=keys, columns="index", values=list(suffix)).dropna(axis=1, how="all")
    wide.columns = [f"{idx}{suffix[stat]}" for stat, idx in wide.columns]
    flags = t[t["significant"].notna()].pivot(index=keys, columns="index", values="significant")
    wide = wide.join(flags.rename(columns=lambda idx: f"{idx}_significant").astype(object))
    return wide.reset_index().sort_values("rank")


# ------------------------------------------------------------------ a check with known answers


def ishigami(x: np.ndarray, a: float = 7.0, b: float = 0.1) -> np.ndarray:
    """The Ishigami function of x (points x 3, each in [-pi, pi]): a standard test of
    sensitivity methods, with known indices (ishigami_indices)."""
    x = np.asarray(x, dtype=float)
    return np.sin(x[:, 0]) + a * np.sin(x[:, 1]) ** 2 + b * x[:, 2] ** 4 * np.sin(x[:, 0])


def ishigami_indices(a: float = 7.0, b: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """The Ishigami function's exact first-order and total indices (S1, ST) for x1, x2, x3."""
    pi = math.pi
    v1 = 0.5 * (1 + b * pi**4 / 5) ** 2
    v2 = a**2 / 8
    v13 = b**2 * pi**8 * (1 / 18 - 1 / 50)
    v = v1 + v2 + v13
    return np.array([v1, v2, 0.0]) / v, np.array([v1 + v13, v2, v13]) / v
