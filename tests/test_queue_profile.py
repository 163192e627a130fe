"""The compiled queue sweeps against plain NumPy references."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.queue_profile import group_peaks, queue_profile, sort_events


def reference_levels(t: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Level after all events of each distinct time."""
    order = np.argsort(t, kind="stable")
    t, d = t[order], d[order]
    first = np.flatnonzero(np.r_[True, t[1:] != t[:-1]])
    return t[first], np.cumsum(np.add.reduceat(d, first))


@st.composite
def event_series(draw):
    n = draw(st.integers(1, 60))
    # coarse times make simultaneous events common
    t = np.array(draw(st.lists(st.integers(0, 200), min_size=n, max_size=n)), dtype=float) / 4
    d = np.array(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)))
    return sort_events(t, d)


@settings(max_examples=200, deadline=None)
@given(flows=st.lists(event_series(), min_size=1, max_size=5), data=st.data())
def test_group_peaks_match_a_sort_of_all_events(flows, data):
    n_groups = 3
    membership = np.array([
        [g if data.draw(st.booleans()) else -1 for g in range(n_groups)] for _ in flows
    ], dtype=np.int64)
    offsets = np.cumsum([0] + [f[0].size for f in flows])
    peaks = group_peaks(np.concatenate([f[0] for f in flows]), np.concatenate([f[1] for f in flows]),
                        offsets, membership, n_groups)
    for g in range(n_groups):
        members = [f for f, row in zip(flows, membership) if g in row]
        if not members:
            assert peaks[g] == 0
            continue
        _, levels = reference_levels(np.concatenate([m[0] for m in members]), np.concatenate([m[1] for m in members]))
        assert peaks[g] == max(0.0, levels.max())


@settings(max_examples=100, deadline=None)
@given(series=event_series(), warmup=st.sampled_from([0.0, 7.25, 20.0]))
def test_queue_profile_is_the_exact_time_average(series, warmup):
    t, d = series
    horizon = 72.0
    peak, mean = queue_profile(t, d, warmup, horizon)
    times, levels = reference_levels(t, d)
    assert peak == max(0.0, levels.max())
    # brute force on a fine grid whose points never fall on an event (events are on quarter hours)
    grid = np.arange(warmup, horizon, 1 / 64) + 1 / 128
    level = np.concatenate([[0.0], levels])[np.searchsorted(times, grid, side="right")]
    expected = np.array([level[(grid % 24).astype(int) == h].mean() for h in range(24)])
    np.testing.assert_allclose(mean, expected, atol=1e-9)
