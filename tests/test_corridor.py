"""A corridor on the `wait` rule (sim.engines.corridor): each truck chooses its gate on the queues it sees.

Both engines give every vehicle the same gate and the same times on random corridors made of
random scenarios' gates (every feature of a flow: stages, lanes by day, opening hours and
closures, the far side's daily limit, priorities, patience, a backlog turned away); given the
choices, each gate is the per-flow model; the vehicles are conserved; nobody chooses a gate
closed all day or turning its class away; the mean number in system of two single-lane gates
meets the exact two-dimensional chain (tests/two_gates.py) for "join the shortest queue" and for
a finite sensitivity with an outside option; a sensitivity of 0 is a random split by the weights.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from sim import from_dict, load
from sim.base.days import day_of
from sim.base.rng import replication_seed
from sim.engines import des, fast
from sim.engines.corridor import OUTSIDE, choice_tables, choose
from sim.engines.draws import replication_inputs
from sim.model.calendar import Calendar

from . import two_gates as chain
from .corridors import mean_in_system, scenario_corridor, two_gates, wait_corridor
from .helpers import assert_same_times
from .strategies import direction, hours, scenarios

SENSITIVITIES = [0.0, 0.05, 1.0, 20.0, math.inf]


@st.composite
def corridors(draw):
    """A random corridor: the exit flows of a random scenario of two or three gates, with
    random detours and sensitivity, its vehicles either drawn from the corridor's own streams
    (sim.engines.draws.wait_corridor_inputs) or the flows' own merged, with random weights (the outside
    option's sometimes 0)."""
    raw = draw(scenarios())
    gates = raw["gates"]
    for gi in range(len(gates), draw(st.integers(2, 3))):  # two or three gates
        cls = draw(st.sampled_from([["truck"], ["green", "truck"], ["green", "truck", "bulk"], ["green", "fruit"]]))
        gates[f"g{gi}"] = {"name": f"gate {gi}", "classes": cls, "hours": draw(hours())}
    for gate in gates.values():  # each handling exits
        if "exit" not in gate:
            gate["exit"] = draw(direction(gate["classes"]))
    n_gates = len(gates)
    start, days = raw["horizon"]["start"], (raw["horizon"]["end"] - raw["horizon"]["start"]).days + 1
    for gid in gates:  # lanes by date (a calendar per lane) at some gates
        if draw(st.booleans()):
            first = draw(st.integers(0, days - 1))
            raw.setdefault("adjust", []).append({
                "id": f"lanes_{gid}", "what": "lanes", "gates": [gid], "set": draw(st.integers(0, 3)),
                "from": start + dt.timedelta(days=first), "until": start + dt.timedelta(days=draw(st.integers(first, days - 1)))})
    weight = [draw(st.sampled_from([0.2, 0.5, 1.0])) for _ in range(n_gates)]
    weight.append(draw(st.sampled_from([0.0, 0.0, 0.3, 1.0])))
    detour = [draw(st.sampled_from([0.0, 0.5, 3.0])) for _ in range(n_gates)] + [draw(st.sampled_from([2.0, 10.0]))]
    seed, sensitivity = draw(st.integers(0, 2**32 - 1)), draw(st.sampled_from(SENSITIVITIES))
    if draw(st.booleans()):  # drawn from the corridor's named streams, weighted by the gates' demand
        return wait_corridor(from_dict(raw), seed, 0, list(gates), "exit", sensitivity, detour[:-1], detour[-1])
    return scenario_corridor(raw, seed, "exit", sensitivity, np.array(weight), np.array(detour))


def assert_same_corridor(c):
    a, b = des.simulate_corridor(c), fast.simulate_corridor(c)
    assert np.array_equal(a.choice, b.choice), f"first different choice: vehicle {np.argmax(a.choice != b.choice)}"
    for x, y in zip(a.records, b.records, strict=True):
        assert_same_times(x, y)
        assert np.array_equal(x.lane, y.lane)
    return b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=corridors())
def test_engines_give_every_vehicle_the_same_gate_and_times(c):
    rec = assert_same_corridor(c)
    # each gate is the per-flow model on the vehicles that chose it
    for flow in rec.records:
        assert_same_times(flow, fast.simulate_flow(flow.inputs, c.horizon_h))
    # conserved: each vehicle at one gate or outside, and there crossed, gave up or still inside
    at_gate = np.zeros(c.n, int)
    for j, flow in enumerate(rec.records):
        mine = np.flatnonzero(rec.choice == j)
        assert np.array_equal(flow.inputs.arrival, c.arrival[mine])
        at_gate[mine] += 1
        assert not np.any(~np.isnan(flow.depart) & ~np.isnan(flow.left)), "crossed and gave up"
    assert np.array_equal(at_gate, (rec.choice != OUTSIDE).astype(int))
    assert np.all(rec.choice[c.gate >= 0] == c.gate[c.gate >= 0]), "a backlog left its gate"
    crossed = sum(int(np.sum(~np.isnan(f.depart))) for f in rec.records)
    gave_up = sum(int(np.sum(~np.isnan(f.left))) for f in rec.records)
    inside = sum(int(np.sum(np.isnan(f.depart) & np.isnan(f.left))) for f in rec.records)
    assert c.n == crossed + gave_up + inside + int(np.sum(rec.choice == OUTSIDE))
    assert_no_closed_or_refusing_gate(c, rec.choice)


def assert_no_closed_or_refusing_gate(c, choice):
    """No vehicle that chooses takes a gate closed all day (by its calendar), with no lanes or
    no far-side quota that day, that does not serve its class or turns it away at its arrival."""
    for i in np.flatnonzero((c.gate < 0) & (choice != OUTSIDE)):
        g, t, cl = c.gates[choice[i]], c.arrival[i], c.vclass[i]
        d = day_of(t)
        assert g.serves[cl], f"vehicle {i} chose {g.gate}, which does not serve its class"
        assert np.any((g.calendar.starts < 24.0 * (d + 1)) & (g.calendar.ends > 24.0 * d)), \
            f"vehicle {i} chose {g.gate}, closed all day {d}"
        assert not any(a <= t < b for a, b in g.refusals[cl]), f"vehicle {i} chose {g.gate}, turning its class away"
        for k in range(g.stages):
            if g.quota[k] is not None:
                assert g.quota[k][min(d, len(g.quota[k]) - 1)] > 0, f"vehicle {i} chose {g.gate}: no quota on day {d}"
            if g.lane_calendars[k] is not None:
                assert any(np.any((lc.starts < 24.0 * (d + 1)) & (lc.ends > 24.0 * d)) for lc in g.lane_calendars[k]), \
                    f"vehicle {i} chose {g.gate}: no lane of stage {k} on day {d}"


def test_a_closed_or_refusing_gate_is_never_chosen():
    """Gate 0 closed on day 1 and turning trucks away on day 2; at sensitivity 0, with gate 0's
    weight far above gate 1's, every truck on those days still goes to gate 1."""
    c = two_gates(1.0, (1.0, 1.0), 4, seed=3, sensitivity=0.0, weight=(0.99, 0.01))
    g0 = c.gates[0]
    g0.calendar = type(g0.calendar)(np.array([0.0, 48.0]), np.array([24.0, 96.0]))
    g0.refusals = [[(48.0, 72.0)]]
    rec = fast.simulate_corridor(c)
    assert_same_corridor(c)
    on = (c.arrival >= 24.0) & (c.arrival < 72.0)
    assert on.sum() > 30 and np.all(rec.choice[on] == 1)
    assert np.mean(rec.choice[~on] == 0) > 0.9
    assert_no_closed_or_refusing_gate(c, rec.choice)


def test_sensitivity_zero_is_a_random_split_by_the_weights():
    """At sensitivity 0 a vehicle's choice is its uniform against the weights alone, whatever
    the queues: the same gate for every vehicle as a plain weighted split with its uniform."""
    c = two_gates(1.6, (1.0, 0.7), 30, seed=4, sensitivity=0.0, weight=(0.5, 0.3), outside=(0.2, 5.0))
    rec = assert_same_corridor(c)
    split = np.searchsorted(np.cumsum([0.5, 0.3, 0.2]), c.u, side="right")
    assert np.array_equal(np.where(split == 2, OUTSIDE, split), rec.choice)


def _interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The t-interval of the mean of i.i.d. replications; it must be informative (within 5 %
    of the mean), or a check against it could not fail."""
    m, s = values.mean(), values.std(ddof=1) / math.sqrt(len(values))
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * s
    assert half < 0.05 * m, f"interval {m:.3f} +- {half:.3f}: too wide to test"
    return m - half, m + half


REPS, DAYS, WARMUP_H = 30, 250, 24.0 * 20


def _means(engine, lam, mu, sensitivity, **kw) -> np.ndarray:
    """Per replication, the time-average number in system of both gates together."""
    return np.array([mean_in_system(engine.simulate_corridor(two_gates(lam, mu, DAYS, seed, sensitivity, **kw)),
                                    WARMUP_H).sum() for seed in range(REPS)])


@pytest.mark.parametrize("engine", [fast, des])
def test_shortest_queue_meets_the_exact_chain(engine):
    """Two single-lane gates at load 0.8, no detour, equal weights, sensitivity inf: join the
    shortest queue. The chain's mean number in system lies inside the replications' 95 %
    interval (and the random split's outside it)."""
    lam, mu = 1.6, 1.0
    exact = chain.two_gates(lam, mu, mu, chain.logit(mu, mu, math.inf)).in_system
    low, high = _interval(_means(engine, lam, (mu, mu), math.inf))
    assert low <= exact <= high, f"chain {exact:.3f}, simulated [{low:.3f}, {high:.3f}]"
    assert not low <= 2 * chain.mm1_in_system(lam / 2, mu) <= high


@pytest.mark.parametrize("engine", [fast, des])
def test_a_finite_sensitivity_with_detours_and_leaving_meets_the_exact_chain(engine):
    """Unequal gates, a detour to one, a finite sensitivity and an outside option at a detour:
    the chain's mean number in system (with the routing the rule defines) lies inside the 95 %
    interval; with the outside option ignored it does not."""
    lam, mu, kw = 1.5, (1.0, 0.8), dict(detour=(0.0, 1.0), weight=(0.6, 0.4), outside=(0.3, 4.0))
    exact = chain.two_gates(lam, *mu, chain.logit(*mu, 0.7, **kw)).in_system
    low, high = _interval(_means(engine, lam, mu, 0.7, **kw))
    assert low <= exact <= high, f"chain {exact:.3f}, simulated [{low:.3f}, {high:.3f}]"
    kept = chain.two_gates(lam, *mu, chain.logit(*mu, 0.7, detour=kw["detour"], weight=kw["weight"]),
                           size=200).in_system
    assert not low <= kept <= high


def test_sensitivity_zero_meets_two_mm1_queues():
    """At sensitivity 0 each gate is an M/M/1 queue at its weight's share of the arrivals."""
    lam, mu, weight = 1.6, (1.0, 1.2), (0.45, 0.55)
    per_gate = np.array([mean_in_system(fast.simulate_corridor(two_gates(lam, mu, DAYS, seed, 0.0, weight=weight)),
                                        WARMUP_H) for seed in range(REPS)])
    for j in range(2):
        low, high = _interval(per_gate[:, j])
        assert low <= chain.mm1_in_system(lam * weight[j], mu[j]) <= high


def test_choose_takes_the_lowest_cost_at_infinite_sensitivity_ties_by_weight():
    c = two_gates(1.0, (1.0, 0.5), 2, seed=1, sensitivity=math.inf, weight=(0.25, 0.75))
    t = choice_tables(c)
    args = (t.capacity, t.weight, t.detour, t.sensitivity, t.refused_from, t.refused_to, t.refused_off)
    # gate 0 serves at 1 an hour, gate 1 at 0.5: 2 at gate 0 and 1 at gate 1 both mean 2 hours
    assert [choose(1.0, 0, u, np.array([2, 1]), *args) for u in (0.0, 0.2, 0.25, 0.9)] == [0, 0, 1, 1]
    assert choose(1.0, 0, 0.0, np.array([3, 1]), *args) == 1
    assert choose(1.0, 0, 0.99, np.array([1, 1]), *args) == 0


def test_inputs_outside_the_rule_are_refused():
    c = two_gates(1.0, (1.0, 1.0), 2, seed=1, sensitivity=-1.0)
    with pytest.raises(ValueError, match="sensitivity"):
        fast.simulate_corridor(c)
    c = two_gates(1.0, (1.0, 1.0), 2, seed=1, sensitivity=1.0)
    c.joins = c.joins + 1.0
    with pytest.raises(ValueError, match="joins its gate on arrival"):
        des.simulate_corridor(c)


@pytest.mark.parametrize("lane_schedule", [False, True])
def test_a_start_left_undecided_at_a_choice_is_worked_out_again(lane_schedule):
    """At a choice at 9:00 the second stage of gate 0 (closed 10:00-11:00, by the gate's hours
    or by its one lane's own calendar) would start A, ready at 10:30, at 11:00: undecided then.
    B, fixed to gate 0 at 9:00, reaches that stage at 9:30 and starts it at once: the pass's
    positions must have been put back after the undecided start."""
    c = two_gates(1.0, (1.0, 1.0), 5, seed=1, sensitivity=0.0)
    open_ = Calendar(np.array([0.0, 11.0]), np.array([10.0, 120.0]))
    g0 = c.gates[0]
    g0.stage_names, g0.lanes, g0.quota, g0.service_factor = ["a", "b"], [2, 1], [None, None], [None, None]
    g0.lane_calendars = [None, [open_] if lane_schedule else None]
    g0.calendar = Calendar(np.array([0.0]), np.array([120.0])) if lane_schedule else open_
    g0.patience_stages, g0.mean_service = 2, np.array([[1.0, 1.0], [1.0, 1.0]])
    g0.serves, g0.refusals = np.array([True, False]), [[], []]
    c.gates[1].serves, c.gates[1].mean_service, c.gates[1].refusals = np.array([True, True]), np.ones((1, 2)), [[], []]
    # A (fixed to 0) at 1:00, X (chooses: its class only gate 1 serves) at 9:00, B (fixed to 0) at 9:00, Y at 12:00
    c.arrival = np.array([1.0, 9.0, 9.0, 12.0])
    c.vclass, c.gate = np.array([0, 1, 0, 1]), np.array([0, -1, 0, -1])
    c.joins, c.u = c.arrival.copy(), np.full(4, 0.5)
    c.service = np.zeros((2, 2, 4))
    c.service[0, :, 0], c.service[0, :, 2], c.service[1, 0] = (9.5, 0.1), (0.5, 0.1), 0.2
    c.classes, c.class_priority = ["truck", "other"], np.array([0, 0])
    c.weight = np.ones((3, 2, 5))
    c.weight[2] = 0.0
    rec = assert_same_corridor(c)
    assert list(rec.choice) == [0, 1, 0, 1]
    assert rec.records[0].start[1, 1] == 9.5 and rec.records[0].start[0, 1] == 11.0  # B, then A


MONG_CAI = ["mong_cai", "bac_luan_2", "km3_4"]  # Bắc Luân I, Bắc Luân II and Km3+4: the Móng Cái crossings
SMALL = Path(__file__).parent / "data" / "small_2022.toml"


def _corridor(scenario, index: int, seed: int = 3, sensitivity: float = 0.5):
    return wait_corridor(scenario, seed, index, MONG_CAI, "exit", sensitivity, [0.5, 0.0, 1.0], 8.0)


@pytest.mark.parametrize("sensitivity", [0.5, math.inf])
def test_engines_agree_on_the_mong_cai_crossings_drawn_from_the_baseline(sensitivity):
    """The 2022 baseline's Móng Cái crossings (seven weeks: the winter's limits, refusals,
    backlogs and patience) as a corridor drawn from named streams: both engines give every
    truck the same gate and times; trucks go to each gate and leave the province."""
    rec = assert_same_corridor(_corridor(load(SMALL), 0, sensitivity=sensitivity))
    assert np.all(np.bincount(rec.choice + 1, minlength=4) > 50)


def test_a_gate_keeps_its_own_backlog_drawn_as_without_a_corridor():
    """The corridor's fixed vehicles are each gate's initial backlog, with the arrival times,
    services and deadlines the gate's own streams give it in a run without the corridor."""
    scen = load(SMALL)
    c = _corridor(scen, 1)
    flows = {f.gate: f for f in replication_inputs(scen, replication_seed(3, 1)).flows if f.direction == "exit"}
    for j, gate in enumerate(MONG_CAI):
        f, mine = flows[gate], c.gate == j
        own = np.flatnonzero(f.arrival <= 0)
        assert own.size > 0 and mine.sum() == own.size
        assert np.array_equal(c.arrival[mine], f.arrival[own])
        assert np.array_equal(c.service[j, :f.service.shape[1]][:, mine], f.service[own].T)
        assert np.array_equal(c.deadline[mine], f.deadline[own])


def test_common_random_numbers_survive_a_change_at_one_gate():
    """Km3+4's customs cut to one lane changes no truck's draws (its arrival, uniform, services
    at every gate, patience), so the paired difference of the corridor's mean time in system
    under common random numbers varies far less than between independent replications."""
    base, alt = load(SMALL), load(SMALL, sets=["gates.km3_4.exit.stages.customs.lanes=1"])
    for name in ("arrival", "vclass", "gate", "u", "service", "deadline", "weight"):
        assert np.array_equal(getattr(_corridor(base, 0), name), getattr(_corridor(alt, 0), name)), name

    def mean_time_in_system(c):
        rec = fast.simulate_corridor(c)
        crossed = [(r.depart - np.maximum(r.inputs.arrival, 0))[~np.isnan(r.depart)] for r in rec.records]
        return np.concatenate(crossed).mean()

    reps = 8
    a = np.array([mean_time_in_system(_corridor(base, i)) for i in range(reps)])
    b = np.array([mean_time_in_system(_corridor(alt, i)) for i in range(reps)])
    independent = np.array([mean_time_in_system(_corridor(alt, reps + i)) for i in range(reps)])
    assert np.mean(b - a) > 0  # fewer lanes: longer times
    assert np.var(b - a, ddof=1) < np.var(independent - a, ddof=1) / 10
