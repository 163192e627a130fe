"""The vehicles of a corridor on the `wait` rule in one replication, from named streams.

The corridor's demand of a class in a direction is the sum of its gates' (each gate's demand
with its own profiles and steps): one Poisson stream, ``arrivals/<corridor>/<direction>/<class>``.
Each arriving vehicle carries its own draws, the j-th of its class taking the j-th value of
each stream: its choice's uniform (``choice/...``), its service at each stage of each gate it
might choose (``service/<corridor>/<direction>/<class>/<gate>/<stage>``) and its patience
(``patience/<corridor>/<direction>/<class>``). So a change at one gate (its lanes, hours,
services) changes no vehicle's draws, and other vehicles only through their choices (common
random numbers). A gate's initial backlog stays at its gate, drawn from the gate's own streams
as without a corridor. A gate's weight on a day is its share of the corridor's expected
vehicles of the class that day; the outside option's weight is 1 (leaving weighs as much as the
corridor's gates together, at equal cost), or 0 where its detour is inf (no outside option:
a truck leaves only when no gate serves it).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..base.rng import stream
from ..model.calendar import Calendar
from ..model.plan import FlowPlan
from .corridor import CorridorInputs, gate_schedule
from .draws import _deadlines, flow_inputs, poisson_arrivals, unit_rates

OUTSIDE_WEIGHT = 1.0


def wait_corridor_inputs(corridor: str, direction: str, flows: list[FlowPlan], calendars: list[Calendar],
                         classes: list[str], class_priority: np.ndarray, v: list, rep_seq: np.random.SeedSequence,
                         days: int, sensitivity: float, detour_h: list[float], outside_detour_h: float,
                         horizon_h: float) -> CorridorInputs:
    """One direction of a corridor on the `wait` rule in one replication: its gates' flows
    (their plans and this replication's calendars, in the corridor's order), the classes they
    handle (in the scenario's order, with their priorities), the replication's numbers (v:
    sim.model.plan.Plan.values), its seed, and the rule's numbers (detour_h per gate)."""
    n_classes = len(classes)
    gates, backlog, rates = [], [], np.zeros((len(flows), n_classes, 24 * days))
    for j, (fp, cal) in enumerate(zip(flows, calendars)):
        # the gate's schedules and its own backlog: the flow as it is, without its demand
        own = flow_inputs(dataclasses.replace(fp, demand=(None,) * len(fp.classes)), v, rep_seq, cal, days,
                          class_priority[[classes.index(c) for c in fp.classes]])
        gates.append(gate_schedule(own, classes, _mean_service(fp, v), [list(r) for r in fp.refusals]))
        backlog.append(own)
        for ci, c in enumerate(fp.classes):
            per_day = fp.demand[ci].of(v) if fp.demand[ci] is not None else 0.0
            if per_day > 0:
                rates[j, classes.index(c)] = per_day * unit_rates(fp, ci, v, days)[0]
    k_max = max(g.stages for g in gates)
    prefix = f"{corridor}/{direction}"
    runs = []  # per class: arrival, u, service (gates, k_max, n), deadline
    for cl, c in enumerate(classes):
        total = rates[:, cl].sum(axis=0)
        arrival = poisson_arrivals(total, stream(rep_seq, f"arrivals/{prefix}/{c}")) if total.any() else np.empty(0)
        n = arrival.size
        service = np.zeros((len(flows), k_max, n))
        patience = None
        for j, fp in enumerate(flows):
            if c not in fp.classes:
                continue
            ci = fp.classes.index(c)
            cols = [k for k in range(len(fp.stage_names)) if k != fp.acceptance]
            for k, st in zip(cols, fp.stages):
                rng = stream(rep_seq, f"service/{prefix}/{c}/{fp.gate}/{st.name}")
                service[j, k] = st.service[ci].of(v).draw(rng, n) / 60.0
            patience = fp.patience[ci] if patience is None else patience
        deadline = _deadlines(patience, v, arrival, rep_seq, f"patience/{prefix}/{c}")
        runs.append((arrival, stream(rep_seq, f"choice/{prefix}/{c}").random(n), service, deadline))
    # the backlog first (gate by gate), then the classes' runs, merged by time (stable)
    parts = [(f.arrival, np.full(f.n, j), f.available if f.available is not None else f.arrival,
              np.zeros(f.n), _padded(f.service, j, len(flows), k_max),
              f.deadline if f.deadline is not None else np.full(f.n, np.inf),
              np.array([classes.index(f.classes[x]) for x in f.vclass], dtype=np.int64))
             for j, f in enumerate(backlog)]
    parts += [(arr, np.full(arr.size, -1), arr, u, service, dl, np.full(arr.size, cl, np.int64))
              for cl, (arr, u, service, dl) in enumerate(runs)]
    arrival = np.concatenate([p[0] for p in parts])
    order = np.argsort(arrival, kind="mergesort")
    gate, joins, u, deadline, vclass = (np.concatenate([p[i] for p in parts])[order] for i in (1, 2, 3, 5, 6))
    service = np.concatenate([p[4] for p in parts], axis=2)[:, :, order]
    day_demand = rates.reshape(len(flows), n_classes, days, 24).sum(axis=3)
    total_day = day_demand.sum(axis=0)
    leaving = math.isfinite(outside_detour_h)
    weight = np.concatenate([np.divide(day_demand, total_day, out=np.zeros_like(day_demand), where=total_day > 0),
                             np.full((1, n_classes, days), OUTSIDE_WEIGHT if leaving else 0.0)])
    return CorridorInputs(
        name=corridor, direction=direction, classes=list(classes), class_priority=class_priority, gates=gates,
        arrival=arrival[order], vclass=vclass, gate=gate.astype(np.int64), joins=joins, u=u, service=service,
        deadline=None if np.all(np.isinf(deadline)) else deadline, weight=weight,
        detour_h=np.array([*detour_h, outside_detour_h if leaving else 0.0], dtype=float), sensitivity=float(sensitivity),
        horizon_h=horizon_h)


def _mean_service(fp: FlowPlan, v: list) -> np.ndarray:
    """(stages, the flow's classes): each class's mean service time at each stage, hours (0 at
    the far side's acceptance step)."""
    out = np.zeros((len(fp.stage_names), len(fp.classes)))
    cols = [k for k in range(len(fp.stage_names)) if k != fp.acceptance]
    for k, st in zip(cols, fp.stages):
        out[k] = [st.service[ci].of(v).expected() / 60.0 for ci in range(len(fp.classes))]
    return out


def _padded(service: np.ndarray, j: int, n_gates: int, k_max: int) -> np.ndarray:
    """A gate's own vehicles' services (n, its stages) as (gates, k_max, n): theirs at gate j, 0 elsewhere."""
    out = np.zeros((n_gates, k_max, service.shape[0]))
    out[j, :service.shape[1]] = service.T
    return out
