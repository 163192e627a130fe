"""Builders of corridor inputs (sim.engines.corridor.CorridorInputs) for the tests: two plain
gates fed by one Poisson stream, and the gates of a random scenario in one direction."""

from __future__ import annotations

import math

import numpy as np

from sim import from_dict
from sim.base.rng import replication_seed
from sim.engines.corridor import CorridorInputs, CorridorRecord, GateSchedule, gate_schedule
from sim.base.rng import stream
from sim.engines.draws import FlowInputs, replication_inputs, wait_corridor_inputs
from sim.model.calendar import Calendar, draw_random_closures, with_closures
from sim.model.plan import compile_plan


def two_gates(lam: float, mu: tuple[float, float], days: int, seed: int, sensitivity: float,
              detour: tuple[float, float] = (0.0, 0.0), weight: tuple[float, float] = (0.5, 0.5),
              outside: tuple[float, float] = (0.0, 0.0)) -> CorridorInputs:
    """Two gates of one lane each, open around the clock, exponential service at rates mu (per
    hour), Poisson arrivals at lam per hour over ``days``; outside = (weight, detour) of leaving."""
    rng = np.random.default_rng(seed)
    horizon = 24.0 * days
    arrival = np.cumsum(rng.exponential(1 / lam, int(lam * horizon + 10 * math.sqrt(lam * horizon) + 10)))
    arrival = arrival[arrival < horizon]
    n = arrival.size
    cal = Calendar(np.array([0.0]), np.array([horizon]))
    gates = [GateSchedule(gate=f"g{j}", stage_names=["clearance"], lanes=[1], quota=[None], calendar=cal,
                          acceptance=-1, lane_calendars=[None], service_factor=[None], patience_stages=1,
                          serves=np.array([True]), mean_service=np.array([[1 / mu[j]]]), refusals=[[]])
             for j in range(2)]
    service = np.stack([rng.exponential(1 / m, n) for m in mu])[:, None, :]
    w = np.array([weight[0], weight[1], outside[0]], dtype=float)[:, None, None] * np.ones((3, 1, days))
    return CorridorInputs(
        name="two_gates", direction="exit", classes=["truck"], class_priority=np.array([0]), gates=gates,
        arrival=arrival, vclass=np.zeros(n, np.int64), gate=np.full(n, -1), joins=arrival.copy(), u=rng.random(n),
        service=service, deadline=None, weight=w, detour_h=np.array([detour[0], detour[1], outside[1]]),
        sensitivity=sensitivity, horizon_h=horizon)


def mean_in_system(record: CorridorRecord, warmup_h: float) -> np.ndarray:
    """Each gate's time-average number of vehicles in its system (waiting or in service) from
    the warm-up to the horizon's end."""
    horizon = record.inputs.horizon_h
    out = []
    for rec in record.records:
        gone = np.where(np.isnan(rec.left), rec.depart, rec.left)
        gone = np.where(np.isnan(gone), horizon, gone)
        inside = np.clip(gone, warmup_h, horizon) - np.clip(rec.inputs.arrival, warmup_h, horizon)
        out.append(inside.sum() / (horizon - warmup_h))
    return np.array(out)


def scenario_corridor(raw: dict, seed: int, direction: str, sensitivity: float, weight: np.ndarray,
                      detour: np.ndarray) -> CorridorInputs:
    """The flows of ``direction`` of a scenario's replication as a corridor: their schedules as
    the gates (classes indexed by the scenario's), their vehicles merged in time order, the
    initial backlog fixed to its gate, everyone else choosing; a vehicle's service at a gate
    other than its own is a draw of that gate's own services of its class (a quarter of an
    hour where the gate has none). weight: (gates + 1,) each gate's and the outside option's."""
    scen = from_dict(raw)
    rep = replication_inputs(scen, replication_seed(seed, 0))
    flows = [f for f in rep.flows if f.direction == direction]
    plans = {fp.gate: fp for gp in compile_plan(scen).gates for fp in gp.flows if fp.direction == direction}
    classes = [c for c in rep.model.classes if any(c in f.classes for f in flows)]
    priority = {c: p for f in flows for c, p in zip(f.classes, f.class_priority.tolist())}
    days = rep.model.horizon.days
    gates = [gate_schedule(f, classes, _sample_means(f), plans[f.gate].refusals) for f in flows]
    k_max = max(g.stages for g in gates)
    own = np.concatenate([np.full(f.n, j) for j, f in enumerate(flows)])
    order = np.argsort(np.concatenate([f.arrival for f in flows]), kind="mergesort")
    own = own[order]
    merged = {name: np.concatenate([getattr_or(f, name) for f in flows])[order]
              for name in ("arrival", "joins", "deadline")}
    vclass = np.concatenate([[classes.index(f.classes[v]) for v in f.vclass] for f in flows]).astype(np.int64)[order]
    n = own.size
    rng = np.random.default_rng(seed)
    service = np.zeros((len(flows), k_max, n))
    for j, f in enumerate(flows):
        rows = np.zeros((n, f.service.shape[1]))
        for ci, c in enumerate(f.classes):
            mine = np.flatnonzero(f.vclass == ci)
            want = vclass == classes.index(c)
            rows[want] = f.service[rng.choice(mine, want.sum())] if mine.size else 0.25
        rows[own == j] = f.service  # its own vehicles, in their order (the merge is stable)
        if f.acceptance >= 0:
            rows[:, f.acceptance] = 0.0
        service[j, :f.service.shape[1]] = rows.T
    fixed = merged["arrival"] <= 0  # the initial backlog
    deadline = merged["deadline"]
    return CorridorInputs(
        name="random", direction=direction, classes=classes,
        class_priority=np.array([priority[c] for c in classes], dtype=np.int64), gates=gates,
        arrival=merged["arrival"], vclass=vclass, gate=np.where(fixed, own, -1),
        joins=np.where(fixed, merged["joins"], merged["arrival"]), u=rng.random(n), service=service,
        deadline=None if np.all(np.isinf(deadline)) else deadline,
        weight=np.asarray(weight, dtype=float)[:, None, None] * np.ones((len(flows) + 1, len(classes), days)),
        detour_h=np.asarray(detour, dtype=float), sensitivity=sensitivity, horizon_h=rep.horizon_h)


def getattr_or(f: FlowInputs, name: str) -> np.ndarray:
    """A flow's arrivals, when each may join (its arrival where nobody is turned away) and when
    each gives up (inf where nobody does)."""
    if name == "joins":
        return f.arrival if f.available is None else f.available
    if name == "deadline":
        return np.full(f.n, np.inf) if f.deadline is None else f.deadline
    return f.arrival


def _sample_means(f: FlowInputs) -> np.ndarray:
    """(stages, the flow's classes): the mean of the services drawn (a quarter of an hour for a
    class with no vehicle; 0 at the acceptance step)."""
    out = np.zeros((len(f.stage_names), len(f.classes)))
    for ci in range(len(f.classes)):
        mine = f.vclass == ci
        for k in range(len(f.stage_names)):
            if k != f.acceptance:
                out[k, ci] = f.service[mine, k].mean() if mine.any() else 0.25
    return out


def wait_corridor(scenario, seed: int, index: int, gates: list[str], direction: str, sensitivity: float,
                  detour: list[float], outside_detour: float) -> CorridorInputs:
    """The gates of a scenario in one direction as a corridor on the `wait` rule, drawn for
    replication ``index`` of ``seed`` (sim.engines.draws.wait_corridor_inputs), the calendars after the
    random closures as sim.engines.draws.plan_inputs draws them."""
    rep_seq = replication_seed(seed, index)
    plan = compile_plan(scenario)
    v = plan.values(scenario.draw(lambda name: stream(rep_seq, name)))
    days = plan.model.horizon.days
    flows, calendars = [], []
    for g in plan.gates:
        if g.gate not in gates:
            continue
        closed = [draw_random_closures(rc.daily_probability.of(v), rc.duration_h.of(v), days,
                                       stream(rep_seq, f"closures/{g.gate}/{rc.id}")) for rc in g.closures]
        for fp in g.flows:
            if fp.direction == direction:
                flows.append(fp)
                calendars.append(with_closures(fp.fixed, [iv for j in fp.closures for iv in closed[j]]))
    order = [gates.index(fp.gate) for fp in flows]
    flows = [flows[i] for i in np.argsort(order)]
    calendars = [calendars[i] for i in np.argsort(order)]
    classes = [c for c in plan.model.classes if any(c in fp.classes for fp in flows)]
    priority = np.array([plan.priority[list(plan.model.classes).index(c)].of(v) for c in classes], dtype=np.int64)
    return wait_corridor_inputs("corridor", direction, flows, calendars, classes, priority, v, rep_seq, days,
                                sensitivity, detour, outside_detour, plan.model.horizon.hours)
