"""The number of vehicles waiting over time: peaks, hour-of-day and monthly averages, exact, without a sort.

A flow's queue changes by +1 when a vehicle reaches a stage (arrives, or ends the previous
stage) and by -1 when it starts one. The events come in any order. One pass puts them into
one-hour buckets (count of +1, net change, and the exact area each adds to the rest of its
hour), which gives the time-average per hour of day, per calendar day and the area (vehicle-
hours waiting) per calendar month at once.

The hour-of-day mean is over the days the flow opens at all: a day on which it is closed
throughout (a suspension, Tết, a flood or storm that lasts the day, a day its hours leave
shut) is left out, so a long closure's standing queue does not fill the hours of a normal
day; the nights of the days it opens count (vehicles wait overnight for the morning). The
calendar-day figures count every hour, the monthly areas every hour after the warm-up, closed
or open.

For the highest level (after all
events of an instant) of a flow or a group of flows, the level at the start of each bucket
plus the bucket's +1 events bounds every level inside it; only the buckets whose bound beats
the best level already reached at a bucket's end are swept event by event, after one sort of
their events.

The bucketing pass over a flow's per-vehicle times is ``sim.statistics.flowstats.flow_pass`` (one pass
for all the flow's statistics); ``queue_stats`` does the same from plain event series, with
the same bucketing (``sim.statistics.flowstats.events_pass``). The
horizon is a whole number of hours (it is whole days).
"""

from __future__ import annotations

from typing import NamedTuple

import numba as nb
import numpy as np

from .flowstats import events_pass


@nb.njit(cache=True)
def group_queue(plus, net, area, warm, membership, horizon_h, warmup_h, open_day, month_of_day, n_months):
    """From the flows' hourly buckets ((flows, hours) arrays, as from sim.statistics.flowstats.flow_pass):
    each flow's mean queue per hour of day after the warm-up over the days it opens at all
    (open_day: flows x days), each flow's queue area (vehicle-hours waiting) after the warm-up
    in each month (month_of_day: each day's month), and per group of flows (membership[g, f])
    the highest level at a bucket's end, the level at each bucket's start, the buckets that may
    hold a higher level (start level + joining events > that), and per calendar day the mean
    level and the level at the day's end (just before midnight)."""
    n_flows, nb_ = net.shape
    n_groups = membership.shape[0]
    n_days = nb_ // 24
    hour_mean = np.zeros((n_flows, 24))
    month_area = np.zeros((n_flows, n_months))
    first = int(np.ceil(warmup_h))
    wb = int(np.floor(warmup_h))
    part = first - warmup_h  # the part of bucket wb after the warm-up (0 if whole)
    for f in range(n_flows):
        hour_len = np.zeros(24)
        level = 0.0
        for b in range(nb_):
            after = 0.0  # the bucket's area after the warm-up
            if b >= first:
                after = level + area[f, b]
                length = 1.0
            elif b == wb and part > 0:
                after = (level + warm[f, 0]) * part + warm[f, 1]
                length = part
            else:
                length = 0.0
            month_area[f, month_of_day[b // 24]] += after
            if open_day[f, b // 24]:
                hour_mean[f, b % 24] += after
                hour_len[b % 24] += length
            level += net[f, b]
        for h in range(24):
            hour_mean[f, h] = hour_mean[f, h] / hour_len[h] if hour_len[h] > 0 else np.nan
    peaks = np.zeros(n_groups)
    cand = np.zeros((n_groups, nb_), np.bool_)
    start_level = np.zeros((n_groups, nb_))
    day_mean = np.zeros((n_groups, n_days))
    day_end = np.zeros((n_groups, n_days))
    for g in range(n_groups):
        gnet = np.zeros(nb_)
        gplus = np.zeros(nb_)
        garea = np.zeros(nb_)
        for f in range(n_flows):
            if membership[g, f]:
                gnet += net[f]
                gplus += plus[f]
                garea += area[f]
        level = 0.0
        best = 0.0
        for b in range(nb_):
            start_level[g, b] = level
            day_mean[g, b // 24] += (level + garea[b]) / 24.0  # the hour's area: the mean over it
            level += gnet[b]
            if b % 24 == 23:
                day_end[g, b // 24] = level
            if level > best:
                best = level
        peaks[g] = best
        for b in range(nb_):
            if start_level[g, b] + gplus[b] > best:
                cand[g, b] = True
    return peaks, hour_mean, cand, start_level, day_mean, day_end, month_area


def candidate_slots(cand: np.ndarray) -> np.ndarray:
    """Each bucket's index among the buckets some group must sweep (-1: none)."""
    any_cand = cand.any(axis=0)
    slot = np.full(any_cand.size, -1, np.int32)  # small, to stay in cache when looked up per event
    slot[any_cand] = np.arange(int(any_cand.sum()))
    return slot


@nb.njit(cache=True)
def candidate_events(arrival, start, end, left, acc_k, slot, horizon_h, m):
    """A flow's queue events that fall in the buckets to sweep, as (slot, time, sign), column
    by column (arrivals, then per stage its starts and, but for the last stage, its ends;
    none for the acceptance step acc_k, which takes no time, as in flow_pass); m: how many
    there are (known from the buckets' counts)."""
    n, k_stages = start.shape
    ev_slot = np.empty(m, np.int64)
    ev_t = np.empty(m)
    ev_s = np.empty(m, np.int8)
    j = _column_candidates(np.maximum(arrival, 0.0), 1, slot, horizon_h, ev_slot, ev_t, ev_s, 0)
    j = _column_candidates(left, -1, slot, horizon_h, ev_slot, ev_t, ev_s, j)
    for k in range(k_stages):
        if k == acc_k and k < k_stages - 1:
            continue
        j = _column_candidates(start[:, k], -1, slot, horizon_h, ev_slot, ev_t, ev_s, j)
        if k < k_stages - 1:
            j = _column_candidates(end[:, k], 1, slot, horizon_h, ev_slot, ev_t, ev_s, j)
    if j != m:
        raise ValueError("candidate events do not match the bucket counts")
    return ev_slot, ev_t, ev_s


@nb.njit(cache=True, inline="always")
def _column_candidates(times, sign, slot, horizon_h, ev_slot, ev_t, ev_s, j):
    for t in times:
        if t < horizon_h and slot[int(t)] >= 0:
            if j < ev_t.size:
                ev_slot[j] = slot[int(t)]
                ev_t[j] = t
                ev_s[j] = sign
            j += 1
    return j


@nb.njit(cache=True)
def refine_peaks(peaks, cand, start_level, membership, slot, ev_flow, ev_slot, ev_t, ev_s):
    """Sweep the candidate buckets of each group event by event; peaks is updated in place.

    The events are put in (bucket, time) order once; each group then reads its flows' events
    of a bucket in that order, taking the level after each instant (all events at one time)."""
    n_groups, nb_ = cand.shape
    n_slots = 0
    for b in range(nb_):
        if slot[b] >= 0:
            n_slots += 1
    by_time = np.argsort(ev_t, kind="mergesort")
    first = np.zeros(n_slots + 1, np.int64)
    for e in range(ev_slot.size):
        first[ev_slot[e] + 1] += 1
    for j in range(n_slots):
        first[j + 1] += first[j]
    order = np.empty(ev_slot.size, np.int64)
    fill = first[:-1].copy()
    for e in by_time:  # a stable split by bucket: each bucket's events stay in time order
        order[fill[ev_slot[e]]] = e
        fill[ev_slot[e]] += 1
    for g in range(n_groups):
        peak = peaks[g]
        for b in range(nb_):
            if not cand[g, b]:
                continue
            j = slot[b]
            level = start_level[g, b]
            now = np.nan
            for e in order[first[j]:first[j + 1]]:
                if membership[g, ev_flow[e]]:
                    if ev_t[e] != now:
                        if level > peak:
                            peak = level
                        now = ev_t[e]
                    level += ev_s[e]
            if level > peak:
                peak = level
        peaks[g] = peak


class QueueSummary(NamedTuple):
    """The queue statistics of a replication's flows and groups of flows."""

    peaks: np.ndarray  # per group: most vehicles waiting at once
    hour_mean: np.ndarray  # per flow x hour of day: mean waiting after the warm-up, on the days it opens (NaN: none)
    day_mean: np.ndarray  # per group x day: mean waiting over the day
    day_end: np.ndarray  # per group x day: waiting just before midnight
    month_area: np.ndarray  # per flow x month: vehicle-hours waiting after the warm-up


def queue_summary(plus, net, area, warm, membership, horizon_h, warmup_h, events_in, open_day=None,
                  month_of_day=None) -> QueueSummary:
    """Peaks of groups of flows, each flow's mean queue per hour of day and queue area per
    month, and each group's mean queue and end-of-day queue per calendar day, from the flows'
    hourly buckets. events_in(slot) gives, per flow, its events in the candidate buckets as
    (slot, time, sign) arrays (slot: each bucket's index among the candidates, -1 if none).
    open_day (flows x days): the days each flow opens at all (default every day); month_of_day:
    each day's month, from 0 (default one month)."""
    n_flows, n_days = net.shape[0], net.shape[1] // 24
    if open_day is None:
        open_day = np.ones((n_flows, n_days), np.bool_)
    if month_of_day is None:
        month_of_day = np.zeros(n_days, np.int64)
    n_months = int(month_of_day.max()) + 1 if n_days else 1
    peaks, hour_mean, cand, start_level, day_mean, day_end, month_area = group_queue(
        plus, net, area, warm, membership, horizon_h, warmup_h, open_day, month_of_day, n_months)
    slot = candidate_slots(cand)
    ev = events_in(slot)
    refine_peaks(peaks, cand, start_level, membership, slot,
                 np.repeat(np.arange(len(ev)), [e[0].size for e in ev]),
                 *(np.concatenate([e[i] for e in ev]) for i in range(3)))
    return QueueSummary(peaks, hour_mean, day_mean, day_end, month_area)


def hours_after_warmup(days: int, warmup_h: float, month_of_day: np.ndarray) -> np.ndarray:
    """The hours of each month after the warm-up: what a month's queue area is averaged over."""
    per_day = np.clip(24.0 * np.arange(1, days + 1) - warmup_h, 0.0, 24.0)
    return np.bincount(month_of_day, weights=per_day, minlength=int(month_of_day.max()) + 1 if days else 1)


def queue_stats(times, signs, offsets, membership, horizon_h, warmup_h, open_day=None,
                month_of_day=None) -> QueueSummary:
    """The same from the flows' event series (concatenated; flow f is offsets[f]:offsets[f + 1]),
    in any order."""
    n_flows, nb_ = offsets.size - 1, int(horizon_h)
    plus, net, area = np.zeros((n_flows, nb_)), np.zeros((n_flows, nb_)), np.zeros((n_flows, nb_))
    warm = np.zeros((n_flows, 2))
    flows = [slice(offsets[f], offsets[f + 1]) for f in range(n_flows)]
    for f, sl in enumerate(flows):
        events_pass(times[sl], signs[sl], horizon_h, warmup_h, plus[f], net[f], area[f], warm[f])

    def events_in(slot):
        out = []
        for sl in flows:
            t, s = times[sl], signs[sl]
            keep = t < horizon_h
            keep[keep] = slot[t[keep].astype(np.int64)] >= 0
            out.append((slot[t[keep].astype(np.int64)], t[keep], s[keep]))
        return out

    return queue_summary(plus, net, area, warm, membership, horizon_h, warmup_h, events_in, open_day, month_of_day)
