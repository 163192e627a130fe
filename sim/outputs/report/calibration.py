"""The page of a calibration folder (calibration/: a targets file beside the fitted scenario, its
ensemble and its plots): the targets against the fitted ensemble, what the data pinned down of
each input, and the prior's inputs with their sources."""

from __future__ import annotations

import os

import pandas as pd

from ...base.errors import BordersimError
from .blocks import num
from .inputs import sources_section
from .page import Folder, Page, ReportError, Section, Table, inside, kind, targets_files


@kind("calibration")
def calibration_page(folder: Folder) -> Page:
    from ...experiments.calibrate import INFORMED, CalibrationError, load_targets, width_ratio
    from ..calibration import ensemble_path
    from ...model.scenario import load
    from ...model.sources import header_comment

    candidates = targets_files(folder.path)
    try:
        targets = load_targets(candidates[0])
    except CalibrationError as exc:
        raise ReportError(str(candidates[0]), None, exc.one_line()) from None
    # the fitted scenario and its ensemble are read only inside the folder (the targets file's
    # `fitted` could name any file); the prior is read as `calibrate` reads it, as a scenario
    ens_file = inside(folder.path, os.path.relpath(ensemble_path(targets), folder.path))
    fitted = inside(folder.path, os.path.relpath(targets.fitted_path, folder.path))
    what = Section("what", "What was calibrated")
    facts = [("targets", str(targets.path)), ("prior scenario", str(targets.scenario_path)),
             ("fitted scenario", str(targets.fitted_path) + ("" if fitted else " (not in this folder: not read)"))]
    ensemble = pd.read_csv(ens_file) if ens_file is not None else None
    if ensemble is not None:
        facts.append(("ensemble", f"{ens_file.name}: {len(ensemble):,} parameter sets kept"))
    what.add("facts", facts)
    what.add("pre", header_comment(targets.path))
    if fitted is not None:
        what.add("pre", header_comment(fitted))

    fit = Section("fit", "Targets: observed against the fitted ensemble")
    rows = []
    for t in targets.targets:
        col = f"_sim_{t.name}"
        sim = ensemble[col] if ensemble is not None and col in ensemble else None
        mean = sim.mean() if sim is not None else float("nan")
        lo, hi = (sim.quantile(0.025), sim.quantile(0.975)) if sim is not None else (float("nan"),) * 2
        rel = (mean - t.observed) / t.observed
        rows.append([t.name, t.use, num(t.observed, 0), f"{t.period[0]} to {t.period[1]}",
                     f"±{t.tolerance:.0%}" if t.use == "fit" else "–",
                     num(mean, 0), f"{num(lo, 0)}–{num(hi, 0)}", f"{rel:+.1%}" if pd.notna(rel) else "–", t.source])
    fit.add("table", Table(["target", "use", "observed", "period", "tolerance", "ensemble mean", "ensemble 95 %",
                            "relative error", "source"], rows, numeric={2, 4, 5, 6, 7},
                           caption="Fit targets drove the calibration; validation targets were kept out of it. "
                                   "Simulated: the kept parameter sets' own simulations"))
    misses = [f"{t.name} (validation): the model is known to miss it: {t.known_miss}"
              for t in targets.targets if t.known_miss]
    if misses:
        fit.add("notes", misses)
    stem = targets.fitted_path.stem.replace("fitted", "report")
    fit.add("figure", folder.figure(f"{stem}_fit.png", "Observed against simulated",
                                    "Per target: the prior's and the ensemble's simulated values (95 %) and the "
                                    "observed value with its tolerance", None))

    inputs = Section("inputs", "Inputs: what the data pinned down")
    inputs.text(f"An input is pinned down when its ensemble's central 90 % is under {INFORMED:.0%} of its prior "
                "range's (width ratio).")
    prior = None
    try:
        prior = load(targets.scenario_path)
    except BordersimError as exc:
        inputs.add("notes", [f"the prior scenario cannot be read now: {exc.one_line()}"])
    if prior is not None and ensemble is not None:
        rows = []
        for r in prior.ranges:
            name = r.name()
            if name not in ensemble:
                continue
            col = ensemble[name]
            q05, med, q95 = col.quantile([0.05, 0.5, 0.95])
            ratio = width_ratio(r, q05, q95)
            rows.append([name, f"{r.kind} {list(r.values)}", f"{med:.4g}", f"{q05:.4g}–{q95:.4g}", f"{ratio:.2f}",
                         "yes" if ratio < INFORMED else "no"])
        inputs.add("table", Table(["input", "prior", "ensemble median", "ensemble 90 %", "width ratio", "pinned down"],
                                  rows, numeric={2, 3, 4}))
    inputs.add("figure", folder.figure(f"{stem}_marginals.png", "Prior and ensemble of each input",
                                       "Histograms of the prior draws and of the kept ensemble", None))
    sections = [what, fit, inputs]
    if prior is not None:
        from ..provenance import scenario_metadata

        sections.append(sources_section(scenario_metadata(prior), "Prior inputs: assumptions and sources"))
    return Page(f"bordersim calibration: {targets.path.name}", "", sections)
