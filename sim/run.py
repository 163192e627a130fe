"""Run replications of a scenario: in parallel, reproducibly, with progress."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd
from tqdm import tqdm

from . import capacity, des, fast
from .errors import RunError
from .inputs import replication_inputs
from .metrics import (
    ReplicationResult,
    daily_table,
    per_replication,
    queue_by_hour_table,
    replication_metrics,
    result_bytes,
    summarise,
    tis_hist_table,
)
from .rng import replication_seed
from .scenario import Scenario

DEFAULT_REPS = 10
DEFAULT_SEED = 20221130
ENGINES = ("fast", "des")
SIMULATORS = {"des": des.simulate, "fast": fast.simulate}
MAX_REPS = 1_000_000  # a run's results stay in memory until its tables are written
MEMORY_SHARE = 0.5  # of the machine's physical memory, for one run's results


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


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _binary_size(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    i = 0
    while n >= 1024 and i < len(units) - 1:
        n /= 1024
        i += 1
    return f"{n:.0f} B" if i == 0 else f"{n:.1f} {units[i]}"


def _round_down(n: int) -> int:
    """n to two significant digits, rounded down (a limit stated in a message must hold)."""
    step = 10 ** max(0, len(str(n)) - 2)
    return n // step * step


def check_reps(scenario: Scenario, reps: int, option: str = "--reps") -> None:
    """Refuse, before any work, a number of replications over MAX_REPS or whose results would
    not fit in MEMORY_SHARE of this machine's memory (``option`` names the input in the error)."""
    per_rep = result_bytes(scenario.nominal)
    memory = physical_memory()
    fit = MAX_REPS if memory is None else int(MEMORY_SHARE * memory // per_rep)
    if reps > fit and fit < MAX_REPS:
        raise RunError(None, option, (
            f"{reps:,} replications of {scenario.name} need about {_binary_size(reps * per_rep)} for their "
            f"results; at most {_round_down(fit):,} fit in half of this machine's {_binary_size(memory)}"))
    if reps > MAX_REPS:
        raise RunError(None, option, f"{reps:,} replications asked; at most {MAX_REPS:,} are allowed in one run")


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
) -> RunResult:
    """Run ``reps`` replications; the result is the same whatever ``workers`` and ``chunk_size`` are."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    check_reps(scenario, reps)  # before the task and result lists, which grow with reps
    warnings = capacity.check(scenario, allow_overload=allow_overload)
    workers = max(1, min(workers or os.cpu_count() or 1, reps))
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

    if workers == 1:
        for t in tasks:
            collect(*_run_chunk(t))
    else:
        with ProcessPoolExecutor(max_workers=workers, initializer=tune_allocator) as pool:
            for first, chunk_results in pool.map(_run_chunk, tasks):
                collect(first, chunk_results)
    bar.close()
    return RunResult(scenario, seed, reps, engine, results, time.perf_counter() - t0, warnings)
