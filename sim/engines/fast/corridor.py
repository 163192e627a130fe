"""The fast engine's corridor on the `wait` rule (sim.engines.corridor gives the rule).

A choice at t reads the vehicles in each gate's system at t, which depend on every event at
every gate before t, so a gate cannot be computed as one recursion over all its vehicles. The
kernel runs the per-flow recursion of ``kernels`` (its stage passes, the same next start from
``next_start``) resumably: each stage of each gate keeps its pass's state (lanes, calendar and
quota positions, the day's count) and a priority queue per level of the vehicles that have
reached it (by ready time, ties in the previous stage's start order, the first stage's in
arrival order). Before a vehicle chooses at t, every gate's passes are taken on up to t: every
start before t is decided, which no later arrival can change (it is ready at t or later); a
start the pass would make at t or later is left undecided, its state put back, and kept as
the stage's next start until a vehicle joins or starts there: a stage with nothing new is
passed over without working it out again. Then a gate's vehicles that crossed or gave up
before t are known: a crossing is known when its last stage starts; a vehicle waiting at a
stage where it may give up is gone at max(deadline, when it came to the stage) if it has not
started that stage by then, so the kernel notes that time when it joins the stage and, once it
is past, looks whether it started. After the last arrival the passes run to the horizon.
"""

from __future__ import annotations

from types import SimpleNamespace

import numba as nb
import numpy as np

from ...base.days import day_of
from ..corridor import CorridorInputs, CorridorRecord, check, choice_tables, choose, corridor_records
from .engine import lane_calendar_arrays, levels, stacked
from .kernels import gave_up, next_start


@nb.njit(cache=True, inline="always")
def _before(key, tie, a, b):
    return key[a] < key[b] or (key[a] == key[b] and tie[a] < tie[b])


@nb.njit(cache=True)
def _push(heap, size, x, key, tie):
    """Put x in a binary min-heap (heap[:size]) ordered by (key, tie); returns the new size."""
    j = size
    while j > 0:
        parent = (j - 1) >> 1
        if not _before(key, tie, x, heap[parent]):
            break
        heap[j] = heap[parent]
        j = parent
    heap[j] = x
    return size + 1


@nb.njit(cache=True)
def _pop(heap, size, key, tie):
    """Take the least element (heap[0]) out of a binary min-heap; returns the new size."""
    size -= 1
    x = heap[size]
    j = 0
    while True:
        child = 2 * j + 1
        if child >= size:
            break
        if child + 1 < size and _before(key, tie, heap[child + 1], heap[child]):
            child += 1
        if not _before(key, tie, heap[child], x):
            break
        heap[j] = heap[child]
        j = child
    if size > 0:
        heap[j] = x
    return size


@nb.njit(cache=True)
def _note_exit(t, i, k, g, ev_time, ev_vehicle, ev_stage, ev_order, n_ev, exit_heap, exit_size):
    """Note a time at which vehicle i may leave gate g: its crossing (k = -1), or when it gives
    up at stage k unless it has started it by then. Returns the number of notes."""
    ev_time[n_ev] = t
    ev_vehicle[n_ev] = i
    ev_stage[n_ev] = k
    exit_size[g] = _push(exit_heap[g], exit_size[g], n_ev, ev_time, ev_order)
    return n_ev + 1


@nb.njit(cache=True)
def run_corridor(arrival, joins, vclass, fixed, u, service, level, n_levels, stage_base, n_stages, lanes, quota,
                 quota_on, cal_starts, cal_ends, cal_off, lane_starts, lane_ends, lane_off, lane_on, factor, factor_on,
                 deadline, patience_stages, horizon, capacity, weight, detour, sensitivity, refused_from, refused_to,
                 refused_off):
    """Each vehicle's choice (a gate, or the number of gates: outside) and its start and end
    times at each stage of its gate (stage-major: (stages of the longest gate, n)), the lane
    taken where lanes have calendars of their own, and when it gave up.

    Gate g's stages are rows stage_base[g] .. stage_base[g] + n_stages[g] - 1 of lanes (-1:
    unlimited), quota (if quota_on), lane_off (its lanes' calendars in lane_starts/lane_ends,
    if lane_on) and factor (by class and day, if factor_on); its calendar is
    cal_starts/cal_ends[cal_off[g]:cal_off[g + 1]]; service[g, k, i] is vehicle i's drawn
    service at its stage k. fixed[i] >= 0: the vehicle goes to that gate without choosing.
    level: each vehicle's dense priority level. deadline (empty: none): when each gives up,
    at any of its gate's first patience_stages[g] stages. The rest are the choice's tables
    (sim.engines.corridor.ChoiceTables)."""
    n = arrival.size
    n_gates = n_stages.size
    k_max = service.shape[1]
    n_rows = lanes.size
    has_deadline = deadline.size > 0
    n_days = max(factor.shape[2], 1)
    start = np.full((k_max, n), np.nan)
    end = np.full((k_max, n), np.nan)
    lane_out = np.full((k_max, n), -1, np.int16)
    left = np.full(n, np.nan)
    choice = np.full(n, n_gates, np.int64)
    ready = np.full((k_max, n), np.nan)  # when a vehicle reached each stage of its gate
    tie = np.zeros((k_max, n), np.int64)  # its order among those that reach it at once
    # per stage row and level, a heap of the vehicles waiting there
    queue = np.empty((n_rows * n_levels, max(n, 1)), np.int64)
    queued = np.zeros(n_rows * n_levels, np.int64)
    width = lane_off.shape[1] - 1
    n_free = np.empty(n_rows, np.int64)
    free = np.full((n_rows, max(width, lanes.max(), 1)), -np.inf)
    lane_i = np.zeros((n_rows, max(width, 1)), np.int64)
    for r in range(n_rows):
        n_free[r] = width if lane_on[r] else max(lanes[r], 1)
        if lane_on[r]:
            lane_i[r, :width] = lane_off[r, :width]
    saved = np.zeros(max(width, 1), np.int64)
    cal_i = np.zeros(n_rows, np.int64)
    cur_day = np.full(n_rows, -1, np.int64)
    used = np.zeros(n_rows, np.int64)
    day_safe = np.full(n_rows, -np.inf)
    t_prev = np.full(n_rows, -np.inf)
    rank = np.zeros(n_rows, np.int64)
    # per stage row, the start its pass would make next (inf: none), known while nothing has
    # joined or started there since; -inf: not known
    pending = np.full(n_rows, -np.inf)
    # per gate, a heap of the noted exits (crossings, and give-ups unless started by then)
    n_notes = n * (k_max + 1)
    ev_time = np.empty(n_notes)
    ev_vehicle = np.empty(n_notes, np.int64)
    ev_stage = np.empty(n_notes, np.int64)
    ev_order = np.arange(n_notes)
    n_ev = 0
    exit_heap = np.empty((n_gates, max(n_notes, 1)), np.int64)
    exit_size = np.zeros(n_gates, np.int64)
    assigned = np.zeros(n_gates, np.int64)
    gone = np.zeros(n_gates, np.int64)
    in_system = np.zeros(n_gates, np.int64)
    no_int = np.zeros(0, np.int64)
    for i in range(n + 1):
        final = i == n
        # before a choice, every start before its arrival; after the last arrival, all (a fixed
        # vehicle chooses nothing: it joins its gate at once)
        bound = np.inf if final else arrival[i] if fixed[i] < 0 else -np.inf
        for g in range(n_gates if bound > -np.inf else 0):
            starts = cal_starts[cal_off[g]:cal_off[g + 1]]
            ends = cal_ends[cal_off[g]:cal_off[g + 1]]
            for k in range(n_stages[g]):  # each stage's pass on to the bound, in stage order
                r = stage_base[g] + k
                if pending[r] >= bound:  # its next start is at the bound or later: nothing to do
                    continue
                base = r * n_levels
                per_lane = lane_on[r]
                unlimited = lanes[r] < 0 and not per_lane
                patient = has_deadline and k < patience_stages[g]
                quota_day = quota[r] if quota_on[r] else no_int
                offsets = lane_off[r] if per_lane else no_int
                while True:
                    earliest = np.inf
                    for lv in range(n_levels):
                        if queued[base + lv] > 0 and ready[k, queue[base + lv, 0]] < earliest:
                            earliest = ready[k, queue[base + lv, 0]]
                    if earliest == np.inf:
                        pending[r] = np.inf
                        break
                    nf = n_free[r]
                    if per_lane:
                        saved[:nf] = lane_i[r, :nf]
                    t, lane, c_i, c_day, c_used, c_safe = next_start(
                        earliest if earliest > t_prev[r] else t_prev[r], free[r], nf, unlimited, per_lane,
                        lane_i[r], offsets, lane_starts, lane_ends, starts, ends, cal_i[r], quota_day, cur_day[r],
                        used[r], day_safe[r])
                    if t >= bound or t >= horizon:  # not decided yet (or never): the pass's state put back
                        if per_lane:
                            lane_i[r, :nf] = saved[:nf]
                        pending[r] = t if t < horizon else np.inf
                        break
                    cal_i[r], cur_day[r], used[r], day_safe[r] = c_i, c_day, c_used, c_safe
                    chosen = 0  # the best level with a vehicle ready by t (one exists: earliest <= t)
                    while queued[base + chosen] == 0 or ready[k, queue[base + chosen, 0]] > t:
                        chosen += 1
                    q = base + chosen
                    v = queue[q, 0]
                    queued[q] = _pop(queue[q], queued[q], ready[k], tie[k])
                    since = arrival[v] if k == 0 else ready[k, v]
                    if patient and gave_up(deadline[v], since, t):  # it left before its turn
                        left[v] = max(deadline[v], since)
                        t_prev[r] = t
                        continue
                    start[k, v] = t
                    took = service[g, k, v]
                    if factor_on[r]:
                        took *= factor[r, vclass[v], min(day_of(t), n_days - 1)]
                    finish = t + took
                    order = rank[r]
                    rank[r] += 1
                    if not unlimited:
                        free[r, lane] = finish
                    if per_lane:
                        lane_out[k, v] = lane
                    used[r] += 1
                    t_prev[r] = t
                    if finish < horizon:
                        end[k, v] = finish
                        if k == n_stages[g] - 1:
                            n_ev = _note_exit(finish, v, -1, g, ev_time, ev_vehicle, ev_stage, ev_order, n_ev,
                                              exit_heap, exit_size)
                        else:  # on to the next stage, in this stage's start order among equal times
                            ready[k + 1, v] = finish
                            tie[k + 1, v] = order
                            q = (r + 1) * n_levels + level[v]
                            pending[r + 1] = -np.inf
                            queued[q] = _push(queue[q], queued[q], v, ready[k + 1], tie[k + 1])
                            if has_deadline and k + 1 < patience_stages[g]:
                                n_ev = _note_exit(max(deadline[v], finish), v, k + 1, g, ev_time, ev_vehicle, ev_stage,
                                                  ev_order, n_ev, exit_heap, exit_size)
            while exit_size[g] > 0 and ev_time[exit_heap[g, 0]] < bound:  # the exits before the bound
                e = exit_heap[g, 0]
                exit_size[g] = _pop(exit_heap[g], exit_size[g], ev_time, ev_order)
                if ev_stage[e] < 0 or np.isnan(start[ev_stage[e], ev_vehicle[e]]):
                    gone[g] += 1
            in_system[g] = assigned[g] - gone[g]
        if final:
            break
        g = fixed[i]
        if g < 0:
            g = choose(arrival[i], vclass[i], u[i], in_system, capacity, weight, detour, sensitivity, refused_from,
                       refused_to, refused_off)
            if g == n_gates:
                continue
        choice[i] = g
        assigned[g] += 1
        ready[0, i] = joins[i]
        tie[0, i] = i
        q = stage_base[g] * n_levels + level[i]
        pending[stage_base[g]] = -np.inf
        queued[q] = _push(queue[q], queued[q], i, ready[0], tie[0])
        if has_deadline and patience_stages[g] > 0:
            n_ev = _note_exit(max(deadline[i], arrival[i]), i, 0, g, ev_time, ev_vehicle, ev_stage, ev_order, n_ev,
                              exit_heap, exit_size)
    if has_deadline:  # those never started where they may give up: gone, if within the horizon
        for g in range(n_gates):
            for k in range(min(patience_stages[g], n_stages[g])):
                base = (stage_base[g] + k) * n_levels
                for lv in range(n_levels):
                    for p in range(queued[base + lv]):
                        v = queue[base + lv, p]
                        gone_at = max(deadline[v], arrival[v] if k == 0 else ready[k, v])
                        if gone_at < horizon:
                            left[v] = gone_at
    return choice, start, end, lane_out, left


def simulate_corridor(c: CorridorInputs) -> CorridorRecord:
    """Run one direction of a corridor over the horizon; the same choices and times as
    ``sim.engines.des.simulate_corridor`` up to float rounding."""
    check(c)
    tables = choice_tables(c)
    level, n_levels = levels(c)
    stage_base = np.cumsum([0] + [g.stages for g in c.gates])[:-1].astype(np.int64)
    lanes = np.array([-1 if x is None else x for g in c.gates for x in g.lanes], dtype=np.int64)
    quota, quota_on = stacked([q for g in c.gates for q in g.quota], (0,), np.int64)
    factor, factor_on = stacked([f for g in c.gates for f in g.service_factor], (0, 0), np.float64)
    lane_starts, lane_ends, lane_off, lane_on = lane_calendar_arrays([lc for g in c.gates for lc in g.lane_calendars])
    cal_off = np.cumsum([0] + [g.calendar.starts.size for g in c.gates]).astype(np.int64)
    cal_starts = np.concatenate([g.calendar.starts for g in c.gates]).astype(np.float64)
    cal_ends = np.concatenate([g.calendar.ends for g in c.gates]).astype(np.float64)
    deadline = np.zeros(0) if c.deadline is None else np.ascontiguousarray(c.deadline, dtype=np.float64)
    patience = np.array([g.patience_stages if c.deadline is not None else 0 for g in c.gates], dtype=np.int64)
    choice, start, end, lane, left = run_corridor(
        np.ascontiguousarray(c.arrival, dtype=np.float64), np.ascontiguousarray(c.joins, dtype=np.float64),
        np.ascontiguousarray(c.vclass, dtype=np.int64), np.ascontiguousarray(c.gate, dtype=np.int64),
        np.ascontiguousarray(c.u, dtype=np.float64), np.ascontiguousarray(c.service, dtype=np.float64), level,
        n_levels, stage_base, np.array([g.stages for g in c.gates], dtype=np.int64), lanes, quota, quota_on,
        cal_starts, cal_ends, cal_off, lane_starts, lane_ends, lane_off, lane_on, factor, factor_on, deadline,
        patience, float(c.horizon_h), tables.capacity, tables.weight, tables.detour, tables.sensitivity,
        tables.refused_from, tables.refused_to, tables.refused_off)
    per_gate = [slice(0, g.stages) for g in c.gates]
    return corridor_records(c, choice, [start[s].T for s in per_gate], [end[s].T for s in per_gate],
                            [lane[s].T for s in per_gate], left)
