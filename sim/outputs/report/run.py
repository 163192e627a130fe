"""The page of a run: the findings and the headline table per gate, by month, per gate and
direction, where the waiting happens, queues over the calendar, time in system, the observed
figures a fitted scenario was fitted to, and what was run with its inputs' sources."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..findings import (ALL, corridor_lines, cost_lines, extreme_gates, extreme_notes, gate_value, main_rows,
                        stage_label, wait_shares, wait_without)
from .blocks import (INTERVALS, MONTH_NOTE, MONTHLY, NBSP, REPLICATIONS, by_month, derived_warnings, gate_names,
                     grouped, lookup, month_caption, num, percent, plot_drawer, spread, with_ci)
from .inputs import layer_blocks, sources_section
from .page import Folder, Page, ReportError, Section, Table, kind


def _run_facts(meta: dict, scen: dict) -> list[tuple[str, str]]:
    horizon = scen.get("horizon") or {}
    facts = [("scenario", f"{scen.get('name', meta.get('scenario', '?'))}: {scen.get('description', '')}".strip(": "))]
    if horizon:
        facts.append(("period simulated", f"{horizon['start']} to {horizon['end']}"
                      + (f", the first {horizon['warmup_days']:g} days left out of the waits (warm-up)"
                         if horizon.get("warmup_days") else "")))
    facts += [("replications", f"{meta.get('reps', '?'):,}" if isinstance(meta.get("reps"), int) else "?"),
              ("seed", f"{meta.get('seed', '?')} (the same seed gives the same results)"),
              ("engine", str(meta.get("engine", "?"))),
              ("bordersim", str(meta.get("bordersim_version", "?"))),
              ("simulation time", f"{meta['wall_time_s']:.1f} s" if "wall_time_s" in meta else "?")]
    ens = scen.get("ensemble")
    if ens:
        facts.append(("fitted inputs", f"{Path(ens['file']).name}: {ens['rows']:,} sets of values of "
                                       f"{len(ens['inputs'])} inputs, fitted to observed figures; each "
                                       "replication takes one whole set at random"))
    return facts


OPTIONAL = ("queue_mean", "waiting_truck_hours")  # metrics a summary may lack (written by later versions)


def _headline_table(summary: pd.DataFrame, names: dict[str, str]) -> Table:
    """Per gate (both directions) first, then all gates, then all gates without an extreme gate."""
    gates = [g for g in dict.fromkeys(main_rows(summary).gate) if g != ALL] + [ALL]
    present = set(summary.metric)
    columns = [("crossings", "crossings", lambda r: num(r["mean"], 0)),
               ("wait_mean_h", "mean wait h [95 % CI]", lambda r: with_ci(r, 1)),
               ("wait_mean_h", "mean wait h, 5–95 % of replications", lambda r: spread(r, 1)),
               ("time_in_system_mean_h", "mean time in system h [95 % CI]", lambda r: with_ci(r, 1)),
               ("queue_mean", "mean number waiting", lambda r: num(r["mean"], 0)),
               ("queue_max", "most waiting at once", lambda r: num(r["mean"], 0)),
               ("waiting_truck_hours", "truck-hours waiting", lambda r: num(r["mean"], 0)),
               ("held_by_limit_share", "held by the daily limit", lambda r: percent(r["mean"]))]
    columns = [c for c in columns if c[0] not in OPTIONAL or c[0] in present]
    rows, emphasis = [], set()
    for g in gates:
        cells = [names.get(g, g)]
        for metric, _head, show in columns:
            row = lookup(summary, g, ALL, metric)
            cells.append("–" if row is None else show(row))
        rows.append(cells)
        if g == ALL:
            emphasis.add(len(rows) - 1)
    extreme = extreme_gates(summary)
    if extreme:
        label = ", ".join(names.get(g, g) for g in extreme)
        rows.append([f"all gates without {label}", "", f"≈ {num(wait_without(summary, extreme), 1)}"]
                    + [""] * (len(columns) - 2))
    return Table(["gate"] + [head for _m, head, _s in columns], rows, numeric=set(range(1, len(columns) + 1)),
                 emphasis=emphasis, caption="Per gate, both directions; all gates last")


def _direction_table(summary: pd.DataFrame, names: dict[str, str]) -> Table:
    rows = []
    for (g, d), _grp in main_rows(summary).groupby(["gate", "direction"], sort=False):
        if d == ALL:
            continue
        get = lambda metric: lookup(summary, g, d, metric)  # noqa: E731
        rows.append([names.get(g, g), d, with_ci(get("crossings"), 0), with_ci(get("gave_up"), 0),
                     with_ci(get("wait_mean_h"), 1), with_ci(get("time_in_system_p95_h"), 1),
                     num(get("in_system_end")["mean"], 0) if get("in_system_end") is not None else "–"])
    return Table(["gate", "direction", "crossings", "gave up waiting", "mean wait h", "95 % crossed within h",
                  "still there at the end"], grouped(rows), numeric={2, 3, 4, 5, 6},
                 caption="Per gate and direction (exit: to China; entry: to Vietnam); 95 % confidence intervals")


def _waiting_table(summary: pd.DataFrame, names: dict[str, str]) -> Table:
    rows = []
    flows = [(g, d) for (g, d), _ in main_rows(summary).groupby(["gate", "direction"], sort=False)
             if ALL not in (g, d)]
    for g, d in flows:
        total = lookup(summary, g, d, "wait_mean_h")
        for stage, hours, share in wait_shares(summary, g, d):
            util = lookup(summary, g, d, "utilisation", stage)
            rows.append([names.get(g, g), d, stage_label(stage),
                         with_ci(lookup(summary, g, d, "wait_mean_h", stage), 2),
                         percent(share) if pd.notna(share) else "–",
                         "daily limit" if stage == "acceptance" else
                         (percent(util["mean"]) if util is not None and pd.notna(util["mean"]) else "–"),
                         num(total["mean"], 2) if total is not None else "–"])
    return Table(["gate", "direction", "waiting for", "wait h [95 % CI]", "share of the wait", "lanes busy",
                  "total wait h"], grouped(rows, 2), numeric={3, 4, 5, 6},
                 caption="The wait for each stage and for the far side's acceptance adds up to the total wait")


def _time_in_system_table(summary: pd.DataFrame, names: dict[str, str]) -> Table:
    rows = []
    for g in [g for g in dict.fromkeys(main_rows(summary).gate) if g != ALL] + [ALL]:
        mean = lookup(summary, g, ALL, "time_in_system_mean_h")
        p95 = lookup(summary, g, ALL, "time_in_system_p95_h")
        rows.append([names.get(g, g), with_ci(mean, 1), _days(mean), with_ci(p95, 1), _days(p95)])
    return Table(["gate", "mean h [95 % CI]", "mean in days", "95 % crossed within h", "in days"], rows,
                 numeric={1, 2, 3, 4}, emphasis={len(rows) - 1})


def _days(row: pd.Series | None) -> str:
    return "–" if row is None or pd.isna(row["mean"]) else f"{row['mean'] / 24:,.1f}{NBSP}d"


UNITS = {"crossings": "crossings", "board_vehicles": "board vehicles", "vehicles": "vehicles waiting"}


def _period(start: str, end: str) -> str:
    """A target's period, its dates kept whole (non-breaking hyphens) in a narrow column."""
    first, last = (str(d).replace("-", "\u2011") for d in (start, end))
    return first if first == last else f"{first} to {last}"


def _targets_fit(folder: Folder, scen: dict) -> tuple[Section, str] | None:
    """Where a targets file fitted the scenario (the run wrote targets.csv): each observed figure
    against this run, with the verdict sim.experiments.targets gives it, and a sentence for the findings."""
    from ...experiments.calibrate import DEFAULT_CHECK_REPS

    from ...experiments.targets import TABLE_COLUMNS

    table = folder.csv("targets.csv")
    if table is None or table.empty:
        return None
    missing = [c for c in TABLE_COLUMNS if c not in table]
    if missing:
        raise ReportError(str(folder.path / "targets.csv"), None, f"lacks the columns {', '.join(missing)}")
    for col in ("observed", "simulated_mean", "band_low", "band_high", "relative_error", "tolerance"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    table["holds"] = table.holds.astype(str).str.lower() == "true"
    reps = folder.meta.get("reps", "?")
    targets_file, fitted = str(table.targets_file.iloc[0]), str(table.fitted_scenario.iloc[0])
    table["known_miss"] = table.known_miss.fillna("").astype(str)
    fit, check = table[table.use == "fit"], table[table.use == "validate"]
    known = check[check.known_miss != ""]
    own = [Path(layer.get("file") or "").name for layer in scen.get("layers") or []]
    changed = bool(own) and own[-1] != fitted
    section = Section("observed", "Against the observed figures")
    section.text(
        f"The scenario takes inputs fitted ({fitted}) to the observed figures of {targets_file}. Each figure against "
        f"this run's {reps} replications, tested as `bordersim calibrate --check` tests them: a figure the inputs "
        "were fitted to holds when the run's mean is within its tolerance; a figure kept out of the fit to check it "
        "holds when the observed value lies inside the range of nine replications in ten (5–95 %). The check runs "
        f"{DEFAULT_CHECK_REPS} replications; with {reps} these verdicts are this run's own, and noisier."
        + (f" This scenario changes {fitted}: the figures show how far the change moves them from what was "
           "observed, not whether the fit holds." if changed else ""))
    for part, caption, tolerance in ((fit, "Figures the inputs were fitted to", True),
                                     (check, "Figures kept out of the fit, to check it", False)):
        if part.empty:
            continue
        rows = [[r.target, _period(r.period_start, r.period_end), num(r.observed, 0), UNITS.get(r.unit, r.unit),
                 num(r.simulated_mean, 0), f"{num(r.band_low, 0)}–{num(r.band_high, 0)}",
                 _signed_percent(r.relative_error)]
                + ([f"±{percent(r.tolerance)}"] if tolerance else []) + [r.verdict] for r in part.itertuples()]
        section.add("table", Table(["figure", "period", "observed", "unit", "this run's mean",
                                    "5–95 % of replications", "difference"] + (["tolerance"] if tolerance else [])
                                   + ["verdict"], rows, numeric={2, 4, 5, 6, 7} if tolerance else {2, 4, 5, 6},
                                   caption=caption))
    if not known.empty:
        section.add("notes", [f"{r.target}: the model is known to miss it: {r.known_miss}" for r in known.itertuples()])
    section.add("table", Table(["figure", "source"], [[r.target, r.source] for r in table.itertuples()],
                               caption="Where each observed figure comes from"))
    fails = table[~table.holds]
    against = (f"This scenario changes {fitted}, fitted to the observed figures of {targets_file}; against them"
               if changed else f"Against the observed figures it was fitted to ({targets_file})")
    summary = (f"{against}: {int(fit.holds.sum())} of {len(fit)} "
               f"within their tolerance; of the {len(check)} kept to check the fit, "
               f"{int((check.holds & (check.known_miss == '')).sum())} inside the range of the replications"
               + (f", {len(known)} a known miss" if len(known) else "") + "."
               + (f" Not holding in this run: {', '.join(fails.target)}." if len(fails) else ""))
    return section, summary


def _signed_percent(share: float) -> str:
    """A relative difference in per cent, with its sign (as `calibrate --check` prints it)."""
    return "–" if pd.isna(share) else f"{share:+.1%}"


def _run_findings(summary: pd.DataFrame, names: dict[str, str]) -> list[str]:
    """The answer in a few sentences: all gates' crossings, wait and time in system (and queue
    and truck-hours where the summary has them), the gates by mean wait, who gave up."""
    get = lambda metric: lookup(summary, ALL, ALL, metric)  # noqa: E731
    out = []
    crossings, per_day = get("crossings"), get("crossings_per_day")
    wait, tis = get("wait_mean_h"), get("time_in_system_mean_h")
    if crossings is not None and wait is not None:
        text = (f"All gates: {num(crossings['mean'], 0)} crossings"
                + (f" ({num(per_day['mean'], 0)} a day)" if per_day is not None else "")
                + f"; a vehicle that crossed waited {with_ci(wait, 1)} h on average")
        if tis is not None:
            text += f" and took {with_ci(tis, 1)} h from arrival to crossing"
        queue, hours = get("queue_mean"), get("waiting_truck_hours")
        if queue is not None:
            text += f"; {num(queue['mean'], 0)} vehicles were waiting on average"
        if hours is not None:
            text += f"; {num(hours['mean'], 0)} truck-hours were spent waiting"
        out.append(text + ".")
    waits = gate_value(summary, "wait_mean_h").dropna().sort_values(ascending=False)
    if len(waits):
        out.append("Mean wait by gate, longest first: "
                   + ", ".join(f"{names.get(g, g)} {num(w, 1)}{NBSP}h" for g, w in waits.items()) + ".")
    gave_up = get("gave_up")
    if gave_up is not None and gave_up["mean"] > 0:
        out.append(f"{num(gave_up['mean'], 0)} vehicles gave up waiting and turned back (not counted in the crossings "
                   "nor in the waits).")
    return out


def _run_months(folder: Folder, names: dict[str, str]) -> Section | None:
    from ..formats import metric as shown

    monthly = folder.csv("monthly.csv")
    if monthly is None:
        return None
    section = Section("months", "By month")
    section.text(f"Means over the replications with their 95 % confidence intervals, both directions. {MONTH_NOTE} "
                 "monthly.csv has every gate and direction, crossings and waits too.")
    for metric in MONTHLY:
        t = by_month(monthly, names, metric, lambda r, d=shown(metric).digits: with_ci(pd.Series(r._asdict()), d))
        if t is not None:
            t.caption = month_caption(metric)
            section.add("table", t)
    return section


def _priced_days(scen: dict) -> float | None:
    """The horizon's days after its warm-up, as the scenario's metadata says them (None in a
    folder written before it said its days)."""
    h = scen.get("horizon") or {}
    return h["days"] - h.get("warmup_days", 0) if "days" in h else None


def _costs_section(summary: pd.DataFrame, names: dict[str, str], days: float | None = None) -> Section | None:
    """What the waiting cost, per gate (both directions) and all gates, in VND bn: the total with
    its 95 % interval and each component with its share of it; per class for all gates; the
    corridors' trucks that left the province, priced. None where the run has no costs."""
    from ..findings import cost_lines, cost_shares
    from ..formats import METRICS
    from ...statistics.metrics import COST_METRICS, COST_PARTS

    total_of = METRICS[COST_METRICS[0]]
    if lookup(summary, ALL, ALL, COST_METRICS[0]) is None:
        return None

    def in_bn(row: pd.Series | None) -> str:
        return with_ci(None if row is None else row[["mean", "ci_low", "ci_high"]].astype(float) * total_of.scale,
                       total_of.digits)

    section = Section("costs", "Costs of waiting")
    section.text("What the waiting cost, in billions of đồng (VND bn): each vehicle's own waiting (the truck-hours "
                 "above, within the horizon: those that crossed, gave up or still wait) priced by the hour (truck and "
                 "driver) and by the day (parking in the gate's yards; refrigeration for refrigerated classes), its "
                 "goods' spoilage from its own days waited (up to the goods' value), and the trips of the vehicles "
                 "that gave up. Means over the replications with their 95 % confidence intervals; each component's "
                 "share of the gate's cost in brackets. The cost inputs and their sources are listed under the "
                 "scenario's inputs.")
    gates = [g for g in dict.fromkeys(main_rows(summary).gate) if g != ALL] + [ALL]
    rows = []
    for g in gates:
        shares = {m: (v, sh) for m, v, sh in cost_shares(summary, g)}
        rows.append([names.get(g, g), in_bn(lookup(summary, g, ALL, COST_METRICS[0]))]
                    + [f"{num(total_of.unit(shares[m][0]), total_of.digits)} ({percent(shares[m][1])})"
                       if m in shares else "–" for m in COST_PARTS])
    heads = [METRICS[m].label.removesuffix(" VND bn") for m in COST_PARTS]
    section.add("table", Table(["gate", "cost of waiting VND bn [95 % CI]"] + heads, rows,
                               numeric=set(range(1, 2 + len(COST_PARTS))), emphasis={len(rows) - 1},
                               caption="Per gate, both directions, VND bn; all gates last"))
    classes = [c for c in dict.fromkeys(summary["class"].fillna("")) if c]
    by_class = [[c, in_bn(_class_row(summary, COST_METRICS[0], c))]
                + [num(total_of.unit(r["mean"]), total_of.digits) if (r := _class_row(summary, m, c)) is not None
                   else "–" for m in COST_PARTS] for c in classes]
    section.add("table", Table(["class", "cost of waiting VND bn [95 % CI]"] + heads, by_class,
                               numeric=set(range(1, 2 + len(COST_PARTS))),
                               caption="All gates, per vehicle class, VND bn"))
    section.add("notes", [line[0].upper() + line[1:] for line in cost_lines(summary, names, days)])
    return section


def _class_row(summary: pd.DataFrame, metric: str, vclass: str) -> pd.Series | None:
    sel = summary[(summary.gate == ALL) & (summary.direction == ALL) & (summary.metric == metric)
                  & (summary["class"].fillna("") == vclass) & (summary.stage.fillna("") == "")]
    return None if sel.empty else sel.iloc[0]


@kind("run")
def run_page(folder: Folder) -> Page:
    meta = folder.meta
    scen = meta.get("scenario_details") or {"name": meta.get("scenario"), "file": meta.get("scenario_file"),
                                            "uncertain_inputs": meta.get("uncertain_inputs", {})}
    names = gate_names(scen)
    summary = folder.csv("summary.csv")
    if summary is None:
        raise ReportError(str(folder.path), None, "has no summary.csv: not a complete run")
    daily = folder.csv("daily.csv")
    tis = folder.csv("time_in_system_hist.csv")
    qbh = folder.csv("queue_by_hour.csv")
    observed = _targets_fit(folder, scen)

    findings = Section("findings", "Findings")
    findings.text(f"Means over {meta.get('reps', '?')} replications. {REPLICATIONS}")
    notes = _run_findings(summary, names)
    closures = {g: info.get("closures", []) for g, info in (scen.get("gates") or {}).items()}
    notes += extreme_notes(summary, names, closures)
    notes += [f"Where the traffic went, {line}" for line in corridor_lines(summary, scen.get("corridors") or {}, names)]
    notes += [line[0].upper() + line[1:] for line in cost_lines(summary, names, _priced_days(scen))[:1]]
    if observed is not None:
        notes.append(observed[1])
    findings.add("notes", notes)
    findings.text(INTERVALS)
    findings.add("table", _headline_table(summary, names))

    directions = Section("directions", "Per gate and direction")
    directions.add("table", _direction_table(summary, names))

    waiting = Section("waiting", "Where the waiting happens")
    waiting.text("Per gate and direction, the time spent waiting for each stage and for the far side's acceptance "
                 "(its daily limit), and how busy each stage's lanes were within their opening hours.")
    waiting.add("table", _waiting_table(summary, names))
    waiting.add("figure", folder.figure("queue_by_hour.png", "Queue by hour of day",
                                        "Mean number of vehicles waiting at each hour of day, per gate, over the "
                                        "days the gate is open (days closed all day are left out)",
                                        plot_drawer("queue_by_hour", qbh, names)))

    dates = Section("dates", "Queues over the calendar")
    dates.add("figure", folder.figure("queue_by_date.png", "Vehicles waiting by calendar day",
                                      "The day's mean number waiting (band: 5–95 % of replications) and the number "
                                      "waiting at the day's end; each axis starts at 0",
                                      plot_drawer("queue_by_date", daily, names)))
    dates.add("figure", folder.figure("crossings_per_day.png", "Crossings per day",
                                      "All gates and each gate, with the 95 % confidence band of the mean",
                                      plot_drawer("crossings_per_day", daily, names)))

    time_in = Section("time", "Time from arrival to crossing")
    time_in.add("table", _time_in_system_table(summary, names))
    time_in.add("figure", folder.figure("time_in_system.png", "Time in system",
                                        "Share of vehicles that crossed within a given time of arriving, per gate",
                                        plot_drawer("time_in_system", tis, names)))

    what = Section("what", "What was run")
    what.add("facts", _run_facts(meta, scen))
    layer_blocks(what, scen, show_first=True, root=folder.path)

    costs = _costs_section(summary, names, _priced_days(scen))
    sections = [findings, *([costs] if costs else []), directions, waiting, dates, time_in]
    months = _run_months(folder, names)
    if months is not None:
        sections.insert(1, months)
    if observed is not None:
        sections.append(observed[0])
    sections += [what, sources_section(scen, root=folder.path)]
    return Page(f"bordersim: {scen.get('name') or meta.get('scenario')}", scen.get("description") or "", sections,
                derived_warnings(meta, [scen], [("", summary)], names))
