"""Run replications of a scenario: in parallel, reproducibly, with progress."""

from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from . import capacity
from ..base.errors import RunError
from .experiment import ENGINES, PHASES, Point, replicate, run_design
from ..model.plan import compile_plan
from ..statistics.metrics import (
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
from ..model.scenario import Scenario
from .workers import resolve_workers, tune_allocator

DEFAULT_REPS = 10
DEFAULT_SEED = 20221130
MAX_REPS = 1_000_000  # a run's results stay in memory until its tables are written
MEMORY_SHARE = 0.5  # of the memory this process may use, for one run
# A run's memory at its peak, computing its tables, per byte of results it holds: the results
# and what the tables take at that step (daily.csv's quantiles go a group at a time): measured
# on the baseline, 1.1 (tests/test_bad_input.py checks that it still covers the peak).
WRITE_PEAK = 2


def physical_memory() -> int | None:
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def cgroup_memory_limit(proc: Path = Path("/proc/self/cgroup"), fs: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The memory limit of this process's control group: the smallest memory.max (cgroup v2) or
    memory.limit_in_bytes (v1) on its path up to the root, as /proc/self/cgroup names it; None
    where there is none ('max', or no cgroup file system)."""
    try:
        lines = proc.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        _id, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            root, name = fs, "memory.max"
        elif "memory" in controllers.split(","):
            root, name = fs / "memory", "memory.limit_in_bytes"
        else:
            continue
        rel = Path(path.lstrip("/"))
        for folder in (rel, *rel.parents):
            try:
                text = (root / folder / name).read_text(encoding="utf-8").strip()
            except OSError:
                continue
            if text.isdigit():
                limits.append(int(text))
    return min(limits) if limits else None


def address_space_left() -> tuple[int, int] | None:
    """(bytes of address space this process may still map, its limit) under RLIMIT_AS
    (``ulimit -v``), or None without a limit. What it maps already (the interpreter, numba, the
    libraries: over a GiB) counts against the limit."""
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    if limit == resource.RLIM_INFINITY:
        return None
    try:
        used = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = 0
    return max(0, limit - used), limit


def memory_available() -> tuple[int, str] | None:
    """The memory this process may use and what limits it, in words: the smallest of the
    machine's physical memory, its control group's limit and what is left of its address-space
    limit; None where none is known."""
    found = []
    physical = physical_memory()
    if physical:
        found.append((physical, f"this machine's {_binary_size(physical)}"))
    group = cgroup_memory_limit()
    if group:
        found.append((group, f"the {_binary_size(group)} this process's control group allows (its cgroup memory "
                             "limit)"))
    space = address_space_left()
    if space is not None:
        found.append((space[0], f"the {_binary_size(space[0])} left of this process's address-space limit "
                                f"(ulimit -v) of {_binary_size(space[1])}"))
    return min(found) if found else None


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


def check_reps(scenarios: Scenario | list[Scenario], reps: int, option: str = "--reps",
               writes_tables: bool = True) -> None:
    """Refuse, before any work, a number of replications (of each scenario) over MAX_REPS or
    whose results would not fit in MEMORY_SHARE of the memory this process may use
    (memory_available), at the peak of computing the tables where the run ``writes_tables``
    (a calibration keeps no replication's results). ``option`` names the input in the error."""
    scenarios = [scenarios] if isinstance(scenarios, Scenario) else list(scenarios)
    per_rep = sum(result_bytes(s.nominal) for s in scenarios) * (WRITE_PEAK if writes_tables else 1)
    memory = memory_available()
    fit = MAX_REPS if memory is None else int(MEMORY_SHARE * memory[0] // per_rep)
    what = scenarios[0].name if len(scenarios) == 1 else f"{len(scenarios)} scenarios"
    if reps > fit and fit < MAX_REPS:
        when = "at the peak of computing their tables" if writes_tables else "for their results"
        raise RunError(None, option, (
            f"{reps:,} replications of {what} need about {_binary_size(reps * per_rep)} {when}; at most "
            f"{_round_down(fit):,} fit in half of {memory[1]}"))
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
    compile_s: float = 0.0  # CPU seconds compiling the scenario's plan (once per process, before the replications)
    collect_cpu_s: float = 0.0  # CPU seconds of this process while the replications ran (all of it with 1 worker)

    def cpu_by_phase(self) -> dict[str, float]:
        """Mean CPU milliseconds per replication in each phase (sim.experiments.experiment.PHASES)."""
        spent = np.mean([r.cpu_s for r in self.results], axis=0) * 1000.0
        return dict(zip(PHASES, spent.tolist()))

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
        """monthly.csv: per calendar month, gate and direction, sim.statistics.metrics.MONTHLY_METRICS."""
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
    t0, cpu0 = time.perf_counter(), time.process_time()
    results = run_design([Point(scenario)], reps, seed, engine, workers=workers, progress=progress,
                         chunk=chunk_size, desc=f"{scenario.name} ({engine})", while_waiting=while_waiting)[0]
    return RunResult(scenario, seed, reps, engine, results, time.perf_counter() - t0, warnings, workers,
                     compile_plan(scenario).compile_s, time.process_time() - cpu0)
