"""A corridor on the `wait` rule: gates that each arriving truck chooses between, on what it sees.

Both engines take a :class:`CorridorInputs` (one direction of a corridor in one replication: its
gates' schedules, and its vehicles in arrival order, each with its own draws) and return a
:class:`CorridorRecord` (each vehicle's gate, or the outside option, and per gate the usual
:class:`~sim.engines.records.FlowRecord` of the vehicles that chose it). They share the choice
itself (``choose``, compiled, called by the SimPy engine too, so both compute its arithmetic
alike) and differ in how they find the state it reads: the vehicles in each gate's system.

The rule. A vehicle arriving at t (its class c, day d) considers each gate that serves c, does
not turn c away at t and can pass vehicles of c on day d (its daily capacity, below, is > 0:
a gate closed all day, with no lanes or a far-side limit of 0 that day is not considered), and
the outside option (leaving the province), each with a weight (the gate's share of the
corridor's demand, the outside option's own; weight 0: not considered). Its cost at a gate is
the expected wait, 24 x (vehicles in the gate's system, waiting or in service at any stage,
that arrived before it and have neither crossed nor given up before t) / (the gate's capacity
on day d, vehicles a day), plus the gate's detour (hours); the outside option's cost is its
detour. It chooses option j with probability weight_j x exp(-sensitivity x cost_j) / the sum
over the options: sensitivity 0 splits by the weights whatever the queues; sensitivity inf takes
the lowest cost, ties in proportion to the weights. Its own uniform ``u`` picks the option (the
first whose cumulative probability exceeds u). With no option at all it leaves the province.

A gate's capacity on a day, for a class: the least over its stages of what the stage can pass
that day: lane-hours open that day (each lane's opening hours less closures, lanes by the day's
schedule) / the class's mean service time there (times the day's service factor); the far
side's daily limit for the acceptance step (none: no bound). One lane open around the clock
with no detour makes the expected wait the queue times the mean service: equal service means,
equal weights and sensitivity inf are "join the shortest queue".

A vehicle that gives up (its patience) leaves the province; it does not choose again. A gate's
own initial backlog is fixed to it (``gate`` >= 0) and makes no choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from ..base.days import day_of
from ..model.calendar import Calendar
from .inputs import FlowInputs
from .records import FlowRecord

OUTSIDE = -1  # the choice of a vehicle that left the province (CorridorRecord.choice)


@dataclass
class GateSchedule:
    """One gate of a corridor in one direction and replication, without vehicles: what
    FlowInputs says of its stages (by the corridor's classes), and what the choice reads."""

    gate: str
    stage_names: list[str]
    lanes: list[int | None]  # as FlowInputs.lanes
    quota: list[np.ndarray | None]  # as FlowInputs.quota
    calendar: Calendar
    acceptance: int  # as FlowInputs.acceptance
    lane_calendars: list[list[Calendar] | None]  # as FlowInputs.lane_calendars
    service_factor: list[np.ndarray | None]  # as FlowInputs.service_factor, rows by the corridor's classes
    patience_stages: int  # as FlowInputs.patience_stages (where a deadline is given)
    serves: np.ndarray  # (classes,) bool: the classes the gate handles
    mean_service: np.ndarray  # (stages, classes) hours: each class's mean service time (0 at the acceptance step)
    refusals: list[list[tuple[float, float]]]  # per class: [from, to) hours in which it is turned away

    @property
    def stages(self) -> int:
        return len(self.stage_names)


@dataclass
class CorridorInputs:
    """One direction of a corridor in one replication: its gates and its vehicles, in arrival order."""

    name: str
    direction: str
    classes: list[str]
    class_priority: np.ndarray  # (classes,) lower is served first
    gates: list[GateSchedule]
    arrival: np.ndarray  # (n,) hours, non-decreasing
    vclass: np.ndarray  # (n,) index into classes
    gate: np.ndarray  # (n,) the gate a vehicle is fixed to (a gate's backlog), -1: it chooses
    joins: np.ndarray  # (n,) when it may join its gate's first stage: its arrival, or later for a fixed one turned away
    u: np.ndarray  # (n,) its choice's uniform, in [0, 1)
    service: np.ndarray  # (gates, stages of the longest gate, n) hours: its service at each stage of each gate
    deadline: np.ndarray | None  # (n,) when it gives up (inf: never), or None: nobody does
    weight: np.ndarray  # (gates + 1, classes, days): each gate's weight by class and day, the outside option's last
    detour_h: np.ndarray  # (gates + 1,): each gate's detour, the outside option's last
    sensitivity: float  # per hour: >= 0, or inf
    horizon_h: float

    @property
    def n(self) -> int:
        return len(self.arrival)

    @property
    def days(self) -> int:
        return self.weight.shape[2]


@dataclass
class CorridorRecord:
    """What an engine hands back for a corridor: each vehicle's choice (a gate's index, or
    OUTSIDE), and per gate the FlowRecord of the vehicles that chose it (or were fixed to it)."""

    inputs: CorridorInputs
    choice: np.ndarray
    records: list[FlowRecord]


def gate_schedule(flow: FlowInputs, classes: list[str], mean_service: np.ndarray,
                  refusals: list[list[tuple[float, float]]]) -> GateSchedule:
    """A flow's schedules (its vehicles aside) as a corridor's gate, by the corridor's classes:
    mean_service (stages, the flow's classes) hours; refusals per class of the flow. Service
    factors of classes the gate does not handle are 1 (it never sees them)."""
    k = len(flow.stage_names)
    where = [classes.index(c) for c in flow.classes]
    mean = np.zeros((k, len(classes)))
    mean[:, where] = mean_service
    factors = []
    for fac in flow.service_factor:
        if fac is not None:
            full = np.ones((len(classes), fac.shape[1]))
            full[where] = fac
            fac = full
        factors.append(fac)
    return GateSchedule(
        gate=flow.gate, stage_names=list(flow.stage_names), lanes=list(flow.lanes), quota=list(flow.quota),
        calendar=flow.calendar, acceptance=flow.acceptance, lane_calendars=list(flow.lane_calendars),
        service_factor=factors, patience_stages=flow.acceptance + 1 if flow.acceptance >= 0 else k,
        serves=np.isin(np.arange(len(classes)), where), mean_service=mean,
        refusals=[list(refusals[flow.classes.index(c)]) if c in flow.classes else [] for c in classes])


def check(c: CorridorInputs) -> None:
    """Refuse corridor inputs the engines do not model, one line saying what is wrong, before
    either engine runs: a result is never computed from inputs outside what the rule defines."""
    n, n_gates, n_classes = c.n, len(c.gates), len(c.classes)
    k_max = max((g.stages for g in c.gates), default=0)
    if n_gates < 2:
        raise ValueError(f"corridor {c.name}: {n_gates} gate(s); a choice needs at least two")
    for name, a in (("vclass", c.vclass), ("gate", c.gate), ("joins", c.joins), ("u", c.u)):
        if np.shape(a) != (n,):
            raise ValueError(f"corridor {c.name}: {name} has shape {np.shape(a)}, not ({n},)")
    if not np.all(np.isfinite(c.arrival)) or np.any(np.diff(c.arrival) < 0) or np.any(c.arrival >= c.horizon_h):
        raise ValueError(f"corridor {c.name}: arrivals must be finite, in time order and before the horizon's end")
    if c.days * 24.0 < c.horizon_h:
        raise ValueError(f"corridor {c.name}: weights for {c.days} days do not cover the horizon")
    if n and (c.vclass.min() < 0 or c.vclass.max() >= n_classes):
        raise ValueError(f"corridor {c.name}: a vehicle's class is outside 0..{n_classes - 1}")
    if n and (c.gate.min() < -1 or c.gate.max() >= n_gates):
        raise ValueError(f"corridor {c.name}: a vehicle's fixed gate is outside -1..{n_gates - 1}")
    fixed = c.gate >= 0
    if np.any(c.arrival[~fixed] < 0):
        raise ValueError(f"corridor {c.name}: a vehicle that chooses arrives before the start (only a gate's "
                         "fixed backlog came before it)")
    if np.any(c.joins[~fixed] != c.arrival[~fixed]):
        raise ValueError(f"corridor {c.name}: a vehicle that chooses joins its gate on arrival (only a gate's "
                         "fixed backlog waits to join)")
    if np.any(~(c.joins[fixed] >= c.arrival[fixed])):
        raise ValueError(f"corridor {c.name}: a fixed vehicle joins before it arrives")
    if np.any(~((c.u >= 0) & (c.u < 1))):
        raise ValueError(f"corridor {c.name}: choice uniforms must lie in [0, 1)")
    if c.service.shape != (n_gates, k_max, n) or not np.all(np.isfinite(c.service)) or np.any(c.service < 0):
        raise ValueError(f"corridor {c.name}: service must be finite hours >= 0 of shape ({n_gates}, {k_max}, {n})")
    if c.deadline is not None and (c.deadline.shape != (n,) or np.any(np.isnan(c.deadline))):
        raise ValueError(f"corridor {c.name}: deadline must be ({n},) hours (inf: never)")
    if c.weight.ndim != 3 or c.weight.shape[:2] != (n_gates + 1, n_classes) or c.weight.shape[2] < 1:
        raise ValueError(f"corridor {c.name}: weight must have shape ({n_gates + 1}, {n_classes}, days)")
    if not np.all(np.isfinite(c.weight)) or np.any(c.weight < 0):
        raise ValueError(f"corridor {c.name}: weights must be finite and >= 0")
    if c.detour_h.shape != (n_gates + 1,) or not np.all(np.isfinite(c.detour_h)) or np.any(c.detour_h < 0):
        raise ValueError(f"corridor {c.name}: detours must be {n_gates + 1} finite hours >= 0")
    if not (c.sensitivity >= 0):  # inf allowed: the lowest cost
        raise ValueError(f"corridor {c.name}: sensitivity must be >= 0 per hour, or inf")
    for gi, g in enumerate(c.gates):
        where = f"corridor {c.name}, gate {g.gate}"
        k = g.stages
        if not (len(g.lanes) == len(g.quota) == len(g.lane_calendars) == len(g.service_factor) == k):
            raise ValueError(f"{where}: lanes, quota, lane calendars and service factors must each have {k} stages")
        if g.mean_service.shape != (k, n_classes) or np.any(~(g.mean_service >= 0)):
            raise ValueError(f"{where}: mean_service must be ({k}, {n_classes}) hours >= 0")
        if g.serves.shape != (n_classes,) or len(g.refusals) != n_classes:
            raise ValueError(f"{where}: serves and refusals must be given for each of the {n_classes} classes")
        if not 0 <= g.patience_stages <= k:
            raise ValueError(f"{where}: patience_stages must lie in 0..{k}")
        if np.any(fixed & (c.gate == gi) & ~g.serves[c.vclass]):
            raise ValueError(f"{where}: a vehicle is fixed to a gate that does not serve its class")
        if np.any(c.service[gi, k:] != 0):
            raise ValueError(f"{where}: service at stages beyond the gate's {k} must be 0")


def open_hours_by_day(cal: Calendar, days: int) -> np.ndarray:
    """The hours a calendar is open on each day 0..days-1: differences of the open hours before
    each midnight (the intervals started by then, the last of them up to the midnight)."""
    if cal.starts.size == 0:
        return np.zeros(days)
    edges = 24.0 * np.arange(days + 1)
    lengths = cal.ends - cal.starts
    before = np.concatenate([[0.0], np.cumsum(lengths)])  # before[j]: the first j intervals' hours
    started = np.searchsorted(cal.starts, edges, side="right")
    last = np.maximum(started - 1, 0)
    upto = np.where(started > 0, before[last] + np.minimum(edges - cal.starts[last], lengths[last]), 0.0)
    return np.diff(upto)


def daily_capacity(g: GateSchedule, days: int) -> np.ndarray:
    """(classes, days): the vehicles of each class the gate can pass on each day (0 where it
    does not serve the class): the least over its stages (the module's docstring)."""
    n_classes = g.serves.size
    cap = np.full((n_classes, days), np.inf)
    gate_hours = open_hours_by_day(g.calendar, days)
    for k in range(g.stages):
        if k == g.acceptance:
            if g.quota[k] is not None:
                q = np.asarray(g.quota[k], dtype=float)
                cap = np.minimum(cap, q[np.minimum(np.arange(days), q.size - 1)][None, :])
            continue
        cals = g.lane_calendars[k]
        lane_hours = (sum((open_hours_by_day(lc, days) for lc in cals), np.zeros(days)) if cals is not None
                      else g.lanes[k] * gate_hours)
        mean = np.repeat(g.mean_service[k][:, None], days, axis=1)
        if g.service_factor[k] is not None:
            f = g.service_factor[k]
            mean = mean * f[:, np.minimum(np.arange(days), f.shape[1] - 1)]
        with np.errstate(divide="ignore", invalid="ignore"):
            stage = np.where(mean > 0, lane_hours[None, :] / mean, np.where(lane_hours[None, :] > 0, np.inf, 0.0))
        cap = np.minimum(cap, stage)
    cap[~g.serves] = 0.0
    return cap


@dataclass(frozen=True)
class ChoiceTables:
    """What ``choose`` reads besides the state, as flat arrays (built once per corridor and
    replication by ``choice_tables``)."""

    capacity: np.ndarray  # (gates, classes, days) vehicles a day
    weight: np.ndarray  # (gates + 1, classes, days)
    detour: np.ndarray  # (gates + 1,)
    sensitivity: float
    refused_from: np.ndarray  # refusal windows, flat
    refused_to: np.ndarray
    refused_off: np.ndarray  # (gates x classes + 1,): gate g, class c's windows are [off[g C + c], off[g C + c + 1])


def choice_tables(c: CorridorInputs) -> ChoiceTables:
    n_classes = len(c.classes)
    capacity = np.stack([daily_capacity(g, c.days) for g in c.gates])
    windows = [w for g in c.gates for cl in range(n_classes) for w in g.refusals[cl]]
    counts = [len(g.refusals[cl]) for g in c.gates for cl in range(n_classes)]
    return ChoiceTables(
        capacity=capacity, weight=np.ascontiguousarray(c.weight, dtype=float),
        detour=np.ascontiguousarray(c.detour_h, dtype=float), sensitivity=float(c.sensitivity),
        refused_from=np.array([w[0] for w in windows], dtype=float),
        refused_to=np.array([w[1] for w in windows], dtype=float),
        refused_off=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )


@nb.njit(cache=True)
def choose(t, vclass, u, in_system, capacity, weight, detour, sensitivity, refused_from, refused_to, refused_off):
    """The option a vehicle of class vclass arriving at t takes, on the vehicles in each gate's
    system (in_system) and its uniform u: a gate's index, or the number of gates for the
    outside option (the module's docstring gives the rule)."""
    n_options = capacity.shape[0] + 1
    return choose_into(t, vclass, u, in_system, capacity, weight, detour, sensitivity, refused_from, refused_to,
                       refused_off, np.empty(n_options), np.empty(n_options))


@nb.njit(cache=True, inline="always")  # inlined where it is called: the fast kernel calls it per vehicle
def choose_into(t, vclass, u, in_system, capacity, weight, detour, sensitivity, refused_from, refused_to,
                refused_off, cost, w):
    """``choose`` with its working arrays given (cost, w: one entry per option), so that a
    kernel choosing for every vehicle allocates them once. It has one return and no views of
    arrays: numba then keeps no reference counts in it."""
    n_gates, n_classes, days = capacity.shape
    d = min(day_of(t), days - 1)
    best = np.inf
    for g in range(n_gates + 1):
        w[g] = 0.0
        if g < n_gates:
            cap = capacity[g, vclass, d]
            if not cap > 0 or not weight[g, vclass, d] > 0:
                continue
            j = g * n_classes + vclass
            turned = False
            for r in range(refused_off[j], refused_off[j + 1]):
                if refused_from[r] <= t < refused_to[r]:
                    turned = True
            if turned:
                continue
            cost[g] = 24.0 * in_system[g] / cap + detour[g]
        else:
            if not weight[g, vclass, d] > 0:
                continue
            cost[g] = detour[g]
        w[g] = weight[g, vclass, d]
        if cost[g] < best:
            best = cost[g]
    total = 0.0
    for g in range(n_gates + 1):
        if w[g] > 0:
            if sensitivity == np.inf:
                if cost[g] != best:
                    w[g] = 0.0
            else:
                w[g] *= math.exp(-sensitivity * (cost[g] - best))
            total += w[g]
    target = u * total
    acc = 0.0
    chosen = n_gates  # no option at all: the outside option
    found = not total > 0
    for g in range(n_gates + 1):
        if not found and w[g] > 0:
            acc += w[g]
            chosen = g  # if u x total rounds up to the sum: the last option
            found = acc > target
    return chosen


def corridor_records(c: CorridorInputs, choice: np.ndarray, start: list[np.ndarray], end: list[np.ndarray],
                     lane: list[np.ndarray], left: np.ndarray) -> CorridorRecord:
    """Per gate, the FlowRecord of its vehicles (those that chose it or are fixed to it), from
    an engine's per-vehicle times: start, end and lane per gate, stage-major (its stages, n),
    left (n,). A gate's record knows the classes it serves alone, as its flow does without the
    corridor; its arrays are (vehicles, stages) views of stage-major ones, as the fast engine's
    flow records are (a gather along the vehicles of stage-major rows is several times faster
    than one of (n, stages) rows)."""
    records = []
    for gi, g in enumerate(c.gates):
        sel = np.flatnonzero(choice == gi)
        joins = c.joins[sel]
        own = np.flatnonzero(g.serves)
        local = np.full(len(c.classes), -1, np.int64)
        local[own] = np.arange(own.size)
        flow = FlowInputs(
            gate=g.gate, direction=c.direction, arrival=c.arrival[sel], vclass=local[c.vclass[sel]],
            class_priority=c.class_priority[own], service=c.service[gi, :g.stages].take(sel, axis=1).T,
            classes=[c.classes[k] for k in own], stage_names=list(g.stage_names), lanes=list(g.lanes),
            quota=list(g.quota), calendar=g.calendar, n_backlog=int(np.sum(c.gate == gi)),
            acceptance=g.acceptance, lane_calendars=list(g.lane_calendars),
            service_factor=[None if f is None else f[own] for f in g.service_factor],
            available=None if np.array_equal(joins, c.arrival[sel]) else joins,
            deadline=None if c.deadline is None else c.deadline[sel],
            patience_stages=g.patience_stages if c.deadline is not None else 0,
        )
        records.append(FlowRecord(flow, start[gi].take(sel, axis=1).T, end[gi].take(sel, axis=1).T,
                                  lane[gi].take(sel, axis=1).T, left[sel]))
    return CorridorRecord(c, np.where(choice < len(c.gates), choice, OUTSIDE), records)

