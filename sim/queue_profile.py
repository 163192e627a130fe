"""The number of vehicles waiting over time: peaks and hour-of-day averages, exact, without a sort.

A flow's queue changes by +1 when a vehicle reaches a stage (arrives, or ends the previous
stage) and by -1 when it starts one. The events come in any order. One pass puts them into
one-hour buckets (count of +1, net change, and the exact area each adds to the rest of its
hour), which gives the time-average per hour of day at once. For the highest level (after all
events of an instant) of a flow or a group of flows, the level at the start of each bucket
plus the bucket's +1 events bounds every level inside it; only the buckets whose bound beats
the best level already reached at a bucket's end are swept event by event, after a small sort.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def flow_events(arrival, start, end):
    """The queue events of one flow (n vehicles, K stages): times and +1/-1 signs, unsorted.

    Arrivals and ends of all but the last stage join a queue; starts leave one. Events that
    did not happen (NaN) are left out.
    """
    n, k_stages = start.shape
    times = np.empty(n * (2 * k_stages))
    signs = np.empty(n * (2 * k_stages), np.int8)
    m = 0
    for i in range(n):
        times[m] = arrival[i]
        signs[m] = 1
        m += 1
        for k in range(k_stages):
            if not np.isnan(start[i, k]):
                times[m] = start[i, k]
                signs[m] = -1
                m += 1
            if k < k_stages - 1 and not np.isnan(end[i, k]):
                times[m] = end[i, k]
                signs[m] = 1
                m += 1
    return times[:m], signs[:m]


@nb.njit(cache=True)
def _sweep_bucket(t, s, level, peak):
    """Highest level after each instant of a bucket's events (any order), from ``level``."""
    order = np.argsort(t)
    i = 0
    n = t.size
    while i < n:
        now = t[order[i]]
        while i < n and t[order[i]] == now:
            level += s[order[i]]
            i += 1
        if level > peak:
            peak = level
    return peak


@nb.njit(cache=True)
def queue_stats(times, signs, offsets, membership, horizon_h, warmup_h):
    """Peaks of groups of flows and each flow's time-average queue per hour of day.

    times, signs: the flows' events concatenated (flow f is offsets[f]:offsets[f+1]); events
    at or after horizon_h (a whole number of hours) are ignored. membership[g, f]: flow f
    belongs to group g. Returns (peak per group, (flows, 24) mean level in each hour of day
    over [warmup_h, horizon_h)).
    """
    n_flows = offsets.size - 1
    n_groups = membership.shape[0]
    nb_ = int(horizon_h)
    plus = np.zeros((n_flows, nb_))
    net = np.zeros((n_flows, nb_))
    area = np.zeros((n_flows, nb_))  # the area each bucket's events add within the bucket
    for f in range(n_flows):
        for e in range(offsets[f], offsets[f + 1]):
            t = times[e]
            if not t < horizon_h:  # NaN or beyond the horizon
                continue
            b = int(t)
            s = signs[e]
            net[f, b] += s
            if s > 0:
                plus[f, b] += 1
            area[f, b] += s * (b + 1 - t)

    # hour-of-day means, from the warm-up on; its partial bucket is summed exactly
    hour_mean = np.zeros((n_flows, 24))
    hour_len = np.zeros(24)
    first = int(np.ceil(warmup_h))
    for b in range(first, nb_):
        hour_len[b % 24] += 1.0
    wb = int(np.floor(warmup_h))
    part = first - warmup_h  # the part of bucket wb after the warm-up (0 if whole)
    if part > 0 and wb < nb_:
        hour_len[wb % 24] += part
    for f in range(n_flows):
        level = 0.0
        for b in range(nb_):
            if b >= first:
                hour_mean[f, b % 24] += level + area[f, b]
            level += net[f, b]
        if part > 0 and wb < nb_:
            before = 0.0  # level at the start of bucket wb
            for b in range(wb):
                before += net[f, b]
            a = 0.0
            for e in range(offsets[f], offsets[f + 1]):
                t = times[e]
                if t >= wb and t < wb + 1:
                    if t <= warmup_h:
                        before += signs[e]
                    else:
                        a += signs[e] * (wb + 1 - t)
            hour_mean[f, wb % 24] += before * part + a
        for h in range(24):
            if hour_len[h] > 0:
                hour_mean[f, h] /= hour_len[h]

    # peaks: bucket bounds, then a sweep of the buckets that may hold a higher level
    peaks = np.zeros(n_groups)
    cand = np.zeros((n_groups, nb_), np.bool_)
    start_level = np.zeros((n_groups, nb_))
    any_cand = np.zeros(nb_, np.bool_)
    for g in range(n_groups):
        gnet = np.zeros(nb_)
        gplus = np.zeros(nb_)
        for f in range(n_flows):
            if membership[g, f]:
                gnet += net[f]
                gplus += plus[f]
        level = 0.0
        best = 0.0
        for b in range(nb_):
            start_level[g, b] = level
            level += gnet[b]
            if level > best:
                best = level
        peaks[g] = best
        for b in range(nb_):
            if start_level[g, b] + gplus[b] > best:
                cand[g, b] = True
                any_cand[b] = True
    # the events of candidate buckets, per flow, grouped by bucket (a counting sort)
    slot = np.full(nb_, -1, np.int64)
    n_slots = 0
    for b in range(nb_):
        if any_cand[b]:
            slot[b] = n_slots
            n_slots += 1
    if n_slots == 0:
        return peaks, hour_mean
    counts = np.zeros((n_flows, n_slots + 1), np.int64)
    for f in range(n_flows):
        for e in range(offsets[f], offsets[f + 1]):
            t = times[e]
            if t < horizon_h and slot[int(t)] >= 0:
                counts[f, slot[int(t)] + 1] += 1
    base = np.zeros((n_flows, n_slots + 1), np.int64)  # slot j of flow f: base[f, j]:base[f, j + 1]
    total = 0
    for f in range(n_flows):
        base[f, 0] = total
        for j in range(1, n_slots + 1):
            base[f, j] = base[f, j - 1] + counts[f, j]
        total = base[f, n_slots]
    fill = base[:, :-1].copy()
    ct = np.empty(total)
    cs = np.empty(total)
    for f in range(n_flows):
        for e in range(offsets[f], offsets[f + 1]):
            t = times[e]
            if t < horizon_h and slot[int(t)] >= 0:
                j = slot[int(t)]
                ct[fill[f, j]] = t
                cs[fill[f, j]] = signs[e]
                fill[f, j] += 1
    for g in range(n_groups):
        for b in range(nb_):
            if not cand[g, b]:
                continue
            j = slot[b]
            m = 0
            for f in range(n_flows):
                if membership[g, f]:
                    m += base[f, j + 1] - base[f, j]
            t = np.empty(m)
            s = np.empty(m)
            m = 0
            for f in range(n_flows):
                if membership[g, f]:
                    for e in range(base[f, j], base[f, j + 1]):
                        t[m] = ct[e]
                        s[m] = cs[e]
                        m += 1
            peaks[g] = _sweep_bucket(t, s, start_level[g, b], peaks[g])
    return peaks, hour_mean
