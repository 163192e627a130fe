"""The fast engine: the same model as the SimPy engine, computed by compiled recursions."""

from __future__ import annotations

import numpy as np

from ..records import FlowRecord
from ..draws import FlowInputs, ReplicationInputs
from .kernels import run_flow


_NO_DEADLINE = np.zeros(0)


def levels(flow: FlowInputs) -> tuple[np.ndarray, int]:
    """Dense priority levels (0 served first), from the few class priorities, not a sort of vehicles."""
    priorities = flow.class_priority.tolist()
    ranked = sorted(set(priorities))
    class_level = np.array([ranked.index(p) for p in priorities], dtype=np.int64)
    return class_level[flow.vclass], max(len(ranked), 1)


def stacked(rows: list[np.ndarray | None], shape_of_none: tuple, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Per-stage arrays (None: the stage has none) as one array with a row per stage, and the
    flags saying which rows are real."""
    real = [r for r in rows if r is not None]
    shape = real[0].shape if real else shape_of_none
    out = np.zeros((len(rows),) + shape, dtype)
    for k, r in enumerate(rows):
        if r is not None:
            out[k] = r
    return out, np.array([r is not None for r in rows])


def lane_calendar_arrays(lane_calendars: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every scheduled lane's calendar (per stage, FlowInputs.lane_calendars) in two flat arrays,
    and per stage its lanes' offsets into them (rows padded with empty lanes, which never serve,
    to the widest stage)."""
    starts, ends, rows = [], [], []
    n = 0
    for cals in lane_calendars:
        row = [n]
        for cal in cals or ():
            starts.append(cal.starts)
            ends.append(cal.ends)
            n += cal.starts.size
            row.append(n)
        rows.append(row)
    width = max(len(r) for r in rows)
    offsets = np.array([r + [r[-1]] * (width - len(r)) for r in rows], np.int64)
    on = np.array([c is not None for c in lane_calendars])
    flat = [np.concatenate(a) if a else np.zeros(0) for a in (starts, ends)]
    return flat[0], flat[1], offsets, on


def simulate_flow(flow: FlowInputs, horizon_h: float) -> FlowRecord:
    level, n_levels = levels(flow)
    lanes = np.array([-1 if c is None else c for c in flow.lanes], dtype=np.int64)
    quota, quota_on = stacked(flow.quota, (0,), np.int64)
    factor, factor_on = stacked(flow.service_factor, (0, 0), np.float64)
    lane_starts, lane_ends, lane_off, lane_on = lane_calendar_arrays(flow.lane_calendars)
    joins = flow.arrival if flow.available is None else flow.available
    deadline = _NO_DEADLINE if flow.deadline is None else np.ascontiguousarray(flow.deadline, dtype=np.float64)
    start, end, lane, left = run_flow(
        np.ascontiguousarray(joins, dtype=np.float64), flow.available is None, level, n_levels, flow.vclass,
        np.ascontiguousarray(flow.service.T, dtype=np.float64),  # no copy: inputs are stage-major
        lanes, quota, quota_on, flow.calendar.starts, flow.calendar.ends, lane_starts, lane_ends, lane_off,
        lane_on, factor, factor_on, float(horizon_h), np.ascontiguousarray(flow.arrival, dtype=np.float64),
        deadline, flow.patience_stages,
    )
    return FlowRecord(flow, start.T, end.T, lane.T, left)  # (n, stages) views of the stage-major arrays


def simulate_flows(rep: ReplicationInputs) -> list[FlowRecord | None]:
    """Run one replication's flows; the same records as ``sim.engines.des.engine.simulate_flows``
    up to float rounding (None at the gates of a corridor on 'wait', sim.engines.fast.replication)."""
    return [None if flow is None else simulate_flow(flow, rep.horizon_h) for flow in rep.flows]
