"""The compiled queue statistics and histogram quantiles against plain NumPy references."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.statistics.flowstats import hist_edges, hist_quantile, histogram
from sim.statistics.queue_profile import queue_stats

HORIZON = 72.0


def reference_levels(t: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level after all events of each distinct time."""
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    first = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
    return t[first], np.cumsum(np.add.reduceat(d, first))


@st.composite
def event_series(draw):
    """One flow's events in any order, on quarter hours (simultaneous events are common),
    a few beyond the horizon (ignored) and NaN (did not happen)."""
    n = draw(st.integers(1, 60))
    t = np.array(draw(st.lists(st.integers(0, 300), min_size=n, max_size=n)), dtype=float) / 4
    t[t >= HORIZON + 1] = np.nan
    d = np.array(draw(st.lists(st.sampled_from([-1, 1]), min_size=n, max_size=n)), dtype=np.int8)
    return t, d


def within(t, d):
    ok = t < HORIZON
    return t[ok], d[ok].astype(float)


@settings(max_examples=200, deadline=None)
@given(flows=st.lists(event_series(), min_size=1, max_size=5), data=st.data(),
       warmup=st.sampled_from([0.0, 7.25, 20.0]))
def test_queue_stats_match_a_sort_of_all_events(flows, data, warmup):
    n_groups = 3
    days = int(HORIZON // 24)
    membership = np.array([[data.draw(st.booleans()) for _ in flows] for _ in range(n_groups)])
    open_day = np.array([[data.draw(st.booleans()) for _ in range(days)] for _ in flows])
    month_of_day = np.array(data.draw(st.sampled_from([[0, 0, 0], [0, 0, 1], [0, 1, 1], [0, 1, 2]])))
    offsets = np.cumsum([0] + [f[0].size for f in flows])
    peaks, hour_mean, day_mean, day_end, month_area = queue_stats(
        np.concatenate([f[0] for f in flows]), np.concatenate([f[1] for f in flows]), offsets, membership,
        HORIZON, warmup, open_day, month_of_day)
    for g in range(n_groups):
        members = [within(*f) for f, inside in zip(flows, membership[g]) if inside]
        if not members or not sum(m[0].size for m in members):
            assert peaks[g] == 0
            continue
        times, levels = reference_levels(np.concatenate([m[0] for m in members]),
                                         np.concatenate([m[1] for m in members]))
        assert peaks[g] == max(0.0, levels.max())
        # per calendar day (whatever the warm-up): the time average and the level just before midnight
        grid = np.arange(0, HORIZON, 1 / 64) + 1 / 128
        level = np.concatenate([[0.0], levels])[np.searchsorted(times, grid, side="right")]
        days = int(HORIZON // 24)
        np.testing.assert_allclose(day_mean[g], level.reshape(days, -1).mean(axis=1), atol=1e-9)
        ends = np.concatenate([[0.0], levels])[np.searchsorted(times, 24.0 * np.arange(1, days + 1), side="left")]
        np.testing.assert_allclose(day_end[g], ends, atol=1e-9)
    # per hour of day, the time average after the warm-up over the days the flow opens (NaN for an
    # hour no such day has), and the area after the warm-up per month, brute force on a grid that
    # never hits an event (each point 1/64 h)
    grid = np.arange(warmup, HORIZON, 1 / 64) + 1 / 128
    on_open_day = open_day[:, (grid // 24).astype(int)]
    for f, flow in enumerate(flows):
        t, d = within(*flow)
        times, levels = reference_levels(t, d) if t.size else (np.zeros(0), np.zeros(0))
        level = np.concatenate([[0.0], levels])[np.searchsorted(times, grid, side="right")]
        hour = (grid % 24).astype(int)
        expected = np.array([level[(hour == h) & on_open_day[f]].mean() if ((hour == h) & on_open_day[f]).any()
                             else np.nan for h in range(24)])
        np.testing.assert_allclose(hour_mean[f], expected, atol=1e-9)
        month = month_of_day[(grid // 24).astype(int)]
        area = np.bincount(month, weights=level / 64, minlength=month_area.shape[1])
        np.testing.assert_allclose(month_area[f], area, atol=1e-9)


def _area_until(times: np.ndarray, levels: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The integral from 0 to each x of the level after each event (times sorted)."""
    if times.size == 0:
        return np.zeros(x.size)
    cum = np.concatenate([[0.0], np.cumsum(levels[:-1] * np.diff(times))])
    j = np.searchsorted(times, x, side="right") - 1
    k = np.maximum(j, 0)
    return np.where(j >= 0, cum[k] + levels[k] * (x - times[k]), 0.0)


def test_the_hour_of_day_queue_leaves_out_the_days_a_flow_is_closed():
    """A gate whose exit is closed four whole days (2022-02-10 to 02-13) while vehicles keep
    coming: the exit's mean queue at each hour of day is over the other days only (the standing
    queue of the closure would raise every hour of it), the entry's over every day."""
    from sim import from_dict

    from .helpers import run_one
    from .test_invariants import queue_events
    from .test_monthly import _across_months

    rep, records, result = run_one(from_dict(_across_months(0.0)), seed=4)
    days = int(rep.horizon_h // 24)
    bounds = np.arange(0.0, rep.horizon_h + 1, 1.0)
    for rec in records:
        t, dl = queue_events([rec], rep.horizon_h)
        per_hour = np.diff(_area_until(t, np.cumsum(dl), bounds)).reshape(days, 24)
        closed = {21, 22, 23, 24} if rec.inputs.direction == "exit" else set()
        open_days = [d for d in range(days) if d not in closed]
        got = result.queue_by_hour[("g", rec.inputs.direction)]
        np.testing.assert_allclose(got, per_hour[open_days].mean(axis=0), rtol=1e-9, atol=1e-9)
        if closed:  # the closure's queue is not in it
            assert not np.allclose(got, per_hour.mean(axis=0), rtol=1e-3)


def test_a_queue_that_never_forms_has_zero_peak():
    t = np.array([1.0, 1.0, 2.5, 2.5])
    d = np.array([1, -1, 1, -1], dtype=np.int8)  # joined and started at the same instant
    peaks = queue_stats(t, d, np.array([0, 4]), np.array([[True]]), HORIZON, 0.0)[0]
    assert peaks[0] == 0


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(0, 5000, allow_nan=False), min_size=1, max_size=300),
       p=st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_histogram_quantile_is_within_a_bin_of_numpy(values, p):
    x = np.array(values)
    got = hist_quantile(histogram(x), p)
    exact = float(np.quantile(x, p))
    # one fine bin is 10**(1/500) wide (0.46 %); below 1e-4 h the error is under 1e-4 h
    assert abs(got - exact) <= 0.0047 * exact + 1e-4


def test_histogram_quantile_is_not_the_mean():
    x = np.r_[np.zeros(90), np.full(10, 100.0)]
    assert hist_quantile(histogram(x), 0.5) < 1e-4
    assert abs(hist_quantile(histogram(x), 0.95) - 100.0) < 0.5


def test_histogram_bins_are_the_edges_intervals():
    # the bit-pattern lookup must put every value in [edges[b], edges[b + 1]), edges included
    edges = hist_edges()
    rng = np.random.default_rng(7)
    inner = edges[1:-1]
    x = np.concatenate([
        rng.lognormal(0.0, 4.0, 50_000), inner, np.nextafter(inner, 0.0), np.nextafter(inner, np.inf),
        [0.0, 1e-5, 1e4, 1e5, 1e300],
    ])
    expected = np.bincount(np.searchsorted(edges, x, side="right") - 1, minlength=edges.size - 1)
    np.testing.assert_array_equal(histogram(x), expected)
