"""What a planner should be told beside the numbers: a gate whose figures are far from the
others' (Bắc Phong Sinh, suspended for months in 2022, has a mean wait some twenty times the
other gates'), what drives it (a long closure, the stage or the far side's acceptance where the
waiting happens), and the all-gate figure without it. Shared by the printed table and the report;
computed from a summary table (summary.csv) and the gates' fixed closures only.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from ..base.days import per_year
from ..statistics.metrics import COST_METRICS, COST_PARTS, CORRIDOR_METRICS, DIVERTED_COST
from .formats import METRICS, difference, difference_mean, estimate, metric, number, percent

ALL = "all"
EXTREME = 3.0  # a gate's mean wait at least this many times the median of the other gates' is extreme
LONG_CLOSURE_DAYS = 30  # a fixed closure this long explains waits of weeks


def gate_rows(table: pd.DataFrame) -> pd.DataFrame:
    """A table's rows of gates and of all gates: its corridors' own rows left out (the metrics
    sim.statistics.metrics.CORRIDOR_METRICS, whose gate column holds a corridor's id; a table
    without metrics has none)."""
    return table[~table["metric"].isin(CORRIDOR_METRICS)] if "metric" in table else table


def main_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows of whole groups of gates (no stage, no class; no corridor's own)."""
    summary = gate_rows(summary)
    return summary[(summary["stage"].fillna("") == "") & (summary["class"].fillna("") == "")]


def gate_value(summary: pd.DataFrame, metric: str, direction: str = ALL) -> pd.Series:
    """A metric's mean per gate (the totals' row 'all' left out), in the summary's gate order."""
    m = main_rows(summary)
    sel = m[(m["metric"] == metric) & (m["direction"] == direction) & (m["gate"] != ALL)]
    return sel.set_index("gate")["mean"]


def extreme_gates(summary: pd.DataFrame, factor: float = EXTREME) -> list[str]:
    """Gates whose mean wait is at least ``factor`` times the median of the other gates' (with
    three gates or more, so that 'the others' says something)."""
    waits = gate_value(summary, "wait_mean_h").dropna()
    if len(waits) < 3:
        return []
    out = []
    for gate, wait in waits.items():
        others = waits.drop(gate).median()
        if others > 0 and wait >= factor * others:
            out.append(gate)
    return out


def wait_without(summary: pd.DataFrame, left_out: list[str], direction: str = ALL) -> float:
    """The all-gate mean wait without some gates: the other gates' mean waits weighted by their
    crossings (exact where there is no warm-up, as waits count the vehicles that crossed)."""
    waits = gate_value(summary, "wait_mean_h", direction)
    crossings = gate_value(summary, "crossings", direction)
    keep = [g for g in waits.index if g not in left_out and pd.notna(waits[g]) and crossings.get(g, 0) > 0]
    total = sum(crossings[g] for g in keep)
    return float(sum(waits[g] * crossings[g] for g in keep) / total) if total else float("nan")


def stage_label(stage: str) -> str:
    """A stage as a reader says it: the far side's acceptance (its daily limit) by that name,
    a stage's name with spaces."""
    return "far side's acceptance" if stage == "acceptance" else stage.replace("_", " ")


def wait_shares(summary: pd.DataFrame, gate: str, direction: str = ALL) -> list[tuple[str, float, float]]:
    """Where the waiting happens at a gate: (stage or 'acceptance', mean wait h, share of the
    total wait), largest first."""
    s = summary[(summary["gate"] == gate) & (summary["direction"] == direction) & (summary["metric"] == "wait_mean_h")
                & (summary["class"].fillna("") == "") & (summary["stage"].fillna("") != "")]
    total = s["mean"].sum()
    rows = [(str(r.stage), float(r.mean), float(r.mean / total) if total > 0 else float("nan"))
            for r in s.itertuples() if pd.notna(r.mean)]
    return sorted(rows, key=lambda r: -r[1])


@dataclass(frozen=True)
class Closure:
    start: str
    end: str
    days: float
    reason: str


def closures_of(model) -> dict[str, list[Closure]]:
    """Each gate's fixed closures (a ScenarioModel's), with their length in days."""
    out = {}
    for gid, gate in model.gates.items():
        rows = []
        for c in gate.closures:
            start = c.start if isinstance(c.start, dt.datetime) else dt.datetime.combine(c.start, dt.time())
            end = c.end if isinstance(c.end, dt.datetime) else dt.datetime.combine(c.end, dt.time()) + dt.timedelta(1)
            rows.append(Closure(str(c.start), str(c.end), (end - start).total_seconds() / 86400, c.reason or ""))
        out[gid] = rows
    return out


def extreme_notes(summary: pd.DataFrame, names: dict[str, str] | None = None,
                  closures: dict[str, list[dict | Closure]] | None = None) -> list[str]:
    """A sentence per extreme gate (what drives its figure), and one with the all-gate mean wait
    without those gates; none when no gate stands out."""
    names = names or {}
    gates = extreme_gates(summary)
    if not gates:
        return []
    waits = gate_value(summary, "wait_mean_h")
    notes = []
    for g in gates:
        median = waits.drop(g).median()
        text = (f"{names.get(g, g)}: mean wait {waits[g]:,.1f} h, {waits[g] / median:,.0f} times the other gates' "
                f"median ({median:,.1f} h).")
        long = [c if isinstance(c, Closure) else Closure(**c) for c in (closures or {}).get(g, [])]
        long = [c for c in long if c.days >= LONG_CLOSURE_DAYS]
        if long:
            spans = "; ".join(f"{c.start} to {c.end}, {c.days:,.0f} days" + (f" ({c.reason})" if c.reason else "")
                              for c in long)
            text += f" It was closed {spans}: vehicles that came while it was closed waited for it to reopen."
        shares = wait_shares(summary, g)
        if shares:
            text += " Its wait: " + ", ".join(f"{stage_label(stage)} {share:.0%}"
                                              for stage, _h, share in shares[:2]) + "."
        notes.append(text)
    label = ", ".join(names.get(g, g) for g in gates)
    all_wait = main_rows(summary)
    all_wait = all_wait[(all_wait.gate == ALL) & (all_wait.direction == ALL) & (all_wait.metric == "wait_mean_h")]
    with_text = f"{all_wait['mean'].iloc[0]:,.1f} h with it, " if len(all_wait) else ""
    notes.append(f"All gates' mean wait: {with_text}{wait_without(summary, gates):,.1f} h without {label} "
                 "(the other gates weighted by their crossings).")
    return notes


# ------------------------------------------------------------------ a comparison's differences

# what the printed table and the report show per gate, the metrics a planner reads first (their
# labels and digits: sim.outputs.formats.METRICS)
HEADLINE = ["wait_mean_h", "time_in_system_mean_h", "time_in_system_p95_h", "queue_mean", "waiting_truck_hours",
            "crossings", "gave_up", "held_by_limit_share", "cost_total_vnd"]
QUIET_WHEN_ZERO = {"gave_up"}  # left out of the printed table where nobody gave up in either scenario
UNCHANGED = "its own figures the same, replication by replication"  # what a gate of unchanged() is


def headline_rows(table: pd.DataFrame, alt: str, metrics=HEADLINE, skip=()):
    """(gate, how it is shown, row of compare.csv) of one alternative's headline metrics, both
    directions together: per gate first, all gates last; the gates in ``skip`` left out."""
    t = gate_rows(table)
    t = t[(t.scenario == alt) & (t.direction == "all") & (t.stage == "") & (t["class"] == "")]
    for g in [g for g in dict.fromkeys(t.gate) if g != ALL and g not in skip] + [ALL]:
        for metric in metrics:
            m = t[(t.gate == g) & (t.metric == metric)]
            if m.empty or (metric in QUIET_WHEN_ZERO and m.iloc[0].base_mean == 0 and m.iloc[0].alt_mean == 0):
                continue
            yield g, METRICS[metric], m.iloc[0]


def change_words(m: pd.Series, interval: bool = False, before_unit: str = " ") -> str:
    """A row of compare.csv's paired difference in words, as its table prints it: "mean wait
    -0.63 h", "held by the daily limit -0.5 percentage points"; with ``interval``, its 95 %
    interval after the unit and a * where that excludes 0: "mean time in system -7.3 h
    [-12.5, -2.1] *". ``before_unit``: the space between the figure and an hour's unit (a
    page's no-break space)."""
    how = metric(str(m.metric))
    figures = (how.unit(x) for x in (m.diff_mean, m.diff_ci_low, m.diff_ci_high))  # VND in billions
    text = (difference if interval else difference_mean)(*figures, how.digits, how.share)
    figure, bracket, rest = text.partition(" [")
    figure = figure.removesuffix(" pp")
    if how.share:
        words = f"{how.label} {figure} percentage points"
    elif how.label.endswith(" h"):
        words = f"{how.label.removesuffix(' h')} {figure}{before_unit}h"
    elif how.label.endswith(" VND bn"):
        words = f"{how.label.removesuffix(' VND bn')} {figure}{before_unit}VND{before_unit}bn"
    else:
        words = f"{how.label} {figure}"
    return words + (f" [{rest}" if bracket else "")


def unchanged(table: pd.DataFrame, alt: str) -> list[str]:
    """The gates (not all gates) where every figure of their own in a differences table
    (compare.csv, compare_monthly.csv) is the same in the alternative as in the base, replication
    by replication: each difference and both bounds of its interval exactly 0 and the two means
    equal, or no figure in either scenario (a wait where nobody crossed). A gate's share of its
    corridor is not its own figure (it moves with the other gates' crossings) and is shown on the
    corridor's line."""
    t = gate_rows(table)
    t = t[(t.scenario == alt) & (t.gate != ALL) & (t.metric != "corridor_share")]
    zero = ((t.diff_mean == 0) & (t.diff_ci_low == 0) & (t.diff_ci_high == 0) & (t.base_mean == t.alt_mean))
    none = t.diff_mean.isna() & t.base_mean.isna() & t.alt_mean.isna()
    same = (zero | none).groupby(t.gate, sort=False).all()
    return [g for g, yes in same.items() if yes]


@dataclass(frozen=True)
class Displaced:
    """At a gate and direction, stages whose waits fell and others whose waits rose, each clearly
    (its interval excludes 0): the wait saved at the first went, in part, to the second."""

    gate: str
    direction: str
    fell: list[tuple[str, pd.Series]]  # (stage, its row of compare.csv), largest fall first
    rose: list[tuple[str, pd.Series]]  # largest rise first

    @property
    def taken_up(self) -> float:
        """The share of the fallen waits that the risen ones take up (above 1: more than all)."""
        return sum(r.diff_mean for _s, r in self.rose) / -sum(r.diff_mean for _s, r in self.fell)


def displaced_waits(table: pd.DataFrame, alt: str) -> list[Displaced]:
    """Where the saved wait went: per gate and direction (a vehicle passes its direction's
    stages), the stages whose mean wait (compare.csv's wait_mean_h by stage) clearly fell and
    those whose wait clearly rose, where both happen."""
    t = table[(table.scenario == alt) & (table.metric == "wait_mean_h") & (table.stage != "")
              & (table["class"] == "") & (table.gate != ALL) & (table.direction != ALL)
              & table.excludes_zero.astype(bool)]
    out = []
    for (gate, direction), rows in t.groupby(["gate", "direction"], sort=False):
        rows = rows.sort_values("diff_mean", key=abs, ascending=False)
        fell = [(str(r.stage), r) for _i, r in rows.iterrows() if r.diff_mean < 0]
        rose = [(str(r.stage), r) for _i, r in rows.iterrows() if r.diff_mean > 0]
        if fell and rose:
            out.append(Displaced(str(gate), str(direction), fell, rose))
    return out


# ------------------------------------------------------------------ corridors


def corridors_of(model) -> dict[str, dict]:
    """Each corridor of a ScenarioModel: its name and gates (as metadata.json records them)."""
    return {cid: {"name": c.name or cid, "gates": list(c.gates)} for cid, c in model.corridors.items()}


def _main(table: pd.DataFrame, gate: str, direction: str, metric_: str) -> pd.Series | None:
    """A table's row of a gate (or corridor), direction and metric, all stages and classes."""
    sel = table[(table["gate"] == gate) & (table["direction"] == direction) & (table["metric"] == metric_)
                & (table["stage"].fillna("") == "") & (table["class"].fillna("") == "")]
    return None if sel.empty else sel.iloc[0]


def corridor_lines(summary: pd.DataFrame, corridors: dict[str, dict], names: dict[str, str]) -> list[str]:
    """A sentence per corridor: where its traffic went, each gate's share of the corridor's
    crossings by direction (the mean with its 95 % interval), and the trucks that left the
    province instead."""
    share, out = METRICS["corridor_share"], METRICS["diverted_out"]
    lines = []
    for cid, info in corridors.items():
        parts = []
        for d in ("exit", "entry"):
            rows = [(g, r) for g in info["gates"] if (r := _main(summary, g, d, "corridor_share")) is not None]
            left = _main(summary, cid, d, "diverted_out")
            if not rows or left is None:
                continue
            gates = ", ".join(f"{names.get(g, g)} {estimate(r['mean'], r['ci_low'], r['ci_high'], share.digits, True)}"
                              for g, r in rows)
            parts.append(f"{d}: {gates} of the corridor's crossings, "
                         f"{estimate(left['mean'], left['ci_low'], left['ci_high'], out.digits)} left the province")
        if parts:
            lines.append(f"{info['name']}: {'; '.join(parts)}.")
    return lines


def corridor_changes(table: pd.DataFrame, alt: str, corridors: dict[str, dict], names: dict[str, str]) -> list[str]:
    """A sentence per corridor and direction of a comparison: where the alternative moved its
    traffic, each gate's share of the corridor's crossings in the base and the alternative with
    the paired difference (compare.csv), and the change in the trucks that left the province."""
    t = table[table.scenario == alt]
    lines = []
    for cid, info in corridors.items():
        for d in ("exit", "entry"):
            rows = [(g, r) for g in info["gates"] if (r := _main(t, g, d, "corridor_share")) is not None]
            left = _main(t, cid, d, "diverted_out")
            if not rows or left is None:
                continue
            parts = [f"{names.get(g, g)} {_moved(r, 'corridor_share')}" for g, r in rows]
            parts.append(f"left the province {_moved(left, 'diverted_out')}")
            lines.append(f"{info['name']}, {d}: " + "; ".join(parts) + ".")
    return lines


def _moved(r: pd.Series, metric_: str) -> str:
    """Base → alternative and the paired difference, as the tables print them."""
    how = metric(metric_)

    def level(x: float) -> str:
        return percent(x, how.digits) if how.share else number(how.unit(x), how.digits)

    return (f"{level(r.base_mean)} → {level(r.alt_mean)} "
            f"({difference(*(how.unit(x) for x in (r.diff_mean, r.diff_ci_low, r.diff_ci_high)), how.digits, how.share)})")


# ------------------------------------------------------------------ costs


def cost_shares(table: pd.DataFrame, gate: str = ALL, direction: str = ALL, value: str = "mean"
                ) -> list[tuple[str, float, float]]:
    """The components of a group's cost of waiting (COST_PARTS): (metric, its figure, its share
    of the total, cost_total_vnd), in their order; [] where the table has no costs. ``value``:
    the column read (``mean`` of a summary, ``diff_mean`` of compare.csv's rows)."""
    total = _main(table, gate, direction, COST_METRICS[0])
    if total is None:
        return []
    out = []
    for m in COST_PARTS:
        row = _main(table, gate, direction, m)
        if row is not None:
            out.append((m, float(row[value]), float(row[value] / total[value]) if total[value] else float("nan")))
    return out


def cost_lines(summary: pd.DataFrame, names: dict[str, str] | None = None, days: float | None = None) -> list[str]:
    """What waiting cost all gates (the mean with its 95 % interval, VND bn; over ``days``, the
    horizon's days after its warm-up, with what that is a year, where given) and each
    component's share of it; and, per corridor, its trucks that left the province, priced.
    None where the summary has no costs."""
    total = _main(summary, ALL, ALL, COST_METRICS[0])
    if total is None:
        return []
    how = METRICS[COST_METRICS[0]]
    parts = ", ".join(f"{METRICS[m].label.removesuffix(' VND bn')} {share:.0%}"
                      for m, _v, share in cost_shares(summary) if pd.notna(share))
    period = (f" over the {days:g} days after the warm-up (about VND "
              f"{number(how.unit(total['mean']) * per_year(days), how.digits)} bn a year)" if days else "")
    lines = [f"waiting cost all gates VND {estimate(*(how.unit(total[k]) for k in ('mean', 'ci_low', 'ci_high')), how.digits)}"
             f" bn{period}: {parts}."]
    diverted = summary[(summary["metric"] == DIVERTED_COST) & (summary["direction"] == ALL)
                       & (summary["class"].fillna("") == "")]
    out = METRICS[DIVERTED_COST]
    for r in diverted.itertuples():
        if r.mean == 0 and r.ci_high == 0:  # nobody left in any replication: no line of zeros
            continue
        lines.append(f"the trucks that left the province from {(names or {}).get(r.gate, r.gate)} cost VND "
                     f"{estimate(out.unit(r.mean), out.unit(r.ci_low), out.unit(r.ci_high), out.digits)} bn more "
                     "(not in the gates' cost).")
    return lines
