"""Load, merge (``extends``) and validate scenario files into frozen, typed objects.

A scenario file is TOML. Any numeric value may instead be an uncertain range,
``{uniform = [lo, hi]}`` or ``{triangular = [lo, mode, hi]}`` (a ``source`` key may sit
beside it); each replication samples every range from its own named random stream, so
a range shared by two scenarios draws the same values in both. Every problem is raised
as a :class:`ScenarioError` naming the file and the field.
"""

from __future__ import annotations

import copy
import datetime as dt
import tomllib
from dataclasses import dataclass, field
from collections.abc import Mapping
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)


from .distributions import Duration
from .errors import ScenarioError
from .outdir import check_slug

DIRECTIONS = ("exit", "entry")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RANGE_KINDS = ("uniform", "triangular")


class Sampled(float):
    """A value drawn from a range (or a range's nominal value), as opposed to one typed in a file."""


def _round_sampled(value: Any) -> Any:
    """Integer fields accept a sampled value (rounded); a float typed by the user stays an error."""
    if isinstance(value, Sampled):
        return int(round(value))
    return value


Count = Annotated[int, BeforeValidator(_round_sampled)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Horizon(_Model):
    start: dt.date
    end: dt.date = Field(description="last simulated day, inclusive")
    warmup_days: float = Field(0.0, ge=0, description="vehicles arriving earlier are left out of waits")
    source: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def hours(self) -> float:
        return 24.0 * self.days


class VehicleClass(_Model):
    priority: int = Field(0, description="lower is served first; FCFS within a priority")
    description: str | None = None
    source: str | None = None


def _flat(n: int) -> list[float]:
    return [1.0] * n


class Profile(_Model):
    """Relative arrival intensity; each list is normalised to mean 1 over its period."""

    hourly: list[Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: _flat(24))
    weekday: list[Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: _flat(7))
    monthly: list[Annotated[float, Field(ge=0)]] = Field(default_factory=lambda: _flat(12))
    source: str | None = None

    @field_validator("hourly", "weekday", "monthly")
    @classmethod
    def _shape(cls, v: list[float], info: ValidationInfo) -> list[float]:
        n = {"hourly": 24, "weekday": 7, "monthly": 12}[info.field_name]
        if len(v) != n:
            raise ValueError(f"needs {n} values, got {len(v)}")
        if sum(v) <= 0:
            raise ValueError("needs at least one positive value")
        return v


class Stage(_Model):
    name: str
    lanes: Count = Field(ge=1)
    service_min: Duration
    source: str | None = None


class DirectionSpec(_Model):
    """One direction of one gate: its demand, clearance stages and far-side acceptance."""

    demand: dict[str, Annotated[float, Field(gt=0)]] = Field(description="vehicles per day by class")
    stages: list[Stage] = Field(min_length=1)
    acceptance_limit: Count | None = Field(None, ge=1, description="vehicles per day the far side accepts")
    acceptance_position: Literal["first", "last"] | None = Field(
        None, description="where the far side's acceptance sits: 'last' (exit default) or 'first' (entry default)"
    )
    initial_backlog: dict[str, Annotated[Count, Field(ge=0)]] = Field(default_factory=dict)
    source: str | None = None


class Closure(_Model):
    start: dt.date | dt.datetime
    end: dt.date | dt.datetime = Field(description="a date is inclusive (through 24:00 of that day)")
    directions: list[Literal["exit", "entry"]] = Field(default_factory=lambda: list(DIRECTIONS))
    reason: str | None = None
    source: str | None = None


class RandomClosure(_Model):
    """Closures that start on a day with a given probability, at a uniform time of day."""

    daily_probability: float = Field(ge=0, lt=1)
    duration_h: Duration
    directions: list[Literal["exit", "entry"]] = Field(default_factory=lambda: list(DIRECTIONS))
    reason: str | None = None
    source: str | None = None


class Gate(_Model):
    name: str
    classes: list[str] = Field(min_length=1)
    hours: dict[str, list[str]] = Field(description="'default' and/or mon..sun: list of 'HH:MM-HH:MM'")
    exit: DirectionSpec | None = None
    entry: DirectionSpec | None = None
    closures: list[Closure] = Field(default_factory=list)
    random_closures: list[RandomClosure] = Field(default_factory=list)
    profile: Profile | None = None
    source: str | None = None

    def directions(self) -> list[str]:
        return [d for d in DIRECTIONS if getattr(self, d) is not None]

    def spec(self, direction: str) -> DirectionSpec:
        return getattr(self, direction)


class DemandStep(_Model):
    """Multiply demand from a date on (through ``until``, inclusive, if given), optionally only
    for some gates, directions and classes. Steps that overlap multiply."""

    from_: dt.date = Field(alias="from")
    until: dt.date | None = None
    factor: float = Field(gt=0)
    gates: list[str] | None = None
    directions: list[Literal["exit", "entry"]] | None = None
    classes: list[str] | None = None
    source: str | None = None


class ScenarioModel(_Model):
    name: str
    description: str = ""
    horizon: Horizon
    classes: dict[str, VehicleClass] = Field(min_length=1)
    profile: Profile = Field(default_factory=Profile)
    gates: dict[str, Gate] = Field(min_length=1)
    demand_steps: list[DemandStep] = Field(default_factory=list)
    source: str | None = None

    def flows(self) -> list[tuple[str, str]]:
        """Every (gate, direction) the scenario simulates, in file order."""
        return [(g, d) for g, gate in self.gates.items() for d in gate.directions()]


# ---------------------------------------------------------------- ranges


@dataclass(frozen=True)
class Range:
    """An uncertain input: each replication samples it."""

    path: tuple
    kind: str
    values: tuple[float, ...]

    def nominal(self) -> float:
        return float(np.mean(self.values)) if self.kind == "uniform" else float(
            (self.values[0] + self.values[1] + self.values[2]) / 3
        )

    def low(self) -> float:
        return float(self.values[0])

    def high(self) -> float:
        return float(self.values[-1])

    def sample(self, rng: np.random.Generator) -> float:
        if self.kind == "uniform":  # = rng.uniform(low, high), which is low + (high - low) x random()
            return self.values[0] + (self.values[1] - self.values[0]) * rng.random()
        lo, mode, hi = self.values
        return float(rng.triangular(lo, mode, hi)) if hi > lo else float(lo)

    def name(self) -> str:
        return _path_name(self.path)


@lru_cache(maxsize=4096)
def _path_name(path: tuple) -> str:
    return path_str(path)


def path_str(path: tuple) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _is_range(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and sum(k in node for k in RANGE_KINDS) == 1
        and set(node) <= set(RANGE_KINDS) | {"source", "note"}
    )


def _parse_range(node: dict, path: tuple, file: str) -> Range:
    kind = next(k for k in RANGE_KINDS if k in node)
    vals = node[kind]
    need = 2 if kind == "uniform" else 3
    where = path_str(path)
    if not isinstance(vals, list) or len(vals) != need or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals
    ):
        form = "[low, high]" if kind == "uniform" else "[low, mode, high]"
        raise ScenarioError(file, where, f"a {kind} range needs {need} numbers {form}")
    vals = tuple(float(v) for v in vals)
    if kind == "uniform" and not vals[0] <= vals[1]:
        raise ScenarioError(file, where, "a uniform range needs low <= high")
    if kind == "triangular" and not vals[0] <= vals[1] <= vals[2]:
        raise ScenarioError(file, where, "a triangular range needs low <= mode <= high")
    return Range(path, kind, vals)


def _leaves(node: Any, path: tuple = ()):
    """(path, node) for every range and every plain value of a raw scenario."""
    if isinstance(node, dict) and not _is_range(node):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    else:
        yield path, node


def _find_ranges(node: Any, path: tuple, file: str, out: list[Range]) -> None:
    out.extend(_parse_range(leaf, p, file) for p, leaf in _leaves(node, path) if _is_range(leaf))


def _substitute(raw: dict, values: dict[tuple, float]) -> dict:
    """raw with the values put at their paths; only the containers on those paths are copied
    (the rest is shared with raw, which is never modified)."""
    data = dict(raw)
    copied: dict[tuple, Any] = {(): data}
    for path, value in values.items():
        node = data
        for depth in range(len(path) - 1):
            key = path[:depth + 1]
            child = copied.get(key)
            if child is None:
                child = copy.copy(node[path[depth]])
                node[path[depth]] = child
                copied[key] = child
            node = child
        node[path[-1]] = Sampled(value)
    return data


# ---------------------------------------------------------------- loading


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ScenarioError(str(path), None, "file not found") from None
    except IsADirectoryError:
        raise ScenarioError(str(path), None, "is a directory, not a scenario file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(path), None, f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise ScenarioError(str(path), None, f"cannot be read: {exc.strerror}") from None


def deep_merge(base: dict, override: dict) -> dict:
    """Tables merge key by key; any other value (arrays included) replaces the base's."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not _is_range(v):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _load_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in chain:
        cycle = " -> ".join(p.name for p in chain + (path,))
        raise ScenarioError(str(chain[-1]), "extends", f"cycle: {cycle}")
    raw = _read_toml(path)
    if isinstance(raw.get("ensemble"), str):  # relative to the file that names it
        raw["ensemble"] = str(path.parent / raw["ensemble"])
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ScenarioError(str(path), "extends", "must be a file name (string), relative to this file")
    parent_path = (path.parent / parent)
    if not parent_path.exists():
        raise ScenarioError(str(path), "extends", f"file not found: {parent_path}")
    base = _load_raw(parent_path, chain + (path,))
    return deep_merge(base, raw)


def _pydantic_error(exc: ValidationError, file: str, path_offset: tuple = ()) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    where = path_str(path_offset + loc)
    etype = err["type"]
    if etype == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return ScenarioError(file, where, f"unknown key '{loc[-1]}'{hint}")
    if etype == "missing":
        return ScenarioError(file, where, "required field is missing")
    msg = err["msg"]
    if etype == "union_tag_invalid":
        msg = f"unknown distribution; allowed: {', '.join(_dist_names())}"
    if etype == "union_tag_not_found":
        msg = f"needs a 'dist' key; allowed: {', '.join(_dist_names())}"
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f" (got {value!r})"
    return ScenarioError(file, where, f"{msg}{shown}")


def _dist_names() -> tuple[str, ...]:
    from .distributions import DIST_NAMES

    return DIST_NAMES


def _strip(tp: Any, key: Any = None) -> Any:
    """Unwrap Annotated / Optional / Union down to a model or container type."""
    import typing

    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            # a discriminated union: the error location names the tag (e.g. 'lognormal')
            tagged = [m for m in models if "dist" in m.model_fields
                      and key in typing.get_args(m.model_fields["dist"].annotation)]
            tp = (tagged or models or args)[0]
            if tagged:
                return ("tag", tp)
        else:
            return tp


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys the table at ``loc`` allows, found by walking the model classes."""
    import typing

    tp: Any = ScenarioModel
    for key in loc:
        tp = _strip(tp, key)
        if isinstance(tp, tuple):  # the tag of a discriminated union: stay on the chosen model
            tp = tp[1]
            continue
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fld = next((f for n, f in tp.model_fields.items() if key in (n, f.alias)), None)
            if fld is None:
                return []
            tp = fld.annotation
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1]
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
        else:
            return []
    tp = _strip(tp)
    if isinstance(tp, tuple):
        tp = tp[1]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _check_hours(file: str, path: str, spec: list[str]) -> list[tuple[float, float]]:
    out = []
    for i, item in enumerate(spec):
        try:
            a, b = item.split("-")
            ha, ma = (int(x) for x in a.strip().split(":"))
            hb, mb = (int(x) for x in b.strip().split(":"))
        except (ValueError, AttributeError):
            raise ScenarioError(file, f"{path}[{i}]", f"'{item}' is not 'HH:MM-HH:MM'") from None
        start, end = ha + ma / 60, hb + mb / 60
        if not (0 <= ma < 60 and 0 <= mb < 60 and 0 <= start < end <= 24):
            raise ScenarioError(file, f"{path}[{i}]", f"'{item}' needs 00:00 <= start < end <= 24:00")
        out.append((start, end))
    out.sort()
    for (s0, e0), (s1, _) in zip(out, out[1:]):
        if s1 < e0:
            raise ScenarioError(file, path, "opening intervals overlap")
    return out


def _cross_check(m: ScenarioModel, file: str) -> None:
    """Rules that span fields: names must refer to things the scenario defines."""
    check_slug(m.name, file, "name")  # it names the results folder, results/<name>
    h = m.horizon
    if h.end < h.start:
        raise ScenarioError(file, "horizon.end", f"{h.end} is before horizon.start {h.start}")
    if h.warmup_days >= h.days:
        raise ScenarioError(file, "horizon.warmup_days", f"must be shorter than the horizon ({h.days} days)")
    for gid, gate in m.gates.items():
        gp = f"gates.{gid}"
        for c in gate.classes:
            if c not in m.classes:
                raise ScenarioError(file, f"{gp}.classes", f"unknown class '{c}' (defined: {', '.join(m.classes)})")
        if not gate.directions():
            raise ScenarioError(file, gp, "needs at least one direction table: [.exit] or [.entry]")
        for key, spec in gate.hours.items():
            if key not in ("default",) + WEEKDAYS:
                raise ScenarioError(file, f"{gp}.hours.{key}", "allowed keys: default, " + ", ".join(WEEKDAYS))
            _check_hours(file, f"{gp}.hours.{key}", spec)
        if "default" not in gate.hours and not all(d in gate.hours for d in WEEKDAYS):
            raise ScenarioError(file, f"{gp}.hours", "needs 'default' or all of mon..sun")
        for d in gate.directions():
            spec = gate.spec(d)
            for table in ("demand", "initial_backlog"):
                for c in getattr(spec, table):
                    if c not in gate.classes:
                        raise ScenarioError(
                            file, f"{gp}.{d}.{table}.{c}",
                            f"class '{c}' is not handled by this gate (classes: {', '.join(gate.classes)})",
                        )
            names = [s.name for s in spec.stages]
            if len(set(names)) != len(names):
                raise ScenarioError(file, f"{gp}.{d}.stages", "stage names must be unique")
        for i, c in enumerate(gate.closures):
            if _as_datetime(c.end, end=True) <= _as_datetime(c.start):
                raise ScenarioError(file, f"{gp}.closures[{i}].end", "must be after start")
    for i, step in enumerate(m.demand_steps):
        if step.until is not None and step.until < step.from_:
            raise ScenarioError(file, f"demand_steps[{i}].until", f"{step.until} is before 'from' {step.from_}")
        for g in step.gates or []:
            if g not in m.gates:
                raise ScenarioError(file, f"demand_steps[{i}].gates", f"unknown gate '{g}' (gates: {', '.join(m.gates)})")
        for c in step.classes or []:
            if c not in m.classes:
                raise ScenarioError(file, f"demand_steps[{i}].classes", f"unknown class '{c}'")


def _as_datetime(value: dt.date | dt.datetime, end: bool = False) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    base = dt.datetime.combine(value, dt.time())
    return base + dt.timedelta(days=1) if end else base


def _validate(data: dict, file: str) -> ScenarioModel:
    try:
        model = ScenarioModel.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc, file) from None
    _cross_check(model, file)
    return model


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: its nominal values, and the ranges each replication samples."""

    path: str
    raw: dict = field(repr=False)
    ranges: tuple[Range, ...]
    nominal: ScenarioModel = field(repr=False)
    # a calibrated ensemble: each replication takes one of its parameter sets (rows, by range
    # name) whole, so the parameters keep their joint distribution; ranges not in it are sampled
    ensemble: "pd.DataFrame | None" = field(default=None, repr=False)
    ensemble_file: str | None = None

    @property
    def name(self) -> str:
        return self.nominal.name

    def sample(self, rng_for: Callable[[str], np.random.Generator]) -> ScenarioModel:
        """A concrete scenario: each range drawn from the stream named ``param/<field>``."""
        return self.model_for(self.draw(rng_for))

    def draw(self, rng_for: Callable[[str], np.random.Generator],
             fixed: "Mapping[str, float] | None" = None) -> dict[str, float]:
        """The value of each uncertain input (by name) in one replication: ``fixed`` values as
        given, then one whole row of the ensemble if there is one, the other ranges drawn from
        their streams (``param/<name>``)."""
        fixed = dict(fixed or {})
        unknown = [k for k in fixed if k not in self._by_name]
        if unknown:
            raise ScenarioError(self.path, unknown[0], "is not an uncertain input of the scenario "
                                f"(inputs: {', '.join(self._by_name) or 'none'})")
        row = {}
        if self.ensemble is not None:  # one whole parameter set, picked at random
            row = self._ensemble_rows[int(rng_for("param/ensemble").integers(len(self._ensemble_rows)))]
        out = {}
        for r in self.ranges:
            name = r.name()
            if name in fixed:
                out[name] = float(fixed[name])
            elif name in row:
                out[name] = float(row[name])
            else:
                out[name] = r.sample(rng_for(f"param/{name}"))
        return out

    def model_for(self, values: "Mapping[str, float]") -> ScenarioModel:
        """The concrete scenario with the uncertain inputs at the given values (by name)."""
        if not self.ranges:
            return self.nominal
        return _validate(_substitute(self.raw, {self._by_name[k].path: v for k, v in values.items()}), self.path)

    @cached_property
    def _by_name(self) -> dict[str, Range]:
        return {r.name(): r for r in self.ranges}

    @cached_property
    def _ensemble_rows(self) -> list[dict]:
        return [] if self.ensemble is None else self.ensemble.to_dict("records")


def from_dict(raw: dict, path: str = "<scenario>", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario given as a dict (after any ``extends`` has been merged). An
    ``ensemble`` file name is relative to base_dir (the scenario file's folder)."""
    raw = copy.deepcopy(raw)
    raw.pop("extends", None)
    ensemble_file = raw.pop("ensemble", None)
    ranges: list[Range] = []
    _find_ranges(raw, (), path, ranges)
    nominal_values = {r.path: r.nominal() for r in ranges}
    nominal = _validate(_substitute(raw, nominal_values), path)
    # The ends of every range must be valid too, or some replications would fail.
    for end, pick in (("low", Range.low), ("high", Range.high)):
        if not ranges:
            break
        try:
            _validate(_substitute(raw, {r.path: pick(r) for r in ranges}), path)
        except ScenarioError as exc:
            raise ScenarioError(exc.file, exc.field, f"{exc.message}, at the {end} end of its range") from None
    ensemble = None
    if ensemble_file is not None:
        ensemble_file, ensemble = _load_ensemble(ensemble_file, raw, ranges, path, base_dir)
    return Scenario(path=path, raw=raw, ranges=tuple(ranges), nominal=nominal, ensemble=ensemble,
                    ensemble_file=ensemble_file)


def _load_ensemble(name, raw: dict, ranges: list[Range], path: str, base_dir: Path | None):
    """Read and check an ensemble CSV: one column per uncertain input it sets (by range name),
    columns starting with '_' are notes (distance, simulated outputs); every row must give a
    valid scenario."""
    import pandas as pd

    if not isinstance(name, str):
        raise ScenarioError(path, "ensemble", "must be a CSV file name, relative to this file")
    file = (base_dir or Path(".")) / name
    try:
        table = pd.read_csv(file)
    except FileNotFoundError:
        raise ScenarioError(path, "ensemble", f"file not found: {file}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(file), None, f"not a readable CSV: {exc}") from None
    by_name = {r.name(): r for r in ranges}
    # inputs a scenario extending a fitted one has fixed (plain numbers): its own values win
    fixed = {path_str(p) for p, v in _leaves(raw) if isinstance(v, (int, float)) and not isinstance(v, bool)}
    params = [c for c in table.columns if not str(c).startswith("_") and c not in fixed]
    for c in params:
        if c not in by_name:
            allowed = ", ".join(by_name) or "none: the scenario has no uncertain inputs"
            raise ScenarioError(str(file), c, f"not an input of the scenario (uncertain inputs: {allowed})")
    if table.empty or not params:
        raise ScenarioError(str(file), None, "needs at least one row and one parameter column")
    values = table[params]
    if not np.all(np.isfinite(values.to_numpy(dtype=float))):
        raise ScenarioError(str(file), None, "every parameter value must be a finite number")
    for i in range(len(table)):
        try:
            _validate(_substitute(raw, {by_name[c].path: float(values.iloc[i][c]) for c in params}), path)
        except ScenarioError as exc:
            raise ScenarioError(str(file), f"row {i + 1}: {exc.field}", exc.message) from None
    return str(file), table[params].reset_index(drop=True)


def load(path: str | Path) -> Scenario:
    """Load a scenario file, following ``extends``, and validate it."""
    p = Path(path)
    raw = _load_raw(p)
    return from_dict(raw, str(p), base_dir=p.resolve().parent)
