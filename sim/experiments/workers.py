"""Worker processes: a local pool whose workers never outlive bordersim and never fight for cores.

Each worker, when it starts:
- exits when its parent dies, however it dies (``kill -9`` included): the kernel sends it
  SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``), and a watchdog thread on the parent's sentinel
  covers other systems;
- ignores the terminal's Ctrl-C (the parent handles it and stops the pool, so the terminal gets
  one line, not a traceback per worker) and takes SIGTERM's default action;
- limits native thread pools (OpenBLAS, OpenMP) to one thread with threadpoolctl: each process
  is one worker on one core, and an idle BLAS pool that spins after a call would take the cores
  the other workers need.
``local_pool`` stops its workers at once when the caller is interrupted or fails, rather than
waiting for their chunks to end.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Executor, ProcessPoolExecutor

from threadpoolctl import threadpool_limits

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, which containers and taskset set)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def resolve_workers(requested: int | None, tasks: int) -> tuple[int, str | None]:
    """The number of worker processes to start, and a warning when the request was cut to the
    cores available (more processes than cores only makes them take turns)."""
    cores = available_cores()
    if requested is not None and requested < 1:
        raise ValueError("workers must be at least 1")
    n = max(1, min(requested or cores, cores, tasks))
    warning = None
    if requested is not None and requested > cores:
        warning = f"--workers {requested} is more than the {cores} cores available; using {min(cores, tasks)}"
    return n, warning


def limit_native_threads() -> None:
    """One thread for every native pool (BLAS, OpenMP) in this process, from now on."""
    threadpool_limits(limits=1)


def _exit_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the watchdog below still ends the worker
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        from multiprocessing.connection import wait

        def watch() -> None:
            wait([parent.sentinel])
            os._exit(1)

        threading.Thread(target=watch, name="bordersim-parent-watchdog", daemon=True).start()


_ALLOCATOR_TUNED = False
_PREPARED_PID = None  # the process prepare_process ran in (a forked child inherits the variable)


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
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    libc.mallopt(m_mmap_threshold, 256 << 20)
    libc.mallopt(m_trim_threshold, 512 << 20)


def prepare_process() -> None:
    """Once per worker process, whoever started it (our pool, Dask, another executor): one
    thread per native pool and the allocator tuned. The main process is left as it is (a
    notebook's own BLAS keeps its threads); run_design limits its pools only while it works."""
    global _PREPARED_PID
    if _PREPARED_PID == os.getpid():
        return
    _PREPARED_PID = os.getpid()
    tune_allocator()
    if multiprocessing.parent_process() is not None:
        limit_native_threads()


def init_worker(parent_pid: int, setup=None, setup_args: tuple = ()) -> None:
    """Run in every process of a local pool before its first task; then setup(*setup_args)
    (what every task of the pool needs, given to each worker once)."""
    _exit_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    prepare_process()
    if setup is not None:
        setup(*setup_args)


def new_pool(workers: int, setup=None, setup_args: tuple = ()) -> ProcessPoolExecutor:
    """A process pool of ``workers`` bordersim workers (init_worker: they die with this process,
    ignore Ctrl-C, use one thread each), each set up once by setup(*setup_args); the caller
    stops it (stop_now). local_pool holds one for a ``with`` block; a server keeps one."""
    return ProcessPoolExecutor(max_workers=workers, initializer=init_worker, initargs=(os.getpid(), setup, setup_args))


@contextlib.contextmanager
def local_pool(workers: int, setup=None, setup_args: tuple = ()):
    """A process pool of ``workers`` bordersim workers, each set up once by setup(*setup_args)
    (a module-level function); on any exception in the ``with`` body (KeyboardInterrupt and
    SIGTERM included) its workers are killed at once."""
    pool = new_pool(workers, setup, setup_args)
    try:
        yield pool
    except BaseException:
        stop_now(pool)
        raise
    else:
        pool.shutdown(wait=True)


def stop_now(pool: Executor) -> None:
    """Cancel what has not started, kill the workers of a local process pool, and wait for the
    pool's manager thread to end."""
    # ProcessPoolExecutor keeps its workers in _processes (pid -> Process), its manager thread
    # and its result pipe in attributes of its own: no public API kills the workers
    procs = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    results = getattr(pool, "_result_queue", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.kill()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(timeout=5)
    # A worker killed while it sent a result leaves half a message in the result pipe, and the
    # manager thread waits for the rest for ever (this process holds the pipe's write end too):
    # the interpreter then hangs at exit, or its exit wakes the thread through a pipe the thread
    # is closing ("Exception ignored in threading ... Bad file descriptor"). Every worker being
    # dead, closing this process's write end ends that read (EOF): the thread marks the pool
    # broken and ends, before this returns.
    if results is not None:
        with contextlib.suppress(OSError, AttributeError):
            results._writer.close()
    if manager is not None:
        manager.join(timeout=30)
