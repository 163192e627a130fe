"""Benchmark: the fast engine against the SimPy engine, measured in one process and one run.

    python bench/engines.py            # the full benchmark (several minutes)
    python bench/engines.py --quick    # a tenth of the replications, for a smoke test

(a) M/M/4 reference (lambda = 3.4/h, mu = 1/h): 20,000 customers x 1,000 replications on the
    fast engine, 200,000 customers on the SimPy engine; mean waits beside Erlang C.
(b) scenarios/baseline_2022.toml: 1,000 replications on the fast engine, a few on SimPy.
(c) for scale: a bare compiled Kiefer-Wolfowitz recursion for M/M/4 (inputs drawn beforehand,
    no calendar, priorities, quotas or statistics) over 1,000 x 20,000 customers on both cores:
    what the recursion alone costs, against which the full pipeline's overheads show.
Rates are vehicle-stages per second of wall time (a vehicle passing one stage is one), for the
whole pipeline: drawing inputs, simulating, and computing the statistics.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import resource
import sys
import time
from pathlib import Path

import numba as nb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sim import from_dict, load, run  # noqa: E402


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    a = lam / mu
    tail = a**c / math.factorial(c) / (1 - a / c)
    return tail / (sum(a**k / math.factorial(k) for k in range(c)) + tail) / (c * mu - lam)


def mm4(customers: int) -> dict:
    lam = 3.4
    days = math.ceil(customers / lam / 24)
    return {
        "name": "mm4",
        "horizon": {"start": "2022-01-01", "end": (dt.date(2022, 1, 1) + dt.timedelta(days=days - 1)).isoformat(),
                    "warmup_days": 2},
        "classes": {"truck": {"priority": 0}},
        "gates": {"g": {
            "name": "M/M/4", "classes": ["truck"], "hours": {"default": ["00:00-24:00"]},
            "exit": {"demand": {"truck": lam * 24}, "stages": [
                {"name": "s", "lanes": 4, "service_min": {"dist": "exponential", "mean": 60.0}}]},
        }},
    }


def vehicle_stages(result) -> float:
    """Vehicle-stages the run simulated: each replication's vehicles (arrivals, backlog included)
    per gate and direction, times that flow's stages (the acceptance step included)."""
    model = result.scenario.nominal
    stages = {
        (g, d): len(gate.spec(d).stages) + (gate.spec(d).acceptance_limit is not None)
        for g, gate in model.gates.items() for d in gate.directions()
    }
    total = 0.0
    for r in result.results:
        for (g, d, metric, stage), v in zip(r.labels, r.values):
            if metric == "arrivals" and stage == "" and (g, d) in stages:
                total += v * stages[(g, d)]
    return total


def timed(scenario, reps: int, engine: str, workers: int | None = None):
    result = run(scenario, reps=reps, seed=1, engine=engine, workers=workers, progress=False, allow_overload=True)
    return result, result.wall_s, vehicle_stages(result)


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


def peak_rss_gib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a tenth of the replications")
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    run(from_dict(mm4(2000)), reps=2, engine="fast", workers=1, progress=False)  # compile outside the timing

    print("(a) M/M/4, lambda = 3.4/h, mu = 1/h")
    fast_scen, des_scen = from_dict(mm4(20_000)), from_dict(mm4(200_000))
    f_res, f_wall, f_vs = timed(fast_scen, 1000 // scale, "fast")
    d_res, d_wall, d_vs = timed(des_scen, 1, "des", workers=1)
    exact = erlang_c_wait(3.4, 1.0, 4)

    def wait(res):
        s = res.summary
        return s[(s.gate == "g") & (s.direction == "exit") & (s.metric == "wait_mean_h")].iloc[0]

    fw, dw = wait(f_res), wait(d_res)
    print(f"  fast: {f_vs:,.0f} vehicle-stages in {f_wall:.2f} s = {f_vs / f_wall:,.0f}/s "
          f"(2 workers); mean wait {fw['mean']:.3f} h [{fw.ci_low:.3f}, {fw.ci_high:.3f}]")
    print(f"  des:  {d_vs:,.0f} vehicle-stages in {d_wall:.2f} s = {d_vs / d_wall:,.0f}/s "
          f"(1 process); mean wait {dw['mean']:.3f} h")
    print(f"  Erlang C mean wait {exact:.3f} h; ratio fast/des {f_vs / f_wall / (d_vs / d_wall):,.0f}x")

    print("(b) scenarios/baseline_2022.toml")
    base = load(ROOT / "scenarios" / "baseline_2022.toml")
    f_res, f_wall, f_vs = timed(base, 1000 // scale, "fast")
    d_res, d_wall, d_vs = timed(base, 2, "des", workers=1)
    print(f"  fast: {f_res.reps} replications in {f_wall:.1f} s = {f_vs / f_wall:,.0f} vehicle-stages/s (2 workers)")
    print(f"  des:  {d_res.reps} replications in {d_wall:.1f} s = {d_vs / d_wall:,.0f} vehicle-stages/s (1 process)")
    print(f"  ratio fast/des {f_vs / f_wall / (d_vs / d_wall):,.0f}x (per core: "
          f"{f_vs / f_wall / 2 / (d_vs / d_wall):,.0f}x)")
    s = f_res.summary
    tot = s[(s.gate == "all") & (s.direction == "all") & (s.metric == "crossings")].iloc[0]
    print(f"  crossings Jan-Nov 2022: {tot['mean']:,.0f} [{tot.ci_low:,.0f}, {tot.ci_high:,.0f}] (observed 95,370)")
    des_rate = d_vs / d_wall
    print(f"peak memory (this process + largest worker): {peak_rss_gib():.2f} GiB")

    print("(c) for scale: bare compiled M/M/4 recursion, inputs drawn beforehand, no statistics, both cores")
    rate, w = bare_rate(1000 // scale, 20_000)
    print(f"  {rate:,.0f} vehicle-stages/s (mean wait {w:.3f} h) = {rate / des_rate:,.0f}x the SimPy engine's "
          f"baseline rate")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
