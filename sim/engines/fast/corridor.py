"""The fast engine's corridor on the `wait` rule (sim.engines.corridor gives the rule).

A choice at t reads the vehicles in each gate's system at t, which depend on every event at
every gate before t, so a gate cannot be computed as one recursion over all its vehicles. The
kernel runs the per-flow recursion of ``kernels`` (its stage passes, the rules of
``next_start``) resumably: each stage of each gate keeps its pass's state (lanes, calendar and
quota positions, the day's count) and a priority queue per level of the vehicles that have
reached it (by ready time, ties in the previous stage's start order, the first stage's in
arrival order). Before a vehicle chooses at t, every gate's passes are taken on up to t: every
start before t is decided, which no later arrival can change (it is ready at t or later); a
start the pass would make at t or later is left undecided, its state left as it was, and kept
as the stage's next start, with the lane and positions it would be made with, until a vehicle
starts there or joins ready before the stage's first (which alone could bring it forward): a
stage with nothing new is passed over, and its kept start made without working it out again.
Then a gate's vehicles that crossed or gave up before t are known: a crossing is known when its
last stage starts (and counted at once if it ends before t); a vehicle waiting at a stage where
it may give up is gone at max(deadline, when it came to the stage) if it has not started that
stage by then. The kernel notes that time for the first stage when the vehicle joins the gate
and, once it is past, looks whether the vehicle started there: if not, it is gone; if it did,
the note moves on to the next stage (max(deadline, when it came there)), which is no earlier.
A note per vehicle, not one per stage: most vehicles cross long before their deadline. After
the last arrival the passes run to the horizon.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ...base.days import day_of
from ..corridor import CorridorInputs, CorridorRecord, check, choice_tables, choose_into, corridor_records
from .engine import lane_calendar_arrays, levels, stacked
from .kernels import gave_up, next_start


# What the kernel calls for each vehicle is given whole arrays and the row or offset to use,
# and each of its arrays is last used at one place (one exit from each loop, one return):
# numba then keeps no reference counts in it. A view of a row, an array given to a function
# numba inlines, or one last used at different places by path costs an atomic increment and
# decrement each time: nearly half of the kernel's time when it did so.


@nb.njit(cache=True)
def _push(heap, at, size, x, key, tie):
    """Put x in the binary min-heap heap[at:at + size], ordered by (key[x], tie[x]); returns the new size."""
    kx = key[x]
    tx = tie[x]
    j = size
    up = j > 0
    while up:
        parent = (j - 1) >> 1
        p = heap[at + parent]
        up = kx < key[p] or (kx == key[p] and tx < tie[p])
        if up:
            heap[at + j] = p
            j = parent
            up = j > 0
    heap[at + j] = x
    return size + 1


@nb.njit(cache=True)
def _sift_down(heap, at, size, j, x, key, tie):
    """Put x at position j of the binary min-heap heap[at:at + size] or below it, moving the
    lesser children up, ordered by (key, tie)."""
    kx = key[x]
    tx = tie[x]
    down = True
    while down:
        child = 2 * j + 1
        down = child < size
        if down:
            c = heap[at + child]
            if child + 1 < size:
                d = heap[at + child + 1]
                if key[d] < key[c] or (key[d] == key[c] and tie[d] < tie[c]):
                    child += 1
                    c = d
            down = key[c] < kx or (key[c] == kx and tie[c] < tx)
            if down:
                heap[at + j] = c
                j = child
    heap[at + j] = x  # an empty heap: x goes back to the slot it came from, past the heap's end


@nb.njit(cache=True)
def _pop(heap, at, size, key, tie):
    """Take the least element (heap[at]) out of the binary min-heap heap[at:at + size]; returns the new size."""
    size -= 1
    _sift_down(heap, at, size, 0, heap[at + size], key, tie)
    return size


@nb.njit(cache=True)
def _note_exit(t, i, k, g, ev_time, ev_vehicle, ev_stage, ev_order, n_ev, exit_heap, exit_at, exit_size, live):
    """Note a time at which vehicle i may leave gate g: its crossing (k = -1), or when it gives
    up at stage k unless it has started it by then. Returns the number of notes."""
    ev_time[n_ev] = t
    ev_vehicle[n_ev] = i
    ev_stage[n_ev] = k
    exit_size[g] = _push(exit_heap, g * exit_at, exit_size[g], n_ev, ev_time, ev_order)
    live[g] += 1
    return n_ev + 1


@nb.njit(cache=True)
def _drop_started(exit_heap, at, size, ev_time, ev_vehicle, ev_stage, ev_order, start, last):
    """Gate's exit notes (exit_heap[at:at + size]) without the give-ups of vehicles that have
    started the last stage where they may give up (last: they will not count), made a heap
    again; returns the new size."""
    m = 0
    for p in range(size):
        e = exit_heap[at + p]
        if ev_stage[e] < 0 or np.isnan(start[last, ev_vehicle[e]]):
            exit_heap[at + m] = e
            m += 1
    for j in range(m // 2 - 1, -1, -1):
        _sift_down(exit_heap, at, m, j, exit_heap[at + j], ev_time, ev_order)
    return m


@nb.njit(cache=True)
def _first_ready(head, base, n_levels):
    """When the first vehicle of a stage is ready: the least of its levels' queue heads."""
    earliest = np.inf
    for q in range(base, base + n_levels):
        if head[q] < earliest:
            earliest = head[q]
    return earliest


@nb.njit(cache=True)
def _gate_start(r, t, free, n_free, unlimited, starts, ends, cal_end, cal_i, quota, quota_on, cur_day, used,
                day_safe):
    """kernels.next_start, rule for rule, at stage row r whose lanes follow the gate's calendar
    (starts/ends from cal_i to cal_end) and, if quota_on[r], a daily limit quota[r] (every
    stage but one whose lanes have calendars of their own): the earliest time >= t
    a lane (free[r, :n_free], none if unlimited) is free, the gate open and the day's limit not
    reached, the lane, and the positions (cal_i, cur_day, used, day_safe), which the caller
    keeps only if the start is made."""
    lane = 0
    f = np.inf
    for j in range(0 if unlimited else n_free):  # the earliest free lane (the first of equals)
        if free[r, j] < f:
            lane = j
            f = free[r, j]
    if not unlimited and f > t:
        t = f
    n_quota = quota.shape[1]
    searching = True
    while searching:
        while cal_i < cal_end and ends[cal_i] <= t:  # the next open time (as next_open_from)
            cal_i += 1
        if cal_i == cal_end:
            t = np.inf
            searching = False
        else:
            if t < starts[cal_i]:
                t = starts[cal_i]
            searching = quota_on[r]
            if searching:  # the day's limit: on a later day the count starts afresh
                if not t < day_safe:
                    d = day_of(t)
                    if d != cur_day:
                        cur_day = d
                        used = 0
                        day_safe = 24.0 * (d + 1) - 1e-6
                searching = cur_day < n_quota and used >= quota[r, cur_day]
                if searching:
                    t = 24.0 * (cur_day + 1)
    return t, lane, cal_i, cur_day, used, day_safe


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
    # vehicle v at stage k is k * n + v: when it reached the stage and its order among those
    # that reach it at once
    ready = np.full(k_max * n, np.nan)
    tie = np.zeros(k_max * n, np.int64)
    # per stage row and level (q = row * n_levels + level), a heap of the vehicles waiting
    # there: queue[q * n:q * n + queued[q]]
    queue = np.empty(n_rows * n_levels * n, np.int64)
    queued = np.zeros(n_rows * n_levels, np.int64)
    head = np.full(n_rows * n_levels, np.inf)  # when the first of each queue is ready (inf: empty)
    width = lane_off.shape[1] - 1
    n_free = np.empty(n_rows, np.int64)
    free = np.full((n_rows, max(width, lanes.max(), 1)), -np.inf)
    lane_i = np.zeros((n_rows, max(width, 1)), np.int64)
    for r in range(n_rows):
        n_free[r] = width if lane_on[r] else max(lanes[r], 1)
        if lane_on[r]:
            lane_i[r, :width] = lane_off[r, :width]
    saved = np.zeros(max(width, 1), np.int64)
    cal_i = np.zeros(n_rows, np.int64)  # absolute positions in cal_starts/cal_ends
    for g in range(n_gates):
        cal_i[stage_base[g]:stage_base[g] + n_stages[g]] = cal_off[g]
    cur_day = np.full(n_rows, -1, np.int64)
    used = np.zeros(n_rows, np.int64)
    day_safe = np.full(n_rows, -np.inf)
    t_prev = np.full(n_rows, -np.inf)
    rank = np.zeros(n_rows, np.int64)
    # per stage row, the start its pass would make next (inf: none), kept while nothing has
    # started there or joined ready before its first (which alone could bring it forward);
    # -inf: not known. Where known, the lane and positions with which it is made (next_*).
    pending = np.full(n_rows, -np.inf)
    known = np.zeros(n_rows, np.bool_)
    next_lane = np.zeros(n_rows, np.int64)
    next_cal = np.zeros(n_rows, np.int64)
    next_day = np.zeros(n_rows, np.int64)
    next_used = np.zeros(n_rows, np.int64)
    next_safe = np.zeros(n_rows)
    # per gate, a heap of the noted exits (crossings, and give-ups unless started by then)
    n_notes = n * (k_max + 1)
    ev_time = np.empty(n_notes)
    ev_vehicle = np.empty(n_notes, np.int64)
    ev_stage = np.empty(n_notes, np.int64)
    ev_order = np.arange(n_notes)
    n_ev = 0
    exit_heap = np.empty(n_gates * n_notes, np.int64)
    exit_size = np.zeros(n_gates, np.int64)
    # per gate, its notes that may count (crossings, give-ups of vehicles that have not started
    # the last stage where they may give up): most vehicles cross long before their deadline, so
    # once the others are most of the heap, the heap is made again without them
    live = np.zeros(n_gates, np.int64)
    assigned = np.zeros(n_gates, np.int64)
    gone = np.zeros(n_gates, np.int64)
    in_system = np.zeros(n_gates, np.int64)
    no_int = np.zeros(0, np.int64)
    cost = np.empty(n_gates + 1)
    option_weight = np.empty(n_gates + 1)
    for i in range(n + 1):
        final = i == n
        # before a choice, every start before its arrival; after the last arrival, all (a fixed
        # vehicle chooses nothing: it joins its gate at once)
        bound = np.inf if final else arrival[i] if fixed[i] < 0 else -np.inf
        for g in range(n_gates if bound > -np.inf else 0):
            cal_end = cal_off[g + 1]
            for k in range(n_stages[g]):  # each stage's pass on to the bound, in stage order
                r = stage_base[g] + k
                if pending[r] >= bound:  # its next start is at the bound or later: nothing to do
                    continue
                base = r * n_levels
                at_k = k * n
                per_lane = lane_on[r]
                unlimited = lanes[r] < 0 and not per_lane
                patient = has_deadline and k < patience_stages[g]
                while True:
                    if known[r]:  # the start worked out before, which nothing since has changed
                        known[r] = False
                        t, lane = pending[r], next_lane[r]
                        c_i, c_day, c_used, c_safe = next_cal[r], next_day[r], next_used[r], next_safe[r]
                    else:
                        earliest = _first_ready(head, base, n_levels)
                        if earliest == np.inf:
                            pending[r] = np.inf
                            break
                        t = earliest if earliest > t_prev[r] else t_prev[r]
                        c_i, c_day, c_used, c_safe = cal_i[r], cur_day[r], used[r], day_safe[r]
                        if per_lane:  # lanes on calendars of their own (rare): next_start on the row's views
                            saved[:n_free[r]] = lane_i[r, :n_free[r]]
                            t, lane, c_i, c_day, c_used, c_safe = next_start(
                                t, free[r], n_free[r], False, True, lane_i[r], lane_off[r], lane_starts, lane_ends,
                                cal_starts, cal_ends, c_i, no_int, c_day, c_used, c_safe)
                        else:
                            t, lane, c_i, c_day, c_used, c_safe = _gate_start(
                                r, t, free, n_free[r], unlimited, cal_starts, cal_ends, cal_end, c_i, quota, quota_on,
                                c_day, c_used, c_safe)
                        if t >= bound or t >= horizon:  # not decided yet (or never): kept, not made
                            if per_lane:  # the lanes' positions put back: it is worked out again
                                lane_i[r, :n_free[r]] = saved[:n_free[r]]
                            elif t < horizon:
                                known[r] = True
                                next_lane[r], next_cal[r], next_day[r], next_used[r], next_safe[r] = (
                                    lane, c_i, c_day, c_used, c_safe)
                            pending[r] = t if t < horizon else np.inf
                            break
                    cal_i[r], cur_day[r], used[r], day_safe[r] = c_i, c_day, c_used, c_safe
                    q = base  # the best level with a vehicle ready by t (one exists: earliest <= t)
                    while head[q] > t:
                        q += 1
                    v = queue[q * n] - at_k
                    queued[q] = _pop(queue, q * n, queued[q], ready, tie)
                    head[q] = ready[queue[q * n]] if queued[q] > 0 else np.inf
                    since = arrival[v] if k == 0 else ready[at_k + v]
                    if patient and gave_up(deadline[v], since, t):  # it left before its turn
                        left[v] = max(deadline[v], since)
                        t_prev[r] = t
                        continue
                    start[k, v] = t
                    if patient and k == patience_stages[g] - 1:  # it can no longer give up
                        live[g] -= 1
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
                            if finish < bound:  # it crossed before the bound: counted now, not noted
                                gone[g] += 1
                            else:
                                n_ev = _note_exit(finish, v, -1, g, ev_time, ev_vehicle, ev_stage, ev_order, n_ev,
                                                  exit_heap, n_notes, exit_size, live)
                        else:  # on to the next stage, in this stage's start order among equal times
                            x = at_k + n + v
                            ready[x] = finish
                            tie[x] = order
                            q = (r + 1) * n_levels + level[v]
                            if finish < _first_ready(head, (r + 1) * n_levels, n_levels):
                                pending[r + 1] = -np.inf  # its next start may come sooner
                                known[r + 1] = False
                            queued[q] = _push(queue, q * n, queued[q], x, ready, tie)
                            head[q] = min(head[q], finish)
            at = g * n_notes
            if exit_size[g] > 2 * live[g] + 64:
                exit_size[g] = _drop_started(exit_heap, at, exit_size[g], ev_time, ev_vehicle, ev_stage, ev_order,
                                             start, patience_stages[g] - 1)
            while exit_size[g] > 0 and ev_time[exit_heap[at]] < bound:  # the exits before the bound
                e = exit_heap[at]
                exit_size[g] = _pop(exit_heap, at, exit_size[g], ev_time, ev_order)
                k_e = ev_stage[e]
                v_e = ev_vehicle[e]
                if k_e < 0 or np.isnan(start[k_e, v_e]):  # crossed, or gave up at k_e
                    gone[g] += 1
                    live[g] -= 1
                elif k_e + 1 < patience_stages[g]:  # it started k_e in time: its give-up at the next stage
                    if not np.isnan(end[k_e, v_e]):
                        n_ev = _note_exit(max(deadline[v_e], end[k_e, v_e]), v_e, k_e + 1, g, ev_time, ev_vehicle,
                                          ev_stage, ev_order, n_ev, exit_heap, n_notes, exit_size, live)
                    live[g] -= 1
            in_system[g] = assigned[g] - gone[g]
        if final:
            break
        g = fixed[i]
        if g < 0:
            g = choose_into(arrival[i], vclass[i], u[i], in_system, capacity, weight, detour, sensitivity,
                            refused_from, refused_to, refused_off, cost, option_weight)
            if g == n_gates:
                continue
        choice[i] = g
        assigned[g] += 1
        ready[i] = joins[i]
        tie[i] = i
        q = stage_base[g] * n_levels + level[i]
        if joins[i] < _first_ready(head, stage_base[g] * n_levels, n_levels):
            pending[stage_base[g]] = -np.inf
            known[stage_base[g]] = False
        queued[q] = _push(queue, q * n, queued[q], i, ready, tie)
        head[q] = min(head[q], joins[i])
        if has_deadline and patience_stages[g] > 0:
            n_ev = _note_exit(max(deadline[i], arrival[i]), i, 0, g, ev_time, ev_vehicle, ev_stage, ev_order, n_ev,
                              exit_heap, n_notes, exit_size, live)
    if has_deadline:  # those never started where they may give up: gone, if within the horizon
        for g in range(n_gates):
            for k in range(min(patience_stages[g], n_stages[g])):
                q0 = (stage_base[g] + k) * n_levels
                for q in range(q0, q0 + n_levels):
                    for p in range(queued[q]):
                        v = queue[q * n + p] - k * n
                        gone_at = max(deadline[v], arrival[v] if k == 0 else ready[k * n + v])
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
    return corridor_records(c, choice, [start[:g.stages] for g in c.gates], [end[:g.stages] for g in c.gates],
                            [lane[:g.stages] for g in c.gates], left)
