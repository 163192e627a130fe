"""An optimisation and its results folder: ``optimise``, the entry point (``from sim import
optimise`` and ``bordersim optimise``), runs the search of sim.experiments.optimise and writes
its folder.

The folder is resumable: ``optimise.json`` holds the command (with the scenario's content
hash), ``study/journal.log`` optuna's storage (its journal of every trial asked and told); an
optimisation started again with the same command resumes the study, a different one is
refused. The final files (trials.csv, front.csv, front.png, recommended.toml, evidence.csv,
metadata.json, report.html) are written whole at the end, from the study alone, so they are
the same however often the search stopped. Every write, the folder's creation and its hold for
the whole run are sim.base.outdir's.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..base.outdir import atomic_file, file_lock, version
from ..experiments import optimise as opt
from ..model.scenario import Scenario
from .provenance import seen_from
from .resumable import Resumable
from .results import FLOAT_FORMAT

SPEC_FILE = "optimise.json"
STUDY_DIR = "study"
JOURNAL = "journal.log"


@dataclass
class OptimiseResult:
    """A finished optimisation: every trial, the front, the recommendation and its evidence."""

    setup: opt.OptimiseSetup
    trials: pd.DataFrame = field(repr=False)
    front: pd.DataFrame = field(repr=False)
    recommended: pd.Series | None
    evidence: pd.DataFrame | None = field(repr=False)
    recommended_toml: str | None
    out: Path | None
    computed: int
    resumed: int
    wall_s: float
    warnings: list[str]
    workers: int = 1


def optimise(scenario: str | Path | Scenario, objective: str = "lever_cost", constraints: Sequence[str] = (),
             levers: Sequence[str] = (), trials: int = opt.DEFAULT_TRIALS, reps: int = opt.DEFAULT_REPS,
             batch: int = opt.DEFAULT_BATCH, seed: int = 20221130, engine: str = "fast",
             out: str | Path | None = None, workers: int | None = None, scheduler: str | None = None,
             address: str | None = None, executor=None, sets: Sequence[str] = (), make_plots: bool = True,
             report: bool = True, progress: bool | None = None, warn=None, on_start=None) -> OptimiseResult:
    """Search the scenario's levers (the Python form of ``bordersim optimise``): ``trials``
    trials of ``reps`` replications each on common random numbers, proposed ``batch`` at a time
    by optuna's TPE sampler; then the recommended levers re-run on fresh seeds against the
    scenario as given. out: a folder to write to and resume from (None: nothing written).
    on_start(done, todo): called once the work is known. Everything is checked before any
    work; a problem is one BordersimError."""
    t0 = time.perf_counter()
    warnings: list[str] = []

    def _warn(text: str) -> None:
        warnings.append(text)
        if warn:
            warn(text)

    setup = opt.prepare(scenario, objective, constraints, levers, trials, reps, batch, seed, engine, scheduler,
                        address, sets)
    target = Path(out) if out is not None else None
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(optimise_folder(target, setup.identity())) if target is not None else None
        storage = folder.storage() if folder is not None else None
        done = folder.finished_trials() if folder is not None else 0
        if on_start:
            on_start(done, setup.trials - done)
        with opt.executor_of(setup, workers, executor, _warn) as (ex, n_workers):
            study = opt.search(setup, storage, ex, n_workers, progress)
            table = opt.trials_table(setup, study)
            best = opt.recommend(setup, table)
            proof = None
            if best is not None:
                proof = opt.evidence(setup, {lid: best[lid] for lid in setup.space.levers}, ex, n_workers, progress)
        front = opt.front_table(setup, table)
        rec_toml = recommended_toml(setup, best, target) if best is not None else None
        for note in ([] if best is None else opt.at_range_end(setup, best)):
            _warn(note)
        if best is None:
            _warn(f"no trial meets every constraint ({'; '.join(c.label for c in setup.constraints)}): no "
                  "recommendation; widen the levers' ranges, or loosen a constraint")
        result = OptimiseResult(setup, table, front, best, proof, rec_toml, target, setup.trials - done, done,
                                time.perf_counter() - t0, warnings, n_workers)
        if folder is not None:
            folder.write_outputs(result, make_plots, report)
    return result


def _cost_ranges(setup: opt.OptimiseSetup, lid: str) -> dict:
    """A lever's costs that are ranges, as the page says them: {field_range: {kind, values}}
    (the lever's own fields hold the ranges' means)."""
    from ..experiments.levers import cost_input
    from ..model.schema import LEVER_COST_FIELDS

    found = {f: setup.scenario.by_name.get(cost_input(lid, f)) for f in LEVER_COST_FIELDS}
    return {f"{f}_range": {"kind": r.kind, "values": list(r.values)} for f, r in found.items() if r is not None}


def recommended_toml(setup: opt.OptimiseSetup, best: pd.Series, folder: Path | None) -> str:
    """The scenario with the recommended levers: ``extends`` the scenario's file (relative to
    the folder the file goes to) and sets what the levers change, as TOML tables."""
    import tomlkit

    from ..model.ranges import model_form
    from ..model.scenario import merge_layers, set_layer

    values = {lid: best[lid] for lid in setup.space.levers}
    lines = setup.space.sets(values)
    scenario = setup.scenario
    layers = list(scenario.layers) or []
    changes = model_form(set_layer(lines, merge_layers(layers), scenario.path).raw) if lines and layers else {}
    here = folder if folder is not None else Path.cwd()
    doc = tomlkit.document()
    said = ", ".join(f"{lid} = {values[lid]}" for lid in setup.space.levers)
    for text in (f"Written by bordersim optimise: the recommended levers of {scenario.name} ({said}), trial "
                 f"{int(best['trial'])}: the least {setup.objective.label} of the trials that met "
                 f"{'; '.join(c.label for c in setup.constraints) or 'no constraint'}.",
                 "The changes are the levers' (their paths and choices in the scenario's [levers] tables).",
                 "Run it with bordersim run (its extends is relative to this folder)."):
        doc.add(tomlkit.comment(text))
    doc.add("extends", os.path.relpath(Path(scenario.path).resolve(), here.resolve()))
    doc.add("name", f"{scenario.name}_recommended")
    doc.add("description", f"{scenario.name} with the recommended levers: {said}")
    for key, value in changes.items():
        doc.add(key, value)
    return tomlkit.dumps(doc)


# ------------------------------------------------------------------ the folder


def _flock_lock(path: Path):
    """optuna's journal lock as a flock of the journal itself (sim.base.outdir.file_lock): a killed
    search leaves no lock file to wait on, as optuna's own file and symlink locks would."""
    from optuna.storages.journal._file import BaseJournalFileLock

    class _FlockLock(BaseJournalFileLock):
        def __init__(self) -> None:
            self.held = contextlib.ExitStack()

        def acquire(self) -> bool:
            self.held.enter_context(file_lock(path))
            return True

        def release(self) -> None:
            self.held.close()

    return _FlockLock()


FOLDER = Resumable(
    "optimise", "optimisation", "an", SPEC_FILE, STUDY_DIR,
    words={"scenario_sha256": "the scenario (its content)", "levers": "--lever", "objective": "--objective",
           "constraints": "--constraint", "trials": "--trials", "reps": "--reps", "batch": "--batch",
           "seed": "--seed", "engine": "--engine", "scenario": "the scenario"},
    shows=lambda key: key != "scenario_sha256")


@contextlib.contextmanager
def optimise_folder(out: Path, command: dict) -> Iterator["OptimiseFolder"]:
    """An optimisation's folder, held for the block (sim.outputs.resumable, as a sweep's): made
    whole with its marker, optimise.json and study/ if absent or empty, or reopened to resume;
    refused if it holds anything but an optimisation of this very command."""

    def spec() -> dict:
        return {"written_by": "bordersim", "kind": "optimise", "version": version(), "command": command,
                "common_random_numbers": "replication i of every trial uses the same seed"}

    with FOLDER.held(out, command, spec):
        yield OptimiseFolder(out)


class OptimiseFolder:
    """A held optimisation folder: its study's storage and its final files."""

    def __init__(self, out: Path):
        self.out = out
        self.journal = out / STUDY_DIR / JOURNAL

    def storage(self):
        """optuna's journal storage in study/ (a line a record; a line a kill cut short is dropped,
        as the folder is held and nobody else appends to it)."""
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        if self.journal.exists():
            data = self.journal.read_bytes()
            if data and not data.endswith(b"\n"):
                with open(self.journal, "r+b") as fh:
                    fh.truncate(data.rfind(b"\n") + 1)
        return JournalStorage(JournalFileBackend(str(self.journal), lock_obj=_flock_lock(self.journal)))

    def finished_trials(self) -> int:
        """Trials the study holds told already (0 for a new folder)."""
        if not self.journal.exists() or self.journal.stat().st_size == 0:
            return 0
        import optuna
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            study = optuna.load_study(study_name=opt.STUDY, storage=self.storage())
        except KeyError:
            return 0
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)))

    def write_outputs(self, result: OptimiseResult, make_plots: bool, report: bool = True) -> None:
        kind = "optimise"
        with atomic_file(self.out / "trials.csv", kind) as tmp:
            result.trials.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
        with atomic_file(self.out / "front.csv", kind) as tmp:
            result.front.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
        if result.evidence is not None:
            with atomic_file(self.out / "evidence.csv", kind) as tmp:
                result.evidence.to_csv(tmp, index=False, float_format=FLOAT_FORMAT)
        if result.recommended_toml is not None:
            with atomic_file(self.out / "recommended.toml", kind) as tmp:
                tmp.write_text(result.recommended_toml, encoding="utf-8")
        if make_plots:
            from .optimise_plots import front_figure

            with atomic_file(self.out / "front.png", kind) as tmp:
                front_figure(result, tmp)
        s = result.setup
        meta = {"scenario_file": seen_from(self.out, s.scenario.path), "sets": list(s.sets),
                "objective": s.objective.label,
                "performance": s.performance_label, "constraints": [c.label for c in s.constraints],
                "levers": {lid: {**lv.model_dump(mode="json", exclude_none=True), **_cost_ranges(s, lid)}
                           for lid, lv in s.space.levers.items()},
                "trials": s.trials, "reps": s.reps, "batch": s.batch, "seed": s.seed,
                "evidence_seed": opt.evidence_seed(s.seed),
                "evidence_seed_rule": f"derived from --seed under the name '{opt.EVIDENCE_STREAM}' "
                                      "(sim.base.rng.derived_seed): not the search's replications",
                "recommended_trial": None if result.recommended is None else int(result.recommended["trial"]),
                "per_year": opt.per_year(s.scenario), "computed_this_run": result.computed,
                "found_done": result.resumed, "workers": result.workers, "scheduler": s.scheduler,
                "engine": s.engine, "wall_time_s": round(result.wall_s, 2), "warnings": result.warnings,
                "bordersim_version": version()}
        with atomic_file(self.out / "metadata.json", kind) as tmp:
            tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        if report:
            from .report import build_report

            html = build_report(self.out, draw_missing=False)
            with atomic_file(self.out / "report.html", kind, record=False) as tmp:
                tmp.write_text(html, encoding="utf-8")


__all__ = ["OptimiseFolder", "OptimiseResult", "optimise", "optimise_folder", "recommended_toml"]
