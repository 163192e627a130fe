"""Offered load against capacity over the whole horizon, checked before a run.

A flow whose expected demand exceeds what one of its stages can clear over the horizon
only builds a backlog; by default that is an error, with ``allow_overload`` a warning.
Capacity uses nominal values: lane-hours open / mean service time, and for the acceptance
step the daily limits of the days with opening hours, as scheduled by date. Random closures
reduce the open hours by their expected share. A corridor's demand is split as its rule splits
it on the days its gates serve without random closures (sim.model.corridors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.adjust import hour_overrides, refusals
from ..model.calendar import build_calendar
from ..model.corridors import serving_days, split
from ..base.errors import OverloadError
from ..engines.draws import hourly_rates, model_schedules
from ..model.plan import stage_layout
from ..model.scenario import Scenario

# A replication with more vehicles than this would take minutes per replication in SimPy
# and gigabytes of records: refuse it rather than appear to hang.
MAX_VEHICLES_PER_REPLICATION = 5_000_000


@dataclass(frozen=True)
class Load:
    gate: str
    direction: str
    stage: str
    demand: float  # expected vehicles over the horizon, initial backlog included
    capacity: float  # vehicles the stage can clear over the horizon

    @property
    def ratio(self) -> float:
        return self.demand / self.capacity if self.capacity > 0 else np.inf


def _open_days(cal) -> np.ndarray:
    """The days (indices) on which a calendar has some open time: the union of each open
    span's days [start // 24, ceil(end / 24)), marked at once (a sweep checks every point)."""
    if len(cal.starts) == 0:
        return np.zeros(0, int)
    first = (np.asarray(cal.starts, float) // 24).astype(np.int64)
    last = np.ceil(np.asarray(cal.ends, float) / 24).astype(np.int64)
    marks = np.zeros(int(max(last.max(), first.max())) + 2, np.int64)
    np.add.at(marks, first, 1)
    np.add.at(marks, last, -1)
    return np.flatnonzero(np.cumsum(marks)[:-1] > 0)


def corridor_factors(m) -> dict[tuple[str, str, str], np.ndarray]:
    """A corridor's factor on each of its gates' demand by day, per (gate, direction, class), at
    nominal values (a ScenarioModel's): its gates' demand split by its rule over the days each
    serves before random closures. Under 'wait' each gate keeps its own demand here: where
    trucks go depends on the queues they find, known only in a run."""
    out = {}
    for corridor in m.corridors.values():
        for d in corridor.directions(m):
            choice = corridor.choice(d)
            if choice.rule == "wait" or (choice.rule == "shares" and choice.outside_share == 0):
                continue
            for c in corridor.classes(m, d):
                gates = [g for g in corridor.handling(m, d) if c in m.gates[g].classes]
                demand = np.array([hourly_rates(m, g, d, c).reshape(m.horizon.days, 24).sum(axis=1) for g in gates])
                serving = np.array([_serving(m, g, d, c) for g in gates])
                factors, _leaving = split(demand, serving, choice.rule, choice.outside_share, choice.none_open)
                out.update(((g, d, c), f) for g, f in zip(gates, factors))
    return out


def _serving(m, gate: str, direction: str, vclass: str) -> np.ndarray:
    cal = build_calendar(m.gates[gate], direction, m.horizon, (), hour_overrides(m, gate))
    _lanes, quota, lane_cals, _factors = model_schedules(m, gate, direction, cal)
    return serving_days(cal, lane_cals, quota, refusals(m, gate, direction, vclass), m.horizon.days)


def _expected(m, gate: str, direction: str, vclass: str, factors: dict) -> float:
    """A class's expected arrivals at a flow over the horizon (a corridor's factors applied)."""
    rates = hourly_rates(m, gate, direction, vclass)
    f = factors.get((gate, direction, vclass))
    return rates.sum() if f is None else (rates.reshape(-1, 24) * f[:, None]).sum()


def loads(scenario: Scenario) -> list[Load]:
    """The binding (highest-load) stage of each flow, at nominal values, with the schedules of
    the scenario's dated adjustments (lanes, limits, hours and service times by day) and the
    demand its corridors move."""
    m = scenario.nominal
    moved = corridor_factors(m)
    out = []
    for gid, gate in m.gates.items():
        closed_share = sum(
            rc.daily_probability * min(rc.duration_h.expected(), 24.0) / 24.0 for rc in gate.random_closures
        )
        keep = max(0.0, 1.0 - closed_share)
        for d in gate.directions():
            spec = gate.spec(d)
            cal = build_calendar(gate, d, m.horizon, (), hour_overrides(m, gid))
            per_class = {c: _expected(m, gid, d, c, moved) for c in gate.classes}
            demand = sum(per_class.values()) + sum(spec.initial_backlog.values())
            weights = np.array([per_class[c] + spec.initial_backlog.get(c, 0) for c in gate.classes], float)
            weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(weights), 1 / len(weights))
            lanes, quota, lane_cals, factors = model_schedules(m, gid, d, cal)
            names, acc_k = stage_layout(spec, d)
            cols = [k for k in range(len(names)) if k != acc_k]
            cands = []
            for k, st in zip(cols, spec.stages):
                lane_hours = (sum(c.open_hours() for c in lane_cals[k]) if lane_cals[k] is not None
                              else st.lanes * cal.open_hours())
                mean_h = sum(w * st.service_for(c).expected() for w, c in zip(weights, gate.classes)) / 60.0
                if factors[k] is not None:
                    mean_h *= float(weights @ factors[k][:, :-1].mean(axis=1))
                cands.append(Load(gid, d, st.name, demand, lane_hours * keep / mean_h))
            if acc_k >= 0:
                cands.append(Load(gid, d, "acceptance", demand, float(quota[acc_k][_open_days(cal)].sum()) * keep))
            out.append(max(cands, key=lambda x: x.ratio))
    return out


def overloads(scenario: Scenario) -> list[Load]:
    """The flows whose binding stage has a load of 1 or more (their backlog grows all horizon),
    as Loads, so a caller can name the gate, direction and stage; an OverloadError for a
    replication with more vehicles than can be simulated."""
    flow_loads = loads(scenario)
    total = sum(ld.demand for ld in flow_loads)
    if total > MAX_VEHICLES_PER_REPLICATION:
        raise OverloadError(
            scenario.path, "demand",
            f"{total:,.0f} vehicles per replication expected; at most {MAX_VEHICLES_PER_REPLICATION:,} are allowed",
        )
    return [ld for ld in flow_loads if not ld.ratio < 1.0]  # not ">= 1": a NaN load is reported, as check did


def check(scenario: Scenario, allow_overload: bool = False) -> list[str]:
    """Raise OverloadError for an unstable load (or return warnings when allowed)."""
    warnings = []
    for ld in overloads(scenario):
        field = f"gates.{ld.gate}.{ld.direction}.demand"
        what = (
            f"unstable load: {ld.demand:,.0f} vehicles expected over the horizon but stage '{ld.stage}' "
            f"can clear at most {ld.capacity:,.0f} (load {ld.ratio:.2f} >= 1); the backlog grows all horizon"
        )
        if not allow_overload:
            raise OverloadError(scenario.path, field, what + "; lower demand, add capacity, or pass --allow-overload")
        warnings.append(f"{scenario.path}: {field}: {what}")
    return warnings
