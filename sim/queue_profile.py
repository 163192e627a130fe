"""The number of vehicles waiting over time, from sorted +1/-1 event series, by compiled sweeps.

Each flow's events are sorted once; the series of a group of flows (a gate's two directions,
all gates) is a linear merge of its members' sorted series. A sweep applies simultaneous
events together and integrates the level exactly into hour-of-day bins.
"""

from __future__ import annotations

import numba as nb
import numpy as np


def sort_events(t: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(t, kind="stable")
    return t[order], d[order]


@nb.njit(cache=True)
def merge_events(t1, d1, t2, d2):
    """Merge two time-sorted event series into one."""
    n1, n2 = t1.size, t2.size
    t = np.empty(n1 + n2)
    d = np.empty(n1 + n2)
    i = j = k = 0
    while i < n1 and j < n2:
        if t1[i] <= t2[j]:
            t[k] = t1[i]
            d[k] = d1[i]
            i += 1
        else:
            t[k] = t2[j]
            d[k] = d2[j]
            j += 1
        k += 1
    while i < n1:
        t[k] = t1[i]
        d[k] = d1[i]
        i += 1
        k += 1
    while j < n2:
        t[k] = t2[j]
        d[k] = d2[j]
        j += 1
        k += 1
    return t, d


@nb.njit(cache=True)
def _integrate(level, a, b, warmup_h, hour_area, hour_len):
    """Add level x time over [a, b), from the warm-up on, to the hour-of-day bins."""
    if a < warmup_h:
        a = warmup_h
    while a < b:
        h_end = np.floor(a) + 1.0
        seg_end = b if b < h_end else h_end
        h = int(np.floor(a)) % 24
        hour_area[h] += level * (seg_end - a)
        hour_len[h] += seg_end - a
        a = seg_end


@nb.njit(cache=True)
def queue_profile(t, d, warmup_h, horizon_h):
    """(highest level, time-average level in each hour of day after the warm-up) of a sorted series."""
    hour_area = np.zeros(24)
    hour_len = np.zeros(24)
    level = 0.0
    peak = 0.0
    prev = 0.0
    i = 0
    n = t.size
    while i < n:
        now = t[i]
        _integrate(level, prev, min(now, horizon_h), warmup_h, hour_area, hour_len)
        while i < n and t[i] == now:
            level += d[i]
            i += 1
        if level > peak:
            peak = level
        prev = now
    _integrate(level, prev, horizon_h, warmup_h, hour_area, hour_len)
    mean = np.zeros(24)
    for h in range(24):
        if hour_len[h] > 0:
            mean[h] = hour_area[h] / hour_len[h]
    return peak, mean
