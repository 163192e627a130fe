"""The page of an optimisation: the answer first (the recommended levers, what they cost and
what they save on fresh replications), then the front and the trials, then what was searched."""

from __future__ import annotations

import json

from ..text import evidence_value, lever_cost_spread, vnd
from .page import Folder, Page, ReportError, Section, Table, kind


@kind("optimise")
def optimise_page(folder: Folder) -> Page:
    meta = folder.meta
    trials = folder.csv("trials.csv")
    if trials is None or not meta.get("objective"):
        raise ReportError(str(folder.path), None, "has no trials.csv or metadata.json: the optimisation has not "
                                                  "finished (run the same command again to resume it)")
    try:
        spec = json.loads((folder.path / "optimise.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(str(folder.path / "optimise.json"), None, f"cannot be read: {exc}") from None
    cmd = spec.get("command", {})
    levers = meta.get("levers", {})
    constraints = meta.get("constraints", [])
    answer = Section("findings", "The answer")
    rec = meta.get("recommended_trial")
    evidence = folder.csv("evidence.csv")
    if rec is None or evidence is None:
        answer.text(f"No trial of {len(trials)} met every constraint ({'; '.join(constraints)}): there is no "
                    "recommendation. The front below shows how close the trials came.")
    else:
        row = trials[trials["trial"] == rec].iloc[0]
        said = ", ".join(f"{lid} = {row[lid]}" for lid in levers)
        answer.text(f"The recommended levers (trial {rec}, the least {meta['objective']} of the trials that met "
                    f"{'; '.join(constraints) or 'no constraint'}): {said}. They cost "
                    f"{vnd(row['lever_cost_vnd_per_year'])} a year (capital annualised "
                    f"{vnd(row['lever_capital_vnd_per_year'])}, operating {vnd(row['lever_operating_vnd_per_year'])}"
                    f"{lever_cost_spread(row)}). recommended.toml is the scenario with them, to run with bordersim run.")
        answer.text(f"Evidence: the recommended levers and the scenario as given on {cmd.get('reps', '?')} fresh "
                    f"replications (seed {meta.get('evidence_seed')}, {meta.get('evidence_seed_rule', '')}), paired "
                    "replication by replication; a difference is recommended − as given, with its 95 % interval "
                    "(a saving is a negative difference).")
        rows = []
        for _, e in evidence.iterrows():
            q = e["quantity"]
            cell = lambda m, lo, hi: (f"{evidence_value(q, e[m])} [{evidence_value(q, e[lo])}, "  # noqa: E731
                                      f"{evidence_value(q, e[hi])}]")
            holds = ""
            if isinstance(e.get("constraint"), str) and e["constraint"]:
                holds = ("holds" if str(e["holds"]) == "True" else "fails") + (
                    ", its interval too" if str(e["holds_at_95"]) == "True" else ", not its whole interval")
            rows.append([q, e.get("constraint") if isinstance(e.get("constraint"), str) else "",
                         cell("as_given_mean", "as_given_ci_low", "as_given_ci_high"),
                         cell("recommended_mean", "recommended_ci_low", "recommended_ci_high"),
                         cell("difference_mean", "difference_ci_low", "difference_ci_high"), holds])
        answer.add("table", Table(["quantity", "constraint", "as given", "recommended", "difference", "constraint "
                                   "holds"], rows, caption="The recommended levers against the scenario as given, "
                                                           "fresh replications"))
    front = Section("front", "The trade-off")
    front.text(f"Every trial's levers' cost against {meta.get('performance')} (the mean over its replications): "
               "the Pareto front joins the trials that meet every constraint and that no other beats on both.")
    front.add("figure", folder.figure("front.png", "Lever cost against performance", "Each trial; the front; "
                                      "the recommended trial starred", None))
    ft = folder.csv("front.csv")
    if ft is not None and not ft.empty:
        perf = f"{meta.get('performance')}_mean"
        cols = ["trial", *levers, "lever_cost_vnd_per_year"] + ([perf] if perf in ft else [])
        costs = {"lever_cost_vnd_per_year"} | ({perf} if "vnd" in perf else set())  # in VND: as vnd() says them
        front.add("table", Table(["trial", *levers, "levers' cost a year"] + ([meta.get("performance")]
                                                                              if perf in ft else []),
                                 [[vnd(r[c]) if c in costs else r[c] for c in cols]
                                  for _, r in ft.iterrows()], caption="The Pareto front (front.csv), by cost"))
    what = Section("what", "What was searched")
    what.add("facts", [
        ("scenario", f"{cmd.get('scenario', '?')} ({meta.get('scenario_file', '?')})"),
        ("objective", str(meta.get("objective"))), ("constraints", "; ".join(constraints) or "none"),
        ("trials", f"{len(trials)} of {cmd.get('reps', '?')} replications each on common random numbers "
                   f"(replication i has the same seed at every trial), proposed {cmd.get('batch', '?')} at a time by "
                   "optuna's TPE sampler; trial 0 is the scenario as given"),
        ("seed", str(cmd.get("seed", "?"))), ("engine", str(meta.get("engine", "?"))),
        ("run on", f"{meta.get('scheduler', '?')}, {meta.get('workers', '?')} workers; "
                   f"{meta.get('computed_this_run', '?')} trials in the last run, {meta.get('found_done', 0)} before"),
        ("bordersim", str(meta.get("bordersim_version", "?")))])
    what.add("table", Table(["lever", "values", "base", "sets", "cost per unit a year", "source"], [
        [lid, _values(lv), str(lv.get("base")), _sets(lv),
         f"{lv.get('unit')}: capital {_cost(lv, 'capital_per_unit_year')}, operating "
         f"{_cost(lv, 'operating_per_unit_year')}", lv.get("cost_source", "")] for lid, lv in levers.items()],
        caption="The levers (the scenario's [levers] tables)"))
    return Page(f"bordersim: optimisation of {cmd.get('scenario', '?')}",
                f"{meta.get('objective')} subject to {'; '.join(constraints) or 'no constraint'}",
                [answer, front, what], [str(w) for w in meta.get("warnings", [])])


def _cost(lever: dict, field: str) -> str:
    """A lever's cost per unit and year: its number, or its range (each replication draws it) and mean."""
    r = lever.get(f"{field}_range")
    if not r:
        return vnd(lever.get(field))
    return f"{vnd(r['values'][0])} to {vnd(r['values'][-1])} ({r['kind']}, mean {vnd(lever.get(field))})"


def _values(lever: dict) -> str:
    if "choices" in lever:
        return ", ".join(f"{n} ({c.get('units', 0):g} unit{'' if c.get('units', 0) == 1 else 's'})"
                         for n, c in lever["choices"].items())
    kind_ = "integer" if "integer" in lever else "real"
    lo, hi = lever[kind_]
    return f"{kind_} {lo:g} to {hi:g}"


def _sets(lever: dict) -> str:
    if "choices" in lever:
        return "; ".join(f"{n}: {', '.join(c.get('set', []))}" for n, c in lever["choices"].items() if c.get("set"))
    return ", ".join(lever.get("paths", []))
