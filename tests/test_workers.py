"""Worker processes never outlive bordersim, stop on SIGTERM as on Ctrl-C, never outnumber the
cores, and never run native thread pools that fight the other workers for the cores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sim.experiments.workers import available_cores, local_pool, resolve_workers

ROOT = Path(__file__).parent.parent
BASELINE = ROOT / "scenarios" / "baseline_2022.toml"


def _children(pid: int) -> list[int]:
    """Living (not zombie) child processes of pid, from /proc."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_run(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    """A `bordersim run` with two workers, and its workers once they run."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.cli", "run", str(BASELINE), "--reps", "2000", "--workers", "2",
         "--out", str(tmp_path / "out"), "--quiet", "--no-plots"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path,
        # as from a terminal: a shell starts background jobs (CI's, nohup's) with SIGINT ignored,
        # and a Python started so never raises KeyboardInterrupt, so Ctrl-C could not be tested
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        if len(kids) >= 2:
            time.sleep(1.0)  # let them take their first chunks
            return proc, _children(proc.pid)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    proc.kill()
    pytest.fail("the workers did not start")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
@pytest.mark.skipif(available_cores() < 2, reason="needs two cores for two workers")
def test_workers_exit_when_the_run_is_killed(tmp_path):
    proc, workers = _start_run(tmp_path)
    assert workers
    proc.kill()  # kill -9: the parent has no chance to stop them
    # a caller waiting on the pipes gets its end of file: no worker holds them open
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the workers")
@pytest.mark.skipif(available_cores() < 2, reason="needs two cores for two workers")
@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path, sig, code, word):
    proc, workers = _start_run(tmp_path)
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    lines = err.decode().strip().splitlines()
    assert lines == [f"bordersim: {word}; no results written"], lines
    deadline = time.monotonic() + 15
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers)
    assert [p.name for p in tmp_path.iterdir()] == []  # no results, no temporary folders


def test_workers_are_cut_to_the_cores_available():
    cores = available_cores()
    n, warning = resolve_workers(cores + 62, tasks=1000)
    assert n == cores
    assert f"--workers {cores + 62}" in warning and f"{cores} cores" in warning
    assert resolve_workers(None, tasks=1000) == (cores, None)
    assert resolve_workers(1, tasks=1000) == (1, None)
    assert resolve_workers(None, tasks=1)[0] == 1


def test_run_warns_and_uses_no_more_workers_than_cores(tmp_path, monkeypatch, capsys):
    import importlib

    from sim.cli import main

    run_module = importlib.import_module("sim.experiments.experiment")
    started = []
    real = run_module.local_pool

    def recording_pool(workers):
        started.append(workers)
        return real(workers)

    monkeypatch.setattr(run_module, "local_pool", recording_pool)
    small = str(Path(__file__).parent / "data" / "small_2022.toml")
    rc = main(["run", small, "--reps", "4", "--workers", "64", "--quiet", "--no-plots", "--out", str(tmp_path / "out")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "--workers 64 is more than" in err
    assert all(w <= available_cores() for w in started)


def _native_threads():
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info()]


def test_workers_limit_native_thread_pools():
    with local_pool(1) as pool:
        assert set(pool.submit(_native_threads).result()) <= {1}


def test_a_replication_runs_no_native_thread_pool():
    """No call of a replication hands work to BLAS threads: run 30 baseline replications in a
    fresh process whose BLAS may use every core, and count the CPU time of its other threads."""
    script = textwrap.dedent(f"""
        import glob, os
        from sim import load
        from sim.experiments.run import run_replication
        scen = load({str(BASELINE)!r})
        run_replication(scen, 1, 0)
        def ticks():
            out = {{}}
            for t in glob.glob(f"/proc/{{os.getpid()}}/task/*"):
                f = open(t + "/stat").read().rsplit(")", 1)[1].split()
                out[os.path.basename(t)] = int(f[11]) + int(f[12])
            return out
        a = ticks()
        for i in range(1, 31):
            run_replication(scen, 1, i)
        b = ticks()
        me = str(os.getpid())
        print(b[me] - a[me], sum(v - a.get(k, 0) for k, v in b.items() if k != me))
    """)
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    main_ticks, other_ticks = map(int, proc.stdout.split())
    assert main_ticks > 0
    assert other_ticks <= 0.02 * main_ticks + 2, (main_ticks, other_ticks)


# A pool interrupted while a worker is halfway through sending its result: the worker sends the
# header of a message of 1 MB and stops there, as one killed mid-send does.
HALF_SENT = """
import inspect, struct, sys, threading, time
from pathlib import Path
from sim.experiments.workers import local_pool

def half_a_result(flag):
    frame = inspect.currentframe()
    while "result_queue" not in frame.f_locals:  # the pool's worker loop, which sends the results
        frame = frame.f_back
    frame.f_locals["result_queue"]._writer._send(struct.pack("!i", 1 << 20))
    Path(flag).touch()
    time.sleep(600)

if __name__ == "__main__":
    try:
        with local_pool(1) as pool:
            pool.submit(half_a_result, sys.argv[1])
            while not Path(sys.argv[1]).exists():
                time.sleep(0.05)
            time.sleep(0.5)  # the pool's manager thread is reading the message
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("threads left:", sorted(t.name for t in threading.enumerate() if not t.daemon), flush=True)
"""


def test_a_pool_stopped_while_a_result_is_half_sent_exits_at_once(tmp_path):
    """Ctrl-C or SIGTERM at the end of a run could kill a worker while it sent its result: the
    pool's manager thread then waited for the rest for ever (the process hung at exit) or met its
    pipes closed at exit ("Exception ignored in threading ... Bad file descriptor")."""
    script = tmp_path / "half_sent.py"
    script.write_text(HALF_SENT, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "sent")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the process hung at its exit: {out} {err}")
    assert proc.returncode == 0 and err == "", err
    assert out.strip() == "threads left: ['MainThread']", out
