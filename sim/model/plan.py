"""The plan of a scenario: everything its replications share, worked out once.

``compile_plan(scenario)`` (cached per process by the scenario's content) holds what depends
neither on the values an uncertain input takes nor on the seed: per flow its stage layout, the
stream names, the dated adjustments and demand steps that reach it with their day spans, the
refusal spans, the opening calendar before random closures, the statistics' layout; and the
**bindings**: where each uncertain input's value lands in the model and what arithmetic takes it
there. A replication is then a pure function of (plan, values, seed, index): ``Plan.inputs``.

Bindings are traced, not written twice. The scenario's tree is put together with a ``Slot`` in
place of each uncertain input, and run once through the same code that validates a scenario
(``sim.model.adjust.apply_static``, whose arithmetic a Slot records instead of doing); the recorded
steps form a small program that a replication runs on its own values, step for step as the
validating code would (so results stay the same to the bit), followed by the conversions the
schema makes (a sampled count is rounded) and the schema's numeric bounds. Everything else was
validated at load: every ensemble row, both ends of every range (``sim.model.scenario.from_dict``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from .adjust import apply_static, day_span
from .calendar import fixed_calendar
from .distributions import Duration
from ..base.errors import ScenarioError
from .ranges import ACCEPTANCE, Keyed, Sampled, draw_inputs, model_form, path_str, placed
from ..base.days import step_days
from ..base.rng import stream
from .schema import COST_FIELDS, NO_COST, Bounds, ScenarioModel, _round_sampled, leaf_bounds

# --------------------------------------------------------------------- tracing


class Slot:
    """A number that depends on the uncertain inputs: a place in a replication's values, and
    the program that computes it. Only the arithmetic the validating code does may touch it."""

    __slots__ = ("program", "index")

    def __init__(self, program: "Program", index: int):
        self.program = program
        self.index = index

    def __mul__(self, other):
        return self.program.emit("mul", self, other)

    def __rmul__(self, other):
        return self.program.emit("mul", other, self)

    def __round__(self, ndigits=None):
        if ndigits is not None:
            raise TypeError("a traced input is rounded to a whole number only")
        return self.program.emit("round", self)

    def at_least(self, low):
        """max(low, self), as sim.model.adjust.at_least asks for it."""
        return self.program.emit("at_least", self, low)

    def __deepcopy__(self, memo):
        return self

    def _refuse(self, *_args):
        raise TypeError("an uncertain input reached arithmetic the plan does not trace; trace it in sim.model.plan")

    __add__ = __radd__ = __sub__ = __rsub__ = __truediv__ = __rtruediv__ = __neg__ = _refuse
    __lt__ = __le__ = __gt__ = __ge__ = __float__ = __int__ = __bool__ = _refuse


def _operand(x) -> tuple[bool, Any]:
    return (True, x.index) if isinstance(x, Slot) else (False, x)


class Program:
    """The steps that take a replication's input values to the numbers they reach."""

    def __init__(self):
        self.n = 0
        self.inputs: dict[str, int] = {}  # an uncertain input's name -> its slot
        self.steps: list[tuple] = []  # (kind, out, operand, operand)

    def _slot(self) -> Slot:
        self.n += 1
        return Slot(self, self.n - 1)

    def input(self, name: str) -> Slot:
        slot = self._slot()
        self.inputs[name] = slot.index
        return slot

    def emit(self, kind: str, a, b=None) -> Slot:
        out = self._slot()
        self.steps.append((kind, out.index, _operand(a), _operand(b)))
        return out

    def run(self, values: Mapping[str, float]) -> list:
        """Every slot's value for these input values (by name), as the validating code computes
        them: an input is substituted as a Sampled value (sim.model.ranges.substitute), and each
        step is the Python arithmetic it replaces."""
        v: list = [None] * self.n
        for name, i in self.inputs.items():
            v[i] = Sampled(values[name])
        for kind, out, (a_slot, a), (b_slot, b) in self.steps:
            x = v[a] if a_slot else a
            y = v[b] if b_slot else b
            if kind == "mul":
                v[out] = x * y
            elif kind == "round":
                v[out] = round(x)
            elif kind == "at_least":
                v[out] = max(y, x)
            else:  # "count": a count field's conversion of a sampled value (sim.model.schema.Count)
                v[out] = _round_sampled(x)
        return v


class _TracedDist:
    """A distribution an adjustment sets, with traced numbers: sim.model.adjust reads it by model_dump."""

    def __init__(self, fields: dict):
        self.fields = fields

    def model_dump(self, exclude_none: bool = True) -> dict:
        return {k: v for k, v in self.fields.items() if not (exclude_none and v is None)}


def _traced_raw(raw: dict, slots: dict[tuple, Slot]) -> dict:
    """raw with a Slot at each uncertain input's path (the containers on the way copied)."""
    return placed(raw, slots)


def _traced_adjustments(nominal: ScenarioModel, data: dict, program: Program) -> list:
    """The validated adjustments with each traced number in place of its nominal value (a
    count the schema rounds, rounded by a step); set distributions with traced fields."""
    out = []
    for a, raw in zip(nominal.adjust, data.get("adjust", [])):
        update = {}
        if isinstance(raw.get("multiply"), Slot):
            update["multiply"] = raw["multiply"]
        value = raw.get("set")
        if isinstance(value, Slot):
            update["set"] = program.emit("count", value) if isinstance(a.set, int) else value
        elif isinstance(value, dict) and any(isinstance(v, Slot) for v in value.values()):
            update["set"] = _TracedDist({**a.set.model_dump(exclude_none=True),
                                         **{k: v for k, v in value.items() if isinstance(v, Slot)}})
        out.append(a.model_copy(update=update) if update else a)
    return out


# --------------------------------------------------------------------- references


@dataclass(frozen=True)
class Ref:
    """A number of the model in a replication: a constant, or a slot of the program."""

    value: Any = None
    slot: int = -1

    @property
    def varies(self) -> bool:
        return self.slot >= 0

    def of(self, v: list) -> Any:
        return v[self.slot] if self.slot >= 0 else self.value


@dataclass(frozen=True)
class DistRef:
    """A duration distribution in a replication: the validated nominal one, or one whose
    traced numbers are filled in and validated each replication (the rules between its
    numbers, low < high say, can fail for values inside each one's range)."""

    nominal: Any
    fields: tuple[tuple[str, Ref], ...] = ()
    where: str = ""
    file: str = ""

    @property
    def varies(self) -> bool:
        return any(r.varies for _k, r in self.fields)

    def of(self, v: list):
        if not self.varies:
            return self.nominal
        try:
            return _DURATION.validate_python({k: r.of(v) for k, r in self.fields})
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise ScenarioError(self.file, self.where, f"{err['msg']} (for this replication's inputs)") from None


_DURATION = TypeAdapter(Duration)


# --------------------------------------------------------------------- the plan


DEFAULT_ACCEPTANCE_POSITION = {"exit": "last", "entry": "first"}


def stage_layout(spec, direction: str) -> tuple[list[str], int]:
    """A flow's stage names in order, the far side's acceptance step included where it sits,
    and that step's column (-1: the flow has no daily limit)."""
    names = [s.name for s in spec.stages]
    if spec.acceptance_limit is None:
        return names, -1
    pos = spec.acceptance_position or DEFAULT_ACCEPTANCE_POSITION[direction]
    acc_k = 0 if pos == "first" else len(names)
    names.insert(acc_k, ACCEPTANCE)
    return names, acc_k



@dataclass(frozen=True)
class DatedRef:
    """A dated adjustment as a schedule needs it: its days and what it sets or multiplies by."""

    index: int  # its place among the scenario's adjustments
    days: tuple[int, int]  # [first, last + 1) of the horizon (first >= last: none)
    set: Ref | None
    multiply: Ref | None


@dataclass(frozen=True)
class StagePlan:
    name: str
    lanes: Ref
    service: tuple[DistRef, ...]  # per class of the flow
    lanes_dated: tuple[DatedRef, ...]  # lanes set or multiplied from a date
    service_dated: tuple[tuple[DatedRef, tuple[bool, ...]], ...]  # service x a factor from a date, by class

    @property
    def factors_vary(self) -> bool:
        return any(r.multiply is not None and r.multiply.varies for r, _c in self.service_dated)


@dataclass(frozen=True)
class FlowPlan:
    """One gate and direction: its structure, and references for its numbers."""

    gate: str
    direction: str
    classes: tuple[str, ...]
    stage_names: tuple[str, ...]  # the acceptance step in its place
    acceptance: int  # its column, -1: none
    stages: tuple[StagePlan, ...]  # the stages with lanes, in order
    demand: tuple[Ref | None, ...]  # per class: vehicles a day (None: none)
    backlog: tuple[Ref | None, ...]  # per class: vehicles queued at the start
    backlog_age: DistRef | None
    limit: Ref | None
    limit_dated: tuple[DatedRef, ...]
    steps: tuple[tuple[tuple[tuple, Ref], ...], ...]  # per class: ((from, until), factor) of each demand step
    step_days: tuple[np.ndarray, ...]  # per class: each step's days [lo, hi) (sim.base.days.step_days)
    profile: tuple[tuple[Ref, ...], tuple[Ref, ...], tuple[Ref, ...]]  # weekday, monthly, hourly
    start: Any  # the horizon's first day
    refusals: tuple[tuple[tuple[float, float], ...], ...]  # per class: [from, to) hours turned away
    patience: tuple[tuple[Ref, Ref] | None, ...]  # per class: (mean days, cv) where it gives up
    closures: tuple[int, ...]  # the gate's random closures that close this direction
    fixed: np.ndarray  # opening intervals (with dated hours) less fixed closures: (n, 2), read-only
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # what does not vary, once worked out

    @property
    def quota_varies(self) -> bool:
        return (self.limit is not None and self.limit.varies) or any(
            (r.set is not None and r.set.varies) or (r.multiply is not None and r.multiply.varies)
            for r in self.limit_dated)

    def cached(self, key: tuple, varies: bool, make):
        """make(), worked out once (read-only) where nothing in it varies between replications."""
        if varies:
            return make()
        if key not in self.cache:
            out = make()
            if out is not None:
                out.setflags(write=False)
            self.cache[key] = out
        return self.cache[key]


@dataclass(frozen=True)
class ClosurePlan:
    id: str
    daily_probability: Ref
    duration_h: DistRef


@dataclass(frozen=True)
class GatePlan:
    gate: str
    closures: tuple[ClosurePlan, ...]
    flows: tuple[FlowPlan, ...]


@dataclass(frozen=True)
class CorridorPlan:
    """One direction of a corridor (sim.model.corridors): its rule, the share of its demand that
    leaves the province, its gates' flows and the classes they handle; under 'wait', the
    logit's numbers (sim.engines.corridor)."""

    corridor: str
    direction: str
    rule: str
    outside_share: Ref
    none_open: str  # under 'open', on a day no gate serves: "queue" or "leave"
    flows: tuple[int, ...]  # the positions in Plan.flows of its gates' flows in this direction
    classes: tuple[str, ...]  # the classes they handle, in the scenario's order
    sensitivity: Ref | None = None  # under 'wait': per hour of expected wait (inf: the lowest cost)
    detour_h: tuple[Ref, ...] = ()  # under 'wait': each gate's detour, in the order of flows
    outside_detour_h: Ref | None = None  # under 'wait': the detour out of the province (inf: none)
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # its split where nothing in it varies

    @property
    def moves(self) -> bool:
        """Whether it may move any demand; if not, each gate keeps its own, bit for bit."""
        return self.rule != "shares" or self.outside_share.varies or self.outside_share.value > 0


@dataclass(frozen=True)
class Plan:
    """What every replication of a scenario shares (see the module docstring)."""

    key: str
    path: str  # the scenario's file, for error messages
    model: ScenarioModel  # the nominal model: the scenario's structure
    ranges: tuple  # its uncertain inputs (sim.model.ranges.Range), drawn each replication ...
    rows: list = field(repr=False)  # ... but those its ensemble's row gives (the rows, by input name)
    program: Program = field(repr=False)
    priority: tuple[Ref, ...]  # per class of the scenario
    warmup_days: Ref
    gates: tuple[GatePlan, ...]
    checks: tuple[tuple[int, Bounds, str], ...] = field(repr=False)  # (slot, bounds, field) of each traced number
    corridors: tuple[CorridorPlan, ...] = ()  # each corridor's directions
    # per class of the scenario, its cost inputs in the order of COST_FIELDS (an input left out:
    # NO_COST's); () where the scenario has no costs
    costs: tuple[tuple[Ref, ...], ...] = ()
    compile_s: float = field(default=0.0, compare=False)  # the CPU seconds compiling it took (what --timings shows)

    @property
    def flows(self) -> list[FlowPlan]:
        return [f for g in self.gates for f in g.flows]

    def draw(self, rep_seq: np.random.SeedSequence, fixed: Mapping[str, float] | None = None) -> dict[str, float]:
        """Each uncertain input's value in the replication of this seed sequence (sim.model.ranges.draw_inputs)."""
        return draw_inputs(self.ranges, self.rows, lambda name: stream(rep_seq, name), fixed, self.path)

    def values(self, inputs: Mapping[str, float]) -> list:
        """The numbers of one replication's model: the program run on its input values, each
        traced number within the schema's bounds (an error naming the field otherwise)."""
        v = self.program.run(inputs)
        for slot, bounds, where in self.checks:
            x = v[slot]
            if not bounds.holds(x):
                raise ScenarioError(self.path, where, f"{bounds.text()} (got {x!r} for this replication's inputs)")
        return v


def content_key(scenario) -> str:
    """A hash of everything a plan is built from: the merged tree, its ranges, the ensemble's
    rows and the file it is named by (for messages)."""
    h = hashlib.sha256(json.dumps(_plain(scenario.raw), sort_keys=True, default=str).encode())
    h.update(repr([(r.path, r.kind, r.values) for r in scenario.ranges]).encode())
    h.update(repr(scenario.path).encode())
    if scenario.ensemble is not None:
        h.update(repr(list(scenario.ensemble.columns)).encode())
        h.update(np.ascontiguousarray(scenario.ensemble.to_numpy(dtype=float)).tobytes())
    return h.hexdigest()


def _plain(node: Any) -> Any:
    if isinstance(node, Keyed):
        return {"__keyed__": [[k, _plain(v)] for k, v in node.items()]}
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


_CACHE: dict[str, Plan] = {}
_CACHE_SIZE = 32


def compile_plan(scenario) -> Plan:
    """The plan of a scenario (sim.model.scenario.Scenario), built once per process and content."""
    key = content_key(scenario)
    plan = _CACHE.get(key)
    if plan is None:
        start = time.process_time()
        plan = dataclasses.replace(_compile(scenario, key), compile_s=time.process_time() - start)
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = plan
    return plan


def _compile(scenario, key: str) -> Plan:
    nominal = scenario.nominal
    program = Program()
    slots = {r.path: program.input(r.name()) for r in scenario.ranges}
    data = model_form(_traced_raw(scenario.raw, slots))
    adjs = _traced_adjustments(nominal, data, program)
    data = apply_static(data, adjs)
    checks: list[tuple[int, Bounds, str]] = []
    tracer = _Refs(program, data, checks, scenario.path)

    h = nominal.horizon
    priority = tuple(tracer.number(("classes", c, "priority"), cls.priority) for c, cls in nominal.classes.items())
    warmup = tracer.number(("horizon", "warmup_days"), h.warmup_days)
    dated = [(i, a) for i, a in enumerate(nominal.adjust) if a.dated]

    def dated_refs(what: str, applies) -> tuple[DatedRef, ...]:
        out = []
        for i, a in dated:
            if a.what == what and applies(a):
                out.append(DatedRef(i, day_span(a, h),
                                    tracer.number(("adjust", i, "set"), a.set) if a.set is not None else None,
                                    tracer.number(("adjust", i, "multiply"), a.multiply)
                                    if a.multiply is not None else None))
        return tuple(out)

    steps = [((s.from_, s.until), tracer.number(("demand_steps", j, "factor"), s.factor), s.gates, s.directions,
              s.classes) for j, s in enumerate(nominal.demand_steps)]
    steps += [((a.from_ or h.start, a.until), tracer.number(("adjust", i, "multiply"), a.multiply), a.gates,
               a.directions, a.classes) for i, a in dated if a.what == "demand"]

    from .adjust import hour_overrides, refusals

    gates = []
    for gid, gate in nominal.gates.items():
        gp = ("gates", gid)
        closures = tuple(
            ClosurePlan(rc.id, tracer.number(gp + ("random_closures", j, "daily_probability"), rc.daily_probability),
                        tracer.dist(gp + ("random_closures", j, "duration_h"), rc.duration_h))
            for j, rc in enumerate(gate.random_closures))
        hours = hour_overrides(nominal, gid)
        flows = []
        for d in gate.directions():
            spec = gate.spec(d)
            fp = gp + (d,)
            names, acc_k = stage_layout(spec, d)
            classes = tuple(gate.classes)
            stages = []
            for k, st in enumerate(spec.stages):
                sp = fp + ("stages", k)
                service = tuple(
                    tracer.dist(sp + ("service_min_by_class", c), st.service_min_by_class[c])
                    if c in st.service_min_by_class else tracer.dist(sp + ("service_min",), st.service_min)
                    for c in classes)
                factor_adjs = tuple(
                    (r, tuple(nominal.adjust[r.index].applies(gid, d, st.name, c) for c in classes))
                    for r in dated_refs("service", lambda a, st=st: a.applies(gid, d, st.name)))
                stages.append(StagePlan(st.name, tracer.number(sp + ("lanes",), st.lanes), service,
                                        dated_refs("lanes", lambda a, st=st: a.applies(gid, d, st.name)),
                                        factor_adjs))
            prof = gate.profile or nominal.profile
            pp = gp + ("profile",) if gate.profile is not None else ("profile",)
            profile = tuple(tuple(tracer.number(pp + (part, j), x) for j, x in enumerate(getattr(prof, part)))
                            for part in ("weekday", "monthly", "hourly"))
            flow_steps = tuple(
                tuple((span, factor) for span, factor, g_, d_, c_ in steps
                      if (g_ is None or gid in g_) and (d_ is None or d in d_) and (c_ is None or c in c_))
                for c in classes)
            patience = []
            for c in classes:
                cls = nominal.classes[c]
                if cls.patience_days is None or d not in cls.patience_directions:
                    patience.append(None)
                    continue
                cv = tracer.number(("classes", c, "patience_cv"), cls.patience_cv) if cls.patience_cv is not None \
                    else Ref(None)
                patience.append((tracer.number(("classes", c, "patience_days"), cls.patience_days), cv))
            flows.append(FlowPlan(
                gate=gid, direction=d, classes=classes, stage_names=tuple(names), acceptance=acc_k,
                stages=tuple(stages),
                demand=tuple(tracer.number(fp + ("demand", c), spec.demand[c]) if c in spec.demand else None
                             for c in classes),
                backlog=tuple(tracer.number(fp + ("initial_backlog", c), spec.initial_backlog[c])
                              if c in spec.initial_backlog else None for c in classes),
                backlog_age=(tracer.dist(fp + ("backlog_age_days",), spec.backlog_age_days)
                             if spec.backlog_age_days is not None else None),
                limit=(tracer.number(fp + ("acceptance_limit",), spec.acceptance_limit)
                       if spec.acceptance_limit is not None else None),
                limit_dated=dated_refs("acceptance_limit", lambda a: a.applies(gid, d)),
                steps=flow_steps, step_days=tuple(step_days(tuple(span for span, _f in cs), h.start, h.days)
                                                  for cs in flow_steps),
                profile=profile, start=h.start,
                refusals=tuple(tuple(refusals(nominal, gid, d, c)) for c in classes),
                patience=tuple(patience),
                closures=tuple(j for j, rc in enumerate(gate.random_closures) if d in rc.directions),
                fixed=fixed_calendar(gate, d, h, hours),
            ))
        gates.append(GatePlan(gid, closures, tuple(flows)))
    position = {(f.gate, f.direction): i for i, f in enumerate(f for g in gates for f in g.flows)}
    corridors = tuple(_corridor_plan(tracer, cid, c, d, nominal, position)
                      for cid, c in nominal.corridors.items() for d in c.directions(nominal))
    costs = tuple(
        tuple(tracer.number(("classes", c, "costs", f), v) if (v := getattr(cls.costs, f)) is not None
              else Ref(NO_COST[f]) for f in COST_FIELDS)
        for c, cls in nominal.classes.items()) if all(cls.costs for cls in nominal.classes.values()) else ()
    return Plan(key=key, path=scenario.path, model=nominal, ranges=scenario.ranges, rows=scenario._ensemble_rows,
                program=program, priority=priority, warmup_days=warmup, gates=tuple(gates),
                checks=tuple(checks), corridors=corridors, costs=costs)


def _corridor_plan(tracer: "_Refs", cid: str, corridor, d: str, nominal: ScenarioModel,
                   position: dict[tuple[str, str], int]) -> CorridorPlan:
    """One direction of a corridor, its numbers traced (each may be a range)."""
    choice = corridor.choice(d)
    at = ("corridors", cid, d)
    gates = corridor.handling(nominal, d)
    wait = choice.rule == "wait"
    return CorridorPlan(
        cid, d, choice.rule, tracer.number(at + ("outside_share",), choice.outside_share), choice.none_open,
        tuple(position[(g, d)] for g in gates), tuple(corridor.classes(nominal, d)),
        sensitivity=tracer.number(at + ("sensitivity",), choice.sensitivity) if wait else None,
        detour_h=tuple(tracer.number(at + ("detour_h", g), choice.detour_h[g]) for g in gates) if wait else (),
        outside_detour_h=tracer.number(at + ("outside_detour_h",), choice.outside_detour_h) if wait else None)


class _Refs:
    """References into the traced model-form tree: a Slot there is traced (its field's
    conversion and bounds recorded), anything else is the validated nominal value."""

    def __init__(self, program: Program, data: dict, checks: list, file: str):
        self.file = file
        self.program = program
        self.data = data
        self.checks = checks

    def _at(self, path: tuple) -> Any:
        node: Any = self.data
        for key in path:
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and isinstance(key, int) and key < len(node):
                node = node[key]
            else:
                return None
        return node

    def number(self, path: tuple, nominal: Any) -> Ref:
        traced = self._at(path)
        if not isinstance(traced, Slot):
            return Ref(nominal)
        if isinstance(nominal, int) and not isinstance(nominal, bool):
            traced = self.program.emit("count", traced)
        bounds = leaf_bounds(path, self.data)
        if bounds is not None:
            self.checks.append((traced.index, bounds, path_str(path)))
        return Ref(nominal, traced.index)

    def dist(self, path: tuple, nominal: Any) -> DistRef:
        traced = self._at(path)
        if not isinstance(traced, dict) or not any(isinstance(v, Slot) for v in traced.values()):
            return DistRef(nominal)
        fields = tuple((k, Ref(v, v.index) if isinstance(v, Slot) else Ref(v)) for k, v in traced.items()
                       if k not in ("source", "note"))
        return DistRef(nominal, fields, path_str(path), self.file)
