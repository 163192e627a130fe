"""Write a run's tables and plots atomically: all files appear together or none do."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..base.outdir import Staged, atomic_dir, version
from ..experiments.run import RunResult
from ..experiments.targets import targets_table
from ..experiments.workers import available_cores, local_pool

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


def _jsonable(value):
    """A raw scenario value as JSON: dates and times in ISO form, tables and lists throughout."""
    import datetime as dt

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def layer_changes(scenario) -> list[dict]:
    """Each file of the scenario's chain (parent first; a --set layer too): its name and
    description, and for every file after the first the inputs it changes against the scenario
    it extends, each as {input, before, after} (before None: new). The first file defines the
    scenario: its inputs are not listed here (the report reads them from the file)."""
    from ..model.ranges import path_str
    from ..model.scenario import merge_layers

    out = []
    merged: dict = {}
    for i, layer in enumerate(scenario.layers):
        before = dict(_units(merged))
        merged = merge_layers(list(scenario.layers[:i + 1]))
        entry = {"file": layer.file, "name": layer.raw.get("name"), "description": layer.raw.get("description")}
        if i:
            after = dict(_units(merged))
            changed = [p for p in after if before.get(p, _MISSING) != after[p]]
            changed += [p for p in before if p not in after]
            entry["changes"] = [{"input": path_str(p), "before": _jsonable(before.get(p)),
                                 "after": _jsonable(after.get(p))} for p in changed]
        out.append(entry)
    return out


_MISSING = object()


def _units(node, path: tuple = ()):
    """(path, value) of each input of a raw tree as a file writes it: plain values, ranges and
    lists whole (hours, a filter's gates), tables key by key; promises ([[expect]]) left out."""
    from ..model.ranges import is_range

    if isinstance(node, dict) and not is_range(node):
        for k, v in node.items():
            if not path and k == "expect":
                continue
            yield from _units(v, path + (k,))
    else:
        yield path, node


SCENARIO_FILES = "scenario_files"  # in a results folder: each scenario file as the run read it
SET_LAYER = " (--set)"  # ends the name of a scenario's --set layer (sim.model.scenario.set_layer)


def keep_scenario_files(scenarios, folder: Path) -> dict[str, str]:
    """Copy each file of the scenarios' chains, as the run read it, into ``folder``/scenario_files/
    (one copy of each; a name that two different files share gets a number), so that the report
    reads the comments and sources behind each input from the results folder itself, never from
    a path its metadata.json names. Returns each file -> its copy, relative to ``folder``."""
    copies: dict[str, str] = {}
    kept: dict[str, bytes] = {}
    for scenario in scenarios:
        for layer in scenario.layers:
            if not layer.data or layer.file in copies:
                continue
            path = Path(layer.file)
            name, k = path.name, 1
            while name in kept and kept[name] != layer.data:
                k += 1
                name = f"{path.stem}-{k}{path.suffix}"
            if name not in kept:
                (folder / SCENARIO_FILES).mkdir(exist_ok=True)
                (folder / SCENARIO_FILES / name).write_bytes(layer.data)
                kept[name] = layer.data
            copies[layer.file] = f"{SCENARIO_FILES}/{name}"
    return copies


def seen_from(folder: Path | None, path: str | None) -> str | None:
    """A file's path as seen from a results folder, which metadata.json records (so that it names
    no absolute path of this machine); as it is without a folder."""
    if folder is None or not path:
        return path
    return os.path.relpath(Path(path).resolve(), Path(folder).resolve())


def scenario_metadata(scenario, folder: Path | None = None, copies: dict[str, str] | None = None) -> dict:
    """What a report needs of a scenario besides the tables: its files and what each changes,
    its ensemble, its gates' names and fixed closures, its promises ([[expect]]). With the
    results ``folder``, paths are relative to it: each file's ``origin``, and as ``file`` its
    copy in the folder (``copies``: keep_scenario_files) that the report reads."""
    from dataclasses import asdict

    from .findings import closures_of

    m = scenario.nominal
    layers = layer_changes(scenario)
    if folder is not None:
        for entry in layers:
            origin = entry["file"]
            if origin.endswith(SET_LAYER):
                entry["file"] = seen_from(folder, origin[:-len(SET_LAYER)]) + SET_LAYER
                continue
            entry["origin"] = seen_from(folder, origin)
            entry["file"] = (copies or {}).get(origin, entry["origin"])
            for change in entry.get("changes", []):
                if change["input"] == "ensemble":
                    change["before"], change["after"] = (seen_from(folder, change["before"]),
                                                         seen_from(folder, change["after"]))
    return {
        "name": scenario.name,
        "file": seen_from(folder, scenario.path),
        "description": m.description,
        "horizon": {"start": str(m.horizon.start), "end": str(m.horizon.end), "warmup_days": m.horizon.warmup_days},
        "layers": layers,
        "ensemble": None if scenario.ensemble is None else {
            "file": seen_from(folder, scenario.ensemble_file), "rows": len(scenario.ensemble),
            "inputs": list(scenario.ensemble.columns)},
        "gates": {g: {"name": gate.name, "closures": [asdict(c) for c in closures_of(m)[g]]}
                  for g, gate in m.gates.items()},
        "expect": [e.model_dump() for e in m.expect],
        "uncertain_inputs": {r.name(): {r.kind: list(r.values)} for r in scenario.ranges},
    }


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
        jobs = [("queue_by_hour", qbh, names, tmp / "queue_by_hour.png"),
                ("time_in_system", tis, names, tmp / "time_in_system.png"),
                ("crossings_per_day", daily, names, tmp / "crossings_per_day.png"),
                ("queue_by_date", daily, names, tmp / "queue_by_date.png")]
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
