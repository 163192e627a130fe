"""Per-flow statistics of one replication, computed in one compiled pass over its vehicles.

Both engines hand their per-vehicle times to these kernels, so they report the same
statistics by construction. What leaves a flow is small and of fixed size, whatever the
horizon: counts and sums, crossings per day, the crossings' waits and times in system summed
by calendar month, busy hours per stage, fine histograms of wait and time in system (quantiles
of a group of flows come from the sum of their histograms).
The same pass puts the flow's queue events into hourly buckets for ``sim.statistics.queue_profile``.

Quantiles from the histogram: bins are 1/500 of a decade wide (0.46 %) from 1e-4 h (0.36 s)
to 1e6 h (114 years, beyond any time a valid scenario allows: its horizon is at most 20
years), with one bin below and one above; within a bin the quantile is interpolated
log-linearly, so its relative error is below 0.46 % (below 0.36 s under 1e-4 h). A quantile
that falls in the top bin, which no valid scenario reaches, is reported as inf, never as the
bin's edge.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ..base.days import day_of
from ..model.schema import COST_FIELDS

HIST_LO_H = 1e-4
HIST_DECADES = 10
HIST_PER_DECADE = 500
N_HIST = HIST_DECADES * HIST_PER_DECADE + 2  # [0, lo), the log bins, [1e6 h, inf)
HIST_HI_H = HIST_LO_H * 10.0**HIST_DECADES  # every time the model allows lies below it
HIST_REL_ERROR = 10.0 ** (1.0 / HIST_PER_DECADE) - 1.0  # a bin's relative width: 0.46 %


def hist_edges() -> np.ndarray:
    """Edges of the fine histogram: 0, the log-spaced edges, inf."""
    logs = np.log10(HIST_LO_H) + np.arange(HIST_DECADES * HIST_PER_DECADE + 1) / HIST_PER_DECADE
    return np.concatenate([[0.0], 10.0**logs, [np.inf]])


# A value's bin without a logarithm: the top bits of a positive double (exponent and 10
# mantissa bits) are a monotone key into cells 0.1 % wide, narrower than a bin (0.46 %), so a
# cell holds at most one bin edge: the table gives the bin of the cell's lower end, and one
# comparison with the next edge settles it.
_KEY_SHIFT = 42


def _bits(v: float) -> int:
    return int(np.array([v], dtype=np.float64).view(np.int64)[0])


def _bin_table() -> tuple[np.ndarray, np.ndarray]:
    edges = hist_edges()
    keys = np.arange(_bits(HIST_LO_H) >> _KEY_SHIFT, (_bits(HIST_LO_H * 10.0**HIST_DECADES) >> _KEY_SHIFT) + 1)
    lows = (keys << _KEY_SHIFT).view(np.float64)
    table = (np.searchsorted(edges, lows, side="right") - 1).astype(np.int16)  # small: stays in cache
    return table, edges


BIN_TABLE, BIN_EDGES = _bin_table()
LOG_LO = float(np.log10(HIST_LO_H))
_KEY0 = _bits(HIST_LO_H) >> _KEY_SHIFT


@nb.njit(cache=True, inline="always")
def hist_bin(x, buf, ibuf, table, edges):
    """The fine bin of x >= 0: 0 below 1e-4 h, the last from 1e6 h; bin b is [edges[b],
    edges[b + 1]). buf is a one-float scratch array and ibuf its int64 view."""
    if x < HIST_LO_H:
        return 0
    if x >= HIST_HI_H:
        return N_HIST - 1
    buf[0] = x
    b = table[(ibuf[0] >> _KEY_SHIFT) - _KEY0]
    return b + np.int64(x >= edges[b + 1])  # no branch: it would be mispredicted half the time


@nb.njit(cache=True)
def _hist_add(hours, out, table, edges):
    buf = np.empty(1)
    ibuf = buf.view(np.int64)
    for x in hours:
        out[hist_bin(x, buf, ibuf, table, edges)] += 1


def histogram(hours: np.ndarray) -> np.ndarray:
    """Counts of the values in the fine bins (the binning flow_pass uses)."""
    out = np.zeros(N_HIST)
    _hist_add(np.ascontiguousarray(hours, dtype=np.float64), out, BIN_TABLE, BIN_EDGES)
    return out


@nb.njit(cache=True, inline="always")
def add_column_events(times, sign, horizon_h, warmup_h, wb, count, t_sum, warm):
    """A column of queue events of one sign: per hour bucket, how many (count) and the signed
    sum of their times (t_sum); a bucket's area is then net x (b + 1) - t_sum. No branch on the
    data but the horizon (and the warm-up bucket), so it runs at memory speed."""
    for t in times:
        if t < horizon_h:  # not NaN, not beyond the horizon
            b = int(t)
            count[b] += 1.0
            t_sum[b] += sign * t
            if b == wb:  # the bucket the warm-up ends in, summed from the warm-up on
                if t <= warmup_h:
                    warm[0] += sign
                else:
                    warm[1] += sign * (b + 1.0 - t)


@nb.njit(cache=True)
def buckets_from_counts(joins, leaves, t_sum, plus, net, area):
    """Per hour bucket b, from the events joining and leaving a queue and the signed sum of
    their times: plus (events joining), net (net change), and area (level x time they add within
    the hour, sign x (b + 1 - t) summed)."""
    for b in range(plus.size):
        d = joins[b] - leaves[b]
        plus[b] += joins[b]
        net[b] += d
        area[b] += d * (b + 1.0) - t_sum[b]


@nb.njit(cache=True)
def events_pass(times, signs, horizon_h, warmup_h, plus, net, area, warm):
    """A series of queue events (any order, sign +1: joins a queue, -1: starts a stage) into
    the hour buckets, by flow_pass's mechanism: the joining and the leaving events each as a
    column."""
    n_b = plus.size
    joins, leaves, t_sum = np.zeros(n_b), np.zeros(n_b), np.zeros(n_b)
    wb = int(np.floor(warmup_h))
    add_column_events(times[signs > 0], 1, horizon_h, warmup_h, wb, joins, t_sum, warm)
    add_column_events(times[signs < 0], -1, horizon_h, warmup_h, wb, leaves, t_sum, warm)
    buckets_from_counts(joins, leaves, t_sum, plus, net, area)


# per class: vehicles, crossings, steady crossings (arrived after the warm-up), their wait sum,
# their time-in-system sum, how many of them the far side's daily limit held back, and the
# vehicles that gave up waiting within the horizon
N_COUNTS = 7
# per calendar month (of the crossing): steady crossings, their wait sum, their time-in-system sum
N_MONTHLY = 3
# the costs of waiting (VND) that flow_pass prices (_price_days), in its order: the hours at the
# truck-hour rate, at the day rates of parking and of refrigeration, the goods' spoilage, the
# vehicles that gave up
COST_PARTS = ("cost_time_vnd", "cost_parking_vnd", "cost_reefer_vnd", "cost_spoilage_vnd", "cost_gave_up_vnd")
# the columns of a class's cost inputs (sim.model.schema.COST_FIELDS) it reads
RATE_TRUCK_HOUR, RATE_PARKING_DAY, RATE_REEFER_DAY, RATE_GOODS, RATE_SHELF_DAYS, RATE_GAVE_UP = (
    COST_FIELDS.index(f) for f in ("truck_hour_vnd", "parking_day_vnd", "reefer_day_vnd", "goods_value_vnd",
                                   "shelf_life_days", "gave_up_vnd"))


@nb.njit(cache=True)
def flow_pass(arrival, vclass, start, end, left, acc_k, quota_day, warmup_h, horizon_h, days, cal_starts, cal_ends,
              day_first, counts, stage_wait, daily, busy, wait_hist, tis_hist, month_of_day, monthly, plus, net, area,
              warm, table, edges, rates, cost):
    """One pass over a flow's vehicles (accumulators zeroed by the caller).

    counts (classes x N_COUNTS) and stage_wait (classes x stages: time waiting for each stage,
    summed over the steady crossings); daily: crossings per day; busy: lane-hours busy per stage
    within opening hours (a service that runs past closing counts up to the closing, so busy
    never exceeds lanes x open hours); wait_hist, tis_hist: the steady crossings' waits and
    times in system in the fine bins (table, edges: BIN_TABLE, BIN_EDGES); monthly (months x
    N_MONTHLY): the steady crossings, their waits and their times in system summed by the month
    (month_of_day: each day's) of the day they crossed.
    acc_k: the acceptance step's column (-1: none), with quota_day its limit on each day; a
    vehicle is held by the limit when a day on which the limit was used up passed between the
    time it was ready for the step and the day it passed it.
    cal_starts, cal_ends: the flow's open intervals; day_first[d]: the first that ends after day
    d begins.
    Queue events (arrivals and ends of all but the last stage join a queue, starts leave one)
    go to hourly buckets: plus (events joining), net (net change), area (level x time they add
    within their hour), warm (for the hour the warm-up ends in: the net change up to the
    warm-up's end, the area after it). The acceptance step takes no time: before the last stage
    its start and end are one instant, and their -1 and +1 cancel in every level after an
    instant and in every area, so it adds nothing. left: when each vehicle gave up waiting (NaN:
    it did not), which takes it out of the queue.
    Priced (rates: each class's cost inputs, in the order of sim.model.schema.COST_FIELDS; none:
    no costs), cost (classes x COST_PARTS x days) gets what each vehicle's own waiting costs on
    each day (_waiting_walk, _price_days): its waiting as queue_mean counts it, whether it
    crossed, gave up or is still waiting, its goods' loss from its own cumulative wait (concave
    in it: the loss of the mean wait would overstate it where some wait past the shelf life),
    and the vehicles that gave up. Each waiting interval is two events in day buckets, however
    many days it spans (_interval).
    """
    n, k_stages = start.shape
    wb = int(np.floor(warmup_h))
    n_b = plus.size
    joins, leaves, t_sum = np.zeros(n_b), np.zeros(n_b), np.zeros(n_b)
    served = np.zeros(n)  # time in service, summed stage by stage (contiguous columns)
    n_cal = cal_starts.size
    # a backlog that came before the start is in the queue from 0 (its waits count from when it came)
    add_column_events(np.maximum(arrival, 0.0), 1, horizon_h, warmup_h, wb, joins, t_sum, warm)
    add_column_events(left, -1, horizon_h, warmup_h, wb, leaves, t_sum, warm)
    for k in range(k_stages):
        instant = k == acc_k
        if not instant or k == k_stages - 1:
            add_column_events(start[:, k], -1, horizon_h, warmup_h, wb, leaves, t_sum, warm)
        busy_k = 0.0
        for i in range(n):  # busy lane-hours within opening hours, and time in service so far
            s = start[i, k]
            e = end[i, k]
            served[i] += e - s
            if s < horizon_h and not instant:
                stop = horizon_h if np.isnan(e) else e
                j = day_first[min(int(s / 24.0), days - 1)]  # s >= 0: truncation is the floor
                while j < n_cal and cal_ends[j] <= s:
                    j += 1
                if j < n_cal and cal_ends[j] < stop:  # ran past closing
                    stop = cal_ends[j]
                busy_k += stop - s
        busy[k] += busy_k
        if k < k_stages - 1 and not instant:
            add_column_events(end[:, k], 1, horizon_h, warmup_h, wb, joins, t_sum, warm)
    buckets_from_counts(joins, leaves, t_sum, plus, net, area)
    full_before = np.zeros(days + 1, np.int64)  # days before d whose limit was used up
    if acc_k >= 0:
        passed = np.zeros(days, np.int64)
        for i in range(n):
            s = start[i, acc_k]
            if s < horizon_h:
                passed[min(day_of(s), days - 1)] += 1
        for d in range(days):
            full_before[d + 1] = full_before[d] + (passed[d] >= quota_day[d])
    buf = np.empty(1)
    ibuf = buf.view(np.int64)
    n_priced = rates.shape[0]  # the classes priced: all or none
    shelf_h = 24.0 * rates[:, RATE_SHELF_DAYS]
    # the waiting's day buckets (_interval), the bucket after the last day the horizon's end;
    # s_: the waiting within the shelf life
    count, t_sum = np.zeros((n_priced, days + 1)), np.zeros((n_priced, days + 1))
    s_count, s_sum = np.zeros((n_priced, days + 1)), np.zeros((n_priced, days + 1))
    gave_up = np.zeros((n_priced, days))
    lo = max(warmup_h, 0.0)  # a backlog that came before the start waits from 0 in the tables
    for i in range(n):
        c = vclass[i]
        counts[c, 0] += 1
        q = left[i]
        if q < horizon_h:  # gave up (NaN: did not)
            counts[c, 6] += 1
            if n_priced:
                gave_up[c, min(max(int(q / 24.0), 0), days - 1)] += 1
        if n_priced:
            _waiting_walk(i, c, arrival[i], q, start, end, horizon_h, lo, shelf_h[c], count, t_sum, s_count, s_sum)
        dep = end[i, k_stages - 1] if k_stages > 0 else arrival[i]
        if not dep < horizon_h:  # NaN: not crossed
            continue
        counts[c, 1] += 1
        d = min(int(dep / 24.0), days - 1)  # dep >= 0: truncation is the floor (// on floats is slow here)
        daily[d] += 1
        a = arrival[i]
        if a >= warmup_h or warmup_h <= 0.0:  # with no warm-up, the backlog's history counts too
            tis = dep - a
            wait = tis - served[i]
            counts[c, 2] += 1
            counts[c, 3] += wait
            counts[c, 4] += tis
            m = month_of_day[d]
            monthly[m, 0] += 1
            monthly[m, 1] += wait
            monthly[m, 2] += tis
            wait_hist[hist_bin(wait, buf, ibuf, table, edges)] += 1
            tis_hist[hist_bin(tis, buf, ibuf, table, edges)] += 1
            ready = a
            for k in range(k_stages):
                stage_wait[c, k] += start[i, k] - ready
                ready = end[i, k]
            if acc_k >= 0:
                ready = a if acc_k == 0 else end[i, acc_k - 1]
                d0 = min(max(day_of(ready), 0), days)
                d1 = min(max(day_of(start[i, acc_k]), 0), days)
                if full_before[d1] > full_before[d0]:
                    counts[c, 5] += 1
    if n_priced:
        _price_days(count, t_sum, s_count, s_sum, gave_up, rates, shelf_h, cost)


@nb.njit(cache=True, inline="always")
def _interval(c, a, b, count, t_sum):
    """Waiting over [a, b) (0 <= a <= b <= the horizon) as two events of class c in day buckets
    (classes x days + 1): how many start or end there (count, +1 and -1) and the signed sum of
    their times (t_sum); a day's hours are then level x 24 + count x (its end) - t_sum
    (_day_hours). No branch on the data, so that it runs at memory speed."""
    da = int(a * (1.0 / 24.0))  # a >= 0: truncation is the floor; an ulp's error moves nothing
    db = int(b * (1.0 / 24.0))
    count[c, da] += 1.0
    t_sum[c, da] += a
    count[c, db] -= 1.0
    t_sum[c, db] -= b


@nb.njit(cache=True, inline="always")
def _day_hours(count, t_sum, c, d, level):
    """Day d's hours of waiting of class c from _interval's buckets, level: the number waiting
    at the day's start (the counts of the days before it, summed)."""
    return 24.0 * level + 24.0 * (d + 1) * count[c, d] - t_sum[c, d]


@nb.njit(cache=True, inline="always")
def _waiting_walk(i, c, ready, q, start, end, horizon_h, lo, shelf, count, t_sum, s_count, s_sum):
    """Vehicle i's (class c) own waiting into the day buckets (_interval): the waiting that
    waiting_truck_hours counts (before a stage, for the far side's acceptance, turned away; from
    when it came (ready), or the horizon's start for a backlog, until it starts the stage, gives
    up (q; NaN: it did not) or the horizon ends), within the horizon after the warm-up (lo);
    and in s_count, s_sum the part of it before its goods are lost, its cumulative wait since it
    came reaching their shelf life (shelf hours; inf: goods that keep)."""
    waited = 0.0  # hours waited since it came (its goods' time out)
    for k in range(start.shape[1]):
        if not ready < horizon_h:  # beyond the horizon, or NaN: in service at its end
            break
        stop = start[i, k]
        last = np.isnan(stop) or q < stop  # it has not started the stage (NaN), or gave up first
        if last:
            stop = horizon_h if np.isnan(q) else q  # still waiting at the horizon's end, or gave up
        b = min(stop, horizon_h)
        a = ready
        if a < lo:  # waited before the warm-up's end (or the start): its goods' time, no price
            waited += max(min(b, lo) - a, 0.0)
            a = lo
        if b > a:  # most stages start as a vehicle reaches them
            _interval(c, a, b, count, t_sum)
            if waited < shelf < np.inf:  # the part of [a, b) before its goods are lost (which goods that keep skip)
                _interval(c, a, min(b, a + (shelf - waited)), s_count, s_sum)
            waited += b - a
        if last:
            break
        ready = end[i, k]


@nb.njit(cache=True)
def _price_days(count, t_sum, s_count, s_sum, gave_up, rates, shelf_h, cost):
    """The cost components (COST_PARTS, VND) per class and day (cost: classes x COST_PARTS x
    days) from the day buckets of _waiting_walk and the vehicles that gave up each day: the
    hours waited at the truck-hour rate and at the day rates of parking and refrigeration (per
    24 h); the goods' value times the share lost in the day, min(1, hours waited since it came /
    its shelf life) at the day's end less at its start, so that a vehicle's loss over the days
    adds up to its loss at the end, never above its goods; the vehicles that gave up at the
    cost of giving up. The one definition of each component."""
    n_cls, _n_parts, days = cost.shape
    for c in range(n_cls):
        truck_hour = rates[c, RATE_TRUCK_HOUR]
        parking_hour = rates[c, RATE_PARKING_DAY] / 24.0
        reefer_hour = rates[c, RATE_REEFER_DAY] / 24.0
        lost_per_hour = 1.0 / shelf_h[c]
        level = s_level = 0.0
        for d in range(days):
            hours = 0.0 + 1.0 * _day_hours(count, t_sum, c, d, level)  # as summed into zeros: -0.0 is 0.0
            level += count[c, d]
            spoiled = 0.0
            if shelf_h[c] < np.inf:
                spoiled = 0.0 + lost_per_hour * _day_hours(s_count, s_sum, c, d, s_level)
                s_level += s_count[c, d]
            cost[c, 0, d] = truck_hour * hours
            cost[c, 1, d] = parking_hour * hours
            cost[c, 2, d] = reefer_hour * hours
            cost[c, 3, d] = rates[c, RATE_GOODS] * spoiled
            cost[c, 4, d] = rates[c, RATE_GAVE_UP] * gave_up[c, d]


@nb.njit(cache=True, inline="always")
def _bin_value(hist, b, below, j):
    """The j-th smallest value (from 0), in bin b with `below` values under it, placed as if the
    bin's values were spread evenly over it (log-evenly for the log bins)."""
    frac = (j - below + 0.5) / hist[b]
    if b == 0:
        return frac * HIST_LO_H
    if b == N_HIST - 1:  # beyond the table: unbounded, so no finite value may be claimed
        return np.inf
    return 10.0 ** (LOG_LO + (b - 1 + frac) / HIST_PER_DECADE)


@nb.njit(cache=True)
def _hist_quantile(hist, p):
    n = hist.sum()
    if n == 0:
        return np.nan
    rank = p * (n - 1)
    lo = np.floor(rank)
    below = 0.0  # one scan finds the bins of ranks lo and lo + 1
    b = 0
    while below + hist[b] <= lo:
        below += hist[b]
        b += 1
    x = _bin_value(hist, b, below, lo)
    if rank == lo:
        return x
    while below + hist[b] <= lo + 1:
        below += hist[b]
        b += 1
    return x + (rank - lo) * (_bin_value(hist, b, below, lo + 1) - x)


def hist_quantile(hist: np.ndarray, p: float) -> float:
    """The p-quantile of the values in the fine histogram, with numpy's default ('linear')
    rule: rank p (n - 1), interpolated between the values of the ranks on either side."""
    return float(_hist_quantile(np.ascontiguousarray(hist, dtype=np.float64), float(p)))
