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

import numpy as np

from .scenario import WEEKDAYS, Gate, Horizon, RandomClosure, _as_datetime, _check_hours

# A time this close before an interval's start is taken for the start itself: a wake-up
# scheduled for the opening time may land a rounding error early (it then waits again, and
# now + (start - now) is exact once now is that close).
EPS_H = 1e-9


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


def _merge(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _subtract(opens: np.ndarray, closed: np.ndarray) -> np.ndarray:
    """Open intervals ((n, 2), disjoint, sorted) less the closed ones ((m, 2), any): one sweep
    over all boundaries. Touching open pieces are joined."""
    if len(closed) == 0:
        return opens[opens[:, 1] > opens[:, 0]]
    o = opens
    c = np.asarray(_merge([tuple(iv) for iv in closed]), dtype=float).reshape(-1, 2)
    t = np.concatenate([o[:, 0], o[:, 1], c[:, 0], c[:, 1]])
    d_open = np.concatenate([np.ones(len(o)), -np.ones(len(o)), np.zeros(2 * len(c))])
    d_closed = np.concatenate([np.zeros(2 * len(o)), np.ones(len(c)), -np.ones(len(c))])
    order = np.argsort(t, kind="stable")
    t, d_open, d_closed = t[order], d_open[order], d_closed[order]
    last = np.r_[t[1:] != t[:-1], True]  # the state after all boundaries at an instant
    times = t[last]
    is_open = (np.cumsum(d_open)[last] > 0) & (np.cumsum(d_closed)[last] == 0)
    # segment [times[i], times[i + 1]) is open where is_open[i]; join touching segments
    starts = times[:-1][is_open[:-1] & ~np.r_[False, is_open[:-2]]]
    ends = times[1:][is_open[:-1] & ~np.r_[is_open[1:-1], False]]
    keep = ends > starts
    return np.column_stack([starts[keep], ends[keep]])


def hours_since_start(horizon: Horizon, when: dt.date | dt.datetime, end: bool = False) -> float:
    t0 = dt.datetime.combine(horizon.start, dt.time())
    return (_as_datetime(when, end=end) - t0).total_seconds() / 3600.0


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


def draw_random_closures(
    rc: RandomClosure, days: int, rng: np.random.Generator
) -> list[tuple[float, float]]:
    """Closures that start on each day with the given probability, at a uniform time of day.

    A fixed number of draws per day keeps the stream aligned when the probability changes
    between scenarios (common random numbers).
    """
    u = rng.random(days)
    offset = rng.random(days) * 24.0
    duration = rc.duration_h.draw(rng, days)
    hit = np.flatnonzero(u < rc.daily_probability)
    return [(24.0 * d + offset[d], 24.0 * d + offset[d] + duration[d]) for d in hit]


def build_calendar(
    gate: Gate,
    direction: str,
    horizon: Horizon,
    random_closed: list[tuple[float, float]] = (),
) -> Calendar:
    hours = tuple((k, tuple(v)) for k, v in sorted(gate.hours.items()))
    closed = tuple(
        (hours_since_start(horizon, c.start), hours_since_start(horizon, c.end, end=True))
        for c in gate.closures
        if direction in c.directions
    )
    fixed = _fixed_intervals(hours, closed, horizon.start, horizon.days)
    arr = _subtract(fixed, np.asarray(random_closed, dtype=float).reshape(-1, 2)) if len(random_closed) else fixed
    return Calendar(arr[:, 0].copy(), arr[:, 1].copy())


@lru_cache(maxsize=256)
def _fixed_intervals(hours: tuple, closed: tuple, start: dt.date, days: int) -> np.ndarray:
    """Opening intervals less the fixed closures: the same in every replication."""
    opens = np.asarray(_opening_intervals(hours, start, days), dtype=float).reshape(-1, 2)
    out = _subtract(opens, np.asarray(closed, dtype=float).reshape(-1, 2))
    out.setflags(write=False)
    return out
