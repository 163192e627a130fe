"""Benchmark: `bordersim optimise` of three levers of the calibrated 2022 baseline
(scenarios/levers_2022.toml: Bắc Luân II's customs lanes and goods day, the far side's limits),
end to end through the CLI, on 1 worker and 2 workers, in one run of this script.

    python bench/optimise.py                         # 100 trials x 20 replications
    python bench/optimise.py --trials 10 --reps 5    # a smaller size, same comparison

Targets: 100 trials x 20 replications within 10 minutes on 2 cores; 2 workers >= 1.8x one
worker. Each configuration writes to a fresh folder (a folder of the same command would be
resumed); the script checks that the two trials.csv are identical.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from compare import timed  # bench/compare.py: a bordersim command, timed from start to exit

ROOT = Path(__file__).resolve().parent.parent
LEVERS = ROOT / "scenarios" / "levers_2022.toml"
SEARCHED = ["bac_luan_2_customs_lanes", "bac_luan_2_hours", "acceptance_agreement"]
CONSTRAINT = "time_in_system_p95_h@bac_luan_2 <= 72"
CONFIGS = [("local, 1 worker", ["--workers", "1"]), ("local, 2 workers", ["--workers", "2"])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    command = ["optimise", str(LEVERS), "--constraint", CONSTRAINT, "--trials", str(a.trials), "--reps",
               str(a.reps), "--quiet", "--no-plots", "--no-report"]
    for lever in SEARCHED:
        command += ["--lever", lever]
    walls: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bordersim-bench-") as tmp:
        work = Path(tmp)
        timed(["run", str(LEVERS), "--reps", "2", "--quiet", "--no-plots", "--out", str(work / "warm")])  # numba cache
        tables = {}
        for k, (name, extra) in enumerate(CONFIGS):
            out = work / f"c{k}"
            walls[name] = timed(command + extra + ["--out", str(out)])
            tables[name] = (out / "trials.csv").read_bytes()
            print(f"{name}: {walls[name]:.1f} s", flush=True)
        same = len(set(tables.values())) == 1
    one, two = (walls[name] for name, _ in CONFIGS)
    print(f"\nbordersim optimise {LEVERS.relative_to(ROOT)} over {', '.join(SEARCHED)} subject to "
          f"{CONSTRAINT}: {a.trials} trials x {a.reps} replications, end to end:")
    print(f"{'configuration':<24}{'wall s':>9}{'trials/min':>12}")
    for name, _ in CONFIGS:
        print(f"{name:<24}{walls[name]:>9.1f}{60 * a.trials / walls[name]:>12.1f}")
    print(f"2 workers: {two / 60:.1f} min (target <= 10 min at 100 x 20)")
    print(f"2 workers / 1 worker: {one / two:.2f}x (target >= 1.8x)")
    print(f"trials.csv identical on 1 and 2 workers: {same}")


if __name__ == "__main__":
    main()
