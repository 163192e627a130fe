"""Days and dates: how the model counts them, in one place.

The model's clock is hours since 00:00 local time (UTC+7) on the horizon's first day. A time's
day is ``day_of(t)``: a time a rounding error below midnight (a wake-up scheduled for 24:00
that lands at 23:59:59.999999999) belongs to the next day, as the engines and the statistics
count it. A date given as the end of a period is inclusive: through 24:00 of that day
(``as_datetime(date, end=True)``, ``inclusive_span``). Months are calendar months from the one
the horizon starts in (``calendar_months``).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numba as nb
import numpy as np

# A time this close before an interval's start (or a midnight) is taken for it: a wake-up
# scheduled for the opening time may land a rounding error early.
EPS_H = 1e-9


@nb.njit(cache=True, inline="always")
def day_of(t):
    """The day (from 0) a time in hours falls on, a rounding error before midnight counting as after it."""
    return int(np.floor((t + EPS_H) / 24.0))


def as_datetime(value: dt.date | dt.datetime, end: bool = False) -> dt.datetime:
    """A date as the datetime it starts at (``end``: the one after it, its end being inclusive);
    a datetime (local time) as it is."""
    if isinstance(value, dt.datetime):
        return value
    base = dt.datetime.combine(value, dt.time())
    return base + dt.timedelta(days=1) if end else base


def hours_since(start: dt.date, when: dt.date | dt.datetime, end: bool = False) -> float:
    """Hours from 00:00 of ``start`` to ``when`` (a date's end, with ``end``)."""
    return (as_datetime(when, end=end) - dt.datetime.combine(start, dt.time())).total_seconds() / 3600.0


def inclusive_span(first: dt.date | None, last: dt.date | None, start: dt.date, days: int) -> tuple[int, int]:
    """The days [lo, hi) of a horizon of ``days`` days from ``start`` that the period from
    ``first`` through ``last`` (inclusive; None: open) covers, cut to the horizon (lo == hi: none)."""
    lo = 0 if first is None else min(max((first - start).days, 0), days)
    hi = days if last is None else min(max((last - start).days + 1, lo), days)
    return lo, hi


@lru_cache(maxsize=256)
def step_days(spans: tuple, start: dt.date, days: int) -> np.ndarray:
    """inclusive_span of each (first, last) period, as rows of a read-only array."""
    out = np.zeros((len(spans), 2), dtype=np.int64)
    for j, (first, last) in enumerate(spans):
        out[j] = inclusive_span(first, last, start, days)
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def calendar_months(start: dt.date, days: int) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each day's calendar month (from 0) over a horizon, read-only, and the months' names (YYYY-MM)."""
    index = np.empty(days, np.int64)
    first = start.year * 12 + start.month - 1
    for d in range(days):
        day = start + dt.timedelta(days=d)
        index[d] = day.year * 12 + day.month - 1 - first
    index.setflags(write=False)
    return index, month_names(start, int(index[-1]) + 1 if days else 1)


def month_names(start: dt.date, n: int) -> tuple[str, ...]:
    """The names (YYYY-MM) of n calendar months from the one a date falls in."""
    first = start.year * 12 + start.month - 1
    return tuple(f"{y:04d}-{m + 1:02d}" for y, m in (divmod(first + k, 12) for k in range(n)))


DAYS_PER_YEAR = 365.0


def per_year(days: float) -> float:
    """Years per ``days``: a cost over that many days times this is a cost a year (the levers'
    costs are a year; a run's waiting cost is over its horizon after the warm-up)."""
    return DAYS_PER_YEAR / days
