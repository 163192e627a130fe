"""The full statistical agreement check of the two engines, for every scenario in scenarios/.

    python bench/agreement.py [--des-reps 20] [--fast-reps 200]

On independent streams (different seeds), for each gate: mean wait, 95th-percentile time in
system and crossings must agree within the 99 % confidence interval of their difference
(Welch). Exits 1 if any comparison fails. A small version runs in the test suite
(tests/test_engines_agree.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim import load, run  # noqa: E402

METRICS = ("wait_mean_h", "time_in_system_p95_h", "crossings")


def compare(path: Path, des_reps: int, fast_reps: int) -> int:
    scen = load(path)
    a = run(scen, reps=des_reps, seed=1, engine="des", progress=False).per_replication
    b = run(scen, reps=fast_reps, seed=2, engine="fast", progress=False).per_replication
    failures = 0
    print(f"{scen.name}: des {des_reps} replications (seed 1), fast {fast_reps} (seed 2)")
    print(f"  {'gate':16s} {'metric':22s} {'des':>12s} {'fast':>12s} {'99% half-width':>15s}  verdict")
    for gate in scen.nominal.gates:
        for metric in METRICS:
            x = a[(a.gate == gate) & (a.direction == "all") & (a.metric == metric)]["value"].to_numpy()
            y = b[(b.gate == gate) & (b.direction == "all") & (b.metric == metric)]["value"].to_numpy()
            vx, vy = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
            dof = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1)) if vx + vy > 0 else 1
            half = stats.t.ppf(0.995, dof) * np.sqrt(vx + vy)
            ok = abs(x.mean() - y.mean()) <= half + 1e-9
            failures += not ok
            print(f"  {gate:16s} {metric:22s} {x.mean():12.3f} {y.mean():12.3f} {half:15.3f}  {'ok' if ok else 'DIFFERENT'}")
    return failures


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--des-reps", type=int, default=20)
    ap.add_argument("--fast-reps", type=int, default=200)
    args = ap.parse_args()
    failures = sum(compare(p, args.des_reps, args.fast_reps) for p in sorted((ROOT / "scenarios").glob("*.toml")))
    print("all agree" if failures == 0 else f"{failures} comparisons differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
