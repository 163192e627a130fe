"""The mean queue, the waiting truck-hours and the figures by calendar month, against brute force
over the per-vehicle records and against the M/M/1 queue."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim import from_dict, load, run
from sim.cli import main
from sim.statistics import metrics
from sim.experiments.run import run_replication

from .helpers import metric, run_one, single_queue
from .test_invariants import brute_queue_area

SMALL = "tests/data/small_2022.toml"


def _across_months(warmup_days: float) -> dict:
    """One gate over parts of three months (2022-01-20 to 2022-03-10): an exit with a daily limit
    after its customs, trucks that give up, a closure of whole days, and an entry."""
    return {
        "name": "months",
        "horizon": {"start": "2022-01-20", "end": "2022-03-10", "warmup_days": warmup_days},
        "classes": {"truck": {"priority": 1, "patience_days": 2.0, "patience_directions": ["exit"]},
                    "green": {"priority": 0}},
        "gates": {"g": {
            "name": "g", "classes": ["truck", "green"], "hours": {"default": ["07:00-19:00"]},
            "closures": [{"start": "2022-02-10", "end": "2022-02-13", "directions": ["exit"]}],
            "exit": {"demand": {"truck": 40.0, "green": 8.0}, "acceptance_limit": 44,
                     "initial_backlog": {"truck": 30},
                     "stages": [{"name": "customs", "lanes": 2,
                                 "service_min": {"dist": "lognormal", "mean": 20.0, "cv": 0.6}}]},
            "entry": {"demand": {"truck": 30.0},
                      "stages": [{"name": "customs", "lanes": 1,
                                  "service_min": {"dist": "exponential", "mean": 18.0}}]},
        }},
    }


MONTH_STARTS_H = {"2022-01": 0.0, "2022-02": 12 * 24.0, "2022-03": 40 * 24.0}  # from 2022-01-20
HORIZON_H = 50 * 24.0


@pytest.mark.parametrize("warmup_days", [0.0, 5.3, 15.0])
def test_monthly_figures_match_brute_force_over_the_vehicles(warmup_days):
    """Per month: crossings (departures that day), the mean wait and time in system of the steady
    vehicles that crossed in it, the mean number waiting over its hours after the warm-up and the
    vehicle-hours waiting then (NaN for a month wholly in the warm-up); and the totals."""
    rep, records, result = run_one(from_dict(_across_months(warmup_days)), seed=4)
    warm, H = rep.warmup_h, rep.horizon_h
    assert (warm, H) == (warmup_days * 24, HORIZON_H)
    months = list(MONTH_STARTS_H)
    bounds = list(MONTH_STARTS_H.values()) + [HORIZON_H]
    groups = [(("g", r.inputs.direction), [r]) for r in records] + [(("g", "all"), records), (("all", "all"), records)]
    assert set(result.monthly_groups) >= {k for k, _ in groups}
    for key, recs in groups:
        got = result.monthly[result.monthly_groups.index(key)]
        assert got.shape == (len(metrics.MONTHLY_METRICS), len(months))
        total_area = 0.0
        for j, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            dep = np.concatenate([r.depart for r in recs])
            arr = np.concatenate([r.inputs.arrival for r in recs])
            served = np.concatenate([np.sum(r.end - r.start, axis=1) for r in recs])
            day = np.floor(dep / 24.0)
            in_month = (day >= lo / 24) & (day < hi / 24)  # NaN (not crossed) is in no month
            steady = in_month & ((arr >= warm) | (warm <= 0))
            area = brute_queue_area(recs, max(lo, warm), hi, H)
            hours = max(0.0, hi - max(lo, warm))
            total_area += area
            expected = {
                "crossings": in_month.sum(),
                "wait_mean_h": (dep - arr - served)[steady].mean() if steady.any() else np.nan,
                "time_in_system_mean_h": (dep - arr)[steady].mean() if steady.any() else np.nan,
                "queue_mean": area / hours if hours else np.nan,
                "waiting_truck_hours": area if hours else np.nan,
            }
            for i, m in enumerate(metrics.MONTHLY_METRICS):
                np.testing.assert_allclose(got[i, j], expected[m], rtol=1e-9, atol=1e-7,
                                           err_msg=f"{key} {months[j]} {m}")
        g, d = key
        assert np.isclose(metric(result, g, d, "waiting_truck_hours"), total_area, rtol=1e-9)
        assert np.nansum(got[metrics.MONTHLY_METRICS.index("crossings")]) == metric(result, g, d, "crossings")
    if warmup_days >= 12:  # January lies wholly in the warm-up: no steady vehicle, no hours
        assert np.isnan(result.monthly[0][:, 0][1:]).all()


def test_the_mean_queue_is_the_m_m_1_queue():
    """One lane, Poisson arrivals at 0.8 an hour, exponential service of an hour (load 0.8), open
    around the clock: the time-average number waiting (not in service) is rho^2 / (1 - rho) =
    3.2 vehicles; it must lie in the replications' 99 % interval, and the waiting truck-hours
    be that times the hours after the warm-up."""
    scen = from_dict(single_queue(0.8, 1, {"dist": "exponential", "mean": 60.0}, days=300, warmup_days=20))
    reps = 16
    queue = np.array([metric(run_replication(scen, 8, i), "g", "exit", "queue_mean") for i in range(reps)])
    half = stats.t.ppf(0.995, reps - 1) * queue.std(ddof=1) / math.sqrt(reps)
    assert abs(queue.mean() - 3.2) < half, (queue.mean(), half)
    res = run_replication(scen, 8, 0)
    after_warmup_h = 280 * 24
    assert np.isclose(metric(res, "g", "exit", "waiting_truck_hours"),
                      metric(res, "g", "exit", "queue_mean") * after_warmup_h)


def test_monthly_tables_are_the_replications_monthly_figures():
    """monthly.csv's mean and interval are those of per_replication_monthly.csv's values, month by
    month; its months are the horizon's (YYYY-MM)."""
    scen = load(SMALL)
    result = run(scen, reps=4, seed=2, workers=1, progress=False)
    start = scen.nominal.horizon.start
    table = metrics.monthly_table(result.results, start)
    per_rep = metrics.per_replication_monthly(result.results, start)
    assert list(table.columns) == ["gate", "direction", "month", "metric", "mean", "ci_low", "ci_high", "p05", "p95"]
    assert list(per_rep.columns) == ["gate", "direction", "month", "metric", "value", "rep"]
    assert sorted(set(table.month)) == ["2022-01", "2022-02"] and set(table.metric) == set(metrics.MONTHLY_METRICS)
    keys = ["gate", "direction", "month", "metric"]
    by_rep = per_rep.groupby(keys, sort=False)["value"]
    merged = table.set_index(keys).join(by_rep.mean().rename("value_mean")).join(by_rep.std().rename("value_std"))
    np.testing.assert_allclose(merged["mean"], merged["value_mean"], rtol=1e-12)
    half = stats.t.ppf(0.975, 3) * merged["value_std"] / 2
    ok = merged["ci_low"] > 0  # an interval not cut at 0
    np.testing.assert_allclose(merged["ci_low"][ok], (merged["value_mean"] - half)[ok], rtol=1e-9)
    # the months add up to the run: crossings to its crossings, truck-hours to its truck-hours
    s = result.summary.set_index(["gate", "direction", "metric", "stage", "class"])["mean"]
    for m in ("crossings", "waiting_truck_hours"):
        summed = table[table.metric == m].groupby(["gate", "direction"], sort=False)["mean"].sum()
        for (g, d), v in summed.items():
            assert np.isclose(v, s[(g, d, m, "", "")], rtol=1e-9), (g, d, m)


def test_a_run_writes_the_monthly_tables(tmp_path):
    out = tmp_path / "r"
    assert main(["run", SMALL, "--reps", "2", "--out", str(out), "--quiet", "--no-plots", "--no-report"]) == 0
    monthly = pd.read_csv(out / "monthly.csv")
    per_rep = pd.read_csv(out / "per_replication_monthly.csv")
    assert set(monthly.month) == {"2022-01", "2022-02"} and set(per_rep.rep) == {0, 1}
    summary = pd.read_csv(out / "summary.csv", keep_default_na=False)
    assert {"queue_mean", "waiting_truck_hours"} <= set(summary.metric)
    per_replication = pd.read_csv(out / "per_replication.csv", keep_default_na=False)
    assert {"queue_mean", "waiting_truck_hours"} <= set(per_replication.metric)


def test_describe_by_blocks_gives_the_same_numbers(monkeypatch):
    """describe on a large matrix goes a block of columns at a time: the figures are those of the
    whole matrix at once, bit for bit (NaN, bounds per column and a last short block included)."""
    rng = np.random.default_rng(3)
    m = rng.gamma(2.0, 3.0, (37, 101))
    m[rng.random(m.shape) < 0.05] = np.nan
    m[:, 7] = np.nan  # a column with no value
    low, high = np.zeros(101), np.where(np.arange(101) % 2, 1.0, np.inf)
    whole = metrics._describe(m, low=low, high=high)
    monkeypatch.setattr(metrics, "BLOCK_VALUES", 37 * 10 + 5)  # blocks of 10 columns, the last of 1
    blocked = metrics.describe(m, low=low, high=high)
    for k, v in whole.items():
        np.testing.assert_array_equal(blocked[k], v, err_msg=k)


def test_describe_spreads_are_nanquantiles_column_by_column():
    """The 5th and 95th percentiles of the replications are numpy's nanquantile of each column
    (its values, NaN left out), bit for bit, whether a matrix has no NaN, a few or whole columns."""
    rng = np.random.default_rng(5)
    for share in (0.0, 0.1, 0.6):
        m = rng.lognormal(0.0, 2.0, (23, 57))
        m[rng.random(m.shape) < share] = np.nan
        m[:, 3] = np.nan
        got = metrics._describe(m)
        for j in range(m.shape[1]):
            col = m[:, j]
            want = np.nanquantile(col, [0.05, 0.95]) if not np.isnan(col).all() else [np.nan, np.nan]
            np.testing.assert_array_equal([got["p05"][j], got["p95"][j]], want, err_msg=f"{share} {j}")


def test_the_daily_table_never_holds_every_day_of_every_replication_at_once():
    """The daily table's statistics go a group at a time: what they allocate at the peak is a
    fraction of the matrix of every group's days for every replication (which, with its
    temporaries, made a 1,000-replication run of the calibrated baseline take 0.9 GiB)."""
    import tracemalloc

    scen = load(SMALL)
    one = run(scen, reps=1, seed=2, workers=1, progress=False).results[0]
    results = [one] * 400
    start = scen.nominal.horizon.start
    expected = metrics.daily_table(results[:3], start)
    whole_matrix = 8 * len(results) * sum(a.size for a in one.daily.values()) * len(metrics.daily_metric_names([one]))
    tracemalloc.start()
    try:
        table = metrics.daily_table(results, start)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * whole_matrix, (peak, whole_matrix)
    pd.testing.assert_frame_equal(table[["date", "gate", "direction", "metric", "mean"]],
                                  expected[["date", "gate", "direction", "metric", "mean"]])
