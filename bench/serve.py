"""Benchmark: `bordersim serve` of the calibrated baseline, through HTTP as its page asks it.

    python bench/serve.py                       # the figures (a few minutes)
    python bench/serve.py --rounds 2 --changes 10  # a smoke test

(a) the first page load after `bordersim serve` starts: from starting the command to the page and
    its plotly.js received (target <= 3 s);
(b) from a changed control (a request of /api/run with a value not asked before, so nothing is
    kept) to its result received, 20 and 50 replications, after a warm-up (targets <= 1 s and
    <= 2 s on 2 cores), median of --rounds changes each, with where the server's time went;
(c) the server's memory (its process and its workers, PSS) over --changes successive
    changes of 20 replications: steady, bounded by what it keeps.
Nothing here asserts a time; tests/test_serve*.py check what the page does.
"""

from __future__ import annotations

import argparse
import json
import re
import select
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ADDRESS = re.compile(r"at (http://\S+/) ")


def bordersim() -> list[str]:
    exe = Path(sys.executable).with_name("bordersim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sim.cli"]


def start(scenario: str | None) -> tuple[subprocess.Popen, str, float]:
    """A server, its address and the seconds from its start to its page and plotly.js received."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(bordersim() + ["serve", *([scenario] if scenario else []), "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _w, _x = select.select([proc.stdout], [], [], 120)
    match = ADDRESS.search(proc.stdout.readline() if ready else "")
    if match is None:
        proc.kill()
        raise SystemExit(f"bordersim serve did not start: {proc.stderr.read()}")
    url = match.group(1)
    for path in ("", "plotly.min.js"):
        request = urllib.request.Request(url + path, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=120) as r:
            r.read()
    return proc, url, time.perf_counter() - t0


def change(url: str, params: dict) -> tuple[float, dict]:
    """Seconds from asking a page's state to its last event, and that event."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url + "api/run?" + urllib.parse.urlencode(params), timeout=600) as r:
        last = [line for line in r.read().decode().splitlines() if line][-1]
    event = json.loads(last)
    if event["type"] != "result":
        raise SystemExit(f"no result for {params}: {event}")
    return time.perf_counter() - t0, event


def memory_mib(pid: int) -> float:
    """The memory of a process and its children, in MiB: their proportional set sizes (PSS, from
    /proc: a page the workers share with the server, as forked, counts once in all, not once in each)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    total = 0
    for p in pids:
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        total += int(re.search(r"^Pss:\s+(\d+)", rollup, re.M).group(1))
    return total / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario", nargs="?", help="default: the calibrated baseline")
    ap.add_argument("--rounds", type=int, default=7, help="changes timed for each number of replications")
    ap.add_argument("--changes", type=int, default=200, help="successive changes for the memory")
    args = ap.parse_args()
    proc, url, first = start(args.scenario)
    try:
        print(f"(a) first page load after `bordersim serve` starts (page and plotly.js): {first:.2f} s (target <= 3 s)")
        change(url, {})  # warm-up: the scenario as given, and a first change
        change(url, {"demand.km3_4": "1.0001"})
        factor = iter(1 + k / 10000 for k in range(2, 10**6))
        for reps, target in ((20, 1.0), (50, 2.0)):
            change(url, {"reps": reps})  # the scenario as given at this count, kept as every change's base
            runs = [change(url, {"reps": reps, "demand.km3_4": f"{next(factor):.4f}"}) for _ in range(args.rounds)]
            walls = [w for w, _e in runs]
            phases = {k: statistics.median(e["timings"].get(k, 0.0) for _w, e in runs) for k in runs[0][1]["timings"]}
            said = ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
            print(f"(b) a change, {reps} replications: median {statistics.median(walls):.2f} s "
                  f"({min(walls):.2f}-{max(walls):.2f} s over {len(walls)}; target <= {target:g} s); "
                  f"in the server (median s): {said}")
        samples = []
        for k in range(args.changes):
            change(url, {"demand.km3_4": f"{next(factor):.4f}"})
            if k % max(1, args.changes // 10) == 0 or k == args.changes - 1:
                samples.append((k + 1, memory_mib(proc.pid)))
        print(f"(c) memory (PSS), server and workers, over {args.changes} changes of 20 replications: "
              + ", ".join(f"{n}: {m:.0f} MiB" for n, m in samples))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


if __name__ == "__main__":
    main()
