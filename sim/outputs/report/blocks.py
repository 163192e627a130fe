"""What the pages of runs and comparisons share: how a figure, a share and an interval read in a
cell, a summary's row by gate and direction, the tables by month, the warnings a reader should see,
and a plot drawn from a folder's table where its PNG is missing."""

from __future__ import annotations

import datetime as dt
import weakref
from typing import Any

import pandas as pd

from ..findings import ALL, stage_label
from .page import Table


HIGH_UTILISATION = 0.9  # a stage busier than this is near its capacity: the report warns
INTERVALS = ("Two kinds of interval. [low, high] after a mean is its 95 % confidence interval: how sure "
             "the mean over replications is (more replications narrow it). 5–95 % of replications is their "
             "spread: the range in which nine runs of this scenario in ten fall, with input uncertainty and "
             "day-to-day randomness together.")
NBSP = "\u00a0"  # inside a figure, so that a narrow column breaks a cell between a mean and its interval only


def num(value: Any, digits: int = 1) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value):,.{digits}f}"


def percent(value: Any, digits: int = 0) -> str:
    """A share (0 to 1) in per cent."""
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value) * 100:,.{digits}f}{NBSP}%"


def with_ci(row: pd.Series | None, digits: int) -> str:
    """'mean [low, high]' of a summary row."""
    if row is None:
        return "–"
    text = num(row["mean"], digits)
    if pd.notna(row.get("ci_low")) and pd.notna(row.get("ci_high")):
        text += f" [{num(row['ci_low'], digits)},{NBSP}{num(row['ci_high'], digits)}]"
    return text


def spread(row: pd.Series | None, digits: int) -> str:
    if row is None or pd.isna(row.get("p05")):
        return "–"
    return f"{num(row['p05'], digits)}–{num(row['p95'], digits)}"


def gate_names(meta_scenario: dict) -> dict[str, str]:
    names = {g: info.get("name", g) for g, info in (meta_scenario.get("gates") or {}).items()}
    names.update((c, info.get("name", c)) for c, info in (meta_scenario.get("corridors") or {}).items())
    names[ALL] = "all gates"
    return names


def lookup(summary: pd.DataFrame, gate: str, direction: str, metric: str, stage: str = "") -> pd.Series | None:
    """The summary's first row of a gate, direction, metric and stage (all classes), or None."""
    i = _first_rows(summary).get((gate, direction, metric, stage, ""))
    return None if i is None else summary.iloc[i]


_FIRST_ROWS: dict[int, tuple[weakref.ref, dict]] = {}


def _first_rows(summary: pd.DataFrame) -> dict[tuple, int]:
    """Each (gate, direction, metric, stage, class)'s first row in a summary table, found in one
    pass and kept while the table lives (a page looks up some 200 figures in one table; a table
    the report reads is never changed)."""
    hit = _FIRST_ROWS.get(id(summary))
    if hit is not None and hit[0]() is summary:
        return hit[1]
    keys = zip(*(summary[c].tolist() for c in ("gate", "direction", "metric", "stage", "class")))
    rows: dict[tuple, int] = {}
    for i, key in enumerate(keys):
        rows.setdefault(key, i)
    for k in [k for k, (ref, _) in _FIRST_ROWS.items() if ref() is None]:
        del _FIRST_ROWS[k]
    _FIRST_ROWS[id(summary)] = (weakref.ref(summary), rows)
    return rows


REPLICATIONS = ("A replication is one simulation of the whole period, with its own random arrivals, clearance times "
                "and closures and its own draw of every uncertain input; the figures are means over the "
                "replications, and their spread shows what could happen.")


def derived_warnings(meta: dict, scens: list[dict], summaries: list[tuple[str, pd.DataFrame]],
                      names: dict[str, str] | None = None) -> list[str]:
    """The run's own warnings and those a reader should see: a stage near capacity, fitted inputs
    with fewer sets of values than replications."""
    names = names or {}
    out = list(meta.get("warnings") or [])
    reps = meta.get("reps")
    for scen in scens:
        ens = scen.get("ensemble")
        if ens and isinstance(reps, int) and reps > ens["rows"] and not any("parameter sets" in w for w in out):
            out.append(f"{scen['name']}: {reps:,} replications but {ens['rows']:,} sets of fitted inputs: sets are "
                       "reused")
    for label, summary in summaries:
        util = summary[(summary.metric == "utilisation") & (summary["mean"] >= HIGH_UTILISATION)]
        for r in util.itertuples():
            out.append(f"{label + ': ' if label else ''}{names.get(r.gate, r.gate)} {r.direction} "
                       f"{stage_label(r.stage)}: lanes busy {r.mean:.0%} of their open hours: near capacity, queues "
                       "there grow quickly with demand")
    return out


def plot_drawer(name: str, table: pd.DataFrame | None, names: dict[str, str]):
    if table is None:
        return None

    def draw(target):
        from .. import plots

        getattr(plots, name)(table, names, target)

    return draw


def grouped(rows: list[list[Any]], depth: int = 1) -> list[list[Any]]:
    """Rows with their first ``depth`` cells (a gate, a direction) shown only where they change,
    as a reader scans them."""
    out, last = [], None
    for row in rows:
        same = 0
        while last is not None and same < depth and row[:same + 1] == last[:same + 1]:
            same += 1
        out.append([""] * same + row[same:])
        last = row
    return out


# what the tables by month show, both directions (labels and digits: sim.outputs.formats.METRICS)
MONTHLY = ("time_in_system_mean_h", "queue_mean", "waiting_truck_hours")
MONTH_NOTE = ("A month's time in system is that of the vehicles that crossed in it; the number waiting is its "
              "average over the month's hours, and the truck-hours waiting are the hours vehicles spent waiting "
              "within the month. A dash: nothing to average (no vehicle crossed that month, as at a closed "
              "gate).")


def _month_label(month: str) -> str:
    try:
        return dt.date.fromisoformat(f"{month}-01").strftime("%b %Y")
    except ValueError:
        return month


def by_month(table: pd.DataFrame, names: dict[str, str], metric: str, cell, skip=()) -> Table | None:
    """A month per row and a gate per column (all gates last; those in ``skip`` left out), both
    directions: cell(row of the table) in each; None where the table has no such metric (a folder
    written before it)."""
    sel = table[(table.metric == metric) & (table.direction == ALL)]
    if sel.empty:
        return None
    gates = [g for g in dict.fromkeys(sel.gate) if g != ALL and g not in skip] + ([ALL] if (sel.gate == ALL).any()
                                                                                   else [])
    by = {(r.month, r.gate): r for r in sel.itertuples(index=False)}
    rows = [[_month_label(str(month))] + [cell(by[(month, g)]) if (month, g) in by else "–" for g in gates]
            for month in dict.fromkeys(sel.month)]
    heads = [names.get(g, g) if g != ALL else "all gates" for g in gates]
    return Table(["month"] + heads, rows, numeric=set(range(1, len(gates) + 1)))


def month_caption(metric: str) -> str:
    """A table by month's caption: its metric's label, its unit in brackets ("Mean wait (h)")."""
    from ..formats import metric as shown

    label = shown(metric).label
    label = f"{label.removesuffix(' h')} (h)" if label.endswith(" h") else label
    return label[0].upper() + label[1:]
