"""Run replications of a scenario: in parallel, reproducibly, with progress."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from . import capacity
from .errors import RunError
from .experiment import ENGINES, Point, replicate, run_design
from .metrics import (
    ReplicationResult,
    daily_table,
    monthly_table,
    per_replication,
    per_replication_monthly,
    queue_by_hour_table,
    result_bytes,
    summarise,
    tis_hist_table,
)
from .scenario import Scenario
from .workers import resolve_workers, tune_allocator

DEFAULT_REPS = 10
DEFAULT_SEED = 20221130
MAX_REPS = 1_000_000  # a run's results stay in memory until its tables are written
MEMORY_SHARE = 0.5  # of the machine's physical memory, for one run's results


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


def check_reps(scenarios: Scenario | list[Scenario], reps: int, option: str = "--reps") -> None:
    """Refuse, before any work, a number of replications (of each scenario) over MAX_REPS or
    whose results would not fit in MEMORY_SHARE of this machine's memory (``option`` names the
    input in the error)."""
    scenarios = [scenarios] if isinstance(scenarios, Scenario) else list(scenarios)
    per_rep = sum(result_bytes(s.nominal) for s in scenarios)
    memory = physical_memory()
    fit = MAX_REPS if memory is None else int(MEMORY_SHARE * memory // per_rep)
    what = scenarios[0].name if len(scenarios) == 1 else f"{len(scenarios)} scenarios"
    if reps > fit and fit < MAX_REPS:
        raise RunError(None, option, (
            f"{reps:,} replications of {what} need about {_binary_size(reps * per_rep)} for their "
            f"results; at most {_round_down(fit):,} fit in half of this machine's {_binary_size(memory)}"))
    if reps > MAX_REPS:
        raise RunError(None, option, f"{reps:,} replications asked; at most {MAX_REPS:,} are allowed in one run")


def ensemble_warning(scenario: Scenario, reps: int) -> str | None:
    """A warning where a fitted scenario runs more replications than its ensemble has parameter
    sets: each replication takes one set at random, so sets are reused, and the replications past
    that number add run-to-run randomness but no new input values."""
    if scenario.ensemble is None or reps <= len(scenario.ensemble):
        return None
    rows = len(scenario.ensemble)
    return (f"{scenario.name}: {reps:,} replications, but its ensemble {os.path.basename(scenario.ensemble_file)} has "
            f"{rows:,} parameter sets; each replication takes one at random, so sets are reused: more replications "
            f"than {rows:,} narrow the run-to-run noise, not the input uncertainty")


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
    workers: int = 1  # processes the replications ran in (writing may use as many)

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
    def monthly(self) -> pd.DataFrame:
        """monthly.csv: per calendar month, gate and direction, sim.metrics.MONTHLY_METRICS."""
        return monthly_table(self.results, self.scenario.nominal.horizon.start)

    @cached_property
    def per_replication_monthly(self) -> pd.DataFrame:
        """per_replication_monthly.csv: every replication's monthly figures."""
        return per_replication_monthly(self.results, self.scenario.nominal.horizon.start)

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
    while_waiting=None,
) -> RunResult:
    """Run ``reps`` replications; the result is the same whatever ``workers`` and ``chunk_size`` are.

    ``workers`` (default: one per core available) is cut to the cores available; ``warn``, if
    given, is called with each warning as soon as it is known (they are also in the result)."""
    if reps < 1:
        raise ValueError("reps must be at least 1")
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    check_reps(scenario, reps)  # before the task and result lists, which grow with reps
    warnings = capacity.check(scenario, allow_overload=allow_overload)
    if ensemble_warning(scenario, reps):
        warnings.append(ensemble_warning(scenario, reps))
    workers, cut = resolve_workers(workers, reps)
    if cut:
        warnings.append(cut)
    for w in warnings if warn else ():
        warn(w)
    tune_allocator()
    t0 = time.perf_counter()
    results = run_design([Point(scenario)], reps, seed, engine, workers=workers, progress=progress,
                         chunk=chunk_size, desc=f"{scenario.name} ({engine})", while_waiting=while_waiting)[0]
    return RunResult(scenario, seed, reps, engine, results, time.perf_counter() - t0, warnings, workers)
