"""Offered load against capacity over the whole horizon, checked before a run.

A flow whose expected demand exceeds what one of its stages can clear over the horizon
only builds a backlog; by default that is an error, with ``allow_overload`` a warning.
Capacity uses nominal values: lanes x open hours / mean service time, and for the
acceptance step the daily limit x days with opening hours. Random closures reduce the
open hours by their expected share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .calendar import build_calendar
from .errors import OverloadError
from .inputs import hourly_rates
from .scenario import Scenario

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


def loads(scenario: Scenario) -> list[Load]:
    """The binding (highest-load) stage of each flow, at nominal values."""
    m = scenario.nominal
    out = []
    for gid, gate in m.gates.items():
        closed_share = sum(
            rc.daily_probability * min(rc.duration_h.expected(), 24.0) / 24.0 for rc in gate.random_closures
        )
        for d in gate.directions():
            spec = gate.spec(d)
            cal = build_calendar(gate, d, m.horizon)
            open_h = cal.open_hours() * max(0.0, 1.0 - closed_share)
            demand = sum(hourly_rates(m, gid, d, c).sum() for c in gate.classes) + sum(spec.initial_backlog.values())
            cands = [
                Load(gid, d, s.name, demand, s.lanes * open_h / (s.service_min.expected() / 60.0))
                for s in spec.stages
            ]
            if spec.acceptance_limit is not None:
                open_days = len({
                    day for s, e in zip(cal.starts, cal.ends) for day in range(int(s // 24), int(np.ceil(e / 24)))
                })
                cands.append(Load(gid, d, "acceptance", demand, spec.acceptance_limit * open_days * max(0.0, 1 - closed_share)))
            out.append(max(cands, key=lambda x: x.ratio))
    return out


def check(scenario: Scenario, allow_overload: bool = False) -> list[str]:
    """Raise OverloadError for an unstable load (or return warnings when allowed)."""
    warnings = []
    flow_loads = loads(scenario)
    total = sum(ld.demand for ld in flow_loads)
    if total > MAX_VEHICLES_PER_REPLICATION:
        raise OverloadError(
            scenario.path, "demand",
            f"{total:,.0f} vehicles per replication expected; at most {MAX_VEHICLES_PER_REPLICATION:,} are allowed",
        )
    for ld in flow_loads:
        if ld.ratio < 1.0:
            continue
        field = f"gates.{ld.gate}.{ld.direction}.demand"
        what = (
            f"unstable load: {ld.demand:,.0f} vehicles expected over the horizon but stage '{ld.stage}' "
            f"can clear at most {ld.capacity:,.0f} (load {ld.ratio:.2f} >= 1); the backlog grows all horizon"
        )
        if not allow_overload:
            raise OverloadError(scenario.path, field, what + "; lower demand, add capacity, or pass --allow-overload")
        warnings.append(f"{scenario.path}: {field}: {what}")
    return warnings
