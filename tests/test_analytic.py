"""The engines against closed-form queueing results (M/M/1, M/M/c, M/D/1, M/G/1, a Jackson tandem).

The fast engine meets every formula; the SimPy engine meets M/M/1 on its own, and it equals the
fast engine vehicle by vehicle (test_engines_agree), so the other formulas hold for it too
without running it again. Each test runs R independent replications of a long horizon with a warm-up, takes the
replications' mean waits as R i.i.d. estimates, and requires the analytic value to lie inside
their 99 % t-interval: the tolerance comes from the simulation's own spread, not a hand-set margin.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from sim import from_dict
from sim.experiments.run import run_replication

from .helpers import metric, single_queue

REPS = 20


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    """Mean wait in queue of M/M/c (Erlang C)."""
    a = lam / mu
    rho = a / c
    tail = a**c / math.factorial(c) / (1 - rho)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(c)) + tail)
    return p_wait / (c * mu - lam)


def pk_wait(lam: float, mean_s: float, var_s: float) -> float:
    """Pollaczek-Khinchine mean wait in queue of M/G/1."""
    rho = lam * mean_s
    return lam * (var_s + mean_s**2) / (2 * (1 - rho))


def _waits(raw: dict, seed: int, engine: str = "fast") -> np.ndarray:
    scen = from_dict(raw)
    return np.array([
        metric(run_replication(scen, seed, i, engine), "g", "exit", "wait_mean_h") for i in range(REPS)
    ])


def _assert_inside_ci(waits: np.ndarray, expected: float, level: float = 0.99) -> None:
    m = waits.mean()
    half = stats.t.ppf(0.5 + level / 2, len(waits) - 1) * waits.std(ddof=1) / math.sqrt(len(waits))
    assert abs(m - expected) <= half, f"simulated {m:.3f} +- {half:.3f} h, analytic {expected:.3f} h"
    # the interval must be informative, or the check above could not fail
    assert half < 0.1 * expected


@pytest.mark.parametrize("engine", ["des", "fast"])
def test_mm1_wait_matches_formula(engine):
    lam, mu = 0.8, 1.0  # per hour: load 0.8
    raw = single_queue(lam, 1, {"dist": "exponential", "mean": 60.0}, days=600, warmup_days=20)
    _assert_inside_ci(_waits(raw, seed=11, engine=engine), erlang_c_wait(lam, mu, 1))


def test_mmc_wait_matches_erlang_c():
    lam, mu, c = 2.55, 1.0, 3  # load 0.85
    raw = single_queue(lam, c, {"dist": "exponential", "mean": 60.0}, days=500, warmup_days=20)
    _assert_inside_ci(_waits(raw, seed=12), erlang_c_wait(lam, mu, c))


def test_md1_wait_matches_pollaczek_khinchine():
    lam, d = 0.8, 1.0  # per hour, hours: load 0.8
    raw = single_queue(lam, 1, {"dist": "deterministic", "value": 60.0}, days=500, warmup_days=20)
    _assert_inside_ci(_waits(raw, seed=13), pk_wait(lam, d, 0.0))


@pytest.mark.parametrize("service", [
    {"dist": "gamma", "mean": 48.0, "cv": 1.5},
    {"dist": "lognormal", "mean": 48.0, "cv": 0.5},
])
def test_mg1_wait_matches_pollaczek_khinchine(service):
    lam = 1.0  # per hour; mean service 0.8 h: load 0.8
    mean_h, var_h = 0.8, (service["cv"] * 0.8) ** 2
    raw = single_queue(lam, 1, service, days=500, warmup_days=20)
    _assert_inside_ci(_waits(raw, seed=14), pk_wait(lam, mean_h, var_h))


def test_a_wrong_formula_is_rejected():
    """The check has power: M/M/1 simulated waits do not match the M/D/1 value."""
    lam = 0.8
    raw = single_queue(lam, 1, {"dist": "exponential", "mean": 60.0}, days=600, warmup_days=20)
    with pytest.raises(AssertionError):
        _assert_inside_ci(_waits(raw, seed=11), pk_wait(lam, 1.0, 0.0))


def test_tandem_of_mmc_stages_matches_jackson():
    """Two M/M/c stages in series: by Jackson's theorem the waits add up."""
    lam = 1.6  # per hour
    raw = single_queue(lam, 2, {"dist": "exponential", "mean": 60.0}, days=500, warmup_days=20)
    raw["gates"]["g"]["exit"]["stages"].append(
        {"name": "second", "lanes": 3, "service_min": {"dist": "exponential", "mean": 90.0}}
    )
    expected = erlang_c_wait(lam, 1.0, 2) + erlang_c_wait(lam, 1 / 1.5, 3)
    _assert_inside_ci(_waits(raw, seed=15), expected)
