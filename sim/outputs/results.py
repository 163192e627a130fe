"""Write a run's tables and plots atomically: all files appear together or none do."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from ..base.outdir import Staged, atomic_dir, version
from ..experiments.run import RunResult
from ..experiments.targets import targets_table
from ..experiments.workers import available_cores, local_pool
from .provenance import keep_scenario_files, scenario_metadata, seen_from

# the tables' numbers: ten significant digits, so that a count in the millions (truck-hours waiting)
# reads whole and a mean keeps more digits than any interval of it needs
FLOAT_FORMAT = "%.10g"


def prepare_writing(make_plots: bool = True) -> None:
    """Import what writing results needs (interval quantiles, pyarrow, matplotlib): a second or
    two a run can spend while its workers simulate, rather than after them."""
    import pyarrow.csv  # noqa: F401
    from scipy.special import stdtrit  # noqa: F401

    if make_plots:
        from . import plots

        plots.warm_up()


def write_large_csv(table, path: Path) -> None:
    """A long machine-read table (per_replication.csv: a row per metric and replication) with
    pyarrow's CSV writer, ten times pandas' speed; floats in full precision, NaN as empty."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), path)


TEXT_COLUMNS = ("scenario", "gate", "direction", "metric", "stage", "class", "month")


def read_table(path: str | Path):
    """A CSV table bordersim wrote, read back as the Python API gives it: the text columns as
    text, an empty stage or class as "" (pandas' default reads it as NaN, and a scenario named
    "NA" as NaN too), an empty number as NaN."""
    import pandas as pd

    header = pd.read_csv(path, nrows=0).columns
    text = [c for c in header if c in TEXT_COLUMNS]
    return pd.read_csv(path, keep_default_na=False, dtype={c: str for c in text},
                       na_values={c: [""] for c in header if c not in text})


def _draw(plot: str, table, names: dict, path: Path) -> None:
    from . import plots  # matplotlib is imported only when plots are drawn

    getattr(plots, plot)(table, names, path)


@contextlib.contextmanager
def drawing(jobs: list[tuple[str, object, dict, Path]], workers: int = 1):
    """Draw each (plot function name, table, gate names, path) by the end of the with block;
    with more than one worker, in worker processes from the start of the block on, while the
    caller writes its tables (drawing is a good part of writing a run). An error or interrupt
    in the block kills the drawing workers."""
    workers = min(workers, len(jobs), available_cores())
    if workers < 2:
        yield
        for job in jobs:
            _draw(*job)
        return
    with local_pool(workers) as pool:
        futures = [pool.submit(_draw, *job) for job in jobs]
        yield
        for f in futures:
            f.result()


def write_results(result: RunResult, out_dir: str | Path, make_plots: bool = True, report: bool = True) -> Path:
    """Write summary.csv, daily.csv, monthly.csv, per_replication.csv, per_replication_monthly.csv,
    the plot tables, PNGs and metadata.json.

    They go to a temporary folder beside ``out_dir`` that replaces it only when complete; an
    ``out_dir`` bordersim did not write is refused (sim.base.outdir.check_target).
    """
    return write_run(result, out_dir, make_plots, report).out


@contextlib.contextmanager
def _staged(out: str | Path | Staged, kind: str) -> Iterator[Staged]:
    """The folder to write into: a Staged one the caller opened (with sim.base.outdir.atomic_dir, at
    the start of its work, so that other writers are refused from then on), else one opened
    now that replaces ``out`` when the block ends."""
    if isinstance(out, Staged):
        if out.kind != kind:
            raise ValueError(f"a folder staged for a {out.kind}, not a {kind}")
        yield out
        return
    with atomic_dir(out, kind) as staged:
        yield staged


def write_run(result: RunResult, out_dir: str | Path | Staged, make_plots: bool = True, report: bool = True) -> Staged:
    """write_results, also telling whether earlier results were replaced (the CLI says so); with
    ``report``, report.html too (sim.outputs.report). ``out_dir`` may be a folder staged by the caller
    (sim.base.outdir.atomic_dir): it is filled, and replaces its target when the caller's block ends."""
    with _staged(out_dir, "run") as staged:
        tmp = staged.dir
        daily, qbh, tis = result.daily, result.queue_by_hour, result.time_in_system_hist
        names = {g: gate.name for g, gate in result.scenario.nominal.gates.items()}
        names["all"] = "all gates"
        # the longest to draw first (0.4, 0.3, 0.2, 0.1 s here), so that two workers end together
        jobs = [("queue_by_date", daily, names, tmp / "queue_by_date.png"),
                ("queue_by_hour", qbh, names, tmp / "queue_by_hour.png"),
                ("crossings_per_day", daily, names, tmp / "crossings_per_day.png"),
                ("time_in_system", tis, names, tmp / "time_in_system.png")]
        with drawing(jobs if make_plots else [], result.workers):
            result.summary.to_csv(tmp / "summary.csv", index=False, float_format=FLOAT_FORMAT)
            write_large_csv(result.per_replication, tmp / "per_replication.csv")
            write_large_csv(result.per_replication_monthly, tmp / "per_replication_monthly.csv")
            daily.to_csv(tmp / "daily.csv", index=False, float_format=FLOAT_FORMAT)
            result.monthly.to_csv(tmp / "monthly.csv", index=False, float_format=FLOAT_FORMAT)
            qbh.to_csv(tmp / "queue_by_hour.csv", index=False, float_format=FLOAT_FORMAT)
            tis.to_csv(tmp / "time_in_system_hist.csv", index=False, float_format=FLOAT_FORMAT)
            fit = targets_table(result.scenario, result.results)  # a fitted scenario: its targets, for the report
            if fit is not None:
                fit.to_csv(tmp / "targets.csv", index=False)  # full precision: the report rounds as --check does
        copies = keep_scenario_files([result.scenario], tmp)
        meta = {
            "kind": "run",
            "scenario": result.scenario.name,
            "scenario_file": seen_from(staged.out, result.scenario.path),
            "seed": result.seed,
            "reps": result.reps,
            "engine": result.engine,
            "bordersim_version": version(),
            "uncertain_inputs": {r.name(): {r.kind: list(r.values)} for r in result.scenario.ranges},
            "warnings": result.warnings,
            "wall_time_s": round(result.wall_s, 2),
            "plots": make_plots,
            "scenario_details": scenario_metadata(result.scenario, staged.out, copies),
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if report:
            _write_report(staged)
    return staged


def _write_report(staged: Staged) -> None:
    """report.html beside the tables (from them: sim.outputs.report); it carries its own SHA-256, so
    that `bordersim report` may replace it later, and never a report someone has edited since."""
    from .report import build_report

    (staged.dir / "report.html").write_text(build_report(staged.dir, draw_missing=False), encoding="utf-8")


def corridor_daily(daily, scenarios) -> dict:
    """Per corridor of any of the scenarios (by id): the stacked daily table's rows of its
    gates, with the corridor's name in a ``corridor`` column (what plots.corridor_shares draws;
    a scenario without the corridor shows its gates' own shares)."""
    out = {}
    for s in scenarios:
        for cid, c in s.nominal.corridors.items():
            if cid not in out:
                rows = daily[daily["gate"].isin(list(c.gates))].copy()
                rows["corridor"] = c.name or cid
                out[cid] = rows
    return out


def write_comparison(cmp, out_dir: str | Path | Staged, make_plots: bool = True, report: bool = True) -> Staged:
    """compare.csv, compare_monthly.csv and compare_daily.csv (the paired differences), each
    scenario's summary, daily and monthly tables (stacked, with a scenario column), the
    comparison plots, metadata.json and (with ``report``) report.html, into one folder written
    atomically (``out_dir``: a folder, or one the caller staged, as for write_run)."""
    with _staged(out_dir, "compare") as staged:
        tmp = staged.dir
        tis = cmp.time_in_system_hist
        names = {g: gate.name for s in cmp.scenarios for g, gate in s.nominal.gates.items()}
        names["all"] = "all gates"
        daily_differences = cmp.daily_differences
        jobs = [("compare_differences", cmp.table, names, tmp / "compare_differences.png"),
                ("compare_time_in_system", tis, names, tmp / "time_in_system.png"),
                ("compare_queue_differences", daily_differences, names, tmp / "queue_by_date.png")]
        jobs += [("corridor_shares", table, names, tmp / f"corridor_{cid}.png")
                 for cid, table in corridor_daily(cmp.daily, cmp.scenarios).items()]
        with drawing(jobs if make_plots else [], cmp.workers):
            cmp.table.to_csv(tmp / "compare.csv", index=False, float_format=FLOAT_FORMAT)
            cmp.summary.to_csv(tmp / "summary.csv", index=False, float_format=FLOAT_FORMAT)
            cmp.daily.to_csv(tmp / "daily.csv", index=False, float_format=FLOAT_FORMAT)
            cmp.monthly.to_csv(tmp / "monthly.csv", index=False, float_format=FLOAT_FORMAT)
            cmp.monthly_differences.to_csv(tmp / "compare_monthly.csv", index=False, float_format=FLOAT_FORMAT)
            daily_differences.to_csv(tmp / "compare_daily.csv", index=False, float_format=FLOAT_FORMAT)
            tis.to_csv(tmp / "time_in_system_hist.csv", index=False, float_format=FLOAT_FORMAT)
        copies = keep_scenario_files(cmp.scenarios, tmp)
        meta = {
            "kind": "compare",
            "base": cmp.base.name,
            "scenarios": [{"name": s.name, "file": seen_from(staged.out, s.path)} for s in cmp.scenarios],
            "seed": cmp.seed,
            "reps": cmp.reps,
            "engine": cmp.engine,
            "common_random_numbers": "replication i of every scenario uses the same seed",
            "bordersim_version": version(),
            "warnings": cmp.warnings,
            "wall_time_s": round(cmp.wall_s, 2),
            "plots": make_plots,
            "scenario_details": [scenario_metadata(s, staged.out, copies) for s in cmp.scenarios],
        }
        (tmp / "metadata.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if report:
            _write_report(staged)
    return staged
