"""The number of vehicles waiting over time, from sorted +1/-1 event series, by compiled sweeps.

Each flow's events are sorted once. A sweep over a flow applies simultaneous events together
and integrates the level exactly into hour-of-day bins; the totals of groups of flows (a
gate's two directions, all gates) come from one k-way merge over all flows.
"""

from __future__ import annotations

import numba as nb
import numpy as np


def sort_events(t: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(t, kind="stable")
    return t[order], d[order]


@nb.njit(cache=True)
def group_peaks(t, d, offsets, flow_groups, n_groups):
    """The highest total level of each group of flows, in one pass over all flows' events.

    t, d: the flows' time-sorted event series, concatenated (flow f is offsets[f]:offsets[f+1]);
    flow_groups[f]: the groups flow f belongs to (-1: none). A k-way merge by a binary heap of
    flow heads visits the events in time order, a flow's run of events before the next head of
    another flow at a time; levels are checked once all the events of an instant are applied.
    """
    n_flows = offsets.size - 1
    ptr = offsets[:-1].copy()
    heap_t = np.empty(n_flows)
    heap_f = np.empty(n_flows, np.int64)
    size = 0
    for f in range(n_flows):
        if ptr[f] < offsets[f + 1]:
            # sift up
            j = size
            heap_t[j] = t[ptr[f]]
            heap_f[j] = f
            size += 1
            while j > 0:
                parent = (j - 1) // 2
                if heap_t[parent] <= heap_t[j]:
                    break
                heap_t[parent], heap_t[j] = heap_t[j], heap_t[parent]
                heap_f[parent], heap_f[j] = heap_f[j], heap_f[parent]
                j = parent
    level = np.zeros(n_groups)
    peak = np.zeros(n_groups)
    while size > 0:
        f = heap_f[0]
        # the flow's events up to the next head of any other flow form a run: no heap work
        other = np.inf
        if size > 1:
            other = heap_t[1]
        if size > 2 and heap_t[2] < other:
            other = heap_t[2]
        i = ptr[f]
        stop = offsets[f + 1]
        while i < stop and t[i] <= other:
            now = t[i]
            while i < stop and t[i] == now:
                for g in flow_groups[f]:
                    if g >= 0:
                        level[g] += d[i]
                i += 1
            if now < other:  # no other flow has events at this instant: every level is final
                for g in range(n_groups):
                    if level[g] > peak[g]:
                        peak[g] = level[g]
            else:  # another flow shares this instant: its run completes the instant
                break
        ptr[f] = i
        if i < stop:
            heap_t[0] = t[i]
        else:
            size -= 1
            heap_t[0] = heap_t[size]
            heap_f[0] = heap_f[size]
        # sift down
        j = 0
        while True:
            left = 2 * j + 1
            if left >= size:
                break
            c = left
            if left + 1 < size and heap_t[left + 1] < heap_t[left]:
                c = left + 1
            if heap_t[j] <= heap_t[c]:
                break
            heap_t[j], heap_t[c] = heap_t[c], heap_t[j]
            heap_f[j], heap_f[c] = heap_f[c], heap_f[j]
            j = c
    return peak


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
