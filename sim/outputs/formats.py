"""How bordersim prints a number: a value, a share, a mean with its interval, a paired difference.

One formatter per kind, and one table of what each metric is called and how many decimals it
shows (METRICS), so a share reads as a percentage and a difference carries the same label, the
same digits and the same rule for its star in the printed tables and in the report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

EXTRA_DIGITS = 4  # at most this many decimals more than asked, to show a small difference
WIDTH = 100  # columns of the printed text


_UNIT = re.compile(r" (%|pp|h)(?=[\s\]),;*]|$)")  # a unit after its number


def wrapped(text: str, width: int = WIDTH) -> str:
    """A printed line cut into lines of at most ``width`` columns, the later ones indented."""
    import textwrap

    # a unit stays with its number ("51.7 %" is never cut after 51.7): textwrap breaks at ASCII
    # spaces only, so the space before a unit is a no-break one while the line is filled
    text = _UNIT.sub("\u00a0\\1", text)
    out = textwrap.fill(text, width, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)
    return out.replace("\u00a0", " ")


@dataclass(frozen=True)
class Metric:
    """How a metric is shown: its label (a row's or column's heading, unit last, at most 24
    characters so the printed tables keep their width) and the decimals of its figures (a
    difference carries up to EXTRA_DIGITS more where it needs them)."""

    label: str
    digits: int
    share: bool = False  # a share: printed in per cent, its difference in percentage points
    scale: float = 1.0  # the figure as shown is value x scale (VND in billions: 1e-9, its label "VND bn")

    def unit(self, value: float) -> float:
        """A value in the unit its label names (VND bn for VND)."""
        return value * self.scale


METRICS = {
    "wait_mean_h": Metric("mean wait h", 2),
    "time_in_system_mean_h": Metric("mean time in system h", 1),
    "time_in_system_p95_h": Metric("95 % crossed within h", 1),
    "queue_mean": Metric("mean number waiting", 1),
    "waiting_truck_hours": Metric("truck-hours waiting", 0),
    "crossings": Metric("crossings", 0),
    "crossings_per_day": Metric("crossings per day", 1),
    "gave_up": Metric("gave up waiting", 0),
    "queue_max": Metric("most waiting at once", 0),
    "held_by_limit_share": Metric("held by the daily limit", 1, share=True),
    "corridor_share": Metric("share of its corridor", 1, share=True),
    "diverted_out": Metric("left the province", 0),
    # the costs of waiting (sim.statistics.metrics.COST_METRICS), in billions of đồng
    "cost_total_vnd": Metric("cost of waiting VND bn", 2, scale=1e-9),
    "cost_time_vnd": Metric("trucks' time VND bn", 2, scale=1e-9),
    "cost_parking_vnd": Metric("parking VND bn", 2, scale=1e-9),
    "cost_reefer_vnd": Metric("refrigeration VND bn", 2, scale=1e-9),
    "cost_spoilage_vnd": Metric("spoilage VND bn", 2, scale=1e-9),
    "cost_gave_up_vnd": Metric("trips given up VND bn", 2, scale=1e-9),
    "cost_diverted_vnd": Metric("sent to Lạng Sơn VND bn", 2, scale=1e-9),
}


def metric(name: str) -> Metric:
    """How a metric is shown: METRICS' entry, or its own name with two decimals (a metric no
    table heads, such as one a scenario's promise names)."""
    return METRICS.get(name, Metric(name, 2, name.endswith("_share")))


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


def _shows(values, digits: int, distinct=()) -> int:
    """`digits`, or up to EXTRA_DIGITS more, until none of the values that are not 0 prints as 0
    and each pair of ``distinct`` (two values that differ) prints as two figures."""
    def unclear(d: int) -> bool:
        return (any(not _missing(v) and v != 0 and round(abs(v), d) == 0 for v in values)
                or any(not _missing(a) and not _missing(b) and a != b and round(a, d) == round(b, d)
                       for a, b in distinct))

    d = digits
    while d < digits + EXTRA_DIGITS and unclear(d):
        d += 1
    return d


def signed(value: float, digits: int) -> str:
    """A signed value with `digits` decimals, or more where it would print as 0 (a difference of
    0.3 crossings is not "+0", nor one of -0.2 "-0"): "0" only when it is 0."""
    return _signed(value, _shows([value], digits))


def _difference_digits(mean: float, low: float, high: float, digits: int) -> int:
    """The decimals a difference and its interval share (see difference)."""
    excludes = not _missing(low) and not _missing(high) and (low > 0 or high < 0)
    return _shows([mean, low, high] if excludes else [mean], digits, [(mean, low), (mean, high)])


def _points(values, share: bool):
    """A share's figures in percentage points (others as they are)."""
    return [v * 100 if share and not _missing(v) else v for v in values]


def difference(mean: float, low: float, high: float, digits: int, share: bool = False) -> str:
    """A paired difference with its 95 % interval, "mean [low, high]", and " *" where the
    interval excludes 0. All three carry the same decimals: `digits`, or up to EXTRA_DIGITS more
    where the difference or a bound of an interval that excludes 0 would print as 0, or where a
    bound that differs from the mean would print as the mean (-0.32 [-0.35, -0.28] is not
    "-0.3 [-0.4, -0.3]"); the star goes with the interval as printed, so an interval that still
    reads as 0 at a bound gets none. A share's difference is in percentage points."""
    mean, low, high = _points((mean, low, high), share)
    d = _difference_digits(mean, low, high, digits)
    text = _signed(mean, d) + (" pp" if share and not _missing(mean) else "")
    if not _missing(low):
        text += f" [{_signed(low, d)}, {_signed(high, d)}]"
    excludes = not _missing(low) and not _missing(high) and (low > 0 or high < 0)
    if excludes and (round(low, d) > 0 or round(high, d) < 0):
        text += " *"
    return text


def difference_mean(mean: float, low: float, high: float, digits: int, share: bool = False) -> str:
    """A paired difference alone, with the decimals difference() gives it beside its interval (a
    sentence quoting a table's figure quotes it as the table prints it); a share's in points."""
    mean, low, high = _points((mean, low, high), share)
    return _signed(mean, _difference_digits(mean, low, high, digits))
