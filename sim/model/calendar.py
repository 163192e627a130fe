"""When a gate serves: opening hours by weekday, less fixed and random closures.

Time is in hours since 00:00 local time (UTC+7) on the horizon's first day. A service may
start at t only if t lies in an open interval [start, end); a service already under way when
the gate closes is allowed to finish (the rule both engines share).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from dataclasses import dataclass
from functools import lru_cache

import numba as nb
import numpy as np

from ..base.days import EPS_H, hours_since
from .scenario import WEEKDAYS, Gate, Horizon, _check_hours



@dataclass(frozen=True)
class Calendar:
    starts: np.ndarray
    ends: np.ndarray

    def next_open(self, t: float) -> float:
        """The earliest time >= t at which a service may start (inf if none)."""
        i = bisect_right(self.starts, t + EPS_H) - 1
        if i >= 0 and t < self.ends[i]:
            return max(t, float(self.starts[i]))  # inside, or a rounding error before the opening
        j = i + 1
        return float(self.starts[j]) if j < len(self.starts) else float("inf")

    def is_open(self, t: float) -> bool:
        i = bisect_right(self.starts, t) - 1
        return i >= 0 and t < self.ends[i]

    def open_hours(self) -> float:
        return float(np.sum(self.ends - self.starts))

    def open_days(self, days: int) -> np.ndarray:
        """Whether it opens at some time of each day [24 d, 24 d + 24) of the horizon (bool per day)."""
        out = np.zeros(days, np.bool_)
        if self.starts.size:  # the first open interval that ends after a day begins starts before it ends
            day_first = np.searchsorted(self.ends, 24.0 * np.arange(days), side="right")
            out[:] = self.starts[np.minimum(day_first, self.starts.size - 1)] < 24.0 * np.arange(1, days + 1)
            out &= day_first < self.starts.size
        return out


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _subtract(opens: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Open intervals ((n, 2), disjoint, sorted) less the closed ones ((m, 2), any): one merge
    of the two sorted lists. Touching open pieces are joined; empty ones dropped."""
    c = np.asarray(_merge([tuple(iv) for iv in closed if iv[1] > iv[0]]), dtype=float).reshape(-1, 2)
    s, e = _subtract_sorted(np.ascontiguousarray(opens[:, 0]), np.ascontiguousarray(opens[:, 1]),
                            np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1]))
    return np.column_stack([s, e])


@nb.njit(cache=True)
def _subtract_sorted(o_start, o_end, c_start, c_end):
    """Sorted disjoint open intervals less sorted disjoint non-empty closed ones."""
    n_o, n_c = o_start.size, c_start.size
    out_s = np.empty(n_o + n_c)
    out_e = np.empty(n_o + n_c)
    m = 0
    j = 0  # the first closure that ends after the current interval starts
    for i in range(n_o):
        s, e = o_start[i], o_end[i]
        while j < n_c and c_end[j] <= s:
            j += 1
        cur = s
        jj = j
        while jj < n_c and c_start[jj] < e:
            if c_start[jj] > cur:
                m = _emit(out_s, out_e, m, cur, c_start[jj])
            cur = max(cur, c_end[jj])
            if c_end[jj] >= e:
                break
            jj += 1
        if cur < e:
            m = _emit(out_s, out_e, m, cur, e)
    return out_s[:m], out_e[:m]


@nb.njit(cache=True, inline="always")
def _emit(out_s, out_e, m, a, b):
    """Add the piece [a, b): dropped if empty, joined to the last one if they touch."""
    if b <= a:
        return m
    if m > 0 and out_e[m - 1] >= a:
        out_e[m - 1] = max(out_e[m - 1], b)
        return m
    out_s[m] = a
    out_e[m] = b
    return m + 1


@lru_cache(maxsize=256)
def _opening_intervals(hours: tuple, start: dt.date, days: int) -> tuple[tuple[float, float], ...]:
    spec_by_key = dict(hours)
    parsed = {k: _check_hours("", "", list(v)) for k, v in spec_by_key.items()}
    out = []
    for d in range(days):
        wd = WEEKDAYS[(start + dt.timedelta(days=d)).weekday()]
        for s, e in parsed.get(wd, parsed.get("default", [])):
            out.append((24.0 * d + s, 24.0 * d + e))
    return tuple(_merge(out))


def lane_calendars(calendar: Calendar, lanes_by_day: np.ndarray) -> list[Calendar]:
    """A calendar per lane of a stage whose number of lanes changes by day: lane j serves when
    the flow may and on the days the stage has more than j lanes."""
    out = []
    for j in range(int(lanes_by_day.max()) if lanes_by_day.size else 0):
        shut = np.flatnonzero(lanes_by_day <= j)
        closed = np.column_stack([24.0 * shut, 24.0 * (shut + 1)]) if shut.size else np.zeros((0, 2))
        arr = _subtract(np.column_stack([calendar.starts, calendar.ends]), closed)
        out.append(Calendar(arr[:, 0].copy(), arr[:, 1].copy()))
    return out


def draw_random_closures(daily_probability: float, duration_h, days: int,
                         rng: np.random.Generator) -> list[tuple[float, float]]:
    """Closures that start on each day with the given probability, at a uniform time of day,
    lasting a draw of duration_h (a distribution, hours).

    A fixed number of draws per day keeps the stream aligned when the probability changes
    between scenarios (common random numbers).
    """
    u = rng.random(days)
    offset = rng.random(days) * 24.0
    duration = duration_h.draw(rng, days)
    hit = np.flatnonzero(u < daily_probability)
    return [(24.0 * d + offset[d], 24.0 * d + offset[d] + duration[d]) for d in hit]


def fixed_calendar(gate: Gate, direction: str, horizon: Horizon, hour_overrides: tuple = ()) -> np.ndarray:
    """When a flow may start a service before any random closure: the gate's opening hours (on
    the days of an override, ((first day, last day + 1, hours), ...) in order, its hours
    instead), less the fixed closures for that direction; (n, 2) intervals, read-only."""
    hours = tuple((k, tuple(v)) for k, v in sorted(gate.hours.items()))
    closed = tuple(
        (hours_since(horizon.start, c.start), hours_since(horizon.start, c.end, end=True))
        for c in gate.closures
        if direction in c.directions
    )
    return _fixed_intervals(hours, closed, horizon.start, horizon.days, hour_overrides)


def with_closures(fixed: np.ndarray, random_closed: list[tuple[float, float]]) -> Calendar:
    """The calendar of a flow in one replication: its fixed intervals less the random closures drawn."""
    arr = _subtract(fixed, np.asarray(random_closed, dtype=float).reshape(-1, 2)) if len(random_closed) else fixed
    return Calendar(arr[:, 0].copy(), arr[:, 1].copy())


def build_calendar(
    gate: Gate,
    direction: str,
    horizon: Horizon,
    random_closed: list[tuple[float, float]] = (),
    hour_overrides: tuple = (),
) -> Calendar:
    """A flow's calendar: fixed_calendar less the random closures drawn."""
    return with_closures(fixed_calendar(gate, direction, horizon, hour_overrides), list(random_closed))


@lru_cache(maxsize=256)
def _fixed_intervals(hours: tuple, closed: tuple, start: dt.date, days: int, overrides: tuple = ()) -> np.ndarray:
    """Opening intervals (with the hours that hold on some days) less the fixed closures: the
    same in every replication."""
    opens = np.asarray(_opening_intervals(hours, start, days), dtype=float).reshape(-1, 2)
    for first, last, spec in overrides:  # later ones win: each replaces the hours of its days
        span = np.array([[24.0 * first, 24.0 * last]])
        own = np.asarray(_opening_intervals(spec, start, days), dtype=float).reshape(-1, 2)
        own = _subtract(own, np.array([[-np.inf, span[0, 0]], [span[0, 1], np.inf]]))  # own within the span
        opens = np.asarray(_merge([tuple(iv) for iv in _subtract(opens, span)] + [tuple(iv) for iv in own]),
                           dtype=float).reshape(-1, 2)
    out = _subtract(opens, np.asarray(closed, dtype=float).reshape(-1, 2))
    out.setflags(write=False)
    return out
