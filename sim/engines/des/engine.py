"""The SimPy engine: vehicles pass their flow's stages in order, each stage a pool of lanes.

Rules (the fast engine implements the same ones):
- Within a stage, the waiting vehicle with the lowest (priority, time it joined the stage's
  queue, order of joining) starts first: FCFS within a priority class.
- Simultaneous events: at any instant, every arrival, service end and wake-up happens first;
  then the stages dispatch, in stage order, each seeing every vehicle that is ready by then
  (a vehicle passing a zero-time acceptance step reaches the next stage at the same instant).
  Vehicles that join a stage at the same instant keep the order in which they started the
  previous stage (for the first stage: their order in the input).
- A service starts only when a lane is free, the gate is open for that direction (opening
  hours less closures) and, for a stage with a daily quota (the far side's acceptance), fewer
  than ``quota`` vehicles have started it on that calendar day. Otherwise the vehicles wait
  for the next time all three hold. A service under way when the gate closes finishes.
- The acceptance step has unlimited lanes and takes no time.
- A vehicle of a class with a patience gives up at its deadline (``FlowInputs.deadline``) if it
  has not started the stage it waits for by then, at any stage up to the far side's acceptance
  (or while turned away before the first): patience runs out only while waiting. One whose
  deadline passes in service finishes it and goes on if it starts its next step at the instant
  it reaches it (after that stage's dispatch at the instant); otherwise it gives up then.
  Giving up at a deadline happens before the stages dispatch at that instant, and it takes
  nothing from the vehicles behind.
- The run stops at the horizon's end; vehicles still inside are left as they are.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import simpy

from ...base.days import day_of
from ...model.calendar import Calendar
from ..draws import FlowInputs, ReplicationInputs
from ..records import FlowRecord


class StagePool:
    """A stage's lanes, its calendar and its daily quota, with a priority queue in front.

    Lanes are alike when they share the flow's calendar; when the stage's number of lanes
    follows a schedule each lane has its own calendar, and a vehicle takes the lowest-numbered
    free lane that is open (lane j is open while the stage has more than j lanes)."""

    def __init__(self, env: simpy.Environment, lanes: int | None, quota, calendar: Calendar, order: int,
                 lane_calendars: list[Calendar] | None = None, factor=None):
        self.env = env
        # dispatch after all ordinary events of the instant, stage 0 first (SimPy orders
        # events by time, then priority: URGENT 0, NORMAL 1)
        self.dispatch_priority = 2 + order
        self.dispatch_pending = False
        self.lane_calendars = lane_calendars
        self.free_lanes = list(range(len(lane_calendars))) if lane_calendars is not None else None
        self.free = math.inf if lanes is None else lanes
        self.quota = quota  # per day, or None
        self.factor = factor  # service factor per class and day, or None
        self.calendar = calendar
        self.queue: list = []
        self.used: dict[int, int] = {}
        self.wakeups: set[float] = set()
        self.n_started = 0  # starts so far: the next stage's order of vehicles that join it at one instant
        self.withdrawn: set = set()  # requests of vehicles that gave up: passed over when they come up

    def request(self, priority: int, order: int) -> simpy.Event:
        """A vehicle joins the queue; ties of priority and time go by ``order`` (the first stage:
        the vehicle's place in the input; a later one: its place in the previous stage's start
        order, which the request's value gives with the lane). The order is explicit, not that of
        the calls, because a vehicle that may give up resumes one event later than one that
        cannot."""
        ev = self.env.event()
        heapq.heappush(self.queue, (priority, self.env.now, order, ev))
        self._schedule_dispatch()
        return ev

    def withdraw(self, ev: simpy.Event) -> None:
        """A waiting vehicle gives up: its place in the queue is dropped when it comes up."""
        self.withdrawn.add(ev)

    def _drop_withdrawn(self) -> None:
        while self.queue and self.queue[0][3] in self.withdrawn:
            self.withdrawn.discard(heapq.heappop(self.queue)[3])

    def release(self, lane: int | None) -> None:
        if self.free_lanes is not None:
            heapq.heappush(self.free_lanes, lane)
        else:
            self.free += 1
        self._schedule_dispatch()

    def service_time(self, drawn: float, vclass: int) -> float:
        if self.factor is None:
            return drawn
        return drawn * self.factor[vclass, min(day_of(self.env.now), self.factor.shape[1] - 1)]

    def _at_dispatch_priority(self) -> simpy.Event:
        """A triggered event at this instant, at the stage's dispatch priority: after every
        ordinary event of the instant and after what was scheduled at that priority before it."""
        ev = simpy.Event(self.env)
        ev._ok, ev._value = True, None
        self.env.schedule(ev, priority=self.dispatch_priority)
        return ev

    def _schedule_dispatch(self) -> None:
        if self.dispatch_pending:
            return
        self.dispatch_pending = True
        self._at_dispatch_priority().callbacks.append(self._dispatch)

    def after_dispatch(self) -> simpy.Event:
        """An event after this instant's dispatch, for a vehicle that has just requested (so a
        dispatch is pending): by then it has started if it starts at this instant at all (later
        events of the instant only start vehicles that join later)."""
        return self._at_dispatch_priority()

    def next_allowed(self, t: float) -> tuple[float, int | None]:
        """The earliest time >= t a start may happen, and on which lane (None: lanes alike)."""
        if self.free_lanes is not None:  # lanes by their own calendars: the first open, lowest on ties
            best, lane = math.inf, None
            for j in sorted(self.free_lanes):
                u = self.lane_calendars[j].next_open(t)
                if u < best:
                    best, lane = u, j
            return best, lane
        t = self.calendar.next_open(t)
        if self.quota is not None:
            while t < math.inf and self.used.get(day_of(t), 0) >= self.quota[min(day_of(t), len(self.quota) - 1)]:
                t = self.calendar.next_open(24.0 * (day_of(t) + 1))
        return t, None

    def _wake(self, t: float) -> None:
        self.wakeups.discard(t)
        self._schedule_dispatch()

    def _dispatch(self, _event=None) -> None:
        self.dispatch_pending = False
        now = self.env.now
        self._drop_withdrawn()
        while self.queue and (self.free > 0 if self.free_lanes is None else self.free_lanes):
            t, lane = self.next_allowed(now)
            if t > now:
                if t < math.inf and t not in self.wakeups:
                    self.wakeups.add(t)
                    self.env.timeout(t - now).callbacks.append(lambda _ev, t=t: self._wake(t))
                return
            ev = heapq.heappop(self.queue)[3]
            if lane is None:
                self.free -= 1
            else:
                self.free_lanes.remove(lane)
                heapq.heapify(self.free_lanes)
            if self.quota is not None:
                d = day_of(now)
                self.used[d] = self.used.get(d, 0) + 1
            ev.succeed((lane, self.n_started))
            self.n_started += 1
            self._drop_withdrawn()


def vehicle(env, i, pools, service_row, priority, vclass, start, end, lanes, joins, came, deadline, patient, left):
    """One vehicle through its stages; it gives up at its deadline while waiting at any of the
    first ``patient`` stages (deadline inf: never)."""
    if joins > env.now:  # turned away on arrival: it waits outside until it may join
        if deadline <= joins:  # and gives up first
            if deadline > env.now:
                yield env.timeout(deadline - env.now)
            left[i] = max(deadline, came)
            return
        yield env.timeout(joins - env.now)
    for k, pool in enumerate(pools):
        since = came if k == 0 else env.now
        req = pool.request(priority, i if k == 0 else rank)
        if k < patient and deadline < math.inf:
            if deadline < since:  # its patience ran out in the service before: it goes on if it starts now
                yield pool.after_dispatch()
            elif deadline > env.now:
                yield req | env.timeout(deadline - env.now)
            if not req.triggered:  # it has not started by max(deadline, since): it gives up then
                pool.withdraw(req)
                left[i] = max(deadline, since)
                return
            lane, rank = req.value
        else:
            lane, rank = yield req
        start[i, k] = env.now
        if lane is not None:
            lanes[i, k] = lane
        took = pool.service_time(service_row[k], vclass)
        if took > 0:
            yield env.timeout(took)
        end[i, k] = env.now
        pool.release(lane)


def _source(env, flow: FlowInputs, pools, start, end, lanes, left):
    arrival, service, priority = flow.arrival, flow.service, flow.priority
    joins = arrival if flow.available is None else flow.available
    deadline = flow.deadline
    patient = flow.patience_stages if deadline is not None else 0
    for i in range(flow.n):
        delay = arrival[i] - env.now
        if delay > 0:  # a backlog's arrivals before 0 are all in the queue at 0
            yield env.timeout(delay)
        env.process(vehicle(env, i, pools, service[i], int(priority[i]), int(flow.vclass[i]), start, end, lanes,
                             float(joins[i]), float(arrival[i]), math.inf if deadline is None else float(deadline[i]),
                             patient, left))


def stage_pools(env: simpy.Environment, flow) -> list[StagePool]:
    """A flow's stages as pools (flow: FlowInputs, or a corridor's GateSchedule: its lanes,
    quotas, calendar, lane calendars and service factors)."""
    return [StagePool(env, lanes, quota, flow.calendar, k, lane_cals, factor)
            for k, (lanes, quota, lane_cals, factor) in enumerate(
                zip(flow.lanes, flow.quota, flow.lane_calendars, flow.service_factor))]


def simulate_flows(rep: ReplicationInputs) -> list[FlowRecord | None]:
    """Run one replication's flows; the per-vehicle record of each (None at the gates of a
    corridor on 'wait', sim.engines.des.replication)."""
    env = simpy.Environment()
    records = []
    for flow in rep.flows:
        if flow is None:  # a gate of a corridor on 'wait'
            records.append(None)
            continue
        pools = stage_pools(env, flow)
        shape = (flow.n, len(pools))
        start, end = np.full(shape, np.nan), np.full(shape, np.nan)
        lanes = np.full(shape, -1, np.int16)
        left = np.full(flow.n, np.nan)
        records.append(FlowRecord(flow, start, end, lanes, left))
        if flow.n:
            env.process(_source(env, flow, pools, start, end, lanes, left))
    env.run(until=rep.horizon_h)
    return records
