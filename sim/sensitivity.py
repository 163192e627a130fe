"""Sensitivity indices of a sweep's outputs, with SALib: which inputs matter, with intervals.

- Sobol (variance-based): on Saltelli's design (``--design sobol``: N x (D + 2) points, no
  second-order terms), the first-order index S1 of an input (the share of the output's
  variance it explains alone) and the total index ST (alone and with the others), each with a
  bootstrap confidence interval (SALib.analyze.sobol).
- Morris (elementary effects, for screening many inputs cheaply): on Morris trajectories
  (``--design morris``: N x (D + 1) points, 4 levels), mu* (the mean absolute effect of moving
  an input, in the output's unit per the input's whole range) with its bootstrap interval,
  mu and sigma (SALib.analyze.morris).

Both read the design in the unit cube it was drawn in (sim.sweep.Design.unit), whatever each
input's values, so an index says how much an input's range of values matters. The output at a
point is its mean over the point's replications, which share their seeds with every other
point (common random numbers): an input that provably does nothing gives the same output at
every point it alone changes, and indices of exactly 0. ``ishigami`` checks the path against
a function whose indices are known.
"""

from __future__ import annotations

import math
import warnings as _warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd

SENSITIVITY_COLUMNS = ["method", "gate", "direction", "metric", "param", "index", "estimate", "conf", "ci_low",
                       "ci_high", "rank"]
CONF_LEVEL = 0.95
NUM_RESAMPLES = 1000


def _seed(seed: int) -> int:
    """SALib's Sobol analysis draws its bootstrap from the global generator when the seed is 0."""
    return int(seed) % (2**31 - 1) + 1


def sobol_indices(design, y: np.ndarray, seed: int = 0, conf_level: float = CONF_LEVEL,
                  num_resamples: int = NUM_RESAMPLES) -> pd.DataFrame:
    """S1 and ST of each parameter, with the half-widths of their intervals (S1_conf, ST_conf),
    from the outputs ``y`` at the points of a Sobol design."""
    from SALib.analyze import sobol

    from .sweep import unit_problem

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

    from .sweep import MORRIS_LEVELS, unit_problem

    y = np.asarray(y, dtype=float)
    with np.errstate(all="ignore"), _warnings.catch_warnings():
        _warnings.simplefilter("ignore", RuntimeWarning)
        res = morris.analyze(unit_problem(design.params), design.unit, y, num_resamples=num_resamples,
                             conf_level=conf_level, num_levels=MORRIS_LEVELS, seed=_seed(seed))
    return pd.DataFrame({"param": design.names, "mu_star": np.asarray(res["mu_star"], float),
                         "mu_star_conf": np.asarray(res["mu_star_conf"], float), "mu": np.asarray(res["mu"], float),
                         "sigma": np.asarray(res["sigma"], float)})


def analyse(design, outputs: Mapping, seed: int = 0, warn=None) -> pd.DataFrame:
    """The tidy sensitivity table (sensitivity.csv) of each output (sim.sweep.Output -> its mean
    at every point): per parameter, Sobol S1 and ST or Morris mu*, mu and sigma, each with its
    interval, and the parameter's rank for the output (1: the largest ST, or mu*). An output
    missing at some point, or the same at every point, has no indices (a warning says so)."""
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
            t = sobol_indices(design, y, seed)
            rows = [(p, "S1", s1, c1) for p, s1, c1 in zip(t.param, t.S1, t.S1_conf)]
            rows += [(p, "ST", st, ct) for p, st, ct in zip(t.param, t.ST, t.ST_conf)]
            rank_by = dict(zip(t.param, t.ST))
        else:
            t = morris_indices(design, y, seed)
            rows = [(p, "mu_star", m, c) for p, m, c in zip(t.param, t.mu_star, t.mu_star_conf)]
            rows += [(p, "mu", m, math.nan) for p, m in zip(t.param, t.mu)]
            rows += [(p, "sigma", s, math.nan) for p, s in zip(t.param, t.sigma)]
            rank_by = dict(zip(t.param, t.mu_star))
        order = sorted(rank_by, key=lambda p: (-np.nan_to_num(rank_by[p], nan=-np.inf), design.names.index(p)))
        rank = {p: i + 1 for i, p in enumerate(order)}
        f = pd.DataFrame(rows, columns=["param", "index", "estimate", "conf"])
        f.insert(0, "metric", o.metric)
        f.insert(0, "direction", "all")
        f.insert(0, "gate", o.gate)
        f.insert(0, "method", design.kind)
        f["ci_low"] = f["estimate"] - f["conf"]
        f["ci_high"] = f["estimate"] + f["conf"]
        f["rank"] = f["param"].map(rank).astype(np.int64)
        frames.append(f[SENSITIVITY_COLUMNS])
    if not frames:
        return pd.DataFrame(columns=SENSITIVITY_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def ranking(sens: pd.DataFrame, gate: str, metric: str) -> pd.DataFrame:
    """One output's parameters, most influential first: rank, param and the indices (S1, ST or
    mu*, with intervals) side by side."""
    t = sens[(sens.gate == gate) & (sens.metric == metric)]
    if t.empty:
        return t
    wide = t.pivot_table(index=["rank", "param"], columns="index", values=["estimate", "conf"], aggfunc="first")
    wide.columns = [f"{idx}{'' if stat == 'estimate' else '_conf'}" for stat, idx in wide.columns]
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
