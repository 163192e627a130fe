"""Benchmark: what trucks choosing their gate (a corridor on the rule 'wait') costs.

    python bench/corridor.py              # 40 replications in this process, 100 through the CLI
    python bench/corridor.py --reps 10 --cli-reps 20

(a) In this process, on the library's scenarios/mong_cai_choice.toml (the three Móng Cái
    crossings on 'wait'): per replication and corridor direction, the fast engine's corridor
    kernel (each gate's stage recursions run resumably, in arrival order, so that each truck sees
    the queues at its arrival) against the per-flow recursions on the same vehicles at the gates
    they chose (what the engine would do if the choices were known beforehand); thread CPU time.
    Target: at most 2x.
(b) Through the CLI, `bordersim run --timings` on 1 worker: mong_cai_choice against the
    calibrated default (no corridor), the CPU of a replication by phase. Target: a replication
    with corridors at most 1.5x today's.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CHOICE = ROOT / "scenarios" / "mong_cai_choice.toml"
CALIBRATED = ROOT / "calibration" / "fitted_2022.toml"


def kernel_against_flows(reps: int) -> tuple[list[float], list[float], int, dict[str, tuple[list, list]]]:
    """CPU seconds of the corridor kernel and of the per-flow recursions on its choices, per
    replication (all of a replication's 'wait' corridors) and per corridor direction, and the
    trucks a replication has."""
    from sim import load
    from sim.base.rng import replication_seed
    from sim.engines import fast
    from sim.engines.draws import plan_inputs
    from sim.model.plan import compile_plan

    plan = compile_plan(load(CHOICE))
    kernel, flows, trucks, by_direction = [], [], 0, {}
    for i in range(reps + 2):
        seq = replication_seed(20221130, i)
        rep = plan_inputs(plan, plan.values(plan.draw(seq)), seq)
        k = f = 0.0
        for c in rep.corridors:
            inputs = c.inputs if hasattr(c, "inputs") else c
            t0 = time.thread_time()
            record = fast.simulate_corridor(inputs)
            dk = time.thread_time() - t0
            t0 = time.thread_time()
            for flow in record.records:
                fast.simulate_flow(flow.inputs, inputs.horizon_h)
            df = time.thread_time() - t0
            k, f = k + dk, f + df
            if i >= 2:  # the first two load the compiled kernels
                trucks += len(record.choice)
                pair = by_direction.setdefault(f"{inputs.name} {inputs.direction}", ([], []))
                pair[0].append(dk)
                pair[1].append(df)
        if i >= 2:
            kernel.append(k)
            flows.append(f)
    return kernel, flows, trucks // max(reps, 1), by_direction


def phases(scenario: Path, reps: int, work: Path) -> dict[str, float]:
    """`bordersim run --timings` on 1 worker: the mean CPU ms of a replication by phase."""
    exe = Path(sys.executable).with_name("bordersim")
    cmd = ([str(exe)] if exe.exists() else [sys.executable, "-m", "sim.cli"]) + [
        "run", str(scenario), "--reps", str(reps), "--workers", "1", "--timings", "--quiet", "--no-plots",
        "--no-report", "--out", str(work / scenario.stem)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=work).stdout
    return {k: float(v) for k, v in re.findall(r"(\w+) (\d+\.\d+)(?= [+=])", " ".join(out.split()))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=40, help="replications timed in this process, (a)")
    ap.add_argument("--cli-reps", type=int, default=100, help="replications of each run through the CLI, (b)")
    a = ap.parse_args()
    kernel, flows, trucks, by_direction = kernel_against_flows(a.reps)
    k, f = statistics.median(kernel), statistics.median(flows)
    print(f"(a) {CHOICE.relative_to(ROOT)}, {a.reps} replications, about {trucks:,} trucks a replication in its "
          "corridor directions:")
    print(f"  corridor kernel {1000 * k:.1f} ms, per-flow recursions on the same vehicles and choices "
          f"{1000 * f:.1f} ms (medians): {k / f:.2f}x (target <= 2x)")
    for name, (dk, df) in by_direction.items():
        mk, mf = statistics.median(dk), statistics.median(df)
        print(f"    {name}: {1000 * mk:.1f} ms against {1000 * mf:.1f} ms, {mk / mf:.2f}x")
    with tempfile.TemporaryDirectory(prefix="bordersim-bench-") as tmp:
        work = Path(tmp)
        base = phases(CALIBRATED, a.cli_reps, work)
        choice = phases(CHOICE, a.cli_reps, work)
    for name, p in (("calibrated default", base), (CHOICE.stem, choice)):
        print(f"(b) {name}: CPU per replication (ms, 1 worker, mean of {a.cli_reps}): "
              + " + ".join(f"{n} {v:.2f}" for n, v in p.items()) + f" = {sum(p.values()):.2f}")
    print(f"  with corridors against without: {sum(choice.values()) / sum(base.values()):.2f}x (target <= 1.5x); "
          f"engine {choice['engine'] / base['engine']:.2f}x")


if __name__ == "__main__":
    main()
