"""Adjustments: a planner's change in a few lines, and the schedules of changes by date.

``[[adjust]]`` entries multiply or set service times, lanes, opening hours, the far side's
daily limit or demand for chosen gates, directions, stages and classes. One without dates is
applied to the scenario's values before they are validated (so the validated model, the
capacity check and every report see the adjusted values). One with ``from`` / ``until`` holds
on those days only and becomes a schedule the engines follow: a daily limit per day, a number
of lanes per day (each lane then has its own calendar), opening hours per day, a service-time
factor per class and day, or a demand step.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import numpy as np

from ..base.days import inclusive_span
from ..base.errors import ScenarioError
from .ranges import parse_assignment
from .schema import DIRECTIONS, Adjustment, Horizon, ScenarioModel, _check_hours

_LOCATION_KEYS = ("mean", "value", "low", "mode", "high")  # a distribution's scale, in the key's unit


def check_references(adjs: list[Adjustment], data: dict, file: str) -> None:
    """Every gate, direction, stage and class an adjustment names exists, and each adjustment
    matches something (one that changes nothing is a mistake: a misspelt name, say)."""
    gates = data.get("gates") or {}
    classes = set(data.get("classes") or {})
    for a in adjs:
        where = f"adjust.{a.id}"
        for g in a.gates or []:
            if g not in gates:
                raise ScenarioError(file, f"{where}.gates", f"unknown gate '{g}' (gates: {', '.join(gates)})")
        for c in a.classes or []:
            if c not in classes:
                raise ScenarioError(file, f"{where}.classes", f"unknown class '{c}' (classes: {', '.join(classes)})")
        if a.until is not None and a.from_ is not None and a.until < a.from_:
            raise ScenarioError(file, f"{where}.until", f"{a.until} is before 'from' {a.from_}")
        if a.what == "hours":
            if a.directions is not None:
                raise ScenarioError(file, f"{where}.directions", "opening hours belong to a gate, not to a direction")
            for key, spec in a.set.items():
                _check_hours(file, f"{where}.set.{key}", spec)
        if a.stages is not None:
            known = {s.get("name") for _g, _d, spec in _flows(a, gates) for s in spec.get("stages", [])}
            for s in a.stages:
                if s not in known:
                    raise ScenarioError(file, f"{where}.stages", f"no stage '{s}' at the gates and directions it "
                                                                 f"names (stages: {', '.join(sorted(known))})")
        if not list(_targets(a, gates)):
            raise ScenarioError(file, where, f"matches no {_what_it_needs(a)}; check its gates, directions, "
                                             "stages and classes")
        if a.dated and a.what == "acceptance_limit":
            for g, d, spec in _flows(a, gates):
                if spec.get("acceptance_limit") is None:
                    raise ScenarioError(file, where, f"gates.{g}.{d} has no acceptance_limit to change from a date; "
                                                     "give it one (or add 'gates'/'directions' filters)")


def _what_it_needs(a: Adjustment) -> str:
    return {"service": "stage", "lanes": "stage", "hours": "gate", "acceptance_limit": "gate direction",
            "demand": "class demand", "refuse": "class handled by a gate"}[a.what]


def _flows(a: Adjustment, gates: dict):
    for g, gate in gates.items():
        for d in DIRECTIONS:
            spec = gate.get(d)
            if isinstance(spec, dict) and a.applies(g, d):
                yield g, d, spec


def _targets(a: Adjustment, gates: dict):
    """What an adjustment changes, in the model-form tree: (gate, direction, stage or class)."""
    if a.what == "hours":
        yield from ((g, None, None) for g in gates if a.applies(g))
        return
    if a.what == "refuse":
        for g, d, _spec in _flows(a, gates):
            yield from ((g, d, c) for c in gates[g].get("classes", []) if a.applies(g, d, vclass=c))
        return
    for g, d, spec in _flows(a, gates):
        if a.what in ("service", "lanes"):
            for st in spec.get("stages", []):
                if a.applies(g, d, st.get("name")):
                    yield g, d, st
        elif a.what == "acceptance_limit":
            if a.set is not None or spec.get("acceptance_limit") is not None:
                yield g, d, None
        else:  # demand
            gate_classes = gates[g].get("classes", [])
            for c in gate_classes:
                if a.applies(g, d, vclass=c) and (a.set is not None or c in spec.get("demand", {})):
                    yield g, d, c


def apply_static(data: dict, adjs: list[Adjustment], fresh: bool = False) -> dict:
    """The model-form tree with the adjustments that hold all horizon applied, in order (a
    copy, data is not changed; or, with ``fresh``, in place: a tree the caller has just built
    for this, such as sim.model.ranges.model_form's, whose containers nothing else holds)."""
    static = [a for a in adjs if not a.dated]
    if not static:
        return data
    if not fresh:
        data = copy.deepcopy(data)
    gates = data["gates"]
    for a in static:
        for g, d, target in list(_targets(a, gates)):
            if a.what == "hours":
                gates[g]["hours"] = {k: list(v) for k, v in a.set.items()}
            elif a.what == "lanes":
                target["lanes"] = a.set if a.set is not None else at_least(1, round(target["lanes"] * a.multiply))
            elif a.what == "service":
                _adjust_service(target, a, gates[g].get("classes", []))
            elif a.what == "acceptance_limit":
                spec = gates[g][d]
                old = spec.get("acceptance_limit")
                spec["acceptance_limit"] = a.set if a.set is not None else at_least(1, round(old * a.multiply))
            else:
                demand = gates[g][d].setdefault("demand", {})
                demand[target] = a.set if a.set is not None else demand[target] * a.multiply
    return data


def at_least(low: int, value):
    """max(low, value); a value traced by sim.model.plan (a Slot) records the step instead, so that the
    plan replays this arithmetic, in this order, for each replication's values."""
    traced = getattr(value, "at_least", None)
    return traced(low) if traced is not None else max(low, value)


def _adjust_service(stage: dict, a: Adjustment, gate_classes: list[str]) -> None:
    """Scale or set a stage's service time, for every class or for the adjustment's classes
    (those then get a distribution of their own)."""
    def changed(dist: Any) -> Any:
        if a.set is not None:
            return a.set.model_dump(exclude_none=True)
        out = dict(dist if isinstance(dist, dict) else dist.model_dump(exclude_none=True))
        for k in _LOCATION_KEYS:
            if k in out:
                out[k] = out[k] * a.multiply
        return out

    by_class = stage.setdefault("service_min_by_class", {})
    if a.classes is None:
        stage["service_min"] = changed(stage["service_min"])
        for c in list(by_class):
            by_class[c] = changed(by_class[c])
    else:
        for c in a.classes:
            if c in gate_classes:
                by_class[c] = changed(by_class.get(c, stage["service_min"]))


# ------------------------------------------------------------------ schedules by date


def day_span(a: Adjustment, horizon: Horizon) -> tuple[int, int]:
    """The days [first, last + 1) of the horizon an adjustment holds on (first == last: none)."""
    return inclusive_span(a.from_, a.until, horizon.start, horizon.days)


# A dated change as the schedules below read it: its days [first, last + 1) of the horizon, the
# value it sets (or None) and the factor it multiplies by (or None). The plan (sim.model.plan) gives
# a replication's values; the model's own adjustments give the nominal ones (dated_changes).
Change = tuple[tuple[int, int], Any, Any]


def dated_changes(model: ScenarioModel, what: str, *applies_to) -> list[Change]:
    """The dated adjustments of one kind that apply to a gate (direction, stage), in order."""
    return [(day_span(a, model.horizon), a.set, a.multiply) for a in model.dated(what) if a.applies(*applies_to)]


def _scaled(values: np.ndarray, set_: Any, multiply: Any, lo: int) -> np.ndarray:
    return np.full(values.shape, set_) if set_ is not None else np.maximum(lo, np.rint(values * multiply))


def quota_schedule(limit: int, changes: list[Change], days: int) -> np.ndarray:
    """The far side's daily limit on each day (and one day more, for a start a rounding error
    before the horizon's end), from its limit and the dated changes to it, in order."""
    out = np.full(days + 1, limit, np.int64)
    for (d0, d1), set_, multiply in changes:
        if d0 < d1:
            out[d0:d1] = _scaled(out[d0:d1], set_, multiply, 0)
    out[days] = out[days - 1]
    return out


def lanes_schedule(lanes: int, changes: list[Change], days: int) -> np.ndarray | None:
    """A stage's lanes on each day, or None when it keeps its lanes all horizon."""
    if not changes:
        return None
    out = np.full(days, lanes, np.int64)
    for (d0, d1), set_, multiply in changes:
        if d0 < d1:
            out[d0:d1] = _scaled(out[d0:d1], set_, multiply, 0)
    return None if np.all(out == lanes) else out


def factor_schedule(n_classes: int, changes: list[tuple[Change, tuple[bool, ...]]], days: int) -> np.ndarray | None:
    """A stage's service-time factor per class (rows) and day (and one day more), or None when
    its service times do not change by date; changes: each with the classes it applies to."""
    if not changes:
        return None
    out = np.ones((n_classes, days + 1))
    for ((d0, d1), _set, multiply), classes in changes:
        for c in range(n_classes):
            if classes[c] and d0 < d1:
                out[c, d0:d1] *= multiply
    out[:, days] = out[:, days - 1]
    return out


def quota_by_day(model: ScenarioModel, gate: str, direction: str, limit: int) -> np.ndarray:
    """quota_schedule with the model's own dated changes."""
    return quota_schedule(limit, dated_changes(model, "acceptance_limit", gate, direction), model.horizon.days)


def lanes_by_day(model: ScenarioModel, gate: str, direction: str, stage: str, lanes: int) -> np.ndarray | None:
    """lanes_schedule with the model's own dated changes."""
    return lanes_schedule(lanes, dated_changes(model, "lanes", gate, direction, stage), model.horizon.days)


def service_factors(model: ScenarioModel, gate: str, direction: str, stage: str,
                    classes: list[str]) -> np.ndarray | None:
    """factor_schedule with the model's own dated changes."""
    changes = [((day_span(a, model.horizon), a.set, a.multiply), tuple(a.applies(gate, direction, stage, c)
                                                                         for c in classes))
               for a in model.dated("service") if a.applies(gate, direction, stage)]
    return factor_schedule(len(classes), changes, model.horizon.days)


def hour_overrides(model: ScenarioModel, gate: str) -> tuple:
    """Opening hours that hold on some days: ((first day, last day + 1, hours), ...), in order."""
    out = []
    for a in model.dated("hours"):
        if a.applies(gate):
            d0, d1 = day_span(a, model.horizon)
            if d0 < d1:
                out.append((d0, d1, tuple((k, tuple(v)) for k, v in sorted(a.set.items()))))
    return tuple(out)


def refusals(model: ScenarioModel, gate: str, direction: str, vclass: str) -> list[tuple[float, float]]:
    """The periods (hours from the start, [from, to)) in which a class is turned away."""
    out = []
    for a in model.dated("refuse"):
        if a.applies(gate, direction, vclass=vclass):
            d0, d1 = day_span(a, model.horizon)
            if d0 < d1:
                out.append((24.0 * d0, 24.0 * d1))
    return out


def demand_steps(model: ScenarioModel) -> list[tuple[dt.date, dt.date | None, float, Any, Any, Any]]:
    """Every demand step (from, until, factor, gates, directions, classes): the scenario's own
    and its demand adjustments (those from a date as steps; the others are in the demand)."""
    steps = [(s.from_, s.until, s.factor, s.gates, s.directions, s.classes) for s in model.demand_steps]
    for a in model.dated("demand"):
        steps.append((a.from_ or model.horizon.start, a.until, a.multiply, a.gates, a.directions, a.classes))
    return steps


# the input fields a dated adjustment may set for a period, by the adjustment's kind
_SET_BY = {"acceptance_limit": "acceptance_limit", "lanes": "lanes", "service_min": "service",
           "service_min_by_class": "service"}


def set_by_dated(model: ScenarioModel, path: tuple) -> list[Adjustment]:
    """The dated adjustments that set (not multiply) the quantity an input's path names (a
    flow's ``acceptance_limit``, a stage's ``lanes`` or service time) for part of the horizon:
    within their periods a value given at the path does not hold. The 2022 baseline sets its
    limits by period this way, so ``gates.km3_4.exit.acceptance_limit`` holds only on the days
    no period covers (at Km3+4, days it is closed anyway): a sweep or --set of it changes little
    or nothing, which a user should be told rather than find out."""
    path = tuple(path)
    if len(path) < 4 or path[0] != "gates" or path[2] not in DIRECTIONS:
        return []
    gate, direction = path[1], path[2]
    if path[3] == "acceptance_limit":
        what, stage = "acceptance_limit", None
    elif path[3] == "stages" and len(path) >= 6 and path[5] in _SET_BY:
        what, stage = _SET_BY[path[5]], path[4]
    else:
        return []
    return [a for a in model.dated(what) if a.set is not None and a.applies(gate, direction, stage)]


def override_warning(model: ScenarioModel, name: str, path: tuple) -> str | None:
    """One line for an input that dated adjustments replace for part of the horizon (None if none)."""
    found = set_by_dated(model, path)
    if not found:
        return None
    start, end = model.horizon.start, model.horizon.end
    periods = "; ".join(f"adjust.{a.id}.set, {a.from_ or start} to {a.until or end}" for a in found[:4])
    more = f"; and {len(found) - 4} more" if len(found) > 4 else ""
    return (f"{name}: dated adjustments set it for part of the horizon ({periods}{more}); the value given "
            f"holds only outside those periods (change those inputs for the periods they cover)")


def set_warnings(model: ScenarioModel, assignments: list[str]) -> list[str]:
    """override_warning for each ``--set`` (split as sim.model.scenario.set_layer splits it: sim.model.ranges.parse_assignment)."""
    out = []
    for text in assignments:
        a = parse_assignment(text)
        w = a and override_warning(model, f"--set {a.where}", a.keys)
        if w:
            out.append(w)
    return out
