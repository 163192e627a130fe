"""How bordersim prints a number: a value, a share, a mean with its interval, a paired difference.

One formatter per kind, so a share reads as a percentage and a difference carries the same
digits and the same rule for its star wherever the command line prints them.
"""

from __future__ import annotations

import math

EXTRA_DIGITS = 4  # at most this many decimals more than asked, to show a small difference


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def number(value: float, digits: int) -> str:
    """A value with thousands separators and `digits` decimals; "-" for none."""
    return "-" if _missing(value) else f"{value:,.{digits}f}"


def percent(share: float, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage: 0.0904 -> "9.0 %"."""
    return "-" if _missing(share) else f"{100 * share:,.{digits}f} %"


def estimate(mean: float, low: float, high: float, digits: int, share: bool = False) -> str:
    """A mean with its interval, "mean [low, high]" (the mean alone where there is no interval);
    a share as percentages."""
    if share:
        return percent(mean, digits) + ("" if _missing(low) else f" [{percent(low, digits)}, {percent(high, digits)}]")
    return number(mean, digits) + ("" if _missing(low) else f" [{number(low, digits)}, {number(high, digits)}]")


def _signed(value: float, digits: int) -> str:
    """A signed value: "0" when it is exactly 0, "~0" when it is not but rounds to 0."""
    if _missing(value):
        return "-"
    if value == 0:
        return "0"
    return "~0" if round(abs(value), digits) == 0 else f"{value:+,.{digits}f}"


def _shows(values, digits: int) -> int:
    """`digits`, or up to EXTRA_DIGITS more, until none of the values that are not 0 prints as 0."""
    d = digits
    while d < digits + EXTRA_DIGITS and any(not _missing(v) and v != 0 and round(abs(v), d) == 0 for v in values):
        d += 1
    return d


def signed(value: float, digits: int) -> str:
    """A signed value with `digits` decimals, or more where it would print as 0 (a difference of
    0.3 crossings is not "+0", nor one of -0.2 "-0"): "0" only when it is 0."""
    return _signed(value, _shows([value], digits))


def difference(mean: float, low: float, high: float, digits: int, share: bool = False) -> str:
    """A paired difference with its 95 % interval, "mean [low, high]", and " *" where the
    interval excludes 0. All three carry the same decimals: `digits`, or up to EXTRA_DIGITS more
    where the difference or a bound of an interval that excludes 0 would print as 0; the star goes
    with the interval as printed, so an interval that still reads as 0 at a bound gets none. A
    share's difference is in percentage points."""
    if share:
        mean, low, high = (v * 100 if not _missing(v) else v for v in (mean, low, high))
    excludes = not _missing(low) and not _missing(high) and (low > 0 or high < 0)
    d = _shows([mean, low, high] if excludes else [mean], digits)
    text = _signed(mean, d) + (" pp" if share and not _missing(mean) else "")
    if not _missing(low):
        text += f" [{_signed(low, d)}, {_signed(high, d)}]"
    if excludes and (round(low, d) > 0 or round(high, d) < 0):
        text += " *"
    return text
