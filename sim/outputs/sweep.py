"""A sweep and its results folder: ``sweep``, the entry point (``from sim import sweep``, and
``bordersim sweep``), runs the experiment of sim.experiments.sweep and writes its folder.

The folder is resumable: it holds ``sweep.json`` (the command, with the scenario's content
hash and the design's) and ``chunks/chunk-NNNNN.parquet``, each the summarised points of one
chunk, written whole; a sweep started again with the same command runs only the chunks
missing, a different command is refused. The final tables (sweep.parquet, sweep.csv,
sensitivity.csv), the plots, metadata.json and report.html are assembled from the chunks, so
they are the same however often the sweep stopped. Every write, the folder's creation and its
hold for the whole run are sim.base.outdir's (atomic files and folders, the marker's lock).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from ..base.outdir import atomic_file, version
from ..experiments.sensitivity import CONF_LEVEL, interval_level, tested_inputs
from ..experiments.sweep import Design, SweepResult, executor_for, prepare, run_points, summarise
from ..model.scenario import Scenario
from .provenance import seen_from
from .resumable import Resumable
from .results import FLOAT_FORMAT, prepare_writing, write_large_csv

SPEC_FILE = "sweep.json"
CHUNKS = "chunks"
CHUNK_REPS = 2_000  # replications a chunk of points holds at most (about a minute and a half on one core)


def sweep(scenario: str | Path | Scenario, params: Sequence[str] = (), design: str | None = None,
          points: int | None = None, reps: int = 20, seed: int = 20221130, engine: str = "fast",
          out: str | Path | None = None, workers: int | None = None, scheduler: str | None = None,
          address: str | None = None, executor=None, outputs: Sequence[str] = (), sets: Sequence[str] = (),
          allow_overload: bool = False, make_plots: bool = True, report: bool = True, progress: bool | None = None,
          warn=None, chunk_points: int | None = None, on_start=None) -> SweepResult:
    """Run a sweep (the Python form of ``bordersim sweep``) and return its tables.

    params: ``PATH=SPEC`` (SPEC a list 1,2,3, an integer range 1..4 or an interval 5:40) or a
    PATH of an uncertain input (its own range; for an input a fitted ensemble sets, the
    ensemble's 5-95 % range); none: every uncertain input of the scenario over its range, but
    those its fitted ensemble sets (they keep its parameter sets, as every input the sweep does
    not vary: replication i takes the same set at every point). design: grid, lhs, sobol or
    morris (default: grid for lists, sobol otherwise); points: its size (lhs: points; sobol: base N, a power of two, giving N x (D+2)
    points; morris: trajectories, N x (D+1) points). out: a folder to write to and resume from
    (None: nothing written). scheduler ``local`` (a pool of ``workers`` processes) or ``dask``
    (the cluster at ``address``, or a LocalCluster of ``workers`` processes); executor: any
    concurrent.futures.Executor instead. outputs: ``METRIC[@GATE]`` for the sensitivity and
    the plots. on_start(done, todo): called once the work is known (the CLI reports a resume).
    Every point is validated before any work; a problem is one SweepError (or ScenarioError)."""
    t0 = time.perf_counter()
    warnings: list[str] = []

    def _warn(text: str) -> None:
        warnings.append(text)
        if warn:
            warn(text)

    setup = prepare(scenario, params, design, points, reps, seed, engine, scheduler, address, outputs, sets,
                    allow_overload, _warn)
    dsg = setup.design
    target = Path(out) if out is not None else None
    with contextlib.ExitStack() as stack:
        folder = (stack.enter_context(sweep_folder(target, setup.identity(), dsg.points, reps, chunk_points))
                  if target is not None else None)
        chunk = folder.chunk_points if folder is not None else (chunk_points or default_chunk(dsg.points, reps))
        chunks = [list(range(i, min(i + chunk, dsg.points))) for i in range(0, dsg.points, chunk)]
        done = folder.done_chunks(chunks) if folder is not None else set()
        todo = [c for c in range(len(chunks)) if c not in done]
        n_done = sum(len(chunks[c]) for c in done)
        if on_start:
            on_start(n_done, dsg.points - n_done)
        frames: dict[int, pd.DataFrame] = {}
        todo_points = [p for c in todo for p in chunks[c]]
        n_workers = 1
        if todo_points:
            with executor_for(setup.scheduler, address, workers, executor, _warn) as (ex, n_workers):
                stream = run_points(setup, chunks, todo, ex, n_workers, progress,
                                    while_waiting=lambda: prepare_writing(make_plots))
                with contextlib.closing(stream):
                    for c, frame in stream:  # each chunk written (or kept) as soon as its last point is in
                        if folder is not None:
                            folder.write_chunk(c, frame)
                        else:
                            frames[c] = frame
        if folder is not None:
            table = folder.read_table(len(chunks))
        else:
            table = pd.concat([frames[c] for c in range(len(chunks))], ignore_index=True)
        table, sens = summarise(setup, table, warn=_warn)
        result = SweepResult(setup.scenario, dsg, reps, seed, engine, setup.outputs, table, sens, target,
                             len(todo_points), n_done, time.perf_counter() - t0, warnings, n_workers,
                             setup.scheduler, setup.ensemble())
        if folder is not None:
            folder.write_outputs(result, make_plots, report)
    return result


def default_chunk(points: int, reps: int) -> int:
    """Points per chunk file: at most CHUNK_REPS replications and a tenth of the points, so a
    kill loses little and the folder holds at most a few hundred files a thousand points."""
    return max(1, min(-(-CHUNK_REPS // reps), -(-points // 10)))


# ------------------------------------------------------------------ the folder


FOLDER = Resumable(
    "sweep", "sweep", "a", SPEC_FILE, CHUNKS,
    words={"scenario_sha256": "the scenario (its content, with the swept ranges)", "params": "--param",
           "design": "--design", "size": "--points", "reps": "--reps", "seed": "--seed", "engine": "--engine",
           "design_sha256": "the design's points", "points": "the number of points", "scenario": "the scenario"},
    shows=lambda key: key in ("design", "size", "reps", "seed", "engine", "points"))


@contextlib.contextmanager
def sweep_folder(out: Path, command: dict, points: int, reps: int,
                 chunk_points: int | None) -> Iterator["SweepFolder"]:
    """A sweep's folder, held for the block (sim.outputs.resumable): made whole with its marker
    and sweep.json if absent or empty, or reopened to resume; refused if it holds anything but a
    sweep of this very command."""

    def spec() -> dict:
        n = chunk_points or default_chunk(points, reps)
        return {"written_by": "bordersim", "kind": "sweep", "version": version(), "command": command,
                "chunk_points": n, "chunks": -(-points // n),
                "common_random_numbers": "replication i of every point uses the same seed"}

    with FOLDER.held(out, command, spec) as found:
        yield SweepFolder(out, found)


class SweepFolder:
    """A held sweep folder (sweep_folder): its identity (sweep.json), its chunks, its final tables."""

    def __init__(self, out: Path, spec: dict):
        self.out = out
        self.spec = spec
        self.chunk_points = int(spec["chunk_points"])

    def _chunk_path(self, c: int) -> Path:
        return self.out / CHUNKS / f"chunk-{c:05d}.parquet"

    def done_chunks(self, chunks: list[list[int]]) -> set[int]:
        """The chunks already written whole (a chunk that cannot be read or holds other points is
        removed, to be run again; what a killed writer left beside a chunk is removed when the
        chunk is written)."""
        done = set()
        for c, points in enumerate(chunks):
            path = self._chunk_path(c)
            if not path.exists():
                continue
            try:
                got = pd.read_parquet(path, columns=["point"])["point"].unique().tolist()
            except Exception:  # noqa: BLE001 - any unreadable file is run again
                got = None
            if got is not None and sorted(got) == points:
                done.add(c)
            else:
                os.unlink(path)
        return done

    def write_chunk(self, c: int, frame: pd.DataFrame) -> None:
        """One chunk's rows, whole (sim.base.outdir.atomic_file, below the folder it holds)."""
        with atomic_file(self._chunk_path(c), "sweep", record=False, below=True) as tmp:
            frame.to_parquet(tmp, index=False)

    def read_table(self, n: int) -> pd.DataFrame:
        return pd.concat([pd.read_parquet(self._chunk_path(c)) for c in range(n)], ignore_index=True)

    def write_outputs(self, result: SweepResult, make_plots: bool, report: bool = True) -> None:
        """sweep.parquet, sweep.csv, sensitivity.csv, the plots and report.html, each written whole."""
        with atomic_file(self.out / "sweep.parquet", "sweep") as tmp:
            result.table.to_parquet(tmp, index=False)
        with atomic_file(self.out / "sweep.csv", "sweep") as tmp:
            write_large_csv(result.table, tmp)
        if result.sensitivity is not None:
            with atomic_file(self.out / "sensitivity.csv", "sweep") as tmp:
                result.sensitivity.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
        if make_plots:
            from . import sweep_plots

            for name, draw in sweep_plots.figures(result):
                with atomic_file(self.out / name, "sweep") as tmp:
                    draw(tmp)
        meta = {"scenario_file": seen_from(self.out, result.scenario.path), "points": result.design.points,
                "reps": result.reps,
                "computed_this_run": result.computed, "found_done": result.resumed,
                "outputs": [o.label for o in result.outputs], "ensemble": result.ensemble,
                "intervals": interval_meta(result.design),
                "workers": result.workers, "scheduler": result.scheduler, "wall_time_s": round(result.wall_s, 2),
                "warnings": result.warnings, "bordersim_version": version()}
        with atomic_file(self.out / "metadata.json", "sweep") as tmp:
            tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if report:
            from .report import build_report

            html = build_report(self.out, draw_missing=False)
            with atomic_file(self.out / "report.html", "sweep", record=False) as tmp:
                tmp.write_text(html, encoding="utf-8")


def interval_meta(dsg: Design) -> dict:
    """What metadata.json records of the sensitivity intervals: their level (None for a grid,
    which has none) and the number of inputs it is corrected for."""
    tested = tested_inputs(dsg)
    return {"level": None if dsg.kind == "grid" else interval_level(tested), "inputs_tested": tested,
            "correction": f"Bonferroni: each input's interval at 1 - {1 - CONF_LEVEL:g} / inputs_tested"}


__all__ = ["SweepFolder", "default_chunk", "sweep", "sweep_folder"]
