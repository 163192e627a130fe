"""The SimPy engine's corridor on the `wait` rule (sim.engines.corridor gives the rule).

One process takes the corridor's vehicles in arrival order and sends each to the gate it
chooses on the state it sees there; at each gate the vehicle is the SimPy engine's own
(``vehicle`` through the gate's stage pools), so a gate's rules are those of a flow. What a
vehicle sees at a gate: those that joined it before and had not crossed or given up before its
arrival (an exit at the very instant of the arrival still counts as inside), whatever the
order of the events of that instant.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import simpy

from ..corridor import CorridorInputs, CorridorRecord, check, choice_tables, choose, corridor_records
from .engine import stage_pools, vehicle


def simulate_corridor(c: CorridorInputs) -> CorridorRecord:
    """Run one direction of a corridor over the horizon; each vehicle's choice and times."""
    check(c)
    env = simpy.Environment()
    n = c.n
    pools = [stage_pools(env, g) for g in c.gates]
    start = [np.full((g.stages, n), np.nan) for g in c.gates]  # stage-major, as corridor_records takes them
    end = [np.full((g.stages, n), np.nan) for g in c.gates]
    lanes = [np.full((g.stages, n), -1, np.int16) for g in c.gates]
    left = np.full(n, np.nan)
    choice = np.full(n, len(c.gates), np.int64)  # the outside option until a gate is chosen
    if n:
        env.process(_arrivals(env, c, pools, start, end, lanes, left, choice))
    env.run(until=c.horizon_h)
    return corridor_records(c, choice, start, end, lanes, left)


def _arrivals(env, c: CorridorInputs, pools, start, end, lanes, left, choice):
    """The corridor's vehicles in order: each chooses (or goes to its fixed gate) and enters it."""
    tables = choice_tables(c)
    n_gates = len(c.gates)
    assigned = np.zeros(n_gates, np.int64)  # vehicles sent to each gate so far
    gone = np.zeros(n_gates, np.int64)  # of them, those that crossed or gave up before the current arrival
    exits = [[] for _ in range(n_gates)]  # per gate, a heap of the exit times not yet counted in gone
    for i in range(c.n):
        delay = c.arrival[i] - env.now
        if delay > 0:  # a backlog's arrivals before 0 are all in the queue at 0
            yield env.timeout(delay)
        g = int(c.gate[i])
        if g < 0:
            t = float(c.arrival[i])
            for h in range(n_gates):
                while exits[h] and exits[h][0] < t:
                    heapq.heappop(exits[h])
                    gone[h] += 1
            g = choose(t, int(c.vclass[i]), float(c.u[i]), assigned - gone, tables.capacity, tables.weight,
                       tables.detour, tables.sensitivity, tables.refused_from, tables.refused_to, tables.refused_off)
            if g == n_gates:
                continue
        choice[i] = g
        assigned[g] += 1
        env.process(_at_gate(env, c, i, g, pools[g], start[g].T, end[g].T, lanes[g].T, left, exits[g]))


def _at_gate(env, c: CorridorInputs, i: int, g: int, pools, start, end, lanes, left, exits):
    """Vehicle i through gate g's stages, as the SimPy engine runs a flow's vehicle; when it
    crosses or gives up, its exit time goes to the gate's heap."""
    deadline = math.inf if c.deadline is None else float(c.deadline[i])
    patient = c.gates[g].patience_stages if c.deadline is not None else 0
    yield from vehicle(env, i, pools, c.service[g, :, i], int(c.class_priority[c.vclass[i]]), int(c.vclass[i]),
                       start, end, lanes, float(c.joins[i]), float(c.arrival[i]), deadline, patient, left)
    heapq.heappush(exits, left[i] if not math.isnan(left[i]) else end[i, -1])
