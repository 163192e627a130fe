"""A calibration's files: the fitted ensemble (CSV), the fitted scenario (TOML) and a report
(Markdown and two plots), beside the fitted scenario's path that the targets file names; and the
table `bordersim calibrate --check` prints.

calibration/ holds no results folder: each file is written whole or not at all (sim.base.outdir's
atomic_file), and none where any of them would replace a file bordersim did not write. The fit
itself is sim.experiments.calibrate's.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..base import outdir
from ..base.errors import OutputError
from ..experiments.calibrate import INFORMED, Calibration, fitted_name, given_inputs
from ..experiments.targets import BAND, CalibrationError, CheckRow, Targets


def ensemble_path(targets: Targets) -> Path:
    """The fitted ensemble's CSV, beside the fitted scenario (the scenario's ``ensemble`` names it)."""
    return targets.fitted_path.with_name(targets.fitted_path.stem + "_ensemble.csv")


def output_paths(targets: Targets) -> list[Path]:
    """What write_calibration writes, beside the fitted scenario: the ensemble, the fitted
    scenario, the report and its two plots."""
    fitted = targets.fitted_path
    stem = fitted.stem.replace("fitted", "report")
    report = [fitted.with_name(f"{stem}{suffix}") for suffix in (".md", "_fit.png", "_marginals.png")]
    return [ensemble_path(targets), fitted, *report]


def check_outputs(targets: Targets) -> None:
    """Refuse, before any work, a calibration that would write over a file bordersim did not
    write (the targets file's ``fitted`` path could name a scenario of the user's)."""
    try:
        outdir.check_files(output_paths(targets))
    except OutputError as exc:
        raise CalibrationError(str(targets.path), "fitted", f"would write {exc.one_line()}") from None


def fitted_toml(cal: Calibration, header: str) -> str:
    """The fitted scenario: extends the prior and takes one whole parameter set of the ensemble per
    replication. Written with tomlkit, so that any name or description (quotes, line breaks) is
    quoted as TOML wants; comment lines are one line each."""
    import tomlkit

    t = cal.targets
    ens_path, fitted = ensemble_path(t), t.fitted_path
    doc = tomlkit.document()
    for line in (f"Written by `bordersim calibrate {t.path.name}`: {header}.",
                 f"Targets and their sources: {t.path.name}. Each replication takes one whole parameter set",
                 f"of {ens_path.name} (the fitted ensemble, an approximate posterior); the uncertain inputs",
                 "it does not list keep their ranges from the prior scenario."):
        doc.add(tomlkit.comment(" ".join(line.split())))
    doc.add("extends", os.path.relpath(t.scenario_path.resolve(), fitted.parent.resolve()))
    doc.add("name", fitted_name(cal.prior))
    doc.add("description", f"{cal.prior.nominal.description} - calibrated to {', '.join(x.name for x in t.fit)}")
    doc.add("ensemble", ens_path.name)
    return tomlkit.dumps(doc)


def write_calibration(cal: Calibration) -> list[Path]:
    """The ensemble (CSV), the fitted scenario (TOML) and a report (Markdown + 2 PNGs), beside
    the fitted scenario's path; each file written whole or not at all, and none if any of them
    would replace a file bordersim did not write."""
    from . import plots

    t = cal.targets
    check_outputs(t)
    ens_path, fitted, report, fit_png, marg_png = output_paths(t)
    ident = cal.identification()
    header = (f"ABC-SMC (pyabc) on the fast engine: {len(cal.epsilons)} generations of {len(cal.population)} "
              f"parameter sets, {cal.simulations:,} simulated (each the mean of {cal.reps_per_draw} replications; "
              f"seed {cal.seed}); the last threshold {cal.epsilons[-1]:.2f} tolerances; {cal.wall_s:.0f} s")

    with outdir.atomic_file(ens_path) as tmp:
        cal.ensemble.to_csv(tmp, index=False, float_format="%.6g")
    with outdir.atomic_file(fitted) as tmp:
        tmp.write_text(fitted_toml(cal, header), encoding="utf-8")
    with outdir.atomic_file(fit_png) as tmp:
        plots.calibration_fit(cal, tmp)
    with outdir.atomic_file(marg_png) as tmp:
        plots.calibration_marginals(cal, tmp)

    lines = [f"# Calibration report: {cal.prior.name}", "", header + ".", "",
             "Thresholds by generation (largest relative error over the fit targets, in tolerances): "
             + ", ".join(f"{e:.2f}" for e in cal.epsilons) + ".", ""]
    given = given_inputs(cal.prior)
    if given:
        lines += [f"Fitted in an earlier stage, and taken from its ensemble ({Path(cal.prior.ensemble_file).name}, "
                  f"{len(cal.prior.ensemble)} parameter sets) one whole set per replication, in the fit and in the "
                  f"fitted ensemble alike: {', '.join(given)}.", ""]
    lines += ["## Targets", "",
             "Fit targets drive the calibration; validation targets are kept out of it and only compared.", "",
             "| target | use | observed | unit | source | period | prior 90 % | posterior 90 % | posterior mean |",
             "|---|---|---|---|---|---|---|---|---|"]
    post = cal.ensemble
    for x in t.targets:
        pr = np.quantile(cal.prior_simulated[x.name], BAND)
        po = np.quantile(post[f"_sim_{x.name}"], BAND)
        src = x.source + (f" ({x.derived})" if x.derived else "")
        lines.append(f"| {x.name} | {x.use} | {x.observed:,.0f} | {x.unit} | {src} | {x.period[0]} to {x.period[1]} | "
                     f"[{pr[0]:,.0f}, {pr[1]:,.0f}] | [{po[0]:,.0f}, {po[1]:,.0f}] | "
                     f"{post[f'_sim_{x.name}'].mean():,.0f} |")
    lines += ["", "Posterior columns are the final population's simulations (each the mean of "
              f"{cal.reps_per_draw} replications); `bordersim calibrate --check` tests the fitted scenario "
              "afresh.", ""]
    lines += [f"Known miss: {x.name} (validation): {x.known_miss}" for x in cal.targets.targets if x.known_miss]
    lines += ["", f"![observed against simulated]({fit_png.name})", "",
              "## Inputs: how much the data narrowed each", "",
              f"An input counts as pinned down when its posterior 90 % interval is under {INFORMED:.0%} of the "
              "prior's (width ratio).", "",
              "| input | prior | posterior median | posterior 90 % | width ratio | pinned down |", "|---|---|---|---|---|---|"]
    for _, r in ident.iterrows():
        lines.append(f"| {r['input']} | [{r.prior_low:g}, {r.prior_high:g}] | {r.posterior_median:.4g} | "
                     f"[{r.posterior_q05:.4g}, {r.posterior_q95:.4g}] | {r.width_ratio:.2f} | "
                     f"{'yes' if r.identified else 'no'} |")
    lines += ["", f"![prior and posterior of each input]({marg_png.name})", ""]
    with outdir.atomic_file(report) as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    return [ens_path, fitted, report, fit_png, marg_png]


def check_table(rows: list[CheckRow]) -> str:
    """What `bordersim calibrate --check` prints: per target (fit ones first) its observed value, the
    simulated mean, the 90 % band of single replications, the relative error and the verdict."""
    lines = [f"{'target':<28}{'use':<9}{'observed':>10}{'simulated':>11}{'90 % band':>22}{'rel. error':>11}"
             f"{'tolerance':>10}  verdict"]
    for use in ("fit", "validate"):
        for r in (r for r in rows if r.target.use == use):
            verdict = r.verdict()
            tol = f"{r.target.tolerance:>9.1%}" if use == "fit" else f"{'-':>9}"
            lines.append(f"{r.target.name:<28}{use:<9}{r.target.observed:>10,.0f}{r.simulated_mean:>11,.0f}"
                         f"{f'[{r.band_low:,.0f}, {r.band_high:,.0f}]':>22}{r.relative_error:>+10.1%} "
                         f"{tol}  {verdict}")
    return "\n".join(lines)
