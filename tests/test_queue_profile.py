"""The compiled queue statistics and histogram quantiles against plain NumPy references."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.flowstats import hist_edges, hist_quantile, histogram
from sim.queue_profile import queue_stats

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
    membership = np.array([[data.draw(st.booleans()) for _ in flows] for _ in range(n_groups)])
    offsets = np.cumsum([0] + [f[0].size for f in flows])
    peaks, hour_mean, day_mean, day_end = queue_stats(
        np.concatenate([f[0] for f in flows]), np.concatenate([f[1] for f in flows]), offsets, membership,
        HORIZON, warmup)
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
    # the time average per hour of day, brute force on a grid that never hits an event
    grid = np.arange(warmup, HORIZON, 1 / 64) + 1 / 128
    for f, flow in enumerate(flows):
        t, d = within(*flow)
        if t.size == 0:
            assert np.all(hour_mean[f] == 0)
            continue
        times, levels = reference_levels(t, d)
        level = np.concatenate([[0.0], levels])[np.searchsorted(times, grid, side="right")]
        expected = np.array([level[(grid % 24).astype(int) == h].mean() for h in range(24)])
        np.testing.assert_allclose(hour_mean[f], expected, atol=1e-9)


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
