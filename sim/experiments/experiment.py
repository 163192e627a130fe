"""The experiment layer: one replication as a pure function, and a runner for designs.

``replicate(scenario, seed, index, engine, values)`` is replication ``index`` of a scenario:
its result depends only on those arguments, and carries the values its uncertain inputs took.
``run_design`` maps it over a design (scenarios or parameter points x replications) on any
``concurrent.futures.Executor`` (a local pool of bordersim workers by default; Dask's
``client.get_executor()`` fits too). Replication ``i`` uses the same seed at every point, so
two points differ only by what differs between them (common random numbers) and their paired
differences are tight. ``run``, ``compare``, the calibration and sweeps all go through here.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ..engines import des, fast
from ..engines.draws import plan_inputs
from ..statistics.metrics import ReplicationResult, replication_metrics
from ..model.plan import Plan, compile_plan
from ..base.rng import replication_seed, stream
from ..model.scenario import Scenario
from .workers import local_pool, prepare_process, resolve_workers

ENGINES = ("fast", "des")
SIMULATORS = {"des": des.simulate, "fast": fast.simulate}
# where a replication's CPU goes (ReplicationResult.cpu_s): drawing its uncertain inputs and
# running the plan's bindings on them; drawing arrivals, service times and closures; the
# engine; the statistics; and the Python of its task around them (shared by the task's
# replications), measured by the thread's CPU clock
PHASES = ("inputs", "draws", "engine", "statistics", "around")
MAX_CHUNK = 10  # replications a task runs at most: the last tasks leave a worker idle for at most this many


def replicate(scenario: Scenario, seed: int, index: int, engine: str = "fast",
              values: Mapping[str, float] | None = None) -> ReplicationResult:
    """Replication ``index`` of ``scenario`` with root seed ``seed``: the uncertain inputs not
    in ``values`` are drawn from the replication's named streams (or its ensemble row), the
    vehicles simulated on ``engine``; the result's ``inputs`` holds every uncertain input's value."""
    return replicate_plan(compile_plan(scenario), seed, index, engine, values)


def replicate_plan(plan: Plan, seed: int, index: int, engine: str = "fast",
                   values: Mapping[str, float] | None = None) -> ReplicationResult:
    """replicate, from the scenario's plan (sim.model.plan): a pure function of its arguments."""
    clock = [time.thread_time()]
    rep_seq = replication_seed(seed, index)
    drawn = plan.draw(rep_seq, values)
    v = plan.values(drawn)
    clock.append(time.thread_time())
    rep = plan_inputs(plan, v, rep_seq)
    clock.append(time.thread_time())
    records = SIMULATORS[engine](rep)
    clock.append(time.thread_time())
    result = replication_metrics(rep, records)
    clock.append(time.thread_time())
    result.inputs = drawn
    result.cpu_s = np.append(np.diff(clock), 0.0)
    return result


@dataclass(frozen=True)
class Point:
    """One point of a design: a scenario, and input values (by name) fixed in all its replications."""

    scenario: Scenario
    values: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Task:
    """What a task carries: its point's plan (the key of one its worker was given, or the plan
    itself for an executor that was not given them), the point's fixed values, and which of the
    point's replications it runs."""

    point: int
    plan: str | Plan
    values: tuple[tuple[str, float], ...]
    first: int
    last: int


_PLANS: dict[str, Plan] = {}  # the plans this process was given (a worker's: by its pool or its cluster)


def install_plans(plans: Sequence[Plan], keep: int | None = None) -> None:
    """Keep these plans in this process for the tasks that name them by key (a worker's setup);
    with ``keep``, at most that many, the oldest given dropped first (a worker that serves one
    change after another)."""
    prepare_process()
    for p in plans:
        _PLANS.pop(p.key, None)
        _PLANS[p.key] = p
    while keep is not None and len(_PLANS) > keep:
        _PLANS.pop(next(iter(_PLANS)))


def installed_plan(key: str) -> Plan:
    """A plan this process was given (install_plans)."""
    try:
        return _PLANS[key]
    except KeyError:
        raise RuntimeError(f"no plan {key[:12]} was given to this process (install_plans)") from None


PLANS_KEPT = 8  # plans a kept pool's worker holds (a few MB each; a server's scenario and latest changes, an
# optimisation's combinations of choices), the oldest given dropped first


class KeptPool(Executor):
    """A local pool kept over many designs (an optimisation's batches, a server's runs), as
    run_design's executor: each task carries its plan pickled (about 0.2 MB; copied, not
    unpickled, where the worker has it already: _with_plan), so the workers, started once,
    serve new scenarios without a new pool. A worker's first replication costs several of the
    later ones (its heap grows, the compiled engine loads): a pool per design pays that each
    time. ``result_of`` is how one task's result is awaited (a server's runs poll it)."""

    def __init__(self, pool: Executor, keep: int = PLANS_KEPT):
        self.pool, self.keep = pool, keep
        self.plans: dict[str, bytes] = {}

    def install_plans(self, plans: Sequence[Plan]) -> None:
        for p in plans:
            if p.key not in self.plans:
                self.plans[p.key] = pickle.dumps(p, protocol=pickle.HIGHEST_PROTOCOL)

    def map(self, fn, *iterables, timeout=None, chunksize=1):
        futures = [self.pool.submit(_with_plan, self.plans[args[0].plan], self.keep, fn, *args)
                   for args in zip(*iterables)]

        def results():
            try:
                for f in futures:
                    yield self.result_of(f)
            finally:
                for f in futures:
                    f.cancel()

        return results()

    def result_of(self, future: Future):
        return future.result()


def _with_plan(plan: bytes, keep: int, fn, task, *args):
    """In a worker: the task's plan installed if this worker lacks it (the last ``keep`` kept),
    then the task."""
    if task.plan not in _PLANS:
        install_plans([pickle.loads(plan)], keep=keep)
    return fn(task, *args)


def _run_task(task: _Task, seed: int, engine: str,
              keep: Callable[[ReplicationResult], ReplicationResult] | None = None
              ) -> tuple[_Task, list[ReplicationResult]]:
    """A chunk of replications of one point: the work one executor task does. ``keep``, if
    given, is applied to each result in the worker (what a sweep hands back: its values only)."""
    start = time.thread_time()
    prepare_process()
    plan = installed_plan(task.plan) if isinstance(task.plan, str) else task.plan
    values = dict(task.values) or None
    out = [replicate_plan(plan, seed, i, engine, values) for i in range(task.first, task.last)]
    around = (time.thread_time() - start - sum(r.cpu_s.sum() for r in out)) / len(out)
    for r in out:
        r.cpu_s[-1] = around
    return task, out if keep is None else [keep(r) for r in out]


def chunk_size(total: int, workers: int) -> int:
    """Replications per task: about four tasks per worker, at most MAX_CHUNK."""
    return max(1, min(MAX_CHUNK, -(-total // (4 * workers))))


def run_design(points: Sequence[Point], reps: int, seed: int, engine: str = "fast",
               executor: Executor | None = None, workers: int | None = None, progress: bool | None = None,
               chunk: int | None = None, desc: str = "replications",
               while_waiting: Callable[[], None] | None = None) -> list[list[ReplicationResult]]:
    """Replications 0..reps-1 of every point; out[p][i] is point p's replication i. The result
    is the same whatever the executor, the number of workers and the chunk size.

    executor: any concurrent.futures.Executor (its ``map`` is all that is used); None: a local
    pool of ``workers`` bordersim processes (one per core by default), or this process alone
    when one worker suffices. progress None: a bar when stderr is a terminal. while_waiting:
    called once the work is handed to other processes (for what this one can prepare
    meanwhile, such as importing what writing the results needs), or first when it is not."""
    out: list[list[ReplicationResult]] = [[] for _ in points]
    with contextlib.closing(iter_design(points, reps, seed, engine, executor, workers, progress, chunk, desc,
                                        while_waiting)) as done:
        for p, results in done:
            out[p] = results
    return out


def iter_design(points: Sequence[Point], reps: int, seed: int, engine: str = "fast",
                executor: Executor | None = None, workers: int | None = None, progress: bool | None = None,
                chunk: int | None = None, desc: str = "replications",
                while_waiting: Callable[[], None] | None = None,
                keep: Callable[[ReplicationResult], ReplicationResult] | None = None,
                unit: str = "rep") -> Iterator[tuple[int, list[ReplicationResult]]]:
    """run_design as a stream: yields (p, point p's replications 0..reps-1) as soon as all of a
    point's replications are in, in the order of ``points``, and keeps nothing it has yielded
    (a sweep of thousands of points writes them as they come). keep: applied to each result
    in the worker (a module-level function, as it travels to the workers); unit: what the
    progress bar counts, "rep" or "point". Close the generator (contextlib.closing) to stop
    the workers early."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {', '.join(ENGINES)}")
    if reps < 1:
        raise ValueError("reps must be at least 1")
    total = len(points) * reps
    if executor is None:
        workers, _ = resolve_workers(workers, -(-total // MAX_CHUNK) if chunk is None else -(-total // chunk))
    else:
        workers = workers or 1
    size = chunk or chunk_size(total, workers)
    plans = [compile_plan(p.scenario) for p in points]
    distinct = list({p.key: p for p in plans}.values())
    # the plans go to each worker once (the pool's initializer, a cluster's plugin); a task then
    # carries only its plan's key, its values and its replications. An executor that cannot be
    # given them (any other) gets each task's plan with the task.
    install = getattr(executor, "install_plans", None)
    shipped = executor is None or install is not None
    tasks = [_Task(p, plans[p].key if shipped else plans[p], tuple(points[p].values.items()), first, last)
             for p, first, last in design_tasks(len(points), reps, size, workers)]
    args = (tasks, [seed] * len(tasks), [engine] * len(tasks), [keep] * len(tasks))
    bar = tqdm(total=total if unit == "rep" else len(points), desc=desc, unit=unit,
               disable=None if progress is None else not progress, file=sys.stderr, **_bar_size(sys.stderr))
    if not bar.disable and not compiled():
        bar.set_postfix_str("compiling the fast engine: once per installation, up to a minute")
    try:
        wait = while_waiting or (lambda: None)
        if executor is not None:
            if install is not None:
                install(distinct)
            results = executor.map(_run_task, *args)
            wait()
            yield from _collect(results, reps, bar, unit)
        elif workers == 1:
            wait()
            install_plans(distinct)
            with threadpool_limits(limits=1):  # as in a worker: no BLAS threads spinning beside us
                yield from _collect(map(_run_task, *args), reps, bar, unit)
        else:
            with local_pool(workers, setup=install_plans, setup_args=(distinct,)) as pool:
                results = pool.map(_run_task, *args)
                wait()  # the workers are started (forked) by now: an import here is not theirs to inherit
                yield from _collect(results, reps, bar, unit)
    finally:
        bar.close()


def _bar_size(file) -> dict:
    """Nothing (tqdm sizes the bar to the terminal), or 80 x 24 on a terminal that reports a size
    of 0 x 0, as a pseudo-terminal opened without one does: tqdm then takes it for -1 rows and
    draws nothing at all."""
    try:
        size = os.get_terminal_size(file.fileno())
    except (AttributeError, OSError, ValueError):
        return {}
    return {} if size.columns > 0 and size.lines > 0 else {"ncols": 80, "nrows": 24}


def design_tasks(n_points: int, reps: int, size: int, workers: int) -> list[tuple[int, int, int]]:
    """(point, first, last) of each task over replications 0..reps-1 of each point, in order:
    the first round (one task per worker) of a single replication each, so that the progress
    bar moves as soon as the first replications end rather than after a whole chunk; then
    tasks of ``size``, tapering at the end of the design to a single replication (at most the
    replications left over twice the workers), so that the workers end together rather than
    one waiting out another's last chunk."""
    out: list[tuple[int, int, int]] = []
    left = n_points * reps
    for p in range(n_points):
        i = 0
        while i < reps:
            n = 1 if len(out) < workers and size > 1 else min(size, max(1, -(-left // (2 * max(workers, 1)))))
            n = min(n, reps - i)
            out.append((p, i, i + n))
            i += n
            left -= n
    return out


def compiled() -> bool:
    """Whether the fast engine's compiled kernels are in numba's cache already (False on the
    first run after an install, which compiles them); True where it cannot tell."""
    from ..statistics.flowstats import flow_pass
    from ..statistics.metrics import group_sums
    from ..statistics.queue_profile import refine_peaks
    from ..engines.fast.kernels import run_flow

    try:
        return all(os.path.exists(k._cache._cache_file._index_path)
                   for k in (run_flow, flow_pass, refine_peaks, group_sums))
    except AttributeError:  # another numba version's cache layout
        return True


class _Ticking:
    """Refresh a progress bar every second from a thread while results are awaited, so that its
    clock runs while the first replications (and a first compile) are under way."""

    def __init__(self, bar):
        self.bar = bar
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._tick, daemon=True)

    def _tick(self) -> None:
        while not self.stop.wait(1.0):
            self.bar.refresh()

    def __enter__(self):
        if not self.bar.disable:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()


def _collect(results, reps: int, bar, unit: str) -> Iterator[tuple[int, list[ReplicationResult]]]:
    """Gather the tasks' results by point; yield each point once all its replications are in."""
    pending: dict[int, list[ReplicationResult | None]] = {}
    missing: dict[int, int] = {}
    labels: dict[int, tuple] = {}
    with _Ticking(bar):
        for task, chunk_results in results:
            for r in chunk_results:  # one copy of a point's labels, not one unpickled per replication
                same = labels.setdefault(task.point, getattr(r, "labels", None))
                if same is not None and r.labels is not same and r.labels == same:
                    r.labels = same
            got = pending.setdefault(task.point, [None] * reps)
            got[task.first:task.last] = chunk_results
            missing[task.point] = missing.get(task.point, reps) - len(chunk_results)
            if getattr(bar, "postfix", None):
                bar.set_postfix_str("", refresh=False)
            if unit == "rep":
                bar.update(len(chunk_results))
            if missing[task.point] == 0:
                del missing[task.point]
                if unit != "rep":
                    bar.update(1)
                yield task.point, pending.pop(task.point)
