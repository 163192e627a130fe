"""Benchmark: what a scenario's plan costs against what its replications cost, in one process.

    python bench/plan.py                 # the 2022 baseline's sweep: 2,000 points x 10 replications
    python bench/plan.py --points 200 --reps 100

A sweep runs every point on one plan (``sim.model.plan.compile_plan``: compiled once per
process and content, shipped once to each worker); a point then costs its values (the plan's
bindings run on them: ``Plan.draw`` with the point's values fixed and ``Plan.values``) in each
of its replications. This script times, with the thread's CPU clock, compiling the plan in a
process that has not compiled it, the values of a point's replications, and whole
replications, and prints what the plan costs per point against its replications (target:
at most 5 %). It also prints the replication's split by phase (sim.experiments.experiment.PHASES).
Not through the CLI: the sweep's own wall time is in bench/sweep.py.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE = ROOT / "scenarios" / "baseline_2022.toml"

COMPILE = """
import sys, time
from sim import load
from sim.model.plan import compile_plan
s = load(sys.argv[1])
t = time.thread_time(); compile_plan(s); print(time.thread_time() - t)
"""


def compile_seconds(path: Path) -> float:
    """CPU seconds of compiling the plan in a fresh process (the scenario loaded, nothing compiled)."""
    out = subprocess.run([sys.executable, "-c", COMPILE, str(path)], capture_output=True, text=True, check=True,
                         cwd=ROOT)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=10, help="replications per point")
    ap.add_argument("--scenario", type=Path, default=BASE)
    ap.add_argument("--sample", type=int, default=100, help="replications timed for the per-replication figures")
    a = ap.parse_args()

    from sim import load
    from sim.base.rng import replication_seed
    from sim.experiments.experiment import PHASES, replicate_plan
    from sim.model.plan import compile_plan

    scen = load(a.scenario)
    compiled = min(compile_seconds(a.scenario) for _ in range(3))
    plan = compile_plan(scen)
    rng = np.random.default_rng(1)
    points = [{r.name(): float(r.ppf(rng.random())) for r in scen.ranges} for _ in range(a.sample)]
    for i in range(5):  # the kernels loaded before the timing
        replicate_plan(plan, 1, i, "fast", points[i % len(points)])
    values_s, phases = [], []
    for i, fixed in enumerate(points):
        t = time.thread_time()
        plan.values(plan.draw(replication_seed(1, i), fixed))
        values_s.append(time.thread_time() - t)
        phases.append(replicate_plan(plan, 1, i, "fast", fixed).cpu_s)
    per_rep = np.mean(phases, axis=0) * 1000
    rep_ms = float(per_rep.sum())
    values_ms = 1000 * float(np.mean(values_s))
    plan_per_point_ms = 1000 * compiled / a.points + a.reps * values_ms
    print(f"{a.scenario.relative_to(ROOT)}: {len(scen.ranges)} uncertain inputs, {len(plan.flows)} flows")
    print(f"  compiling the plan (once, fresh process, best of 3): {1000 * compiled:.0f} ms of CPU")
    print(f"  a replication, mean of {a.sample} at random points (ms of CPU): "
          + " + ".join(f"{n} {v:.2f}" for n, v in zip(PHASES, per_rep)) + f" = {rep_ms:.2f}")
    print(f"  a point's values in one replication (the plan's bindings): {values_ms:.3f} ms")
    print(f"  a sweep of {a.points:,} points x {a.reps} replications: the plan costs {plan_per_point_ms:.2f} ms a "
          f"point (its compiling shared, its values in each replication) against {a.reps * rep_ms:.0f} ms of "
          f"replications: {100 * plan_per_point_ms / (a.reps * rep_ms):.2f} % (target <= 5 %)")


if __name__ == "__main__":
    main()
