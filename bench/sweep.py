"""Benchmark: points per minute of `bordersim sweep` of the 2022 baseline's uncertain inputs (a
Latin hypercube), end to end through the CLI, on 1 worker, 2 workers and a 2-worker Dask
LocalCluster, in one run of this script (rounds interleaved, as this machine's speed drifts).

    python bench/sweep.py                          # 200 points x 100 replications (about 40 min here)
    python bench/sweep.py --points 40 --reps 20    # a smaller size, same comparison

Targets: 2 workers >= 1.7x one worker; Dask within 10 % of the local pool (2 workers).
Each configuration writes to a fresh folder (a folder of the same command would be resumed);
the script checks that the three tables are identical.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from compare import timed  # bench/compare.py: a bordersim command, timed from start to exit

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "scenarios" / "baseline_2022.toml"
CONFIGS = [("local, 1 worker", ["--workers", "1"]), ("local, 2 workers", ["--workers", "2"]),
           ("dask LocalCluster, 2 workers", ["--scheduler", "dask", "--workers", "2"])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=200)
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=1, help="rounds (each runs every configuration once)")
    a = ap.parse_args()
    sweep = ["sweep", str(BASE), "--design", "lhs", "--points", str(a.points), "--reps", str(a.reps), "--quiet",
             "--no-plots"]
    walls: dict[str, list[float]] = {name: [] for name, _ in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="bordersim-bench-") as tmp:
        work = Path(tmp)
        timed(["run", str(BASE), "--reps", "2", "--quiet", "--no-plots", "--out", str(work / "warm")])  # numba cache
        tables = {}
        for r in range(a.repeat):
            for k, (name, extra) in enumerate(CONFIGS):
                out = work / f"r{r}-c{k}"
                walls[name].append(timed(sweep + extra + ["--out", str(out)]))
                tables[name] = (out / "sweep.csv").read_bytes()
                print(f"round {r + 1}: {name}: {walls[name][-1]:.1f} s", flush=True)
        same = len(set(tables.values())) == 1
    med = {name: statistics.median(w) for name, w in walls.items()}
    one, two, dsk = (med[name] for name, _ in CONFIGS)
    print(f"\nbordersim sweep {BASE.relative_to(ROOT)} (its uncertain inputs), lhs {a.points} points x "
          f"{a.reps} replications, end to end (median of {a.repeat} round(s)):")
    print(f"{'configuration':<32}{'wall s':>9}{'points/min':>12}")
    for name, _ in CONFIGS:
        print(f"{name:<32}{med[name]:>9.1f}{60 * a.points / med[name]:>12.1f}")
    print(f"2 workers / 1 worker: {one / two:.2f}x (target >= 1.7x)")
    print(f"dask / local pool (2 workers): {dsk / two:.3f} of the time, {100 * (dsk / two - 1):+.1f} % "
          "(target within 10 %)")
    print(f"tables identical across the three: {same}")


if __name__ == "__main__":
    main()
