"""Properties that must hold in every replication of every scenario, on random small scenarios.

Hypothesis builds scenarios with 1-2 gates, 1-2 directions, 1-2 classes of different
priority, 1-3 stages of 1-3 lanes, split opening hours, fixed and random closures, daily
acceptance limits and initial backlogs; each is run through the SimPy engine and its
per-vehicle records are checked against rules computed here independently of the engine.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import from_dict
from sim.model.calendar import draw_random_closures
from sim.base.rng import stream
from sim.base.rng import replication_seed
from sim.model.scenario import WEEKDAYS

from .helpers import metric, run_one
from .strategies import scenarios

def _adjustments(raw: dict, gid: str, what: str, date: dt.date | None = None) -> list[dict]:
    """The raw adjustments of one kind for a gate: those for all horizon (date None) or those
    that hold on a date, in order."""
    out = []
    for a in raw.get("adjust", []):
        if a["what"] != what or gid not in a.get("gates", [gid]):
            continue
        dated = "from" in a or "until" in a
        if date is None and not dated or date is not None and dated and a["from"] <= date <= a["until"]:
            out.append(a)
    return out


def _hours_on(raw: dict, gid: str, date: dt.date) -> list[str]:
    """A gate's opening hours on a date, from the scenario dict: its own, those an adjustment
    sets for all horizon, then those of the dated adjustments that hold that day."""
    gate = raw["gates"][gid]
    spec = gate["hours"].get(WEEKDAYS[date.weekday()], gate["hours"].get("default"))
    for a in _adjustments(raw, gid, "hours") + _adjustments(raw, gid, "hours", date):
        spec = a["set"]
    return spec


def _open_naive(raw: dict, gid: str, start: dt.date, t: float, direction: str, random_closed) -> bool:
    """May a service start at t? Computed from the scenario dict, not from the engine's calendar."""
    gate = raw["gates"][gid]
    day = int(t // 24)
    date = start + dt.timedelta(days=day)
    spec = _hours_on(raw, gid, date)
    h = t - 24 * day
    in_hours = False
    for span in spec:
        a, b = span.split("-")
        lo = int(a[:2]) + int(a[3:]) / 60
        hi = int(b[:2]) + int(b[3:]) / 60
        in_hours |= lo - 1e-9 <= h < hi
    t0 = dt.datetime.combine(start, dt.time())
    for c in gate.get("closures", []):
        # in hours, as t is: a datetime would round t to microseconds (24.999999999999996 h
        # becomes 25:00, inside a closure that starts at 25 h)
        lo, hi = ((c[k] - t0).total_seconds() / 3600.0 for k in ("start", "end"))  # datetimes here
        if direction in c["directions"] and lo <= t < hi:
            return False
    return in_hours and not any(s <= t < e for s, e in random_closed)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=scenarios(), seed=st.integers(0, 2**32 - 1))
def test_invariants_hold_on_random_scenarios(raw, seed):
    scen = from_dict(raw)
    rep, records, result = run_one(scen, seed=seed)
    model = scen.model_for(result.inputs)  # the replication's model, built as validation builds it
    start = raw["horizon"]["start"]
    rep_seq = replication_seed(seed, 0)
    for rec in records:
        f = rec.inputs
        gate = raw["gates"][f.gate]
        # conservation: every vehicle that arrived either crossed, gave up or is still inside
        arrivals = metric(result, f.gate, f.direction, "arrivals")
        crossings = metric(result, f.gate, f.direction, "crossings")
        inside = metric(result, f.gate, f.direction, "in_system_end")
        gave_up = metric(result, f.gate, f.direction, "gave_up")
        assert arrivals == crossings + gave_up + inside == f.n
        assert crossings == np.sum(~np.isnan(rec.depart))
        assert gave_up == np.sum(~np.isnan(rec.left))
        # a vehicle that gave up did so after it came, never after it crossed, and started no later stage
        gone = ~np.isnan(rec.left)
        assert not np.any(gone & ~np.isnan(rec.depart))
        assert np.all(rec.left[gone] >= np.maximum(f.arrival[gone], 0.0))
        if f.deadline is not None:
            assert np.all(rec.left[gone] >= f.deadline[gone] - 1e-9)
        else:
            assert not gone.any()

        joins = f.arrival if f.available is None else f.available  # a class turned away joins later
        ready = np.column_stack([joins, rec.end[:, :-1]])
        started = ~np.isnan(rec.start)
        _check_refusals(raw, f, rec, start)
        # a stage starts only after the previous one ended: all waits >= 0; services take their time
        assert np.all(rec.start[started] >= ready[started] - 1e-9)
        ended = ~np.isnan(rec.end)
        took = f.service.copy()
        for k, factor in enumerate(f.service_factor):  # service times that change by date
            if factor is not None:
                day = np.floor((np.nan_to_num(rec.start[:, k]) + 1e-9) / 24).astype(int)
                took[:, k] *= factor[f.vclass, np.minimum(day, factor.shape[1] - 1)]
        assert np.allclose(rec.end[ended] - rec.start[ended], took[ended])
        # a vehicle cannot start a stage it has not reached
        assert not np.any(started & np.isnan(ready))

        random_closed = []
        for model_rc in model.gates[f.gate].random_closures:
            random_closed += draw_random_closures(model_rc.daily_probability, model_rc.duration_h,
                                                  model.horizon.days,
                                                  stream(rep_seq, f"closures/{f.gate}/{model_rc.id}"))
        for k, name in enumerate(f.stage_names):
            s = rec.start[:, k]
            ok = ~np.isnan(s)
            # no service starts outside opening hours or inside a closure
            for t in s[ok]:
                assert _open_naive(raw, f.gate, start, t, f.direction, random_closed), (name, t)
            if f.lane_calendars[k] is not None:  # lanes by date: lane j only while the stage has more than j
                by_day = _lanes_by_day(raw, f.gate, f.direction, model, name)
                lane = rec.lane[:, k]
                for t, j in zip(s[ok], lane[ok]):
                    assert 0 <= j < by_day[int((t + 1e-9) // 24)], (name, t, j)
                for j in np.unique(lane[ok]):  # one vehicle at a time on a lane
                    mine = ok & (lane == j)
                    o = np.argsort(s[mine])
                    e = np.where(np.isnan(rec.end[mine, k]), np.inf, rec.end[mine, k])[o]
                    assert np.all(s[mine][o][1:] >= e[:-1] - 1e-9)
            # FCFS within a class: among vehicles of equal priority, earlier-ready starts no later
            r = ready[:, k]
            quit_here = np.isnan(s) & ~np.isnan(r) & ~np.isnan(rec.left)  # gave up waiting for this stage
            for p in np.unique(f.priority):
                sel = (f.priority == p) & ~np.isnan(r) & ~quit_here
                ss = np.where(np.isnan(s[sel]), np.inf, s[sel])  # never started: last
                order = np.lexsort((ss, r[sel]))  # by ready time; ties may start in any order
                ss = ss[order]
                assert np.all(ss[1:] >= ss[:-1] - 1e-9), f"FCFS broken at stage {name}"
                # one that gave up was ahead of every later one of its priority until it left
                for i in np.flatnonzero(quit_here & (f.priority == p)):
                    later = (f.priority == p) & ok & (r > r[i])
                    assert np.all(s[later] >= rec.left[i] - 1e-9), f"overtaken before giving up at {name}"
            # never more vehicles in service than lanes
            if f.lanes[k] is not None:
                e = np.where(np.isnan(rec.end[:, k]), np.inf, rec.end[:, k])
                t = np.concatenate([s[ok], e[ok]])
                dlt = np.concatenate([np.ones(ok.sum()), -np.ones(ok.sum())])
                o = np.lexsort((dlt, t))
                assert np.max(np.cumsum(dlt[o]), initial=0) <= f.lanes[k]
            # no day clears more vehicles than its acceptance limit
            if k == f.acceptance:
                per_day = np.bincount((s[ok] // 24).astype(int))
                assert np.all(per_day <= f.quota[k][:per_day.size])
                if k == len(f.stage_names) - 1:
                    d = rec.depart[~np.isnan(rec.depart)]
                    crossed = np.bincount((d // 24).astype(int))
                    assert np.all(crossed <= f.quota[k][:crossed.size])
        _check_where_the_waiting_happens(rec, result, rep)
    # totals add up over the gates and directions
    assert metric(result, "all", "all", "arrivals") == sum(r.inputs.n for r in records)
    # the statistics against a brute force over the per-vehicle records
    H, warm = rep.horizon_h, rep.warmup_h
    for g, d, recs in [(r.inputs.gate, r.inputs.direction, [r]) for r in records] + [("all", "all", records)]:
        assert metric(result, g, d, "queue_max") == _brute_queue_max(recs, H)
        # waiting vehicle-hours after the warm-up, everyone counted (crossed, gave up, still waiting)
        area = brute_queue_area(recs, warm, H, H)
        assert np.isclose(metric(result, g, d, "queue_mean"), area / (H - warm), rtol=1e-9, atol=1e-9)
        assert np.isclose(metric(result, g, d, "waiting_truck_hours"), area, rtol=1e-9, atol=1e-7)
        waits = np.concatenate([_steady_waits(r, warm) for r in recs])
        if waits.size:
            assert np.isclose(metric(result, g, d, "wait_mean_h"), waits.mean())
            exact = np.quantile(waits, 0.95)
            assert abs(metric(result, g, d, "wait_p95_h") - exact) <= 0.0047 * exact + 1e-4


def _check_refusals(raw: dict, f, rec, start: dt.date) -> None:
    """No vehicle of a class turned away by date starts its first stage before the refusal it
    came in ends; every vehicle's wait counts from its arrival (before 0 for a backlog with a
    history), read from the scenario dict."""
    t0 = dt.datetime.combine(start, dt.time())
    for a in raw.get("adjust", []):
        if a["what"] != "refuse" or f.gate not in a["gates"]:
            continue
        lo = (dt.datetime.combine(a["from"], dt.time()) - t0).total_seconds() / 3600
        hi = (dt.datetime.combine(a["until"], dt.time()) - t0).total_seconds() / 3600 + 24
        for c in a["classes"]:
            turned = (f.vclass == f.classes.index(c)) & (f.arrival < hi) & ((f.arrival >= lo) | (lo <= 0))
            s0 = rec.start[turned, 0]
            assert np.all(np.isnan(s0) | (s0 >= hi - 1e-9)), (c, lo, hi)


def _lanes_by_day(raw: dict, gid: str, direction: str, model, stage: str) -> np.ndarray:
    """A stage's lanes on each day: the model's, changed by the scenario dict's dated lane
    adjustments that hold that day."""
    days = model.horizon.days
    start = model.horizon.start
    lanes = {st.name: st.lanes for st in model.gates[gid].spec(direction).stages}
    out = np.full(days, lanes[stage])
    for d in range(days):
        for a in _adjustments(raw, gid, "lanes", start + dt.timedelta(days=d)):
            out[d] = a["set"]
    return out


def _check_where_the_waiting_happens(rec, result, rep) -> None:
    """Per-stage and per-class waits, the share held by the daily limit and the utilisation of
    each stage, against the per-vehicle record."""
    f, H = rec.inputs, rep.horizon_h
    ok = ~np.isnan(rec.depart) & ((f.arrival >= rep.warmup_h) | (rep.warmup_h <= 0))
    if not ok.any():
        return
    ready = np.column_stack([f.arrival, rec.end[:, :-1]])
    waits = (rec.start - ready)[ok]
    for k, name in enumerate(f.stage_names):
        assert np.isclose(metric(result, f.gate, f.direction, "wait_mean_h", stage=name), waits[:, k].mean())
    for c, cls in enumerate(f.classes):
        sel = ok & (f.vclass == c)
        got = metric(result, f.gate, f.direction, "wait_mean_h", vclass=cls)
        if sel.any():
            assert np.isclose(got, (rec.start - ready)[sel].sum(axis=1).mean())
        else:
            assert np.isnan(got)
    if f.acceptance >= 0:
        k = f.acceptance
        s = rec.start[:, k]
        day = lambda t: np.floor((t + 1e-9) / 24).astype(int)  # noqa: E731
        passed = np.bincount(day(s[s < H]), minlength=rep.model.horizon.days)
        full = set(np.flatnonzero(passed >= f.quota[k][:passed.size]))
        held = [any(d in full for d in range(max(day(r), 0), day(t))) for r, t in zip(ready[ok, k], s[ok])]
        assert np.isclose(metric(result, f.gate, f.direction, "held_by_limit_share"), np.mean(held))
    for k, name in enumerate(f.stage_names):
        if k == f.acceptance:
            continue
        cals = f.lane_calendars[k] or [f.calendar] * f.lanes[k]  # each lane's calendar
        busy = 0.0
        for t0, t1, j in zip(rec.start[:, k], rec.end[:, k], rec.lane[:, k]):
            if t0 < H:
                cal = cals[max(j, 0)]
                t1 = H if np.isnan(t1) else t1
                i = np.searchsorted(cal.ends, t0, side="right")  # the open interval the service starts in
                busy += min(t1, cal.ends[i]) - t0
        util = metric(result, f.gate, f.direction, "utilisation", stage=name)
        assert util <= 1.0 + 1e-12
        assert np.isclose(util, busy / sum(c.open_hours() for c in cals))


def queue_events(records, horizon_h) -> tuple[np.ndarray, np.ndarray]:
    """Every queue event of the flows' per-vehicle records within the horizon, in time order:
    (time, +1 joins a queue / -1 leaves it)."""
    t, dl = [], []
    for r in records:
        f = r.inputs
        # a backlog waits from 0; one that gives up leaves the queue then
        t += [np.maximum(f.arrival, 0.0), r.start.ravel(), r.end[:, :-1].ravel(), r.left]
        dl += [np.ones(f.n), -np.ones(r.start.size), np.ones(r.end[:, :-1].size), -np.ones(r.left.size)]
    t, dl = np.concatenate(t), np.concatenate(dl)
    ok = t < horizon_h
    o = np.argsort(t[ok], kind="stable")
    return t[ok][o], dl[ok][o]


def brute_queue_area(records, lo: float, hi: float, horizon_h: float) -> float:
    """Vehicle-hours waiting between lo and hi: the number waiting, a step function of the
    sorted events, integrated."""
    t, dl = queue_events(records, horizon_h)
    level = np.cumsum(dl)  # from t[i] to t[i + 1]
    ends = np.r_[t[1:], horizon_h]
    return float(np.sum(level * np.clip(np.minimum(ends, hi) - np.maximum(t, lo), 0.0, None)))


def _brute_queue_max(records, horizon_h) -> float:
    """Most vehicles waiting at once (after all events of an instant), by sorting every event."""
    t, dl = queue_events(records, horizon_h)
    if t.size == 0:  # no vehicle at all: nothing ever waits
        return 0.0
    last = np.r_[t[1:] != t[:-1], True]
    return float(max(0.0, np.cumsum(dl)[last].max(initial=0.0)))


def _steady_waits(rec, warmup_h) -> np.ndarray:
    f = rec.inputs
    ok = ~np.isnan(rec.depart) & ((f.arrival >= warmup_h) | (warmup_h <= 0))  # no warm-up: the history counts
    return (rec.depart - f.arrival - np.sum(rec.end - rec.start, axis=1))[ok]


def test_priority_class_overtakes_a_backlog():
    """A green-lane vehicle that arrives behind a backlog of trucks is served before them."""
    raw = {
        "name": "priority",
        "horizon": {"start": "2022-01-03", "end": "2022-01-03"},
        "classes": {"green": {"priority": 0}, "truck": {"priority": 1}},
        "gates": {"g": {
            "name": "g", "classes": ["green", "truck"], "hours": {"default": ["00:00-24:00"]},
            "exit": {
                "demand": {"green": 2.0},
                "initial_backlog": {"truck": 30},
                "stages": [{"name": "s", "lanes": 1, "service_min": {"dist": "deterministic", "value": 30.0}}],
            },
        }},
    }
    _, records, _ = run_one(from_dict(raw), seed=3)
    f, rec = records[0].inputs, records[0]
    green = f.vclass == f.classes.index("green")
    assert green.any()
    for i in np.flatnonzero(green):
        # it waits at most for the service under way and for earlier green vehicles
        ahead = np.sum(green & (f.arrival < f.arrival[i]))
        assert rec.start[i, 0] - f.arrival[i] <= 0.5 * (ahead + 1) + 1e-9
