"""Benchmark: `bordersim compare` of the calibrated baseline against three library scenarios,
against four times a single run, end to end through the CLI, in one run of this script.

    python bench/compare.py            # 200 replications each (a few minutes)
    python bench/compare.py --reps 20  # a smoke test
    python bench/compare.py --corridors  # against the library's three scenarios of trucks choosing their gate

Target: the comparison of four scenarios takes no more than 4x one 200-replication run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "calibration" / "fitted_2022.toml"
ALTS = [ROOT / "scenarios" / f"{n}.toml" for n in
        ("km3_4_permanent_bridge", "faster_procedures", "higher_acceptance_limits")]
# the scenarios whose trucks choose their gate: two closures (the corridor on 'open', which need
# --allow-overload) and the permanent bridge at Km3+4 with each truck choosing by the queues ('wait')
CORRIDOR_ALTS = [ROOT / "scenarios" / f"{n}.toml" for n in
                 ("bac_luan_2_closed_month", "km3_4_storm_season", "km3_4_permanent_bridge_choice")]


def bordersim() -> list[str]:
    exe = Path(sys.executable).with_name("bordersim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sim.cli"]


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(bordersim() + args, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bordersim {' '.join(args)} failed: {proc.stderr.strip()}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--corridors", action="store_true", help="the corridor scenarios as the alternatives")
    args = ap.parse_args()
    reps = args.reps
    alts, extra = (CORRIDOR_ALTS, ["--allow-overload"]) if args.corridors else (ALTS, [])
    with tempfile.TemporaryDirectory(prefix="bordersim-bench-") as tmp:
        work = Path(tmp)
        timed(["run", str(BASE), "--reps", "2", "--quiet", "--out", str(work / "warm")])  # numba's cache filled
        single = timed(["run", str(BASE), "--reps", str(reps), "--quiet", "--out", str(work / "single")])
        both = timed(["compare", str(BASE), *map(str, alts), "--reps", str(reps), "--quiet", "--out",
                      str(work / "compare"), *extra])
    print(f"bordersim run {BASE.relative_to(ROOT)} --reps {reps}: {single:.1f} s")
    print(f"bordersim compare (base + {', '.join(a.stem for a in alts)}) --reps {reps}: {both:.1f} s "
          f"= {both / single:.2f}x the single run (target <= 4x)")


if __name__ == "__main__":
    main()
