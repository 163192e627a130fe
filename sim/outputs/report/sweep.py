"""The page of a sweep: what was swept, which inputs matter (the sensitivity indices with their
intervals) and how the outputs respond across the design."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ..findings import ALL
from .blocks import num
from .page import Folder, Page, ReportError, Section, Table, kind


SWEEP_OUTPUTS = [("time_in_system_mean_h", "mean time in system h", 2), ("wait_mean_h", "mean wait h", 2),
                 ("crossings_per_day", "crossings per day", 1)]  # what a folder without its outputs shows
SWEEP_METHODS = {
    "sobol": "Sobol indices (SALib, Saltelli design): S1 is the share of an output's variance across the design "
             "that an input explains alone, ST alone and with the others; [low, high] is each index's bootstrap "
             "interval, cut to [0, 1] (the range of a share). An estimate can itself fall below 0 or above 1: "
             "the estimator's noise, marked where it happens.",
    "morris": "Morris screening (SALib): mu* is the mean absolute effect of moving an input over its range, sigma "
              "how much that effect depends on the other inputs; [low, high] is mu*'s bootstrap interval, cut at "
              "0 (a mean of absolute effects cannot be negative).",
    "grid": "Main effects over the grid: an input's main effect is the range (highest minus lowest) of the "
            "output's mean over the input's levels, each level's mean taken over every combination of the other "
            "inputs' levels, in the output's unit. It has no interval: the sweep keeps each point's summary, not "
            "its replications, and the points share their random numbers; compare it with the points' own "
            "intervals in the response plot. An input that acts only together with another can show a small "
            "main effect: the plot draws a line per combination of the others.",
    "lhs": "Spearman's rank correlation rho between an input's values over the Latin hypercube and the output, "
           "with Fisher's interval [low, high] (inside [-1, 1] by construction); inputs are ranked by |rho|. rho "
           "near +1 or -1: the output rises or falls with the input; an effect that rises and then falls over the "
           "range shows as a small rho (a Sobol or Morris design measures those). An input with no effect still "
           "correlates with the output by chance, and with many inputs some chance correlations are large: "
           "only the inputs whose corrected interval excludes 0 are significant.",
}
SWEEP_LEVEL = ("Each input's interval is at level {level}: corrected for the {tested} inputs tested (Bonferroni), so "
               "that all of an output's intervals hold together with 95 % confidence. An input is significant when "
               "its interval excludes 0; the others may not matter at all.")


def _sweep_table(folder: Folder) -> pd.DataFrame | None:
    path = folder.path / "sweep.parquet"
    if path.exists():
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
            raise ReportError(str(path), None, f"cannot be read: {exc}") from None
    table = folder.csv("sweep.csv")
    return table


_OUTPUT_LABELS = {metric: (label, digits) for metric, label, digits in SWEEP_OUTPUTS}


def _sweep_outputs(rows: pd.DataFrame, outputs: list[str] | None):
    """(metric, gate, its rows) of each output the sweep analysed, in the order of its --output
    (metadata.json's ``outputs``, METRIC@GATE each), as the printed ranking follows them; a folder
    written before metadata.json held them shows SWEEP_OUTPUTS at every gate."""
    if not outputs:
        for metric, _label, _digits in SWEEP_OUTPUTS:
            for gate, grp in rows[rows.metric == metric].groupby("gate", sort=False):
                yield metric, gate, grp
        return
    for text in outputs:
        metric, _, gate = str(text).rpartition("@")
        grp = rows[(rows.metric == metric) & (rows.gate == gate)]
        if not grp.empty:
            yield metric, gate, grp


def _sensitivity_rows(sens: pd.DataFrame, limit: int = 15) -> dict[tuple, Table]:
    """Per output (method, metric, gate, direction): its parameters by rank, each index with
    its interval (an estimate outside its index's range marked as the estimator's noise), and
    whether the ranked index's interval excludes 0 (a column, where the index has intervals)."""
    from ...experiments.sensitivity import RANKED_INDEX, outside_range

    tables = {}
    for key, grp in sens.groupby(["method", "metric", "gate", "direction"], sort=False):
        indices = list(dict.fromkeys(grp["index"]))
        ranked = RANKED_INDEX.get(str(key[0]))
        flags = "significant" in grp and grp.loc[grp["index"] == ranked, "significant"].notna().any()
        rows = []
        for (rank, param), rgrp in grp.groupby(["rank", "param"], sort=True):
            by = rgrp.set_index("index")
            cells = []
            for ix in indices:
                if ix not in by.index:
                    cells.append("–")
                    continue
                r = by.loc[ix]
                where = outside_range(str(ix), float(r.estimate)) if pd.notna(r.estimate) else None
                noise = f" ({where}: the estimator's noise)" if where else ""
                ci = (f" [{num(r.ci_low, 3)}, {num(r.ci_high, 3)}]"
                      if pd.notna(r.get("ci_low")) and pd.notna(r.get("ci_high")) else "")
                cells.append(num(r.estimate, 3) + noise + ci)
            if flags:
                sig = by.loc[ranked, "significant"] if ranked in by.index else None
                cells.append("–" if sig is None or pd.isna(sig) else "yes" if _truthy(sig) else "no")
            rows.append([str(int(rank)), str(param)] + cells)
            if len(rows) >= limit:
                break
        head = ["rank", "input"] + indices + ([f"significant ({ranked})"] if flags else [])
        tables[key] = Table(head, rows, numeric=set(range(2, 2 + len(indices))))
    return tables


def _truthy(value: Any) -> bool:
    """A flag read back from a CSV: True, 'True' or 1."""
    return str(value).strip().lower() in ("true", "1", "1.0", "yes")


def _ensemble_facts(use: dict | None) -> list[tuple[str, str]]:
    """The facts row of what a sweep took from the scenario's fitted ensemble (metadata.json's
    ``ensemble``), as the sweep prints it (sim.outputs.text); none for a scenario without one."""
    if not use:
        return []
    from ..text import ensemble_lines

    first, *rest = ensemble_lines(use, limit=None)
    return [("fitted ensemble", "; ".join([first.removeprefix("fitted ensemble ")] + [r.strip() for r in rest]))]


@kind("sweep")
def sweep_page(folder: Folder) -> Page:
    from ...experiments.sweep import describe_param

    try:
        spec = json.loads((folder.path / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(str(folder.path / "sweep.json"), None, f"cannot be read: {exc}") from None
    cmd = spec.get("command", {})
    meta = folder.meta
    table = _sweep_table(folder)
    if table is None or meta.get("points") is None:
        raise ReportError(str(folder.path), None, "has no sweep.parquet or metadata.json: the sweep has not finished "
                                                  "(run the same command again to resume it)")
    params = cmd.get("params", [])
    what = Section("what", "What was swept")
    what.add("facts", [
        ("scenario", f"{cmd.get('scenario', '?')} ({meta.get('scenario_file', '?')}; SHA-256 "
                     f"{str(cmd.get('scenario_sha256', ''))[:12]}…)"),
        ("design", f"{cmd.get('design', '?')}, size {cmd.get('size', '?')}: {cmd.get('points', '?'):,} points"),
        ("replications", f"{cmd.get('reps', '?')} at each point, on common random numbers: replication i of every "
                         "point uses the same seed, so two points differ only by their inputs"),
        ("outputs", ", ".join(str(o).replace("@", " at ") for o in meta["outputs"]) + " (--output)"
         if meta.get("outputs") else "not recorded (an older sweep): the table below shows "
         + ", ".join(label for _m, label, _d in SWEEP_OUTPUTS) + " at every gate"),
        *_ensemble_facts(meta.get("ensemble")),
        ("seed", str(cmd.get("seed", "?"))), ("engine", str(cmd.get("engine", "?"))),
        ("run on", f"{meta.get('scheduler', '?')}, {meta.get('workers', '?')} workers; "
                   f"{meta.get('computed_this_run', '?')} points computed in the last run, "
                   f"{meta.get('found_done', 0)} found done before"),
        ("simulation time", f"{meta['wall_time_s']:.1f} s (the last run)" if "wall_time_s" in meta else "?"),
        ("bordersim", str(meta.get("bordersim_version", spec.get("version", "?"))))])
    rows = []
    for p in params:
        rows.append([p.get("name", "?"), p.get("kind", "?"), describe_param(p)])
    what.add("table", Table(["input", "kind", "values swept"], rows, caption="The parameters (by their stable names)"))

    sections = [what]
    sens = folder.csv("sensitivity.csv")
    if sens is not None and not sens.empty:
        st = Section("sensitivity", "Which inputs matter")
        st.text(SWEEP_METHODS.get(str(sens["method"].iloc[0]), ""))
        intervals = meta.get("intervals") or {}
        if intervals.get("level") is not None:
            st.text(SWEEP_LEVEL.format(level=f"{100 * float(intervals['level']):.4g} %",
                                       tested=intervals.get("inputs_tested", "?")))
        for (m, metric, gate, direction), tab in _sensitivity_rows(sens).items():
            tab.caption = f"{metric} at {gate} ({direction}), inputs by rank ({m})"
            st.add("table", tab)
        st.add("figure", folder.figure("sensitivity.png", "Sensitivity", "Each input's indices with their intervals "
                                       "(a grid's main effects have none), per output", None))
        sections.append(st)

    resp = Section("response", "How the outputs respond")
    rows = []
    main_rows_ = table[(table.direction == ALL) & (table.stage.fillna("") == "") & (table["class"].fillna("") == "")]
    for metric, gate, grp in _sweep_outputs(main_rows_, meta.get("outputs")):
        label, digits = _OUTPUT_LABELS.get(metric, (metric, 3 if metric.endswith("_share") else 2))
        means = grp["mean"].astype(float)
        best = grp.loc[means.idxmin()]
        rows.append([gate, label, num(means.min(), digits), num(means.median(), digits), num(means.max(), digits),
                     ", ".join(f"{p['name']} = {best[p['name']]:.4g}"
                               for p in params[:4] if p.get("name") in best)])
    resp.add("table", Table(["gate", "output", "lowest", "median", "highest", "at the lowest (first 4 inputs)"], rows,
                            numeric={2, 3, 4}, caption="Each point's mean over its replications, across the design"))
    resp.add("figure", folder.figure("response.png", "Response curves", "Each output against each parameter, a "
                                     "point per design point with its interval", None))
    if (folder.path / "heatmap.png").exists():
        resp.add("figure", folder.figure("heatmap.png", "Two-parameter grid", "Each output's mean over the grid",
                                         None))
    sections.append(resp)
    name = cmd.get("scenario", "?")
    return Page(f"bordersim: sweep of {name}", f"{cmd.get('design', '?')} design over {len(params)} inputs",
                sections, [str(w) for w in meta.get("warnings", [])])
