"""A corridor on the `wait` rule from a scenario file: both engines give the same tables, each
corridor's trucks are conserved in every replication (those that leave counted in
diverted_out), the rule's numbers are inputs like any (a range sampled per replication, swept,
fixed), and outside_detour_h = inf leaves no outside option."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sim import from_dict, load, read_table, run
from sim.base.rng import replication_seed
from sim.cli import main
from sim.engines import des, fast
from sim.engines.draws import replication_inputs
from sim.experiments.experiment import replicate
from sim.statistics.metrics import ALL, replication_metrics

from .strategies import scenarios
from .test_corridors import TWO_GATES

# the two gates of tests/test_corridors.py (a closed on 3-4 March) as a corridor on 'wait'
# (assumption: test values chosen to send trucks to both gates and out of the province)
WAIT = """
[corridors.ab]
name = "Gates A and B"
gates = ["a", "b"]

[corridors.ab.exit]
rule = "wait"
sensitivity = 0.5
detour_h = {a = 0.5, b = 1.5}
outside_detour_h = 3
"""
SENSITIVITY = "corridors.ab.exit.sensitivity"


def _scenario(tmp_path, text: str = WAIT, name: str = "wait.toml"):
    path = tmp_path / name
    path.write_text(TWO_GATES.replace('name = "two_gates"', 'name = "two_gates_wait"') + text, encoding="utf-8")
    return path


def _rows(summary: pd.DataFrame, metric: str) -> pd.Series:
    rows = summary[(summary.metric == metric) & (summary.stage == "") & (summary["class"] == "")]
    return rows.set_index(["gate", "direction"])["mean"]


def test_a_wait_corridor_runs_on_both_engines_with_equal_tables(tmp_path):
    path = _scenario(tmp_path)
    a = run(load(path), reps=3, seed=2, engine="fast", progress=False)
    b = run(load(path), reps=3, seed=2, engine="des", progress=False)
    for name in ("summary", "monthly", "per_replication"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name))
    share, left = _rows(a.summary, "corridor_share"), _rows(a.summary, "diverted_out")
    assert 0 < share[("a", "exit")] < 1 and share[("a", "exit")] + share[("b", "exit")] == pytest.approx(1)
    assert left[("ab", "exit")] > 0  # some trucks took the outside option


def _with_wait(raw: dict, sensitivity: float, outside: float) -> dict:
    """raw with its corridor on 'wait' in every direction two of its gates handle (detours by
    gate), on 'shares' in the others."""
    out = copy.deepcopy(raw)
    c = out["corridors"]["c"]
    for d in ("exit", "entry"):
        gates = [g for g in c["gates"] if d in out["gates"][g]]
        c.pop(d, None)
        if len(gates) >= 2:
            c[d] = {"rule": "wait", "sensitivity": sensitivity, "outside_detour_h": outside,
                    "detour_h": {g: 0.5 * j for j, g in enumerate(gates)}}
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=scenarios(corridor=True), seed=st.integers(0, 2**32 - 1),
       sensitivity=st.sampled_from([0.0, 0.3, float("inf")]), outside=st.sampled_from([0.0, 2.0, float("inf")]))
def test_a_wait_corridors_trucks_are_conserved_and_both_engines_agree(raw, seed, sensitivity, outside):
    """Per corridor and direction (and both), in one replication: the corridor's trucks (each
    a vehicle of its inputs) equal its gates' arrivals plus diverted_out, and their crossings,
    those in the system at the end, those that gave up plus diverted_out, exactly; with no
    outside option only trucks no gate serves leave; the SimPy engine's rows are the same."""
    scen = from_dict(_with_wait(raw, sensitivity, outside))
    rep = replication_inputs(scen, replication_seed(seed, 0))
    assume(rep.corridors)
    assert all(rep.flows[i] is None for cc in rep.corridors for i in cc.flows)
    records = fast.simulate(rep)
    result = replication_metrics(rep, records)
    slow = replication_metrics(rep, des.simulate(rep))
    assert slow.labels == result.labels
    np.testing.assert_allclose(slow.values, result.values, rtol=1e-12, atol=1e-12)  # the engines agree to float rounding
    value = dict(zip(result.labels, result.values))
    came = {cc.inputs.direction: cc.inputs.n for cc in rep.corridors}
    handled = {f.inputs.direction for f in records if f.inputs.gate in raw["corridors"]["c"]["gates"]}
    for d in ("exit", "entry", ALL):
        gates = {g for cc in rep.corridors for g in (x.gate for x in cc.inputs.gates) if d in (cc.inputs.direction, ALL)}
        if not gates or (d == ALL and handled != set(came)):  # both: where every direction chooses
            continue
        diverted = value[("c", d, "diverted_out", "", "")]
        sums = {m: sum(value[(g, d, m, "", "")] for g in gates)
                for m in ("arrivals", "crossings", "in_system_end", "gave_up")}
        trucks = sum(n for dd, n in came.items() if d in (dd, ALL))
        assert trucks == sums["arrivals"] + diverted
        assert trucks == sums["crossings"] + sums["in_system_end"] + sums["gave_up"] + diverted
    for cc in rep.corridors:  # whoever left chose the outside option, or found no gate serving it
        at_gates = sum(records[i].inputs.n for i in cc.flows)
        choice = fast.simulate_corridor(cc.inputs).choice
        assert cc.inputs.n - at_gates == np.sum(choice < 0)
        if outside == float("inf"):
            assert cc.inputs.weight[-1].max() == 0


def test_a_wait_corridors_numbers_are_inputs_a_replication_samples_and_a_value_fixes(tmp_path):
    """A range for the sensitivity and a gate's detour: each replication samples them (its
    result carries the values), and fixing the detour to gate a far above b's sends a's trucks
    to b on the same draws."""
    path = _scenario(tmp_path, WAIT.replace("sensitivity = 0.5", "sensitivity = {uniform = [0.2, 2]}")
                     .replace("a = 0.5", "a = {uniform = [0, 12]}"))
    scen = load(path)
    drawn = [replicate(scen, 4, i).inputs for i in range(3)]
    assert len({x[SENSITIVITY] for x in drawn}) == 3 and all(0.2 <= x[SENSITIVITY] <= 2 for x in drawn)

    def share_of_a(detour):
        res = replicate(scen, 4, 0, values={SENSITIVITY: 1.0, "corridors.ab.exit.detour_h.a": detour})
        return dict(zip(res.labels, res.values))[("a", "exit", "corridor_share", "", "")]

    near, far = share_of_a(0.0), share_of_a(12.0)
    assert near > 0.3 and far < 0.05


def test_a_sweep_of_a_wait_corridors_sensitivity(tmp_path):
    """bordersim sweep --param of the sensitivity: each point runs the corridor at its value;
    a truck that weighs the detour more leaves the province less (its detour is the longest)."""
    path = _scenario(tmp_path)
    out = tmp_path / "sweep"
    assert main(["sweep", str(path), "--param", f"{SENSITIVITY}=0,4", "--reps", "2", "--out", str(out),
                 "--output", "diverted_out", "--workers", "1", "--quiet", "--no-plots"]) == 0
    t = read_table(out / "sweep.csv")
    left = t[(t.metric == "diverted_out") & (t.direction == "exit") & (t["class"] == "")].set_index(SENSITIVITY)["mean"]
    assert sorted(left.index) == [0, 4]
    assert left[4] < left[0] / 2


def test_no_outside_option_leaves_nobody_while_a_gate_serves(tmp_path):
    """outside_detour_h = inf: no truck leaves the province while a gate of the corridor
    serves it (a is closed on 3-4 March, b serves every day), at every sensitivity."""
    for sensitivity in ("0", "0.5", "inf"):
        path = _scenario(tmp_path, WAIT.replace("= 3\n", "= inf\n").replace("0.5\ndetour", f"{sensitivity}\ndetour"),
                         f"inf_{sensitivity}.toml")
        res = run(load(path), reps=2, seed=1, progress=False)
        assert _rows(res.summary, "diverted_out")[("ab", "exit")] == 0
        assert _rows(res.summary, "crossings")[("a", "exit")] > 0
