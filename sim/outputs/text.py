"""The tables bordersim prints: a run's headline figures per gate and direction, a comparison's
differences per gate; each narrow enough for a terminal of 100 columns, with the labels and
decimals of sim.outputs.formats.METRICS (the report's)."""

from __future__ import annotations

import pandas as pd

from ..statistics.metrics import SHARES
from .findings import ALL, QUIET_WHEN_ZERO, UNCHANGED, closures_of, extreme_notes, headline_rows, unchanged
from .formats import Metric, difference, estimate, metric, number, percent, wrapped

# where the printed table's rest is (the CLI prints it under the tables)
ELSEWHERE = ("every metric, each direction, stage and class: compare.csv; by month: compare_monthly.csv; "
             "by day: compare_daily.csv")


LABEL_WIDTH = 24  # a headline's heading, indented by two under its gate


def headline_table(cmp: Comparison, alt: str) -> str:
    """Per gate (both directions), for one alternative: base and alternative means and the
    paired difference with its 95 % interval (* where the printed interval excludes 0; shares as
    percentages, their differences in percentage points) for the headline metrics, a line each
    under the gate's name; the gates where nothing changed named in one line: narrow enough for a
    terminal of 100 columns."""
    same = unchanged(cmp.table, alt)
    rows = list(headline_rows(cmp.table, alt, skip=same))
    cells = [(level(m.base_mean, shown), level(m.alt_mean, shown)) for _g, shown, m in rows]
    width = max([len(c) for pair in cells for c in pair] + [len("alternative")]) + 2
    lines = [f"{'':<{LABEL_WIDTH + 2}}{'base':>{width}}{'alternative':>{width}}  difference [95 % interval]"]
    gate = None
    for (g, shown, m), (b, a) in zip(rows, cells):
        if g != gate:
            lines.append("all gates" if g == ALL else g)
            gate = g
        lines.append(f"  {shown.label:<{LABEL_WIDTH}}{b:>{width}}{a:>{width}}  {shown_difference(m, shown)}")
    if same:
        lines.append(wrapped(f"unchanged: {', '.join(same)} ({UNCHANGED})"))
    return "\n".join(lines)


def level(value: float, shown: Metric) -> str:
    """A scenario's figure of a metric, as the tables show it (a share in per cent)."""
    return percent(value, shown.digits) if shown.share else number(value, shown.digits)


def shown_difference(row, shown: Metric) -> str:
    """A row's paired difference with its interval, as the tables show it (sim.outputs.formats.difference)."""
    return difference(row.diff_mean, row.diff_ci_low, row.diff_ci_high, shown.digits, share=shown.share)


# the run's printed table: (metric, label, decimals, scale), each label sim.outputs.formats.METRICS'; the
# waits with fewer decimals than a comparison's differences need and the truck-hours in
# thousands, so that three columns fit 100
_RUN_DIGITS = {"wait_mean_h": 1, "time_in_system_p95_h": 0}
TABLE_METRICS = [(m, metric(m).label, _RUN_DIGITS.get(m, metric(m).digits), 1) for m in (
    "crossings", "gave_up", "wait_mean_h", "time_in_system_mean_h", "time_in_system_p95_h", "queue_mean")] + [
    ("waiting_truck_hours", "1000 truck-hours waiting", 0, 1e-3),
    ("held_by_limit_share", metric("held_by_limit_share").label, 1, 1)]
RUN_ELSEWHERE = ("arrivals, in system at the end, max queue, waits by stage and class: summary.csv; "
             "by month: monthly.csv; by day: daily.csv")
DIRECTIONS = {"exit": "exit", "entry": "entry", "all": "both directions"}


def summary_table(summary: pd.DataFrame, scenario=None) -> str:
    """The headline metrics per gate (a block each, all gates last), one line each, a column per
    direction and both together, as 'mean [95 % CI]' (shares as percentages); with the scenario,
    a note on any gate whose mean wait is far above the others' and what drives it."""
    main = summary[(summary["stage"] == "") & (summary["class"] == "")]
    directions = [d for d in DIRECTIONS if d in set(main["direction"])]
    cells = dict(main.set_index(["gate", "direction", "metric"]).iterrows())
    rows = []  # (a gate, None) heads its block; (heading, cells) is a metric's line
    for g in dict.fromkeys(main["gate"]):
        rows.append((g, None))
        for metric, head, digits, factor in TABLE_METRICS:
            present = [cells.get((g, d, metric)) for d in directions]
            shown = [m for m in present if m is not None]
            if not shown or (metric in QUIET_WHEN_ZERO and all(m["mean"] == 0 for m in shown)):
                continue
            rows.append((head, ["-" if m is None else estimate(m["mean"] * factor, m["ci_low"] * factor,
                                                                m["ci_high"] * factor, digits, metric in SHARES)
                                for m in present]))
    widths = [max([len(DIRECTIONS[d])] + [len(r[1][i]) for r in rows if r[1]]) + 1 for i, d in enumerate(directions)]
    lines = [" " * 26 + "".join(f"{DIRECTIONS[d]:>{w}}" for d, w in zip(directions, widths))]
    for head, row in rows:
        lines.append(("all gates" if head == "all" else head) if row is None else
                     f"  {head:<24}" + "".join(f"{c:>{w}}" for c, w in zip(row, widths)))
    lines.append(wrapped(f"more: {RUN_ELSEWHERE}"))
    if scenario is None:
        return "\n".join(lines)
    names = {g: gate.name for g, gate in scenario.nominal.gates.items()}
    notes = extreme_notes(summary, names, closures_of(scenario.nominal))
    return "\n".join(lines + [wrapped(f"note: {n}") for n in notes])


def timings_line(result, written_s: float) -> str:
    """Where a run's time went (``bordersim run --timings``): the mean CPU of a replication by
    phase, in the workers' threads, the plan's compiling, this process's CPU while the
    replications ran, and the wall time of the replications and of writing the results."""
    phases = result.cpu_by_phase()
    parts = " + ".join(f"{name} {ms:.2f}" for name, ms in phases.items())
    where = ("in this process" if result.workers == 1
             else f"in {result.workers} workers; this process meanwhile {result.collect_cpu_s:.2f} s of CPU")
    return (f"timings: CPU per replication (ms, mean of {result.reps:,}): {parts} = {sum(phases.values()):.2f}; "
            f"the plan compiled once in {result.compile_s * 1000:.0f} ms; replications {result.wall_s:.2f} s "
            f"wall ({where}); writing {written_s:.2f} s")
