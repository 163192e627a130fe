"""Write a run's tables and plots atomically: all files appear together or none do."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

from .outdir import Staged, atomic_dir, version
from .run import RunResult
from .workers import available_cores, local_pool


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
        daily, qbh, tis = result.daily, result.queue_by_hour, result.time_in_system_hist
        names = {g: gate.name for g, gate in result.scenario.nominal.gates.items()}
        names["all"] = "all gates"
        jobs = [("queue_by_hour", qbh, names, tmp / "queue_by_hour.png"),
                ("time_in_system", tis, names, tmp / "time_in_system.png"),
                ("crossings_per_day", daily, names, tmp / "crossings_per_day.png"),
                ("queue_by_date", daily, names, tmp / "queue_by_date.png")]
        with drawing(jobs if make_plots else [], result.workers):
            result.summary.to_csv(tmp / "summary.csv", index=False, float_format="%.6g")
            write_large_csv(result.per_replication, tmp / "per_replication.csv")
            daily.to_csv(tmp / "daily.csv", index=False, float_format="%.6g")
            qbh.to_csv(tmp / "queue_by_hour.csv", index=False, float_format="%.6g")
            tis.to_csv(tmp / "time_in_system_hist.csv", index=False, float_format="%.6g")
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
        tis = cmp.time_in_system_hist
        names = {g: gate.name for s in cmp.scenarios for g, gate in s.nominal.gates.items()}
        names["all"] = "all gates"
        jobs = [("compare_differences", cmp.table, names, tmp / "compare_differences.png"),
                ("compare_time_in_system", tis, names, tmp / "time_in_system.png"),
                ("compare_queue_by_date", cmp.daily, names, tmp / "queue_by_date.png")]
        with drawing(jobs if make_plots else [], cmp.workers):
            cmp.table.to_csv(tmp / "compare.csv", index=False, float_format="%.6g")
            cmp.summary.to_csv(tmp / "summary.csv", index=False, float_format="%.6g")
            cmp.daily.to_csv(tmp / "daily.csv", index=False, float_format="%.6g")
            tis.to_csv(tmp / "time_in_system_hist.csv", index=False, float_format="%.6g")
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
