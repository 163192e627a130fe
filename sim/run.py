"""Run replications of a scenario: in parallel, reproducibly, with progress."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from . import capacity
from .experiment import ENGINES, Point, replicate, run_design
from .metrics import (
    ReplicationResult,
    daily_table,
    per_replication,
    queue_by_hour_table,
    summarise,
    tis_hist_table,
)
from .scenario import Scenario
from .workers import resolve_workers, tune_allocator

DEFAULT_REPS = 10
DEFAULT_SEED = 20221130


def run_replication(scenario: Scenario, seed: int, index: int, engine: str = "fast") -> ReplicationResult:
    """One replication; its result depends only on (scenario, seed, index), and the engines agree."""
    return replicate(scenario, seed, index, engine)


@dataclass
class RunResult:
    scenario: Scenario
    seed: int
    reps: int
    engine: str
    results: list[ReplicationResult] = field(repr=False)
    wall_s: float
    warnings: list[str]

    @cached_property
    def summary(self) -> pd.DataFrame:
        """Tables are computed once, on first use (the CLI prints and writes the same summary)."""
        return summarise(self.results)

    @cached_property
    def per_replication(self) -> pd.DataFrame:
        return per_replication(self.results)

    @cached_property
    def daily(self) -> pd.DataFrame:
        return daily_table(self.results, self.scenario.nominal.horizon.start)

    @cached_property
    def queue_by_hour(self) -> pd.DataFrame:
        return queue_by_hour_table(self.results)

    @cached_property
    def time_in_system_hist(self) -> pd.DataFrame:
        return tis_hist_table(self.results)


def run(
    scenario: Scenario,
    reps: int = DEFAULT_REPS,
    seed: int = DEFAULT_SEED,
    workers: int | None = None,
    engine: str = "fast",
    allow_overload: bool = False,
    progress: bool | None = None,
    chunk_size: int | None = None,
    warn=None,
) -> RunResult:
    """Run ``reps`` replications; the result is the same whatever ``workers`` and ``chunk_size`` are.

    ``workers`` (default: one per core available) is cut to the cores available; ``warn``, if
    given, is called with each warning as soon as it is known (they are also in the result)."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    warnings = capacity.check(scenario, allow_overload=allow_overload)
    workers, cut = resolve_workers(workers, reps)
    if cut:
        warnings.append(cut)
    for w in warnings if warn else ():
        warn(w)
    tune_allocator()
    t0 = time.perf_counter()
    results = run_design([Point(scenario)], reps, seed, engine, workers=workers, progress=progress,
                         chunk=chunk_size, desc=f"{scenario.name} ({engine})")[0]
    return RunResult(scenario, seed, reps, engine, results, time.perf_counter() - t0, warnings)
