"""Levers: what a planner controls, declared in a scenario apart from what is uncertain.

A lever (``[levers.<id>]``, typed in sim.model.schema.Lever) sets inputs by the names ``--set``
and ``bordersim sweep --param`` take: an ``integer`` or ``real`` lever sets each of its
``paths`` to its value, a ``choices`` lever applies the chosen choice's ``set`` lines. Its cost
is per unit away from its ``base`` (the scenario as given) and year, capital and operating.

A set of lever values becomes a sim.experiments.experiment.Point without a second path
resolver: the choice levers' lines are one ``--set`` layer (sim.model.scenario.set_layer), and
the number levers' paths are turned into ranges over their values by the sweep's ``derive``,
so every combination of choices is one scenario, compiled once, and each trial fixes its
numbers as a sweep point does (common random numbers hold between trials).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import BordersimError, ScenarioError, shorten
from ..model.ranges import Range, is_range, parse_assignment, value_at
from ..model.scenario import Layer, Scenario, from_dict, merge_layers, set_layer
from ..model.schema import Lever
from .experiment import Point
from .sweep import derive, toml_number


@dataclass(frozen=True)
class LeverCost:
    """A set of lever values' cost, VND a year: capital (annualised) and operating."""

    capital: float
    operating: float

    @property
    def total(self) -> float:
        return self.capital + self.operating


def lever_units(lever: Lever, value: Any) -> float:
    """The units of a lever's cost a value takes: its distance from the base for a number, the
    choice's own units for a choice."""
    if lever.kind == "choices":
        return float(lever.choices[str(value)].units)
    return abs(float(value) - float(lever.base))


def cost_input(lid: str, field_: str) -> str:
    """The name a lever's cost is drawn by where it is a range (an uncertain input): as any
    input's, its path."""
    return f"levers.{lid}.{field_}"


def describe_lever(lever: Lever, ranges: Mapping[str, Range] | None = None, lid: str = "") -> str:
    """A lever in one line: its values, what it sets, its base and its cost per unit and year."""
    if lever.kind == "choices":
        values = "choices " + ", ".join(f"{n} ({c.units:g} unit{'' if c.units == 1 else 's'})"
                                        for n, c in lever.choices.items())
        sets = "; ".join(f"{n}: {', '.join(c.set)}" for n, c in lever.choices.items() if c.set)
    else:
        lo, hi = getattr(lever, lever.kind)
        values = f"{lever.kind} {lo:g} to {hi:g}"
        sets = ", ".join(lever.paths)
    return (f"{values}, base {lever.base if isinstance(lever.base, str) else format(lever.base, 'g')}; sets "
            f"{sets}; per {lever.unit} a year: capital {_cost_said(lever, 'capital_per_unit_year', ranges, lid)} VND, "
            f"operating {_cost_said(lever, 'operating_per_unit_year', ranges, lid)} VND ({lever.cost_source})")


def _cost_said(lever: Lever, field_: str, ranges: Mapping[str, Range] | None, lid: str) -> str:
    """A lever's cost per unit: its number, or its range (kind and values) with its mean."""
    r = (ranges or {}).get(cost_input(lid, field_))
    if r is None:
        return f"{getattr(lever, field_):,.0f}"
    return f"{r.kind} {' to '.join(f'{v:,.0f}' for v in (r.values[0], r.values[-1]))} (mean {r.nominal():,.0f})"


@dataclass
class LeverSpace:
    """The levers an optimisation searches (all of a scenario's, or those named), checked
    against the scenario: each a Point builder and a cost."""

    scenario: Scenario
    levers: dict[str, Lever]
    _variants: dict[tuple, Scenario] = field(default_factory=dict, repr=False)
    # the scenario with a choice's --set lines, built once: the check builds each choice's and
    # the search each combination's, the same lines when one choice lever is searched (a build
    # validates the fitted ensemble's rows again: most of an optimisation's work outside the runs)
    _built: dict[tuple[str, ...], Scenario] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, scenario: Scenario, only: Sequence[str] = ()) -> "LeverSpace":
        """The scenario's levers (``only``: those named, the others kept at their base), each
        checked: its paths name numbers of the scenario, both ends of its range and every
        choice make a valid scenario, and a number lever's base is the scenario's value where
        the file gives a plain number. A problem is one ScenarioError naming the lever's field."""
        have = scenario.nominal.levers
        if not have:
            raise ScenarioError(scenario.path, "levers", "the scenario declares no levers ([levers.<id>] tables: "
                                                         "what a planner controls); an optimisation needs one")
        for lid in only:
            if lid not in have:
                raise ScenarioError(scenario.path, "--lever", f"'{shorten(lid)}' is not a lever of the scenario "
                                                              f"(levers: {', '.join(have)})")
        chosen = {lid: lv for lid, lv in have.items() if not only or lid in only}
        space = cls(scenario, chosen)
        space._check()
        return space

    # ------------------------------------------------------------------ values

    def base(self) -> dict[str, Any]:
        """Every lever at its base: the scenario as given."""
        return {lid: (lv.base if lv.kind == "choices" else _number(lv, lv.base)) for lid, lv in self.levers.items()}

    def cost(self, values: Mapping[str, Any], end: str | None = None) -> LeverCost:
        """The cost of a set of lever values, exactly: its expectation, at each cost's value in
        the scenario (where a cost is a range, the range's mean: it depends on no simulation, so
        no replication's draw need estimate it); with ``end`` "low" or "high", every range at
        that end (the bounds of what the levers may cost)."""
        capital = operating = 0.0
        for lid, lever in self.levers.items():
            units = lever_units(lever, values[lid])
            capital += units * self._unit_cost(lid, lever, "capital_per_unit_year", end)
            operating += units * self._unit_cost(lid, lever, "operating_per_unit_year", end)
        return LeverCost(capital, operating)

    def _unit_cost(self, lid: str, lever: Lever, field_: str, end: str | None) -> float:
        r = self.scenario.by_name.get(cost_input(lid, field_)) if end else None
        return getattr(lever, field_) if r is None else (r.low() if end == "low" else r.high())

    def sets(self, values: Mapping[str, Any]) -> list[str]:
        """The ``--set`` lines that give the scenario these lever values (the recommended file's
        changes); a lever at its base changes nothing."""
        out: list[str] = []
        for lid, lever in self.levers.items():
            v = values[lid]
            if lever.kind == "choices":
                out += lever.choices[str(v)].set
            elif _number(lever, v) != _number(lever, lever.base) or not self._plain_base(lever):
                out += [f"{p}={toml_number(_number(lever, v))}" for p in lever.paths]
        return out

    def point(self, values: Mapping[str, Any]) -> Point:
        """The design point of a set of lever values: the scenario of its choices with each
        number lever's paths fixed at its value."""
        key = tuple(str(values[lid]) for lid, lv in self.levers.items() if lv.kind == "choices")
        scenario = self._variant(key)
        fixed = {p: float(_number(lv, values[lid])) for lid, lv in self.levers.items() if lv.kind != "choices"
                 for p in lv.paths}
        return Point(scenario, fixed)

    def as_given(self) -> Point:
        return Point(self.scenario, {})

    # ------------------------------------------------------------------ building and checking

    def _layers(self) -> list[Layer]:
        return list(self.scenario.layers) or [Layer(self.scenario.path, self.scenario.raw)]

    def _with(self, lines: list[str]) -> Scenario:
        key = tuple(lines)
        if key not in self._built:
            if not lines:
                self._built[key] = self.scenario
            else:
                layers = self._layers()
                layers.append(set_layer(lines, merge_layers(layers), self.scenario.path))
                self._built[key] = from_dict(merge_layers(layers), self.scenario.path,
                                             base_dir=Path(self.scenario.path).resolve().parent, layers=layers)
        return self._built[key]

    def _variant(self, key: tuple) -> Scenario:
        """The scenario of one combination of choices, with the number levers' paths as ranges
        over their values (built once per combination)."""
        if key not in self._variants:
            choice_levers = [lv for lv in self.levers.values() if lv.kind == "choices"]
            lines = [line for lv, name in zip(choice_levers, key) for line in lv.choices[name].set]
            scenario = self._with(lines)
            numeric = [(p, _spec(lv)) for lv in self.levers.values() if lv.kind != "choices" for p in lv.paths]
            self._variants[key] = derive(scenario, numeric)[0] if numeric else scenario
        return self._variants[key]

    def _check(self) -> None:
        file = self.scenario.path
        for lid, lever in self.levers.items():
            where = f"levers.{lid}"
            if lever.kind == "choices":
                for name, choice in lever.choices.items():
                    try:
                        built = self._with(list(choice.set))
                    except ScenarioError as exc:
                        raise ScenarioError(file, f"{where}.choices.{name}.set",
                                            f"{_field_said(exc)}{exc.message}") from None
                    for line in choice.set:
                        change = parse_assignment(line)  # a relative change (*=, +=, -=) scales, gives no range
                        if change is not None and change.op == "=" and any(
                                n == change.where or n.startswith(change.where + ".") for n in built.by_name):
                            raise ScenarioError(file, f"{where}.choices.{name}.set",
                                                f"'{shorten(line, 120)}' gives a range: a lever's values are the "
                                                "planner's, plain numbers (an uncertain input is a range of the "
                                                "scenario, not of a lever)")
                continue
            for path in lever.paths:
                try:
                    derive(self.scenario, [(path, _spec(lever))])
                except BordersimError as exc:
                    raise ScenarioError(file, f"{where}.paths", f"{shorten(path, 120)}: {exc.message}") from None
                current = self._value_at(path)
                if is_range(current):
                    raise ScenarioError(file, f"{where}.paths", f"{shorten(path, 120)} is an uncertain input (a range) "
                                                                "in the scenario (a file or a --set gives it one): a "
                                                                "lever's input is the planner's, a plain number, its "
                                                                "base in the scenario as given")
                if isinstance(current, (int, float)) and not isinstance(current, bool) \
                        and float(current) != float(lever.base):
                    raise ScenarioError(file, f"{where}.base", f"{lever.base:g}, but the scenario has "
                                                               f"{shorten(path, 120)} = {current:g}: the base is the "
                                                               "scenario as given (its cost is counted from it)")
        self._variant(tuple(lv.base for lv in self.levers.values() if lv.kind == "choices"))

    def _value_at(self, path: str) -> Any:
        return value_at(self.scenario.raw, parse_assignment(f"{path}=0").keys)

    def _plain_base(self, lever: Lever) -> bool:
        """Every path of a number lever holds its base as a plain number in the scenario (so the
        base needs no --set line; an uncertain input fixed at the base does)."""
        return all(not is_range(self._value_at(p)) and self._value_at(p) is not None for p in lever.paths)


def _number(lever: Lever, value: Any) -> int | float:
    return int(round(float(value))) if lever.kind == "integer" else float(value)


def _spec(lever: Lever) -> str:
    """The lever's values as a sweep's SPEC: an integer range a..b or an interval lo:hi."""
    lo, hi = getattr(lever, lever.kind)
    return f"{int(lo)}..{int(hi)}" if lever.kind == "integer" else f"{toml_number(lo)}:{toml_number(hi)}"


def _field_said(exc: ScenarioError) -> str:
    return f"{exc.field}: " if exc.field else ""


__all__ = ["LeverCost", "LeverSpace", "cost_input", "describe_lever", "lever_units"]
