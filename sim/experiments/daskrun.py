"""Running a design on a Dask distributed cluster (imported only when a sweep asks for Dask).

``dask_executor`` connects to the scheduler at an address (a cluster someone started with
``dask scheduler`` / ``dask worker``, on this machine or others) or starts a ``LocalCluster``
of one-thread worker processes (their scratch space in a temporary folder of bordersim's,
removed after, and Ctrl-C left to this process: see ``local_cluster``), and yields
``client.get_executor()``: a
concurrent.futures.Executor that sim.experiments.experiment runs replications on as it does on the local
pool. The results do not depend on it: a replication is a pure function of the scenario, the
input values, the seed and its index. The worker plugin limits native thread pools (BLAS,
OpenMP) to one thread in every worker of the cluster, as the local pool's workers are, so
that no worker's idle BLAS threads take the cores of the others. The workers need bordersim
installed (the same version: the tasks refer to its functions by name).
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
import threading
from collections.abc import Iterator

import dask
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from ..base.errors import BordersimError, shorten
from ..base.outdir import scratch_dir
from .workers import limit_native_threads, tune_allocator

PLUGIN_NAME = "bordersim-native-threads"
# A LocalCluster shares this machine's cores with its scheduler and nannies (in this process):
# their periodic work is CPU the workers lose. Measured on 2 cores over 30 tasks of 10
# replications, these settings cut this process's CPU from 0.8 s to 0.3 s and the wall time by
# 3-8 %: no statistical profiler in the workers (it samples the task thread's stack every 10 ms
# under the GIL, for a dashboard no one looks at); event-loop health ticks every second, not
# every 20 ms; the system monitor every 5 s, not 0.5 s; no work stealing (the tasks are equal and
# the workers alike; its balancing runs every 100 ms); no active memory manager (the results are
# small and gathered at once). They reach the worker processes through the nannies.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.scheduler.work-stealing": False,
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.scheduler.active-memory-manager.start": False,
}


class NativeThreads(WorkerPlugin):
    """One thread per native pool and glibc's allocator tuned, in each worker when it starts
    (and in those already running when the plugin is registered)."""

    def setup(self, worker=None):
        tune_allocator()
        limit_native_threads()


class DaskError(BordersimError):
    """A Dask cluster that cannot be reached."""


SCRATCH_PREFIX = "bordersim-dask-"
_SCRATCH_FILES = re.compile(r"dask-scratch-space")  # what a LocalCluster writes in the folder it is given


@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[LocalCluster]:
    """A LocalCluster of ``workers`` one-thread worker processes on this machine, closed at the end.

    - Its scratch space (Dask's ``dask-scratch-space``, which it leaves in the system's temporary
      folder) is in a folder of bordersim's there, removed after; the next cluster removes one a
      kill -9 left (sim.base.outdir.scratch_dir).
    - Its worker processes ignore Ctrl-C: a terminal sends it to every process of the command, and
      each worker printed its traceback; this process stops them itself, with one line. (A Ctrl-C
      in the second or two while the cluster starts is not seen: press it again.)
    - multiprocessing's resource tracker, which removes the named semaphores of the cluster's
      processes should this process die, is started with its stderr on /dev/null: after a kill -9
      it removes them as it should, and no longer prints a warning of 'leaked semaphore objects'.
    - Its dashboard on a free port (8787 may be another cluster's); LOCAL_CLUSTER_CONFIG: less
      periodic work beside the workers on the same cores.
    - Its processes log only what is critical: after a kill -9 of this process (the scheduler
      with it) a worker could log "Failed to communicate with scheduler during heartbeat" in the
      moment before it ends too; a task's own error reaches this process as its exception.
    """
    _start_resource_tracker_quietly()
    with scratch_dir(SCRATCH_PREFIX, _SCRATCH_FILES) as scratch, contextlib.ExitStack() as stack:
        with dask.config.set({**LOCAL_CLUSTER_CONFIG, "temporary-directory": str(scratch)}), _children_ignore_ctrl_c():
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=":0", silence_logs=logging.CRITICAL,
                                                       local_directory=str(scratch)))
        yield cluster


def _start_resource_tracker_quietly() -> None:
    """Start multiprocessing's resource tracker, if it is not running, with its stderr on
    /dev/null (it inherits this process's stderr, which is held elsewhere meanwhile)."""
    from multiprocessing import resource_tracker

    if getattr(resource_tracker._resource_tracker, "_fd", None) is not None:  # running already
        return
    import os
    import sys

    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        resource_tracker.ensure_running()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """SIGINT ignored while the block starts processes: an ignored signal stays ignored in a
    child, even across exec, and Python (asyncio's runner in Dask's workers) then sets no handler
    of its own. Only from the main thread (where signal handlers are set); elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def dask_executor(address: str | None, workers: int, connect_timeout: str = "15s") -> Iterator[tuple[object, int]]:
    """(an Executor on the cluster, the number of worker threads it has); a LocalCluster of
    ``workers`` processes (one thread each) when no address is given, closed at the end."""
    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(Client(address, timeout=connect_timeout))
            except (OSError, TimeoutError) as exc:
                raise DaskError(None, "--address", f"no Dask scheduler answers at {shorten(address)} "
                                                   f"({shorten(exc, 160)})") from None
        else:
            client = stack.enter_context(Client(stack.enter_context(local_cluster(workers))))
        try:
            client.register_plugin(NativeThreads(), name=PLUGIN_NAME)
        except Exception as exc:  # noqa: BLE001 - raised from the workers, of any kind
            raise DaskError(None, "--address", f"the cluster's workers cannot load bordersim ({shorten(exc, 160)}); "
                                               "install bordersim, the same version, where they run") from None
        threads = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        yield ClusterExecutor(client), max(1, threads)


class InstallPlans(WorkerPlugin):
    """The plans of a design's scenarios (sim.model.plan), given to each worker of the cluster once,
    when it starts (and to those running when it is registered): the tasks name them by key."""

    def __init__(self, plans):
        self.plans = plans

    def setup(self, worker=None):
        from .experiment import install_plans

        install_plans(self.plans)


class ClusterExecutor:
    """The cluster's concurrent.futures executor, which sim.experiments.experiment can also give its plans
    to, once per worker (install_plans), so that a task carries only keys, values and indices."""

    def __init__(self, client: Client):
        self.client = client
        self.executor = client.get_executor(pure=False)

    def install_plans(self, plans) -> None:
        self.client.register_plugin(InstallPlans(list(plans)), name=f"bordersim-plans-{id(plans)}")

    def map(self, fn, *iterables, **kwargs):
        return self.executor.map(fn, *iterables, **kwargs)
