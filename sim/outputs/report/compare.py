"""The page of a comparison: what each alternative changes and the gates where it shows clearly,
the paired differences per gate and by month, where the saved wait goes, the files of each
scenario and the inputs of each alternative with their sources."""

from __future__ import annotations

import pandas as pd

from ..findings import ALL, corridor_changes, extreme_gates, extreme_notes, main_rows, stage_label, wait_shares
from .blocks import (MONTH_NOTE, MONTHLY, NBSP, REPLICATIONS, by_month, derived_warnings, gate_names, grouped, lookup,
                     month_caption, num, percent, plot_drawer)
from .inputs import FITTED, is_set_layer, layer_blocks, set_lines, set_rows, sources_section
from .page import Folder, Page, ReportError, Section, Table, kind


def _compare_months(folder: Folder, names: dict[str, str], alts: list[dict], base: str) -> Section | None:
    from ..findings import UNCHANGED, unchanged

    monthly = folder.csv("compare_monthly.csv")
    if monthly is None:
        return None
    section = Section("months", "The differences by month")
    section.text(f"Each alternative minus {base}, paired replication by replication, with its 95 % confidence "
                 f"interval (* where it excludes 0), both directions. {MONTH_NOTE} compare_monthly.csv has every "
                 "gate, direction and metric.")
    for s in alts:
        own = monthly[monthly.scenario == s["name"]]
        same = unchanged(own, s["name"])
        for metric in MONTHLY:
            t = by_month(own, names, metric, lambda r, m=metric: _difference(r, m), skip=same)
            if t is not None:
                caption = month_caption(metric)
                t.caption = f"{s['name']} against {base}: {caption[0].lower()}{caption[1:]}"
                section.add("table", t)
        if same:
            section.add("notes", [f"Unchanged in every month: {', '.join(names.get(g, g) for g in same)} "
                                  f"({UNCHANGED})."])
    return section


def _difference(m: pd.Series, metric: str) -> str:
    """A paired difference with its 95 % interval (* where the interval as printed excludes 0), as
    the command line prints it (sim.outputs.text.shown_difference); a share's in percentage points. No
    break inside it but between the mean and its interval."""
    from ..text import shown_difference
    from ..formats import metric as shown

    if pd.isna(m.diff_mean):
        return "–"
    text = shown_difference(m, shown(metric))
    return text.replace(", ", f",{NBSP}").replace(" *", f"{NBSP}*").replace(" pp", f"{NBSP}pp")


def _relative(share: float) -> str:
    """A relative difference in per cent, with the decimals that keep a small one from reading as 0."""
    from ..formats import signed

    if pd.isna(share):
        return "–"
    pct = 100 * share  # two significant digits under 10 % (-0.52 % is not "-1 %"), whole per cents above
    return f"{signed(pct, 0 if abs(pct) >= 10 else 1 if abs(pct) >= 1 else 2)}{NBSP}%"


def _level(value: float, metric: str) -> str:
    """A scenario's figure as the differences' tables show it (the metric's digits; a share in %)."""
    from ..formats import metric as shown

    how = shown(metric)
    return percent(value, how.digits) if how.share else num(how.unit(value), how.digits)


def _change(m: pd.Series) -> str:
    """A difference in words, as its table prints it (sim.outputs.findings.change_words), and
    relative to the base: "mean wait −0.63 h (−2 %)"."""
    from ..findings import change_words

    return change_words(m, before_unit=NBSP) + (f" ({_relative(m.rel_diff)})" if pd.notna(m.rel_diff) else "")


def _expectations(table: pd.DataFrame, scen: dict, names: dict[str, str]) -> list[list[str]]:
    from ..formats import metric as shown

    rows = []
    for e in scen.get("expect") or []:
        sel = table[(table.scenario == scen["name"]) & (table.gate == e["gate"]) & (table.direction == e["direction"])
                    & (table.metric == e["metric"]) & (table.stage == "") & (table["class"] == "")]
        where = names.get(e["gate"], e["gate"]) + ("" if e["direction"] == ALL else f" {e['direction']}")
        label = shown(e["metric"]).label
        if sel.empty:
            rows.append([scen["name"], where, label, f"to {e['change']}", "–", "not in the results"])
            continue
        r = sel.iloc[0]
        if e["change"] == "none":  # the same in every replication: a difference of exactly 0, interval and all
            same = r.diff_mean == 0 and r.diff_ci_low == 0 and r.diff_ci_high == 0
            verdict = "holds" if same else "changed"
        else:
            holds = r.diff_ci_high < 0 if e["change"] == "decrease" else r.diff_ci_low > 0
            against = r.diff_ci_low > 0 if e["change"] == "decrease" else r.diff_ci_high < 0
            verdict = "holds" if holds else ("the opposite" if against else "not shown (the interval includes 0)")
        rows.append([scen["name"], where, label, f"to {e['change']}", _difference(r, e["metric"]), verdict])
    return rows


def _own_files(scen: dict) -> list[str]:
    """The files a scenario is made of, its --set changes left out."""
    return [layer.get("origin") or layer.get("file") or "" for layer in scen.get("layers") or []
            if not is_set_layer(layer)]


def _own_layers(scen: dict, base: dict) -> list[dict]:
    """An alternative's own files, those the base is not made of, and its --set changes (its last
    file where it is made of the base's files alone)."""
    layers = scen.get("layers") or []
    shared = set(_own_files(base))
    own = [layer for layer in layers if is_set_layer(layer) or (layer.get("origin") or layer.get("file")) not in shared]
    return own or layers[-1:]


def _what_changes(scen: dict, base: dict) -> str:
    """What an alternative changes against the base, in a line: its own file's description where
    it is another scenario, and the --set lines it was made with (all its --set changes, input by
    input, where the lines were not recorded); the same scenario otherwise."""
    parts = []
    if _own_files(scen) != _own_files(base):
        own = [layer.get("description") for layer in scen.get("layers") or [] if not is_set_layer(layer)]
        parts.append(next((d for d in reversed(own) if d), None) or scen.get("description") or "another scenario")
    for layer in scen.get("layers") or []:
        if not is_set_layer(layer):
            continue
        lines = set_lines(layer)
        if lines is None:  # not recorded (a folder of an earlier bordersim): what metadata.json has
            lines = [f"{input_}: {after}" if before == FITTED else f"{input_} {before} → {after}"
                     for input_, before, after, _c in set_rows(layer, scen)]
        parts.append("; ".join(lines) + " (with --set)")
    return "; and ".join(parts) if parts else "nothing (the same scenario as the base)"


def _gates_finding(table: pd.DataFrame, alt: dict, base: dict, names: dict[str, str]) -> str:
    """The first finding of an alternative: what it changes, the gates where that shows clearly
    (an interval that excludes 0; the first two such figures of the headline's), those where it
    does not, and those where nothing changed at all."""
    from ..findings import UNCHANGED, headline_rows, unchanged

    same = unchanged(table, alt["name"])
    clear: dict[str, list[pd.Series]] = {}
    unclear: list[str] = []
    for g, _shown, m in headline_rows(table, alt["name"], skip=same):
        if g == ALL:
            continue
        if m.excludes_zero:
            clear.setdefault(g, []).append(m)
        elif g not in unclear:
            unclear.append(g)
    unclear = [g for g in unclear if g not in clear]
    text = f"{alt['name']} changes: {_what_changes(alt, base)}. Against {base['name']}, "
    if clear:
        text += "it shows clearly at " + "; ".join(
            f"{names.get(g, g)}: {', '.join(_change(m) for m in rows[:2])}" for g, rows in clear.items()) + "."
    else:
        text += "no gate shows a clear change."
    if unclear:
        text += f" Not clearly at {', '.join(names.get(g, g) for g in unclear)} (every interval includes 0)."
    if same:
        others = "every other gate" if not unclear else ", ".join(names.get(g, g) for g in same)
        text += f" Unchanged: {others} ({UNCHANGED})."
    return text


def _all_gates_finding(table: pd.DataFrame, alt: str, base: str) -> str:
    """One sentence: what an alternative changes across all gates, the changes the replications
    show clearly (the interval excludes 0) first."""
    from ..findings import headline_rows

    clear, unclear = [], []
    for g, _shown, m in headline_rows(table, alt):
        if g != ALL or pd.isna(m.diff_mean):
            continue
        (clear if m.excludes_zero else unclear).append(_change(m))
    if not clear and not unclear:
        return ""
    text = f"{alt} against {base}, all gates: " + ("; ".join(clear) if clear else "no clear change")
    if unclear:
        text += "; not clear (the interval includes 0): " + "; ".join(unclear)
    return text + "."


def _displaced_findings(table: pd.DataFrame, alt: str, names: dict[str, str], named: bool) -> list[str]:
    """A sentence per gate and direction where the wait one stage saves clearly goes, in part, to
    another (sim.outputs.findings.displaced_waits): "Bắc Luân II bridge (goods), exit: customs -1.05 h, far
    side's acceptance +0.75 h: far side's acceptance takes up most (71 %) of what customs saves;
    ..." (``named``: the alternative's name first, where there are several)."""
    from ..findings import displaced_waits

    out = []
    for d in displaced_waits(table, alt):
        moves = ", ".join(f"{stage_label(st)} {_change_h(r)}" for st, r in d.fell + d.rose)
        fell = " and ".join(stage_label(st) for st, _r in d.fell)
        rose = " and ".join(stage_label(st) for st, _r in d.rose)
        share = d.taken_up
        amount = "more than all" if share >= 1 else "most" if share >= 0.5 else "part"
        text = (f"{alt + ': ' if named else ''}{names.get(d.gate, d.gate)}, {d.direction}: {moves}: {rose} "
                f"take{'s' if len(d.rose) == 1 else ''} up {amount} ({percent(share)}) of what {fell} "
                f"save{'s' if len(d.fell) == 1 else ''}")
        if share >= 0.5 and any(st == "acceptance" for st, _r in d.rose):
            text += f"; the far side's daily limit, not {fell}, holds the vehicles back"
        out.append(text + ".")
    return out


def _change_h(m: pd.Series) -> str:
    """A stage's change of mean wait, as its table prints it: "−1.05 h"."""
    from ..formats import METRICS, difference_mean

    return f"{difference_mean(m.diff_mean, m.diff_ci_low, m.diff_ci_high, METRICS['wait_mean_h'].digits)}{NBSP}h"


def _extreme_notes(summary: pd.DataFrame, scens: list[dict], base: str, names: dict[str, str]) -> list[str]:
    """The extreme-gate notes (sim.outputs.findings) once: for every scenario at once where they say the
    same of each; for the base where the same gates stand out in every scenario, saying so; else
    for each scenario whose notes differ from the base's."""
    notes = {}
    for s in scens:
        own = summary[summary.scenario == s["name"]]
        closures = {g: i.get("closures", []) for g, i in (s.get("gates") or {}).items()}
        notes[s["name"]] = (extreme_gates(own), extreme_notes(own, names, closures))
    gates, said = notes[base]
    if not any(n for _g, n in notes.values()):
        return []
    if all(n == said for _g, n in notes.values()):
        return [f"In every scenario alike: {' '.join(said)}"]
    if gates and all(g == gates for g, _n in notes.values()):
        label = ", ".join(names.get(g, g) for g in gates)
        return [f"In {base}, the base ({label} stands out in every alternative too, with figures of its own): "
                + " ".join(said)]
    return [f"In {name}: {' '.join(ns)}" if ns else f"In {name}, no gate stands out."
            for name, (_g, ns) in notes.items() if name == base or ns != said]


def _compare_costs(table: pd.DataFrame, alts: list[dict], base: str, names: dict[str, str]) -> Section | None:
    """What each alternative saves in the cost of waiting (VND bn), per gate: the total and each
    component in the base and the alternative, the paired difference with its 95 % interval, and
    each component's share of the total's difference; a corridor's trucks sent out of the
    province, priced. None where the comparison has no costs."""
    from ..findings import cost_shares, headline_rows
    from ...statistics.metrics import COST_METRICS, DIVERTED_COST

    if not (table.metric == COST_METRICS[0]).any():
        return None
    section = Section("costs", "Costs of waiting")
    section.text(f"What the waiting costs in each scenario and what each alternative saves against {base}, in "
                 "billions of đồng (VND bn), the paired difference with its 95 % interval: each vehicle's own waiting "
                 "priced by the hour (truck and driver) and by the day (parking; refrigeration), its goods' spoilage "
                 "from its own days waited, the trips of the vehicles that gave up. 'share' is each component's part "
                 "of the difference in the total (a saving below 0).")
    for s in alts:
        rows, emphasis = [], set()
        alt_rows = table[table.scenario == s["name"]]
        shares: dict[str, dict] = {}  # per gate: each component's share of its total's difference
        for g, shown, m in headline_rows(table, s["name"], metrics=COST_METRICS):
            if g not in shares:
                shares[g] = dict((k, sh) for k, _v, sh in cost_shares(alt_rows, g, ALL, "diff_mean"))
            share = shares[g]
            metric = str(m.metric)
            rows.append([names.get(g, g), shown.label.removesuffix(" VND bn"), _level(m.base_mean, metric),
                         _level(m.alt_mean, metric), _difference(m, metric),
                         percent(share[metric]) if metric in share else ""])
            if g == ALL and metric == COST_METRICS[0]:
                emphasis.add(len(rows) - 1)
        out = table[(table.scenario == s["name"]) & (table.metric == DIVERTED_COST) & (table.direction == ALL)
                    & (table["class"] == "")]
        for m in out.itertuples():
            rows.append([f"{names.get(m.gate, m.gate)}: left the province", "trips to Lạng Sơn",
                         _level(m.base_mean, DIVERTED_COST), _level(m.alt_mean, DIVERTED_COST),
                         _difference(pd.Series(m._asdict()), DIVERTED_COST), ""])
        section.add("table", Table(["gate", "VND bn", base, s["name"], "difference [95 % CI]", "share"],
                                   grouped(rows), caption=f"{s['name']} against {base}: the cost of waiting, per gate "
                                                          "(all gates last)", numeric={2, 3, 4, 5},
                                   emphasis=emphasis))
    return section


@kind("compare")
def compare_page(folder: Folder) -> Page:
    from ..findings import UNCHANGED, headline_rows, unchanged

    meta = folder.meta
    scens = meta.get("scenario_details") or [{"name": s["name"], "file": s.get("file")}
                                             for s in meta.get("scenarios", [])]
    names = {}
    for s in scens:
        names.update(gate_names(s))
    table = folder.csv("compare.csv")
    summary = folder.csv("summary.csv")
    if table is None or summary is None:
        raise ReportError(str(folder.path), None, "has no compare.csv or summary.csv: not a complete comparison")
    base = meta.get("base") or scens[0]["name"]
    base_scen = next((s for s in scens if s["name"] == base), scens[0])
    alts = [s for s in scens if s["name"] != base]
    corridors = {cid: c for s in scens for cid, c in (s.get("corridors") or {}).items()}

    head = Section("findings", "Findings: the differences per gate")
    head.text(f"Each alternative against {base}, over {meta.get('reps', '?')} replications of each. {REPLICATIONS} "
              "Replication i of every scenario uses the same random numbers, so a difference is what the change "
              "did: alternative − base, paired replication by replication, with its 95 % confidence interval; "
              "* where the interval excludes 0 (a difference the replications show clearly). Shares are in % and "
              "their differences in percentage points.")
    findings = []
    for s in alts:
        findings.append(_gates_finding(table, s, base_scen, names))
        findings += [t for t in [_all_gates_finding(table, s["name"], base)] if t]
        findings += _displaced_findings(table, s["name"], names, named=len(alts) > 1)
        findings += [f"{s['name'] + ': ' if len(alts) > 1 else ''}Where the traffic moved, {line}"
                     for line in corridor_changes(table, s["name"], corridors, names)]
    head.add("notes", findings)
    expect_rows = [r for s in alts for r in _expectations(table, s, names)]
    if expect_rows:
        head.add("table", Table(["scenario", "where", "metric", "expected", "difference [95 % CI]", "verdict"],
                                expect_rows, caption="What each alternative's file says it should change, and "
                                                     "whether it does"))
    for s in alts:
        same = unchanged(table, s["name"])
        rows, emphasis = [], set()
        for g, shown, m in headline_rows(table, s["name"], skip=same):
            metric = str(m.metric)
            rows.append([names.get(g, g), shown.label, _level(m.base_mean, metric), _level(m.alt_mean, metric),
                         _difference(m, metric), _relative(m.rel_diff)])
            if g == ALL:
                emphasis.add(len(rows) - 1)
        head.add("table", Table(["gate", "metric", base, s["name"], "difference [95 % CI]", "relative"],
                                grouped(rows), caption=f"{s['name']} against {base}, per gate (all gates last)",
                                numeric={2, 3, 4, 5}, emphasis=emphasis))
        if same:
            which = f" ({s['name']})" if len(alts) > 1 else ""
            head.add("notes", [f"Unchanged{which}: {', '.join(names.get(g, g) for g in same)} ({UNCHANGED})."])
    head.add("notes", _extreme_notes(summary, scens, base, names))

    costs = _compare_costs(table, alts, base, names)

    plot = Section("plot", "The differences as a plot")
    plot.add("figure", folder.figure("compare_differences.png", "Differences per gate",
                                     "Each alternative's difference to the base with its 95 % interval "
                                     "(filled: the interval excludes 0)",
                                     plot_drawer("compare_differences", table, names)))

    waiting = Section("waiting", "Where the waiting happens")
    rows = []
    gates = [g for g in dict.fromkeys(main_rows(summary).gate) if g != ALL]
    for g in gates:
        stages = list(dict.fromkeys(st for s in scens for st, _h, _sh in
                                    wait_shares(summary[summary.scenario == s["name"]], g)))
        for st in stages:
            cells = []
            for s in scens:
                r = lookup(summary[summary.scenario == s["name"]], g, ALL, "wait_mean_h", st)
                cells.append(num(r["mean"], 2) if r is not None else "–")
            rows.append([names.get(g, g), stage_label(st)] + cells)
    waiting.add("table", Table(["gate", "waiting for"] + [f"{s['name']} h" for s in scens], grouped(rows),
                               numeric=set(range(2, 2 + len(scens))),
                               caption="Mean wait for each stage and for the far side's acceptance, both directions"))

    tis = folder.csv("time_in_system_hist.csv")
    dates = Section("dates", "Queues over the calendar")
    dates.add("figure", folder.figure("queue_by_date.png", "Change in the number waiting, by calendar day",
                                      "Each alternative minus the base: the paired difference in the mean number "
                                      "waiting each day, both directions, with its 95 % confidence band; below 0 "
                                      "fewer wait",
                                      plot_drawer("compare_queue_differences", folder.csv("compare_daily.csv"), names)))
    for cid, c in corridors.items():
        dates.add("figure", folder.figure(f"corridor_{cid}.png", f"Where the traffic of {c.get('name') or cid} went",
                                          "Each gate's share of the corridor's crossings by week, in each "
                                          "direction: the base solid, each alternative dashed", None))
    time_in = Section("time", "Time from arrival to crossing")
    time_in.add("figure", folder.figure("time_in_system.png", "Time in system", "Share of vehicles that crossed "
                                        "within a given time, per gate, a line per scenario",
                                        plot_drawer("compare_time_in_system", tis, names)))

    what = Section("what", "What was compared")
    what.add("facts", [("base", base), ("alternatives", ", ".join(s["name"] for s in alts)),
                       ("replications", f"{meta.get('reps', '?')} of each, on common random numbers: replication i of "
                                        "every scenario uses the same seed, so a difference is what the change did"),
                       ("seed", str(meta.get("seed", "?"))), ("engine", str(meta.get("engine", "?"))),
                       ("bordersim", str(meta.get("bordersim_version", "?"))),
                       ("simulation time", f"{meta['wall_time_s']:.1f} s" if "wall_time_s" in meta else "?")])
    shown: set[str] = set()
    for s in scens:
        what.add("subhead2", f"{s['name']}{' (base)' if s['name'] == base else ''}: {s.get('description', '')}")
        layer_blocks(what, s, show_first=len(s.get("layers") or []) <= 1, shown=shown, root=folder.path)

    sections = [head, *([costs] if costs else []), plot, waiting, dates, time_in, what]
    months = _compare_months(folder, names, alts, base)
    if months is not None:
        sections.insert(2, months)
    for s in alts:
        own = dict(s, layers=_own_layers(s, base_scen))
        sections.append(sources_section(own, f"Inputs of {s['name']}: assumptions and sources", f"sources-{s['name']}",
                                         root=folder.path))
    summaries = [(s["name"], summary[summary.scenario == s["name"]]) for s in scens]
    return Page(f"bordersim: {', '.join(s['name'] for s in alts)} against {base}",
                [f"{s['name']} changes: {_what_changes(s, base_scen)}" for s in alts], sections,
                derived_warnings(meta, scens, summaries, names))
