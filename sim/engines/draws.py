"""The random inputs of one replication, drawn from named streams before any engine runs.

Both engines consume the same :class:`FlowInputs`, so that fed identical inputs they can be
compared vehicle by vehicle. Streams are named per gate, direction, class and stage
(``arrivals/<gate>/<direction>/<class>``, ``service/<gate>/<direction>/<class>/<stage>``,
``closures/<gate>/<id>``, ``param/<name>``): two scenarios that share a gate share its
randomness.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numba as nb
import numpy as np

from ..model.adjust import (demand_steps, factor_schedule, lanes_by_day, lanes_schedule, quota_by_day, quota_schedule,
                     service_factors)
from ..model.calendar import Calendar, draw_random_closures, lane_calendars, with_closures
from ..model.corridors import serving_days, split
from ..model.plan import CorridorPlan, FlowPlan, Plan, compile_plan, stage_layout
from ..base.days import step_days
from ..base.rng import stream
from ..model.scenario import Profile, Scenario, ScenarioModel
from .corridor import CorridorInputs, gate_schedule
from .inputs import FlowInputs
from .records import FlowRecord


@dataclass
class ChoosingCorridor:
    """One direction of a corridor on the 'wait' rule in one replication: its gates and
    vehicles, and the positions in ReplicationInputs.flows of its gates' flows (in its order)."""

    inputs: CorridorInputs
    flows: tuple[int, ...]


@dataclass
class ReplicationInputs:
    model: ScenarioModel
    horizon_h: float
    warmup_h: float
    # per flow of the plan, its vehicles and stages; None for a gate of a corridor on 'wait',
    # whose vehicles choose it during the run (corridors)
    flows: list[FlowInputs | None]
    # the trucks of each corridor, direction and class that left the province (to Lạng Sơn)
    # before the run; those that leave a corridor on 'wait' are known after it
    diverted: dict[tuple[str, str, str], int] = field(default_factory=dict)
    corridors: list[ChoosingCorridor] = field(default_factory=list)
    # per class of the scenario, its cost inputs (sim.model.schema.COST_FIELDS) in this
    # replication; None where the scenario has no costs
    costs: np.ndarray | None = None


def _norm(values: list[float]) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v / v.mean()


def hourly_rates(model: ScenarioModel, gate_id: str, direction: str, vclass: str) -> np.ndarray:
    """Arrival rate (vehicles per hour) in each hour of the horizon, at the model's own values."""
    gate = model.gates[gate_id]
    per_day = gate.spec(direction).demand.get(vclass, 0.0)
    if per_day == 0:
        return np.zeros(24 * model.horizon.days)
    prof: Profile = gate.profile or model.profile
    steps = tuple(
        (first, until, factor) for first, until, factor, gates, directions, classes in demand_steps(model)
        if (gates is None or gate_id in gates) and (directions is None or direction in directions)
        and (classes is None or vclass in classes)
    )
    h = model.horizon
    bounds = step_days(tuple((first, until) for first, until, _factor in steps), h.start, h.days)
    factors = np.array([factor for _first, _until, factor in steps], dtype=float)
    return per_day * shaped_rates(tuple(prof.weekday), tuple(prof.monthly), tuple(prof.hourly), bounds, factors,
                                  h.start, h.days)[0]


def shaped_rates(weekday: tuple, monthly: tuple, hourly: tuple, bounds: np.ndarray, factors: np.ndarray,
                 start: dt.date, days: int, day_factor: np.ndarray | None = None):
    """Hourly rates for one vehicle a day, the profiles and the demand steps applied (bounds:
    each step's day span, as sim.base.days.step_days gives it; factors: each step's factor, in order), their
    cumulative sum from 0 and their inverses; day_factor: a factor on each day after the steps
    (a corridor's, sim.model.corridors), if any. The step factors are sampled, so this runs in a
    replication for every class whose steps vary; the arithmetic is one compiled pass (numpy
    took ~0.27 ms a call here: a temporary array per step)."""
    return _shape(_day_profile(weekday, monthly, start, days), bounds, factors, _hour_shape(hourly),
                  _NO_FACTOR if day_factor is None else day_factor)


_NO_FACTOR = np.zeros(0)


def day_rates(weekday: tuple, monthly: tuple, bounds: np.ndarray, factors: np.ndarray, start: dt.date,
              days: int) -> np.ndarray:
    """The expected vehicles on each day for one vehicle a day: the day profile and the demand
    steps applied, as shaped_rates spreads them over the day's hours."""
    return _day_rates(_day_profile(weekday, monthly, start, days), bounds, factors)


@lru_cache(maxsize=64)
def _hour_shape(hourly: tuple) -> np.ndarray:
    out = _norm(list(hourly))
    out.setflags(write=False)
    return out


@nb.njit(cache=True)
def _day_rates(daily, bounds, factors):
    """Each step multiplies the days it covers, in turn (numpy's order: the same bits)."""
    d = daily.copy()
    for j in range(factors.size):
        for k in range(bounds[j, 0], bounds[j, 1]):
            d[k] = d[k] * factors[j]
    return d


@nb.njit(cache=True)
def _shape(daily, bounds, factors, hour_shape, day_factor):
    """The arithmetic of _shaped_rates, in numpy's order (so the values are the same to the
    bit): the steps (_day_rates), then day_factor if it has any days; an hour's rate is day x
    hour share / 24; the cumulative sum runs from 0, hour after hour; inverses are 0 where a
    rate is 0."""
    days = daily.size
    d = _day_rates(daily, bounds, factors)
    if day_factor.size:
        for k in range(days):
            d[k] = d[k] * day_factor[k]
    n_h = hour_shape.size
    out = np.empty(days * n_h)
    cum = np.empty(days * n_h + 1)
    inv = np.empty(days * n_h)
    cum[0] = 0.0
    total = 0.0
    for k in range(days):
        for h in range(n_h):
            i = k * n_h + h
            r = d[k] * hour_shape[h] / 24.0
            out[i] = r
            total += r
            cum[i + 1] = total
            inv[i] = 1.0 / r if r > 0 else 0.0
    return out, cum, inv


@lru_cache(maxsize=256)
def _day_profile(weekday: tuple, monthly: tuple, start: dt.date, days: int) -> np.ndarray:
    dates = [start + dt.timedelta(days=d) for d in range(days)]
    out = _norm(list(weekday))[[d.weekday() for d in dates]] * _norm(list(monthly))[[d.month - 1 for d in dates]]
    out.setflags(write=False)
    return out


def poisson_arrivals(rates: np.ndarray, rng: np.random.Generator, scale: float = 1.0,
                     cum: np.ndarray | None = None, inv: np.ndarray | None = None) -> np.ndarray:
    """A non-homogeneous Poisson process with piecewise-constant hourly rates scale x rates, by
    inversion (cum: the cumulative sum of rates from 0, inv: 1 / rates, when known already).

    Unit-rate event times E are mapped through the inverse cumulative intensity, so a scenario
    with scaled demand sees the same underlying draws (common random numbers).
    """
    if cum is None:
        cum = np.concatenate([[0.0], np.cumsum(rates)])
    if inv is None:
        inv = np.divide(1.0, rates, out=np.zeros(len(rates)), where=rates > 0)
    total = scale * cum[-1]
    if total <= 0:
        return np.empty(0)
    out = np.empty(int(total + 5 * np.sqrt(total + 1) + 10))
    m, last, h = 0, 0.0, 0
    while True:
        n = int(total - last + 5 * np.sqrt(total - last + 1) + 10)
        m, last, h, done = _invert(rng.exponential(1.0, n), last, h, 1.0 / scale, cum, inv, out, m)
        if done:
            return out[:m]
        if m + n > out.size:  # rare: the first draw fell short; grow the buffer
            out = np.concatenate([out[:m], np.empty(n + out.size)])


@nb.njit(cache=True)
def _invert(gaps, last, h, inv_scale, cum, inv_rates, out, m):
    """Unit-rate event times e (last + the running sum of gaps) mapped through the inverse
    cumulative intensity into out[m:]: the hour at which cum reaches e / scale, up to the
    total cum[-1]; a merge of two sorted sequences (as searchsorted(cum, e / scale, 'right') - 1,
    in linear time); h: the hour reached so far. Returns the new m, the last event time, the
    hour reached and whether the total was passed."""
    total = cum[cum.size - 1]
    e = last
    for j in range(gaps.size):
        e += gaps[j]
        u = e * inv_scale
        if u >= total:
            return m, e, h, True
        while cum[h + 1] <= u:  # stops: cum[-1] = total > u
            h += 1
        out[m] = h + (u - cum[h]) * inv_rates[h]
        m += 1
    return m, e, h, False


@nb.njit(cache=True)
def _merge_runs(arrival, bounds, rows):
    """The vehicles of sorted per-class runs (run c: [bounds[c], bounds[c + 1])) in time order,
    at equal times by class, within a class in run order: what a stable sort of arrival gives,
    in linear time, in one pass. rows (m, n): what goes with each vehicle (its service times at
    each stage, when it gives up, when it may join), carried along. Returns the arrival times,
    the classes and the rows."""
    n_runs = bounds.size - 1
    n = arrival.size
    m_rows = rows.shape[0]
    ptr = bounds[:-1].copy()
    arr_out = np.empty(n)
    cls_out = np.empty(n, np.int64)
    rows_out = np.empty((m_rows, n))
    src = np.empty(n, np.int64)
    if n_runs == 2:  # the usual case: a two-pointer merge
        a, a_end, b = bounds[0], bounds[1], bounds[1]
        for j in range(n):
            if b >= n or (a < a_end and arrival[a] <= arrival[b]):
                src[j] = a
                cls_out[j] = 0
                a += 1
            else:
                src[j] = b
                cls_out[j] = 1
                b += 1
    else:
        for j in range(n):
            best = -1
            best_t = np.inf
            for c in range(n_runs):
                if ptr[c] < bounds[c + 1] and (best < 0 or arrival[ptr[c]] < best_t):
                    best = c
                    best_t = arrival[ptr[c]]
            src[j] = ptr[best]
            ptr[best] += 1
            cls_out[j] = best
    for j in range(n):
        arr_out[j] = arrival[src[j]]
    for k in range(m_rows):  # row by row: contiguous writes
        for j in range(n):
            rows_out[k, j] = rows[k, src[j]]
    return arr_out, cls_out, rows_out


def flow_inputs(fp: FlowPlan, v: list, rep_seq: np.random.SeedSequence, calendar: Calendar, days: int,
                class_priority: np.ndarray, day_factor: dict[int, np.ndarray] | None = None,
                schedules: tuple | None = None) -> FlowInputs:
    """One flow's vehicles and stages in one replication: its plan (sim.model.plan.FlowPlan), the
    replication's numbers (v: sim.model.plan.Plan.values), its seed and its calendar after the random
    closures; class_priority: each of the flow's classes' priority; day_factor: a corridor's
    factor on a class's demand by day (by the class's position), if any; schedules: its
    stage_schedules, where worked out already."""
    classes = list(fp.classes)
    prefix = f"{fp.gate}/{fp.direction}"
    names, acc_k = list(fp.stage_names), fp.acceptance
    has_acceptance = acc_k >= 0
    cols = [k for k in range(len(names)) if k != acc_k]  # columns of the stages
    times, n_backlog = [], 0
    for ci, c in enumerate(classes):
        backlog = fp.backlog[ci].of(v) if fp.backlog[ci] is not None else 0
        n_backlog += backlog
        per_day = _per_day(fp, ci, v)
        arr = np.empty(0)
        if per_day > 0:
            unit, unit_cum, unit_inv = unit_rates(fp, ci, v, days, (day_factor or {}).get(ci))
            arr = poisson_arrivals(unit, stream(rep_seq, f"arrivals/{prefix}/{c}"), per_day, unit_cum, unit_inv)
        if backlog:  # queued at the start, having come the days before (their waits count from then)
            came = np.zeros(backlog)
            if fp.backlog_age is not None:
                age = fp.backlog_age.of(v).draw(stream(rep_seq, f"backlog/{prefix}/{c}"), backlog)
                came = np.sort(-24.0 * age)  # the oldest first: they were at the head of the queue
            arr = np.concatenate([came, arr])
        times.append(arr)
    sizes = [len(t) for t in times]
    arrival = np.concatenate(times) if len(times) != 1 else times[0]
    patient = any(p is not None for p in fp.patience)
    turned = any(fp.refusals)
    # rows (stage-major, each filled contiguously, as the fast engine reads them): the service
    # time at each stage (0 at the acceptance step), then when each vehicle gives up, then when
    # it may join its first stage, each filled per class run and merged with the arrivals
    n_stage_rows = len(cols) + has_acceptance
    rows = np.empty((n_stage_rows + patient + turned, len(arrival)))
    if has_acceptance:
        rows[acc_k] = 0.0  # the acceptance step takes no time
    hit_any = False
    first = 0
    for ci, (c, size) in enumerate(zip(classes, sizes)):
        run = slice(first, first + size)
        for k, st in zip(cols, fp.stages):
            rng = stream(rep_seq, f"service/{prefix}/{c}/{st.name}")
            np.divide(st.service[ci].of(v).draw(rng, size), 60.0, out=rows[k, run])
        if patient:
            rows[n_stage_rows, run] = _deadlines(fp.patience[ci], v, arrival[run], rep_seq, f"patience/{prefix}/{c}")
        if turned:
            rows[-1, run], hit = _available(fp.refusals[ci], arrival[run])
            hit_any |= hit
        first += size
    vclass = np.zeros(len(arrival), dtype=np.int64)  # one class; merged below otherwise
    if len(classes) > 1:
        # by time, at equal times (the backlog) by class: one merge of the per-class sorted runs
        arrival, vclass, rows = _merge_runs(arrival, np.cumsum([0] + sizes), rows)
    service = rows[:n_stage_rows]
    deadline = rows[n_stage_rows] if patient else None
    available = rows[-1] if turned and hit_any else None

    lanes, quota, lane_cals, factors = schedules or stage_schedules(fp, v, calendar, days)
    return FlowInputs(
        gate=fp.gate, direction=fp.direction, arrival=arrival, vclass=vclass,
        class_priority=class_priority,
        service=service.T, classes=classes, stage_names=names, lanes=lanes,
        quota=quota, calendar=calendar, n_backlog=n_backlog, acceptance=acc_k,
        lane_calendars=lane_cals, service_factor=factors, available=available, deadline=deadline,
        patience_stages=(acc_k + 1 if has_acceptance else len(names)) if deadline is not None else 0,
    )


def unit_rates(fp: FlowPlan, ci: int, v: list, days: int,
               day_factor: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """A class's hourly rates for one vehicle a day (profiles and demand steps, and a corridor's
    day_factor if given), their cumulative sum and their inverses in one replication: worked out
    once where no step factor or profile value of the class varies and no corridor moves it
    (sim.model.plan keeps them), else anew."""
    varying = _shape_varies(fp, ci) or day_factor is not None
    key = ("rates", ci)
    if not varying and key in fp.cache:
        return fp.cache[key]
    weekday, monthly, hourly = (tuple(r.of(v) for r in part) for part in fp.profile)
    out = shaped_rates(weekday, monthly, hourly, fp.step_days[ci], _step_factors(fp, ci, v), fp.start, days,
                       day_factor)
    if not varying:
        for a in out:
            a.setflags(write=False)
        fp.cache[key] = out
    return out


def unit_days(fp: FlowPlan, ci: int, v: list, days: int) -> np.ndarray:
    """A class's expected vehicles on each day for one vehicle a day (day_rates) in one
    replication: worked out once where nothing in it varies."""
    weekday, monthly = (tuple(r.of(v) for r in part) for part in fp.profile[:2])
    return fp.cached(("days", ci), _shape_varies(fp, ci), lambda: day_rates(
        weekday, monthly, fp.step_days[ci], _step_factors(fp, ci, v), fp.start, days))


def _shape_varies(fp: FlowPlan, ci: int) -> bool:
    """Whether a class's step factors or its flow's profile vary between replications."""
    return any(f.varies for _span, f in fp.steps[ci]) or any(r.varies for part in fp.profile for r in part)


def _step_factors(fp: FlowPlan, ci: int, v: list) -> np.ndarray:
    return np.array([f.of(v) for _span, f in fp.steps[ci]], dtype=float)


def _deadlines(patience, v: list, came: np.ndarray, rep_seq: np.random.SeedSequence, name: str) -> np.ndarray:
    """When each vehicle of a class's run gives up (hours; inf for a class with no patience in
    this direction, sim.model.schema.VehicleClass.patience_days): its patience drawn from the
    class's stream, in the run's order. Exponential patience is memoryless, so it counts from
    the arrival, or for a backlog vehicle still waiting at the start, from 0; a lognormal one
    counts from the arrival, a backlog vehicle's drawn given that it exceeds the age it has at
    the start (it is still there). The stream is the class's, ``name``."""
    if patience is None:
        return np.full(came.size, np.inf)
    mean_days, cv = patience[0].of(v), patience[1].of(v)
    mean_h = 24.0 * float(mean_days)
    rng = stream(rep_seq, name)
    if cv is None:
        return np.maximum(came, 0.0) + rng.exponential(mean_h, came.size)
    return came + lognormal_beyond(mean_h, float(cv), np.maximum(-came, 0.0), rng.random(came.size))


def lognormal_beyond(mean: float, cv: float, age: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Lognormal draws (given mean and cv) conditioned on exceeding age, by inversion of the
    uniforms u: from the survival function, so that an age far in the tail keeps its precision.
    An age beyond any float's reach of the tail (survival 0) gives the age itself: it gives up
    at once."""
    from scipy.special import ndtr, ndtri

    sigma = math.sqrt(math.log1p(cv * cv))
    mu = math.log(mean) - sigma * sigma / 2
    with np.errstate(divide="ignore"):
        z_age = (np.log(age) - mu) / sigma  # -inf for age 0: no condition
    tail = ndtr(-z_age) * (1.0 - u)  # in (0, survival(age)]: 1 - u is in (0, 1]
    out = np.exp(mu - sigma * ndtri(tail))
    return np.where(tail > 0, np.maximum(out, age), age)


def _available(refusals, arrival: np.ndarray) -> tuple[np.ndarray, bool]:
    """When each vehicle of a class's run may join its first stage: on arrival, or if it came
    while the class was turned away (a refusal by date, [from, to) hours), when the refusal
    ends; and whether any was turned away."""
    out = arrival.copy()
    hit_any = False
    for start_h, end_h in refusals:
        hit = (arrival >= start_h) & (arrival < end_h)
        if start_h <= 0:  # the backlog is turned away too while the refusal lasts
            hit |= arrival < end_h
        if hit.any():
            hit_any = True
            out[hit] = np.maximum(out[hit], end_h)
    return out, hit_any


def stage_schedules(fp: FlowPlan, v: list, calendar: Calendar, days: int):
    """Per stage of a flow (the acceptance step in its place): its lanes (None: unlimited; the
    most it has, if they follow a schedule), its daily limits (per day, or None), a calendar per
    lane where the number of lanes changes by date (lane j serves on the days the stage has
    more than j lanes), and service-time factors by class and day where they change by date.
    The quotas and factors are worked out once where nothing in them varies."""
    lanes, quota, lane_cals, factors = [], [], [], []
    for k, st in enumerate(fp.stages):
        n_lanes = st.lanes.of(v)
        by_day = lanes_schedule(n_lanes, [(r.days, _of(r.set, v), _of(r.multiply, v)) for r in st.lanes_dated], days)
        lanes.append(n_lanes if by_day is None else max(int(by_day.max()), 1))
        lane_cals.append(None if by_day is None else lane_calendars(calendar, by_day))
        quota.append(None)
        factors.append(fp.cached(("factors", k), st.factors_vary, lambda st=st: factor_schedule(
            len(fp.classes), [((r.days, _of(r.set, v), _of(r.multiply, v)), applies) for r, applies in st.service_dated],
            days)))
    if fp.acceptance >= 0:
        lanes.insert(fp.acceptance, None)
        quota.insert(fp.acceptance, fp.cached(("quota",), fp.quota_varies, lambda: quota_schedule(
            fp.limit.of(v), [(r.days, _of(r.set, v), _of(r.multiply, v)) for r in fp.limit_dated], days)))
        lane_cals.insert(fp.acceptance, None)
        factors.insert(fp.acceptance, None)
    return lanes, quota, lane_cals, factors


def _of(ref, v: list):
    return None if ref is None else ref.of(v)


def model_schedules(model: ScenarioModel, gate_id: str, direction: str, calendar: Calendar):
    """stage_schedules at the model's own values (the capacity check's nominal load)."""
    gate = model.gates[gate_id]
    spec = gate.spec(direction)
    _names, acc_k = stage_layout(spec, direction)
    lanes, quota, lane_cals, factors = [], [], [], []
    for st in spec.stages:
        by_day = lanes_by_day(model, gate_id, direction, st.name, st.lanes)
        lanes.append(st.lanes if by_day is None else max(int(by_day.max()), 1))
        lane_cals.append(None if by_day is None else lane_calendars(calendar, by_day))
        quota.append(None)
        factors.append(service_factors(model, gate_id, direction, st.name, list(gate.classes)))
    if acc_k >= 0:
        lanes.insert(acc_k, None)
        quota.insert(acc_k, quota_by_day(model, gate_id, direction, spec.acceptance_limit))
        lane_cals.insert(acc_k, None)
        factors.insert(acc_k, None)
    return lanes, quota, lane_cals, factors


def plan_inputs(plan: Plan, v: list, rep_seq: np.random.SeedSequence) -> ReplicationInputs:
    """The closures, arrivals and service times of one replication: a plan and the numbers of
    its model in the replication (Plan.values)."""
    days = plan.model.horizon.days
    priority = np.array([p.of(v) for p in plan.priority], dtype=np.int64)
    index = {c: i for i, c in enumerate(plan.model.classes)}
    calendars = []
    for g in plan.gates:
        random_closed = [draw_random_closures(rc.daily_probability.of(v), rc.duration_h.of(v), days,
                                              stream(rep_seq, f"closures/{g.gate}/{rc.id}"))
                         for rc in g.closures]
        calendars += [with_closures(fp.fixed, [iv for j in fp.closures for iv in random_closed[j]]) for fp in g.flows]
    schedules: dict[int, tuple] = {}
    day_factors: dict[int, dict[int, np.ndarray]] = {}
    diverted, choosing = {}, []
    for cp in plan.corridors:
        if cp.rule == "wait":
            choosing.append(ChoosingCorridor(
                choosing_inputs(cp, plan, v, rep_seq, calendars, priority[[index[c] for c in cp.classes]]), cp.flows))
        else:
            diverted.update(corridor_inputs(cp, plan.flows, v, rep_seq, calendars, days, schedules, day_factors))
    chosen = {i for cc in choosing for i in cc.flows}
    flows = [None if i in chosen else
             flow_inputs(fp, v, rep_seq, cal, days, priority[[index[c] for c in fp.classes]], day_factors.get(i),
                         schedules.get(i))
             for i, (fp, cal) in enumerate(zip(plan.flows, calendars))]
    return ReplicationInputs(model=plan.model, horizon_h=plan.model.horizon.hours,
                             warmup_h=24.0 * plan.warmup_days.of(v), flows=flows, diverted=diverted,
                             corridors=choosing,
                             costs=np.array([[r.of(v) for r in cls] for cls in plan.costs], dtype=float)
                             if plan.costs else None)


def choosing_inputs(cp: CorridorPlan, plan: Plan, v: list, rep_seq: np.random.SeedSequence,
                    calendars: list[Calendar], class_priority: np.ndarray) -> CorridorInputs:
    """One direction of a corridor on the 'wait' rule in one replication: its vehicles drawn
    from the corridor's named streams (wait_corridor_inputs), its gates' schedules after this
    replication's random closures, the rule's numbers at this replication's values."""
    return wait_corridor_inputs(
        cp.corridor, cp.direction, [plan.flows[i] for i in cp.flows], [calendars[i] for i in cp.flows],
        list(cp.classes), class_priority, v, rep_seq, plan.model.horizon.days, float(cp.sensitivity.of(v)),
        [float(r.of(v)) for r in cp.detour_h], float(cp.outside_detour_h.of(v)), plan.model.horizon.hours)


def corridor_inputs(cp: CorridorPlan, flows: list[FlowPlan], v: list, rep_seq: np.random.SeedSequence,
                    calendars: list[Calendar], days: int, schedules: dict[int, tuple],
                    day_factors: dict[int, dict[int, np.ndarray]]) -> dict[tuple[str, str, str], int]:
    """One direction of a corridor in one replication: the factor on each of its gates' demand
    by day and class (into day_factors, by flow and class position: sim.model.corridors.split,
    on the days each gate serves after this replication's random closures), and the trucks of
    each class that leave the province, a Poisson count of the expected number drawn from
    ``diverted/<corridor>/<direction>/<class>``. A corridor that moves nothing leaves its gates'
    demand as it is (no factor, not one of 1) and diverts none. The split is worked out once
    where neither random closures nor sampled inputs reach it (_split_varies)."""
    if not cp.moves:
        return {(cp.corridor, cp.direction, c): 0 for c in cp.classes}
    out = {}
    for c in cp.classes:
        members = tuple((i, flows[i].classes.index(c)) for i in cp.flows if c in flows[i].classes)

        def class_split(members=members):
            demand = np.array([_per_day(flows[i], ci, v) * unit_days(flows[i], ci, v, days) for i, ci in members])
            serving = np.ones(demand.shape, np.bool_)
            if cp.rule == "open":
                for row, (i, ci) in enumerate(members):
                    if i not in schedules:
                        schedules[i] = stage_schedules(flows[i], v, calendars[i], days)
                    _lanes, quota, lane_cals, _factors = schedules[i]
                    serving[row] = serving_days(calendars[i], lane_cals, quota, flows[i].refusals[ci], days)
            return split(demand, serving, cp.rule, float(cp.outside_share.of(v)), cp.none_open)

        if _split_varies(cp, flows, members):
            factors, leaving = class_split()
        else:
            if ("split", c) not in cp.cache:
                cp.cache[("split", c)] = class_split()
                for a in cp.cache[("split", c)]:
                    a.setflags(write=False)
            factors, leaving = cp.cache[("split", c)]
        for row, (i, ci) in enumerate(members):
            day_factors.setdefault(i, {})[ci] = factors[row]
        rng = stream(rep_seq, f"diverted/{cp.corridor}/{cp.direction}/{c}")
        out[(cp.corridor, cp.direction, c)] = int(rng.poisson(float(leaving.sum())))
    return out


# ------------------------------------------------------------------ a corridor on the 'wait' rule
#
# The vehicles of a corridor on the `wait` rule in one replication, from named streams.
#
# The corridor's demand of a class in a direction is the sum of its gates' (each gate's demand
# with its own profiles and steps): one Poisson stream, ``arrivals/<corridor>/<direction>/<class>``.
# Each arriving vehicle carries its own draws, the j-th of its class taking the j-th value of
# each stream: its choice's uniform (``choice/...``), its service at each stage of each gate it
# might choose (``service/<corridor>/<direction>/<class>/<gate>/<stage>``) and its patience
# (``patience/<corridor>/<direction>/<class>``). So a change at one gate (its lanes, hours,
# services) changes no vehicle's draws, and other vehicles only through their choices (common
# random numbers). A gate's initial backlog stays at its gate, drawn from the gate's own streams
# as without a corridor. A gate's weight on a day is its share of the corridor's expected
# vehicles of the class that day; the outside option's weight is 1 (leaving weighs as much as the
# corridor's gates together, at equal cost), or 0 where its detour is inf (no outside option:
# a truck leaves only when no gate serves it).

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
        own = flow_inputs(replace(fp, demand=(None,) * len(fp.classes)), v, rep_seq, cal, days,
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
    # the backlog first (gate by gate), then the classes' runs, merged by time (stable), with
    # what goes with each vehicle as the rows of one array gathered in one call: its gate (-1:
    # it chooses), when it joins, its uniform, deadline and class, then its services (gates x
    # k_max rows), which so come out in the order the engines read (indexing the 3-D services
    # along their last axis gave another memory order, which the fast engine then copied)
    parts = [(f.arrival, (j, f.arrival if f.available is None else f.available, 0.0,
                          np.inf if f.deadline is None else f.deadline,
                          [classes.index(f.classes[x]) for x in f.vclass]),
              _padded(f.service, j, len(flows), k_max)) for j, f in enumerate(backlog)]
    parts += [(arr, (-1, arr, u, dl, cl), service) for cl, (arr, u, service, dl) in enumerate(runs)]
    bounds = np.cumsum([0] + [arr.size for arr, _columns, _service in parts])
    rows = np.empty((5 + len(flows) * k_max, bounds[-1]))
    for (arr, columns, service), first in zip(parts, bounds):
        for r, column in enumerate(columns):
            rows[r, first:first + arr.size] = column
        rows[5:, first:first + arr.size] = service.reshape(len(flows) * k_max, arr.size)
    arrival = np.concatenate([arr for arr, _columns, _service in parts])
    order = np.argsort(arrival, kind="mergesort")
    arrival, rows = arrival[order], rows.take(order, axis=1)
    gate, joins, u, deadline, vclass = rows[0].astype(np.int64), rows[1], rows[2], rows[3], rows[4].astype(np.int64)
    service = rows[5:].reshape(len(flows), k_max, arrival.size)
    day_demand = rates.reshape(len(flows), n_classes, days, 24).sum(axis=3)
    total_day = day_demand.sum(axis=0)
    leaving = math.isfinite(outside_detour_h)
    weight = np.concatenate([np.divide(day_demand, total_day, out=np.zeros_like(day_demand), where=total_day > 0),
                             np.full((1, n_classes, days), OUTSIDE_WEIGHT if leaving else 0.0)])
    return CorridorInputs(
        name=corridor, direction=direction, classes=list(classes), class_priority=class_priority, gates=gates,
        arrival=arrival, vclass=vclass, gate=gate, joins=joins, u=u, service=service,
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


def with_corridors(rep: ReplicationInputs, records: list[FlowRecord | None], simulate_corridor) -> list[FlowRecord]:
    """A replication's flow records (None at the gates of its corridors on 'wait') with each
    such corridor run by an engine's simulate_corridor and its gates' records in their flows' places."""
    for cc in rep.corridors:
        for i, rec in zip(cc.flows, simulate_corridor(cc.inputs).records, strict=True):
            records[i] = rec
    return records


def left_by_choice(rep: ReplicationInputs, records: list[FlowRecord]) -> dict[tuple[str, str, str], int]:
    """The trucks of each corridor on 'wait', direction and class that left the province: its
    vehicles of the class that are at none of its gates (they chose the outside option, or no
    gate served them)."""
    out = {}
    for cc in rep.corridors:
        c = cc.inputs
        at_gates = np.zeros(len(c.classes), np.int64)
        for i in cc.flows:
            f = records[i].inputs
            at_gates[[c.classes.index(name) for name in f.classes]] += np.bincount(f.vclass, minlength=len(f.classes))
        came = np.bincount(c.vclass, minlength=len(c.classes))
        out.update(((c.name, c.direction, name), int(came[k] - at_gates[k])) for k, name in enumerate(c.classes))
    return out


def _split_varies(cp: CorridorPlan, flows: list[FlowPlan], members: tuple) -> bool:
    """Whether a class's split in a corridor differs between replications: its outside share
    or a member's demand is sampled, or under 'open' the days a member serves may differ (random
    closures, sampled lanes or limits)."""
    if cp.outside_share.varies:
        return True
    for i, ci in members:
        fp = flows[i]
        if (fp.demand[ci] is not None and fp.demand[ci].varies) or _shape_varies(fp, ci):
            return True
        if cp.rule == "open" and (fp.closures or fp.quota_varies or any(
                st.lanes.varies or any(r.varies for d in st.lanes_dated for r in (d.set, d.multiply) if r is not None)
                for st in fp.stages)):
            return True
    return False


def _per_day(fp: FlowPlan, ci: int, v: list) -> float:
    """A class's demand at a flow in one replication (vehicles a day; 0 where it has none)."""
    return fp.demand[ci].of(v) if fp.demand[ci] is not None else 0.0


def replication_inputs(scenario: Scenario, rep_seq: np.random.SeedSequence,
                       fixed: dict[str, float] | None = None) -> ReplicationInputs:
    """Sample the scenario's ranges, closures, arrivals and service times for one replication
    (the uncertain inputs in ``fixed`` at the values given)."""
    plan = compile_plan(scenario)
    drawn = scenario.draw(lambda name: stream(rep_seq, name), fixed=fixed)
    return plan_inputs(plan, plan.values(drawn), rep_seq)
