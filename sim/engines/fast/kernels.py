"""Compiled kernels of the fast engine: one pass over one stage of one flow.

The pass is the multi-lane FCFS recursion (Kiefer-Wolfowitz: keep each lane's next free time,
give the next vehicle the earliest free lane) extended with what the border needs: a start is
pushed to the next time the gate is open and, for the acceptance step, to the next day with
quota left; priority classes are exact: at each start time the best waiting class (lowest
priority, then earliest ready, then earliest start at the previous stage) goes first. Stages
are independent given the previous stage's end times (no blocking), so a flow is K passes.
The rules are those of the SimPy engine (see ``sim.engines.des.engine``).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ...base.days import day_of



@nb.njit(cache=True)
def next_open_from(t, starts, ends, i):
    """The earliest time >= t inside an open interval [start, end) (inf if none), and the interval.

    For non-decreasing t, i (the interval found last time) makes the search amortised O(1).
    """
    n = starts.size
    while i < n and ends[i] <= t:
        i += 1
    if i == n:
        return np.inf, i
    if t >= starts[i]:
        return t, i
    return starts[i], i


@nb.njit(cache=True)
def gave_up(deadline, since, t):
    """Whether a vehicle whose turn at a stage comes at t has given up by then. Patience runs out
    only while waiting: it gives up at max(deadline, since) (since: when it came to the stage's
    queue) if it has not started by then, before any start at its deadline; one whose deadline
    passed in the service before (since > deadline) goes on if it starts the instant it comes."""
    if since > deadline:
        return t > since
    return deadline <= t


@nb.njit(cache=True)
def ready_order(ready, started):
    """The vehicles that reach the next stage, by ready time, ties in this stage's start order.

    started lists the vehicles in start order; in that order their ready times (this stage's
    end times) are nearly sorted already, so a stable insertion sort is close to linear.
    Vehicles that did not end within the horizon (NaN) are left out.
    """
    o = np.empty(started.size, np.int64)
    m = 0
    for i in started:
        if not np.isnan(ready[i]):
            o[m] = i
            m += 1
    o = o[:m]
    for j in range(1, m):
        x = o[j]
        r = ready[x]
        k = j - 1
        while k >= 0 and ready[o[k]] > r:
            o[k + 1] = o[k]
            k -= 1
        o[k + 1] = x
    return o


@nb.njit(cache=True)
def stage_pass(ready, o_ready, level, n_levels, service, lanes, quota_day, starts, ends, lane_starts, lane_ends,
               lane_off, factor, vclass, horizon, start_out, end_out, started, lane_out, deadline, since, left_out):
    """Start times, end times and start order of every vehicle at one stage.

    ready: when each vehicle reaches the stage; o_ready: the vehicles that do, by ready time
    then tie order; level: dense priority level (0 first); lanes < 0: unlimited; quota_day:
    the vehicles that may start on each day (empty: no limit). starts, ends: when the stage is
    open. A stage whose lanes follow a schedule has a calendar per lane instead (lane j:
    lane_starts/lane_ends[lane_off[j]:lane_off[j + 1]]; lane_off empty: none), and a stage
    whose service times change by date a factor per class and day (factor[vclass, day of the
    start]; empty: none). Start and end times stay NaN for vehicles that do not start (or end)
    within the horizon; started[:count] lists the vehicles in start order; returns count. A
    stage with a calendar per lane records the lane each vehicle took in lane_out.
    deadline (empty: none): when each vehicle's patience runs out; one whose turn comes after
    it has given up (gave_up), at max(deadline, since) (since: when it came to this stage's
    queue), which goes to left_out; it takes no lane and no quota.
    """
    m = o_ready.size
    if n_levels == 1:  # one class of priority: the ready order is the service order
        o, lo, hi = o_ready, np.zeros(1, np.int64), np.full(1, m, np.int64)
    else:  # a stable split by priority level in one pass: level lv fills o[lv * m:], so no counting
        lo = np.arange(n_levels) * m
        hi = lo.copy()
        o = np.empty(n_levels * m, np.int64)
        for j in range(m):
            i = o_ready[j]
            lv = level[i]
            o[hi[lv]] = i
            hi[lv] += 1
    if n_levels > 2 or lane_off.size > 0 or factor.size > 0 or deadline.size > 0:
        return _pass_general(ready, o, lo, hi, n_levels, service, lanes, quota_day, starts, ends, lane_starts,
                             lane_ends, lane_off, factor, vclass, horizon, start_out, end_out, started, lane_out,
                             deadline, since, left_out)
    return _pass(ready, o, lo, hi, n_levels, service, lanes, quota_day, starts, ends, horizon, start_out, end_out,
                 started)


@nb.njit(cache=True)
def _pass(ready, o, lo, hi, n_levels, service, lanes, quota_day, starts, ends, horizon, start_out, end_out, started):
    """The pass proper: o lists the vehicles by priority level (level lv is o[lo[lv]:hi[lv]]),
    each level by ready time. Up to two levels (one or two classes of priority), each level's
    next position and ready time (inf when the level is exhausted) are kept in scalars, so
    choosing a vehicle reads no arrays: the usual case, 15 % faster than _pass_general, which
    has the same rules for any number of levels and for schedules."""
    p0, e0 = lo[0], hi[0]
    p1, e1 = (lo[1], hi[1]) if n_levels == 2 else (0, 0)
    h0 = ready[o[p0]] if p0 < e0 else np.inf
    h1 = ready[o[p1]] if p1 < e1 else np.inf
    unlimited = lanes < 0
    n_free = max(lanes, 1)
    free = np.full(n_free, -np.inf)
    t_prev = -np.inf
    cal_i = 0  # the calendar interval searched from: start times only grow within a pass
    n_cal = starts.size
    cur_day = -1
    day_safe = -np.inf  # below it a start time is surely still in cur_day (no division needed)
    used = 0
    has_quota = quota_day.size > 0
    n_quota = quota_day.size
    rank = 0
    while True:
        earliest = h0 if h0 < h1 else h1
        if earliest == np.inf:
            break
        t = earliest if earliest > t_prev else t_prev
        lane = 0
        if not unlimited:  # the earliest free lane (the first of equals)
            f = free[0]
            for j in range(1, n_free):
                if free[j] < f:
                    lane = j
                    f = free[j]
            if f > t:
                t = f
        while cal_i < n_cal and ends[cal_i] <= t:  # the next open time (as next_open_from)
            cal_i += 1
        if cal_i == n_cal:
            break
        if t < starts[cal_i]:
            t = starts[cal_i]
        if has_quota:  # the day's limit: on a later day the count starts afresh
            while True:
                if not t < day_safe:  # start times only grow within a pass
                    d = day_of(t)
                    if d != cur_day:
                        cur_day = d
                        used = 0
                        day_safe = 24.0 * (d + 1) - 1e-6
                if cur_day >= n_quota or used < quota_day[cur_day]:
                    break
                t, cal_i = next_open_from(24.0 * (cur_day + 1), starts, ends, cal_i)
                if t == np.inf:
                    break
        if t >= horizon:
            break
        if h0 <= t:  # the better level if it has a vehicle ready by t, else the other (earliest <= t)
            i = o[p0]
            p0 += 1
            h0 = ready[o[p0]] if p0 < e0 else np.inf
        else:
            i = o[p1]
            p1 += 1
            h1 = ready[o[p1]] if p1 < e1 else np.inf
        start_out[i] = t
        finish = t + service[i]
        if finish < horizon:
            end_out[i] = finish
        started[rank] = i
        rank += 1
        if not unlimited:
            free[lane] = finish
        used += 1
        t_prev = t
    return rank


@nb.njit(cache=True, inline="always")
def next_start(t, free, n_free, unlimited, per_lane, lane_i, lane_off, lane_starts, lane_ends, starts, ends, cal_i,
               quota_day, cur_day, used, day_safe):
    """The earliest time >= t a stage may start a service, and on which lane: a lane free (free:
    each lane's next free time; unlimited: no lanes) and open (by the stage's calendar starts,
    ends, or where its lanes follow a schedule, per_lane, by each lane's own calendar: lane j is
    lane_starts/lane_ends[lane_off[j]:lane_off[j + 1]], the lowest of equals), and for a daily
    limit (quota_day, empty: none) a day with quota left. The positions it searches from (cal_i,
    lane_i, in place) and the day's count (cur_day, used, day_safe) move on with t, which only
    grows within a pass. Returns t (inf: no start is possible), the lane, cal_i, cur_day, used,
    day_safe."""
    lane = 0
    if per_lane:  # the lane that can start first: free, and open by its own calendar
        best = np.inf
        for j in range(n_free):
            x = free[j] if free[j] > t else t  # only grows for a lane: its position only moves on
            p = lane_i[j]
            stop = lane_off[j + 1]
            while p < stop and lane_ends[p] <= x:
                p += 1
            lane_i[j] = p
            if p < stop:
                y = x if x >= lane_starts[p] else lane_starts[p]
                if y < best:
                    best = y
                    lane = j
        return best, lane, cal_i, cur_day, used, day_safe
    if not unlimited:  # the earliest free lane (the first of equals)
        f = free[0]
        for j in range(1, n_free):
            if free[j] < f:
                lane = j
                f = free[j]
        if f > t:
            t = f
    n_cal = starts.size
    while cal_i < n_cal and ends[cal_i] <= t:
        cal_i += 1
    if cal_i == n_cal:
        return np.inf, lane, cal_i, cur_day, used, day_safe
    if t < starts[cal_i]:
        t = starts[cal_i]
    if quota_day.size > 0:  # the day's limit: on a later day the count starts afresh
        while True:
            if not t < day_safe:  # start times only grow within a pass
                d = day_of(t)
                if d != cur_day:
                    cur_day = d
                    used = 0
                    day_safe = 24.0 * (d + 1) - 1e-6
            if cur_day >= quota_day.size or used < quota_day[cur_day]:
                break
            t, cal_i = next_open_from(24.0 * (cur_day + 1), starts, ends, cal_i)
            if t == np.inf:
                break
    return t, lane, cal_i, cur_day, used, day_safe


@nb.njit(cache=True)
def _pass_general(ready, o, lo, hi, n_levels, service, lanes, quota_day, starts, ends, lane_starts, lane_ends,
                  lane_off, factor, vclass, horizon, start_out, end_out, started, lane_out, deadline, since,
                  left_out):
    """_pass for any number of priority levels (each level's next ready time in the array
    heads, inf when exhausted), and for stages whose lanes follow a schedule (each lane has its
    own calendar: lane j serves only while the stage has more than j lanes) or whose service
    times change by date (a start on day d takes service x factor[class, d]). The same rules,
    line for line, as _pass: the next start is the earliest time a lane is free and open (the
    lowest such lane), given to the best level with a vehicle ready by then, and pushed to the
    next day with quota left. A daily limit goes with the flow's calendar only (it is the
    acceptance step's, which has no lanes). With deadlines, a vehicle whose turn comes after it
    has given up (gave_up) is passed over (nothing it would have used is taken)
    and the next start is worked out afresh; those still waiting at the end are passed over
    the same way if they gave up within the horizon."""
    ptr = lo.copy()
    patient = deadline.size > 0
    heads = np.full(n_levels, np.inf)
    for lv in range(n_levels):
        if ptr[lv] < hi[lv]:
            heads[lv] = ready[o[ptr[lv]]]
    per_lane = lane_off.size > 0
    scaled = factor.size > 0
    n_days = factor.shape[1] if scaled else 0
    n_free = lane_off.size - 1 if per_lane else max(lanes, 1)
    unlimited = lanes < 0 and not per_lane
    free = np.full(n_free, -np.inf)
    lane_i = lane_off[:-1].copy() if per_lane else np.zeros(1, np.int64)  # each lane's calendar position
    t_prev = -np.inf
    cal_i = 0
    cur_day = -1
    day_safe = -np.inf  # below it a start time is surely still in cur_day (no division needed)
    used = 0
    rank = 0
    while True:
        earliest = heads[0]
        for lv in range(1, n_levels):
            if heads[lv] < earliest:
                earliest = heads[lv]
        if earliest == np.inf:
            break
        t, lane, cal_i, cur_day, used, day_safe = next_start(
            earliest if earliest > t_prev else t_prev, free, n_free, unlimited, per_lane, lane_i, lane_off,
            lane_starts, lane_ends, starts, ends, cal_i, quota_day, cur_day, used, day_safe)
        if t >= horizon:
            break
        chosen = 0  # the best level with a vehicle ready by t (one exists: earliest <= t)
        while heads[chosen] > t:
            chosen += 1
        p = ptr[chosen]
        i = o[p]
        p += 1
        ptr[chosen] = p
        heads[chosen] = ready[o[p]] if p < hi[chosen] else np.inf
        if patient and gave_up(deadline[i], since[i], t):  # it left before its turn: the start goes to the next one
            left_out[i] = max(deadline[i], since[i])
            # nothing was taken, so no start can come before t: keeping t as the floor keeps the
            # day and calendar positions, which assume start times only grow, valid
            t_prev = t
            continue
        start_out[i] = t
        took = service[i]
        if scaled:
            took *= factor[vclass[i], min(day_of(t), n_days - 1)]
        finish = t + took
        if finish < horizon:
            end_out[i] = finish
        started[rank] = i
        rank += 1
        if not unlimited:
            free[lane] = finish
        if per_lane:
            lane_out[i] = lane
        used += 1
        t_prev = t
    if patient:  # those never started: they gave up if their deadline came within the horizon
        for lv in range(n_levels):
            for p in range(ptr[lv], hi[lv]):
                i = o[p]
                gone = max(deadline[i], since[i])
                if gone < horizon:
                    left_out[i] = gone
    return rank


@nb.njit(cache=True)
def run_flow(arrival, in_order, level, n_levels, vclass, service, lanes, quota, quota_on, starts, ends, lane_starts,
             lane_ends, lane_off, lane_on, factor, factor_on, horizon, came, deadline, patience_stages):
    """Per-vehicle start and end times of one flow, stage after stage, and when each gave up.

    arrival: when each vehicle may join the first stage; in_order: whether that is sorted (else
    the vehicles join in that order, ties in input order); came: when each came (before it was
    turned away, if it was).
    service, and the start and end times returned, are stage-major (stages, n): each stage's
    pass reads and writes contiguous rows, with no copies. Per stage k: quota[k] its daily
    limits if quota_on[k]; lane_off[k] the offsets of its lanes' calendars in lane_starts /
    lane_ends if lane_on[k]; factor[k] its service factors by class and day if factor_on[k].
    deadline (empty: none): when each vehicle gives up, at any of the first patience_stages
    stages; left: when it did (NaN: it did not, within the horizon).
    """
    k_stages, n = service.shape
    start = np.full((k_stages, n), np.nan)
    end = np.full((k_stages, n), np.nan)
    left = np.full(n, np.nan)
    lane = np.full((k_stages, n), -1, np.int16)  # the lane taken, where lanes have calendars of their own
    ready = arrival
    # simultaneous ones in input order
    o_ready = np.arange(n) if in_order else np.argsort(arrival, kind="mergesort")
    started = np.empty(n, np.int64)
    none_i = np.zeros(0, np.int64)
    none_f = np.zeros((0, 0))
    none_d = np.zeros(0)
    for k in range(k_stages):
        patient = deadline.size > 0 and k < patience_stages
        count = stage_pass(ready, o_ready, level, n_levels, service[k], lanes[k],
                           quota[k] if quota_on[k] else none_i, starts, ends, lane_starts, lane_ends,
                           lane_off[k] if lane_on[k] else none_i, factor[k] if factor_on[k] else none_f, vclass,
                           horizon, start[k], end[k], started, lane[k], deadline if patient else none_d,
                           came if k == 0 else ready, left)
        ready = end[k]
        if k < k_stages - 1:
            o_ready = ready_order(ready, started[:count])
    return start, end, lane, left
