"""Run replications of a scenario: in parallel, reproducibly, with progress."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from . import capacity, des, fast
from .workers import local_pool, resolve_workers
from .inputs import replication_inputs
from .metrics import (
    ReplicationResult,
    daily_table,
    per_replication,
    queue_by_hour_table,
    replication_metrics,
    summarise,
    tis_hist_table,
)
from .rng import replication_seed
from .scenario import Scenario

DEFAULT_REPS = 10
DEFAULT_SEED = 20221130
ENGINES = ("fast", "des")
SIMULATORS = {"des": des.simulate, "fast": fast.simulate}


_ALLOCATOR_TUNED = False


def tune_allocator() -> None:
    """Keep freed memory for reuse instead of handing it back to the OS (glibc only; a no-op
    elsewhere). A replication allocates and frees arrays of a few MB; by default glibc maps
    each afresh and returns it on free, so every replication paid for ~10 MB of page faults,
    a sixth of its time. Process-wide and idempotent; memory stays at its peak."""
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return
    _ALLOCATOR_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    libc.mallopt(m_mmap_threshold, 256 << 20)
    libc.mallopt(m_trim_threshold, 512 << 20)


def run_replication(scenario: Scenario, seed: int, index: int, engine: str = "fast") -> ReplicationResult:
    """One replication; its result depends only on (scenario, seed, index), and the engines agree."""
    rep = replication_inputs(scenario, replication_seed(seed, index))
    return replication_metrics(rep, SIMULATORS[engine](rep))


def _run_chunk(args) -> tuple[int, list[ReplicationResult]]:
    """Replications first..last-1: a chunk of work for one process."""
    scenario, seed, first, last, engine = args
    return first, [run_replication(scenario, seed, i, engine) for i in range(first, last)]


def default_chunk_size(reps: int, workers: int) -> int:
    """Small enough to balance the workers and show progress, large enough to amortise start-up."""
    return max(1, min(25, -(-reps // (4 * workers))))


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
    results: list[ReplicationResult | None] = [None] * reps
    # progress None: a bar when stderr is a terminal
    bar = tqdm(total=reps, desc=f"{scenario.name} ({engine})", unit="rep",
               disable=None if progress is None else not progress, file=sys.stderr)
    chunk = chunk_size or default_chunk_size(reps, workers)
    tasks = [(scenario, seed, i, min(i + chunk, reps), engine) for i in range(0, reps, chunk)]

    def collect(first: int, chunk_results: list[ReplicationResult]) -> None:
        results[first:first + len(chunk_results)] = chunk_results
        bar.update(len(chunk_results))

    try:
        if workers == 1:
            with threadpool_limits(limits=1):  # as in a worker: no BLAS threads spinning beside us
                for t in tasks:
                    collect(*_run_chunk(t))
        else:
            with local_pool(workers) as pool:
                for first, chunk_results in pool.map(_run_chunk, tasks):
                    collect(first, chunk_results)
    finally:
        bar.close()
    return RunResult(scenario, seed, reps, engine, results, time.perf_counter() - t0, warnings)
