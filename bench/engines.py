"""Benchmark: `bordersim run` end to end, as a user runs it, in one run of this script.

    python bench/engines.py            # the full benchmark (some ten minutes)
    python bench/engines.py --quick    # a tenth of the replications, for a smoke test

Every case but (c) and (d) is the command a user types (`bordersim run ... --quiet`), started as
a process and timed from start to exit: start-up, the capacity check, the replications, the
tables, the plots, the report and the atomic write of the results folder. Ratios come from the
same run.

(a) the calibrated default (`bordersim run --reps 1000`), 1 and 2 workers in interleaved
    rounds, with the CPU of a replication by phase (`--timings`) and the peak memory; then
    scenarios/baseline_2022.toml, 1,000 replications on 2 workers, and 2 replications on the
    SimPy engine (`--engine des`): the rate ratio in vehicle-stages/s.
(b) the README's first command (`bordersim run`: the calibrated default, 10 replications, plots
    and report) after a first run, three times.
(c) M/M/4 reference (lambda = 3.4/h, mu = 1/h) through `sim.run` in this process: 20,000
    customers x 1,000 replications on 2 workers; its mean wait beside Erlang C's.
(d) in the same run, a bare compiled Kiefer-Wolfowitz recursion for the same M/M/4 (inputs drawn
    beforehand, no calendar, priorities, quotas or statistics) on both cores: (c)'s rate
    against it.
Rates are vehicle-stages per second of wall time (a vehicle passing one stage is one, the
acceptance step included); "replications" is the time the run itself reports (metadata.json
wall_time_s), the rest of the wall time is start-up and writing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba as nb
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scenarios" / "baseline_2022.toml"
CALIBRATED = ROOT / "calibration" / "fitted_2022.toml"


def bordersim() -> list[str]:
    """The installed command if it is on the PATH beside this Python, else the module."""
    exe = Path(sys.executable).with_name("bordersim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sim.cli"]


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    tail = a**c / math.factorial(c) / (1 - a / c)
    return tail / (sum(a**k / math.factorial(k) for k in range(c)) + tail) / (c * mu - lam)


def mm4_toml(customers: int) -> str:
    lam = 3.4
    days = math.ceil(customers / lam / 24)
    end = dt.date(2022, 1, 1) + dt.timedelta(days=days - 1)
    return f"""# M/M/4 reference for the benchmark (assumption: a textbook queue, not a gate)
name = "mm4_{customers}"
[horizon]
start = 2022-01-01
end = {end.isoformat()}
warmup_days = 2
[classes.truck]
priority = 0
[gates.g]
name = "M/M/4"
classes = ["truck"]
hours = {{default = ["00:00-24:00"]}}
[gates.g.exit]
demand = {{truck = {lam * 24}}}
[[gates.g.exit.stages]]
name = "s"
lanes = 4
service_min = {{dist = "exponential", mean = 60.0}}
"""


class Timed:
    """One `bordersim run` as a user types it: wall time, the run's own replication time, the
    vehicle-stages it simulated and its summary."""

    def __init__(self, scenario: Path, reps: int, workers: int, engine: str, work: Path):
        out = work / f"{scenario.stem}-{engine}-{reps}-{workers}"
        cmd = bordersim() + ["run", str(scenario), "--reps", str(reps), "--workers", str(workers),
                             "--engine", engine, "--out", str(out), "--quiet", "--timings"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        self.wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")
        self.timings = " ".join(proc.stdout.split())
        meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
        self.replications_s = meta["wall_time_s"]
        self.summary = _table(out / "summary.csv")
        self.vehicle_stages = vehicle_stages(scenario, _table(out / "per_replication.csv"))
        self.reps, self.workers, self.engine = reps, workers, engine
        shutil.rmtree(out)

    def phases(self) -> dict[str, float]:
        """The mean CPU ms of a replication by phase, as --timings printed them."""
        import re

        return {k: float(v) for k, v in re.findall(r"(\w+) (\d+\.\d+)(?= [+=])", self.timings)}

    @property
    def rate(self) -> float:
        return self.vehicle_stages / self.wall

    def line(self) -> str:
        return (f"{self.engine:4s} {self.reps:5d} replications, {self.workers} worker(s): {self.wall:6.1f} s wall "
                f"(replications {self.replications_s:.1f} s), {self.rate:,.0f} vehicle-stages/s")

    def value(self, gate: str, direction: str, metric: str) -> pd.Series:
        s = self.summary
        return s[(s.gate == gate) & (s.direction == direction) & (s.metric == metric) & (s.stage == "")
                 & (s["class"] == "")].iloc[0]


def _table(path: Path) -> pd.DataFrame:
    """A table a run wrote: empty stage and class are '' (not NaN), empty values NaN."""
    t = pd.read_csv(path)
    t[["stage", "class"]] = t[["stage", "class"]].fillna("")
    return t


def vehicle_stages(scenario: Path, per_rep: pd.DataFrame) -> float:
    """Each replication's vehicles per gate and direction (arrivals, backlog included) times
    that flow's stages (the acceptance step included)."""
    sys.path.insert(0, str(ROOT))
    from sim import load

    model = load(scenario).nominal
    stages = {(g, d): len(gate.spec(d).stages) + (gate.spec(d).acceptance_limit is not None)
              for g, gate in model.gates.items() for d in gate.directions()}
    arr = per_rep[(per_rep.metric == "arrivals") & (per_rep.stage == "") & (per_rep["class"] == "")]
    return float(sum(v * stages[(g, d)] for g, d, v in zip(arr.gate, arr.direction, arr.value) if (g, d) in stages))


@nb.njit(parallel=True, cache=True)
def bare_kw(gaps, service, lanes):
    """Mean wait per replication (rows): the multi-lane FCFS recursion and nothing else."""
    reps, n = gaps.shape
    out = np.zeros(reps)
    for r in nb.prange(reps):
        free = np.zeros(lanes)
        t = 0.0
        total = 0.0
        for i in range(n):
            t += gaps[r, i]
            lane = 0
            for j in range(1, lanes):
                if free[j] < free[lane]:
                    lane = j
            s = max(t, free[lane])
            total += s - t
            free[lane] = s + service[r, i]
        out[r] = total / n
    return out


def bare_rate(reps: int, customers: int) -> tuple[float, float]:
    rng = np.random.default_rng(1)
    gaps, service = rng.exponential(1 / 3.4, (reps, customers)), rng.exponential(1.0, (reps, customers))
    bare_kw(gaps[:2].copy(), service[:2].copy(), 4)  # compile (C-contiguous, as timed) outside the timing
    t0 = time.perf_counter()
    waits = bare_kw(gaps, service, 4)
    wall = time.perf_counter() - t0
    return reps * customers / wall, float(waits.mean())


def first_command(work: Path, times: int = 3) -> list[float]:
    """The README's first command after its first run: `bordersim run` in a folder of its own."""
    folder = work / "first"
    folder.mkdir()
    walls = []
    for i in range(times + 1):
        t0 = time.perf_counter()
        subprocess.run(bordersim() + ["run", "--quiet"], capture_output=True, cwd=folder, check=True)
        if i:  # the first run may compile; the README times the ones after it
            walls.append(time.perf_counter() - t0)
    return walls


def mm4_through_run(reps: int, work: Path) -> tuple[float, float, tuple[float, float, float]]:
    """sim.run on the M/M/4 reference in this process, 2 workers: vehicle-stages/s of the run's
    wall time, the replications' wall time, and the mean wait with its interval."""
    sys.path.insert(0, str(ROOT))
    from sim import load, run

    path = work / "mm4.toml"
    path.write_text(mm4_toml(20_000), encoding="utf-8")
    scen = load(path)
    run(scen, reps=2, workers=2, progress=False)  # workers' kernels warm (numba's cache read once)
    t0 = time.perf_counter()
    res = run(scen, reps=reps, workers=2, progress=False)
    wall = time.perf_counter() - t0
    s = res.summary
    arrivals = s[(s.gate == "g") & (s.metric == "arrivals") & (s.stage == "") & (s["class"] == "")]["mean"].iloc[0]
    w = s[(s.gate == "g") & (s.direction == "exit") & (s.metric == "wait_mean_h") & (s.stage == "")
          & (s["class"] == "")].iloc[0]
    return arrivals * reps / wall, wall, (w["mean"], w.ci_low, w.ci_high)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a tenth of the replications")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the 1- and 2-worker runs of (a)")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    reps = 1000 // scale
    with tempfile.TemporaryDirectory(prefix="bordersim-bench-") as tmp:
        work = Path(tmp)
        Timed(BASELINE, 2, 1, "fast", work)  # numba's compile cache is filled before the timing

        print(f"(a) the calibrated default ({CALIBRATED.relative_to(ROOT)}) through `bordersim run --reps {reps}` "
              f"(end to end), {args.repeat} rounds of 1 worker then 2 (this machine's speed drifts: medians and ranges)")
        ones, twos = [], []
        for _ in range(args.repeat):
            ones.append(Timed(CALIBRATED, reps, 1, "fast", work))
            twos.append(Timed(CALIBRATED, reps, 2, "fast", work))
        for t in ones + twos:
            print("  " + t.line())
        ratios = sorted(a.wall / b.wall for a, b in zip(ones, twos))
        one = sorted(ones, key=lambda t: t.wall)[len(ones) // 2]
        two = sorted(twos, key=lambda t: t.wall)[len(twos) // 2]
        print(f"  2 workers against 1, round by round: {', '.join(f'{r:.2f}x' for r in ratios)} faster "
              f"(median {ratios[len(ratios) // 2]:.2f}x; target >= 1.8x)")
        print(f"  {reps} replications: median {one.wall:.1f} s on 1 worker, {two.wall:.1f} s on 2 "
              f"(target <= 8 s for 1,000 on 2 workers)")
        split = {k: statistics.median(t.phases()[k] for t in ones) for k in ones[0].phases()}
        print("  CPU per replication (ms, 1 worker, median of the rounds): "
              + " + ".join(f"{k} {v:.2f}" for k, v in split.items()) + f" = {sum(split.values()):.2f} (target <= 12)")
        print(f"  one round's --timings (2 workers): {two.timings}")
        tot = two.value("all", "all", "crossings")
        print(f"  crossings Jan-Nov 2022: {tot['mean']:,.0f} [{tot.ci_low:,.0f}, {tot.ci_high:,.0f}] (observed 95,370)")
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
        print(f"  peak memory of the largest process: {peak:.2f} GiB (target <= 0.6)")
        base = Timed(BASELINE, reps, 2, "fast", work)
        des = Timed(BASELINE, 2, 1, "des", work)
        print(f"  {BASELINE.relative_to(ROOT)}: " + base.line() + " (target <= 15 s for 1,000)")
        print("  " + des.line())
        print(f"  fast (2 workers) against SimPy (1 process): {base.rate / des.rate:,.0f}x in vehicle-stages/s")

        walls = first_command(work)
        print(f"(b) the README's first command (`bordersim run`), after its first run: "
              f"{', '.join(f'{w:.2f}' for w in walls)} s (median {statistics.median(walls):.2f} s; target <= 3 s)")

        print(f"(c) M/M/4, lambda = 3.4/h, mu = 1/h, through `sim.run`, 20,000 customers x {reps} replications, "
              "2 workers")
        rate, wall, (w, lo, hi) = mm4_through_run(reps, work)
        print(f"  {wall:.2f} s, {rate:,.0f} vehicle-stages/s; mean wait {w:.3f} h [{lo:.3f}, {hi:.3f}], "
              f"Erlang C {erlang_c_wait(3.4, 1.0, 4):.3f} h")

    print("(d) in the same run, a bare compiled M/M/4 recursion, inputs drawn beforehand, no statistics, both cores")
    bare, w = bare_rate(reps, 20_000)
    print(f"  {bare:,.0f} vehicle-stages/s (mean wait {w:.3f} h); (c) against it: {rate / bare:.2f} (target >= 0.5)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    os.environ.pop("OPENBLAS_NUM_THREADS", None)  # measure what a user gets, with no variable set by hand
    main()
