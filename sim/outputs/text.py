"""The tables bordersim prints: a run's headline figures per gate and direction, a comparison's
differences per gate; each narrow enough for a terminal of 100 columns, with the labels and
decimals of sim.outputs.formats.METRICS (the report's); a sweep's summary, its most influential
inputs per output and what it took from a fitted ensemble (the report and the plots say the
intervals alike: interval_words)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ..experiments.sensitivity import CONF_LEVEL, RANKED_INDEX, interval_level, outside_range, ranking, tested_inputs
from ..experiments.sweep import SweepResult
from ..statistics.metrics import SHARES
from .findings import (ALL, QUIET_WHEN_ZERO, UNCHANGED, closures_of, corridor_changes, corridor_lines, corridors_of,
                       cost_lines, extreme_notes, gate_rows, headline_rows, unchanged)
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


def corridor_moves(cmp: Comparison, alt: str) -> str:
    """Where an alternative moved the traffic of each corridor the scenarios have, a line per
    corridor and direction (sim.outputs.findings.corridor_changes); "" where none has one."""
    corridors = {cid: c for s in cmp.scenarios for cid, c in corridors_of(s.nominal).items()}
    return "\n".join(wrapped(f"corridor {line}") for line in corridor_changes(cmp.table, alt, corridors, {}))


def level(value: float, shown: Metric) -> str:
    """A scenario's figure of a metric, as the tables show it (a share in per cent)."""
    return percent(value, shown.digits) if shown.share else number(shown.unit(value), shown.digits)


def shown_difference(row, shown: Metric) -> str:
    """A row's paired difference with its interval, as the tables show it (sim.outputs.formats.difference)."""
    return difference(*(shown.unit(x) for x in (row.diff_mean, row.diff_ci_low, row.diff_ci_high)), shown.digits,
                      share=shown.share)


# the run's printed table: (metric, label, decimals, scale), each label sim.outputs.formats.METRICS'; the
# waits with fewer decimals than a comparison's differences need and the truck-hours in
# thousands, so that three columns fit 100
_RUN_DIGITS = {"wait_mean_h": 1, "time_in_system_p95_h": 0, "cost_total_vnd": 0}
TABLE_METRICS = [(m, metric(m).label, _RUN_DIGITS.get(m, metric(m).digits), 1) for m in (
    "crossings", "gave_up", "wait_mean_h", "time_in_system_mean_h", "time_in_system_p95_h", "queue_mean")] + [
    ("waiting_truck_hours", "1000 truck-hours waiting", 0, 1e-3),
    ("held_by_limit_share", metric("held_by_limit_share").label, 1, 1),
    ("cost_total_vnd", metric("cost_total_vnd").label, _RUN_DIGITS["cost_total_vnd"], metric("cost_total_vnd").scale)]
RUN_ELSEWHERE = ("arrivals, in system at the end, max queue, waits and costs by stage and class: summary.csv; "
             "by month: monthly.csv; by day: daily.csv")
DIRECTIONS = {"exit": "exit", "entry": "entry", "all": "both directions"}


def summary_table(summary: pd.DataFrame, scenario=None) -> str:
    """The headline metrics per gate (a block each, all gates last), one line each, a column per
    direction and both together, as 'mean [95 % CI]' (shares as percentages); with the scenario,
    a note on any gate whose mean wait is far above the others' and what drives it."""
    main = gate_rows(summary)
    main = main[(main["stage"] == "") & (main["class"] == "")]
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
    days = scenario.nominal.horizon.priced_days if scenario is not None else None
    lines += [wrapped(f"costs: {line}") for line in cost_lines(summary, days=days)]
    if scenario is None:
        return "\n".join(lines)
    names = {g: gate.name for g, gate in scenario.nominal.gates.items()}
    notes = extreme_notes(summary, names, closures_of(scenario.nominal))
    corridors = corridor_lines(summary, corridors_of(scenario.nominal), {})
    return "\n".join(lines + [wrapped(f"note: {n}") for n in notes] + [wrapped(f"corridor {c}") for c in corridors])


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


# ------------------------------------------------------------------ a sweep

RANKING_HEADS = {
    "sobol": "Sobol total index ST and first-order S1",
    "morris": "Morris mu* (mean |effect|)",
    "grid": "main effect (the range of the output's mean over the parameter's levels, the others' levels "
            "averaged over; no interval)",
    "lhs": "Spearman's rank correlation rho with the output (ranked by |rho|)",
}
NOT_SIGNIFICANT = "not significant"  # the printed mark of an input whose interval reaches 0


def interval_words(kind: str, tested: int) -> str:
    """How a design's intervals are read, in a few words: their level, corrected for the inputs
    tested (sim.experiments.sensitivity.interval_level), kept within each index's range."""
    if kind == "grid":
        return ""
    level = f"{100 * interval_level(tested):.4g} %"
    together = (f" ({100 * CONF_LEVEL:g} % for the {tested} inputs together, Bonferroni)" if tested > 1 else "")
    within = {"sobol": ", cut to [0, 1]", "morris": ", cut at 0"}.get(kind, "")
    return f"with {level} intervals{together}{within}"


def sweep_report(result: SweepResult, top: int = 5) -> str:
    """What the CLI prints: the sweep, where it went, what it took from a fitted ensemble, and
    per output its most influential parameters (Sobol ST and S1, Morris mu*, a grid's main
    effects or a hypercube's Spearman rho, with their intervals where the measure has one;
    those whose interval reaches 0 marked not significant)."""
    d = result.design
    lines = [f"sweep of {result.scenario.name}: {d.kind} design, {d.points} points x {result.reps} replications "
             f"(seed {result.seed}, engine {result.engine}), {result.workers} workers ({result.scheduler}), "
             f"{result.wall_s:.1f} s; {result.computed} points run now, {result.resumed} found done"]
    lines += ensemble_lines(result.ensemble)
    sens = result.sensitivity
    if sens is not None and not sens.empty:
        words = interval_words(d.kind, tested_inputs(d))
        mark = f"; '{NOT_SIGNIFICANT}': its interval reaches 0" if words else ""
        lines.append(f"most influential parameters, {RANKING_HEADS[d.kind]}{', ' + words if words else ''}{mark}:")
        for o in result.outputs:
            r = ranking(sens, o.gate, o.metric)
            if r.empty:
                continue
            lines.append(f"  {o.metric} @ {o.gate}:")
            for _, row in r.head(top).iterrows():
                lines.append(f"    {int(row['rank']):>2}. {row.param}  {_ranking_stats(d.kind, row)}")
    if result.out is not None:
        out = Path(result.out)
        files = (["sweep.parquet", "sweep.csv"] + (["sensitivity.csv"] if sens is not None else [])
                 + (["report.html"] if (out / "report.html").exists() else [])
                 + (["plots"] if any(out.glob("*.png")) else []))
        lines.append(f"written to {result.out}/ ({', '.join(files)})")
    return "\n".join(lines)


def ensemble_lines(use: Mapping | None, limit: int | None = 3) -> list[str]:
    """What a sweep took from a fitted ensemble (sim.experiments.sweep.ensemble_use), as printed
    lines, each naming at most ``limit`` inputs (None: all)."""
    if not use:
        return []
    out = [f"fitted ensemble {use['file']} ({use['parameter_sets']} parameter sets): replication i takes the same "
           "set at every point"]
    for key, what in (("kept", "from its parameter sets, not swept"),
                      ("fitted_range", "swept over its 5-95 % range, not the prior"),
                      ("replaced", "swept over --param values instead of its")):
        names = use.get(key) or []
        if names:
            cut = len(names) if limit is None else limit
            shown = ", ".join(names[:cut]) + (f" and {len(names) - cut} more (metadata.json lists them)"
                                              if len(names) > cut else "")
            out.append(f"  {len(names)} input{'s' if len(names) > 1 else ''} {what}: {shown}")
    return out


def _ranking_stats(kind: str, row: pd.Series) -> str:
    """One parameter's indices in a printed ranking (a row of sim.experiments.sensitivity.ranking): each
    with its interval, an estimate outside its index's range said to be the estimator's noise,
    and the mark of one whose ranked index's interval reaches 0."""

    def shown(index: str, label: str, fmt: str) -> str:
        est = row[index]
        text = f"{label} {est:{fmt}} [{row[index + '_low']:{fmt}}, {row[index + '_high']:{fmt}}]"
        where = outside_range(index, est)
        return text + (f" ({where}: the estimator's noise)" if where else "")

    if kind == "sobol":
        text = f"{shown('ST', 'ST', '.3f')}  {shown('S1', 'S1', '.3f')}"
    elif kind == "morris":
        text = f"{shown('mu_star', 'mu*', '.4g')}  sigma {row.sigma:.4g}"
    elif kind == "grid":
        return f"main effect {row.main_effect:.4g}"
    elif pd.isna(row.get("spearman")):
        return "rho – (the parameter has one value)"
    elif pd.isna(row.get("spearman_low")):
        return f"rho {row.spearman:.3f} (no interval: too few points)"
    else:
        text = shown("spearman", "rho", ".3f")
    significant = row.get(f"{RANKED_INDEX[kind]}_significant")
    return text + (f"  {NOT_SIGNIFICANT}" if pd.notna(significant) and not significant else "")


def vnd(value: float) -> str:
    """A cost in VND as printed and reported: billions (and millions below one billion)."""
    if not pd.notna(value):
        return "–"
    return f"{value / 1e9:,.2f} bn VND" if abs(value) >= 1e9 else f"{value / 1e6:,.1f} M VND"


def evidence_value(quantity: str, value: float) -> str:
    """A value of evidence.csv: a cost in VND, any other measure with four significant digits."""
    return vnd(value) if quantity.endswith("vnd_per_year") or "cost" in quantity and "vnd" in quantity \
        else f"{value:.4g}"


def lever_cost_spread(row) -> str:
    """'; LOW to HIGH with every cost at ...' for a trial's row whose levers' cost has bounds
    (lever_cost_vnd_per_year_low, _high) apart; '' where its costs are numbers."""
    low, high = row.get("lever_cost_vnd_per_year_low"), row.get("lever_cost_vnd_per_year_high")
    return (f"; {vnd(low)} to {vnd(high)} with every cost at the low or the high end of its range"
            if pd.notna(low) and pd.notna(high) and high > low else "")


def optimise_report(result) -> str:
    """What the CLI prints after an optimisation: the trials, the recommended levers and what they
    cost, and the evidence (fresh replications, paired against the scenario as given)."""
    s = result.setup
    t = result.trials
    lines = [wrapped(f"{s.scenario.name}: {len(t)} trials of {s.reps} replications on common random numbers "
                     f"(objective {s.objective.label}; {int(t['feasible'].sum())} meet "
                     f"{'; '.join(c.label for c in s.constraints) or 'no constraint'}); "
                     f"{result.computed} run now, {result.resumed} found done; {result.wall_s:.1f} s")]
    held = [lid for lid in s.scenario.nominal.levers if lid not in s.space.levers]
    if held:
        lines.append(wrapped(f"levers searched: {', '.join(s.space.levers)}; held at their base: {', '.join(held)}"))
    lines.append(f"Pareto front: {len(result.front)} trials (front.csv)")
    if result.recommended is None:
        lines.append("no recommendation: no trial meets every constraint")
    else:
        r = result.recommended
        levers = ", ".join(f"{lid} = {r[lid]:.4g}" if isinstance(r[lid], float) else f"{lid} = {r[lid]}"
                           for lid in s.space.levers)  # a real lever to 4 digits (trials.csv has it whole)
        lines.append(wrapped(f"recommended (trial {int(r['trial'])}): {levers}; levers' cost "
                             f"{vnd(r['lever_cost_vnd_per_year'])} a year (capital {vnd(r['lever_capital_vnd_per_year'])}, "
                             f"operating {vnd(r['lever_operating_vnd_per_year'])}{lever_cost_spread(r)})"))
        lines.append("evidence on fresh replications (recommended - as given, paired, with 95 % intervals):")
        for _, e in result.evidence.iterrows():
            q = e["quantity"]
            diff = (f"{evidence_value(q, e['difference_mean'])} [{evidence_value(q, e['difference_ci_low'])}, "
                    f"{evidence_value(q, e['difference_ci_high'])}]")
            holds = ""
            if e["constraint"]:
                holds = f"; {e['constraint']}: {'holds' if e['holds'] else 'fails'}" \
                        f"{' (its interval too)' if e['holds_at_95'] else ' (not its whole interval)'}"
            lines.append(wrapped(f"  {q}: as given {evidence_value(q, e['as_given_mean'])}, recommended "
                                 f"{evidence_value(q, e['recommended_mean'])}, difference {diff}{holds}"))
    if result.out is not None:
        lines.append(f"written to {result.out}/")
    return "\n".join(lines)
