"""Write a run's tables and plots atomically: all files appear together or none do."""

from __future__ import annotations

import json
from pathlib import Path

from .outdir import Staged, atomic_dir, version
from .run import RunResult


def write_results(result: RunResult, out_dir: str | Path, make_plots: bool = True) -> Path:
    """Write summary.csv, daily.csv, per_replication.csv, the plot tables, PNGs and metadata.json.

    They go to a temporary folder beside ``out_dir`` that replaces it only when complete; an
    ``out_dir`` bordersim did not write is refused (sim.outdir.check_target).
    """
    return write_run(result, out_dir, make_plots).out


def write_run(result: RunResult, out_dir: str | Path, make_plots: bool = True) -> Staged:
    """write_results, also telling whether earlier results were replaced (the CLI says so)."""
    with atomic_dir(out_dir, "run") as staged:
        tmp = staged.dir
        result.summary.to_csv(tmp / "summary.csv", index=False, float_format="%.6g")
        result.per_replication.to_csv(tmp / "per_replication.csv", index=False, float_format="%.6g")
        daily = result.daily
        daily.to_csv(tmp / "daily.csv", index=False, float_format="%.6g")
        qbh = result.queue_by_hour
        qbh.to_csv(tmp / "queue_by_hour.csv", index=False, float_format="%.6g")
        tis = result.time_in_system_hist
        tis.to_csv(tmp / "time_in_system_hist.csv", index=False, float_format="%.6g")
        if make_plots:
            from . import plots  # matplotlib is imported only when plots are drawn

            names = {g: gate.name for g, gate in result.scenario.nominal.gates.items()}
            names["all"] = "all gates"
            plots.queue_by_hour(qbh, names, tmp / "queue_by_hour.png")
            plots.time_in_system(tis, names, tmp / "time_in_system.png")
            plots.crossings_per_day(daily, names, tmp / "crossings_per_day.png")
            plots.queue_by_date(daily, names, tmp / "queue_by_date.png")
        meta = {
            "scenario": result.scenario.name,
            "scenario_file": result.scenario.path,
            "seed": result.seed,
            "reps": result.reps,
            "engine": result.engine,
            "bordersim_version": version(),
            "uncertain_inputs": {r.name(): {r.kind: list(r.values)} for r in result.scenario.ranges},
            "warnings": result.warnings,
            "wall_time_s": round(result.wall_s, 2),
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return staged


def write_comparison(cmp, out_dir: str | Path, make_plots: bool = True) -> Staged:
    """compare.csv, each scenario's summary and daily tables (stacked, with a scenario column),
    the comparison plots and metadata.json, into one folder written atomically."""
    with atomic_dir(out_dir, "compare") as staged:
        tmp = staged.dir
        cmp.table.to_csv(tmp / "compare.csv", index=False, float_format="%.6g")
        cmp.summary.to_csv(tmp / "summary.csv", index=False, float_format="%.6g")
        cmp.daily.to_csv(tmp / "daily.csv", index=False, float_format="%.6g")
        tis = cmp.time_in_system_hist
        tis.to_csv(tmp / "time_in_system_hist.csv", index=False, float_format="%.6g")
        if make_plots:
            from . import plots

            names = {g: gate.name for s in cmp.scenarios for g, gate in s.nominal.gates.items()}
            names["all"] = "all gates"
            plots.compare_differences(cmp.table, names, tmp / "compare_differences.png")
            plots.compare_time_in_system(tis, names, tmp / "time_in_system.png")
            plots.compare_queue_by_date(cmp.daily, names, tmp / "queue_by_date.png")
        meta = {
            "kind": "compare",
            "base": cmp.base.name,
            "scenarios": [{"name": s.name, "file": s.path} for s in cmp.scenarios],
            "seed": cmp.seed,
            "reps": cmp.reps,
            "engine": cmp.engine,
            "common_random_numbers": "replication i of every scenario uses the same seed",
            "bordersim_version": version(),
            "warnings": cmp.warnings,
            "wall_time_s": round(cmp.wall_s, 2),
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return staged
