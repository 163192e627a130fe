"""Load, merge (``extends``) and validate scenario files into frozen, typed objects.

A scenario file is TOML. Any numeric value may instead be an uncertain range,
``{uniform = [lo, hi]}`` or ``{triangular = [lo, mode, hi]}`` (a ``source`` key may sit
beside it); each replication samples every range from its own named random stream, so
a range shared by two scenarios draws the same values in both. Every problem is raised
as a :class:`ScenarioError` naming the file and the field.

Every number is finite and inside a stated range (the MAX_* and date bounds below, and those of
:mod:`sim.distributions`; README, "Allowed values"), chosen so that every allowed scenario runs:
no count overflows an integer array, no date arithmetic leaves the calendar and no horizon is
too long to hold its hourly rates.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import tomllib
from dataclasses import dataclass, field
from collections.abc import Mapping
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)


from .distributions import Duration
from .errors import BordersimError, ScenarioError, shorten
from .outdir import check_slug

DIRECTIONS = ("exit", "entry")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RANGE_KINDS = ("uniform", "triangular")

LOCAL_TIME = dt.timezone(dt.timedelta(hours=7), "UTC+7")
"""The model's clock: naive times in a scenario are local time; times with an offset are converted."""
MIN_DATE, MAX_DATE = dt.date(1900, 1, 1), dt.date(2199, 12, 31)
MAX_HORIZON_DAYS = 7305  # 20 years: the hourly rates of a flow stay under 1.5 MB
MAX_LANES = 100
MAX_DEMAND = 100_000.0  # vehicles per day per class
MAX_BACKLOG = 1_000_000  # vehicles per class
MAX_ACCEPTANCE = 100_000  # vehicles per day
MAX_PRIORITY = 99
MAX_FACTOR = 100.0  # a demand step's factor
MAX_PROFILE = 1e6  # each relative intensity, before normalisation
MAX_DEPTH = 32  # tables and arrays nested in one another (the baseline needs 6)
MAX_FILE_BYTES = 10_000_000  # a TOML file (the baseline is 20 kB)


class Sampled(float):
    """A value drawn from a range (or a range's nominal value), as opposed to one typed in a file."""


def _round_sampled(value: Any) -> Any:
    """Integer fields accept a sampled value (rounded); a float typed by the user stays an error.
    A value rounds to a Python int of any size, which the field's bounds then refuse."""
    if isinstance(value, Sampled) and math.isfinite(value):
        return int(round(value))
    return value


Count = Annotated[int, BeforeValidator(_round_sampled)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


Date = Annotated[dt.date, Field(ge=MIN_DATE, le=MAX_DATE)]


def _local_time(value: dt.date | dt.datetime) -> dt.date | dt.datetime:
    """A date, or a datetime in the model's local time (one with a UTC offset is converted to
    UTC+7, a naive one is local already); either between MIN_DATE and MAX_DATE as written."""
    day = value.date() if isinstance(value, dt.datetime) else value
    if not MIN_DATE <= day <= MAX_DATE:
        raise ValueError(f"must be between {MIN_DATE} and {MAX_DATE}")
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(LOCAL_TIME).replace(tzinfo=None)
    return value


DateOrTime = Annotated[dt.date | dt.datetime, AfterValidator(_local_time)]


class Horizon(_Model):
    start: Date
    end: Date = Field(description="last simulated day, inclusive")
    warmup_days: float = Field(0.0, ge=0, description="vehicles arriving earlier are left out of waits")
    source: str | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    @property
    def hours(self) -> float:
        return 24.0 * self.days


class VehicleClass(_Model):
    priority: int = Field(0, ge=0, le=MAX_PRIORITY, description="lower is served first; FCFS within a priority")
    description: str | None = None
    source: str | None = None


def _flat(n: int) -> list[float]:
    return [1.0] * n


class Profile(_Model):
    """Relative arrival intensity; each list is normalised to mean 1 over its period."""

    hourly: list[Annotated[float, Field(ge=0, le=MAX_PROFILE)]] = Field(default_factory=lambda: _flat(24))
    weekday: list[Annotated[float, Field(ge=0, le=MAX_PROFILE)]] = Field(default_factory=lambda: _flat(7))
    monthly: list[Annotated[float, Field(ge=0, le=MAX_PROFILE)]] = Field(default_factory=lambda: _flat(12))
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
    lanes: Count = Field(ge=1, le=MAX_LANES)
    service_min: Duration
    source: str | None = None


class DirectionSpec(_Model):
    """One direction of one gate: its demand, clearance stages and far-side acceptance."""

    demand: dict[str, Annotated[float, Field(gt=0, le=MAX_DEMAND)]] = Field(description="vehicles per day by class")
    stages: list[Stage] = Field(min_length=1)
    acceptance_limit: Count | None = Field(
        None, ge=1, le=MAX_ACCEPTANCE, description="vehicles per day the far side accepts"
    )
    acceptance_position: Literal["first", "last"] | None = Field(
        None, description="where the far side's acceptance sits: 'last' (exit default) or 'first' (entry default)"
    )
    initial_backlog: dict[str, Annotated[Count, Field(ge=0, le=MAX_BACKLOG)]] = Field(default_factory=dict)
    source: str | None = None


class Closure(_Model):
    start: DateOrTime
    end: DateOrTime = Field(description="a date is inclusive (through 24:00 of that day)")
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

    from_: Date = Field(alias="from")
    until: Date | None = None
    factor: float = Field(gt=0, le=MAX_FACTOR)
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
        # Python floats (what np.mean of two values gives, bit for bit): a sum past the largest
        # float is inf, which the field then refuses, without numpy's overflow warning
        if self.kind == "uniform":
            return (self.values[0] + self.values[1]) / 2
        return (self.values[0] + self.values[1] + self.values[2]) / 3

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
    try:
        vals = tuple(float(v) for v in vals)
    except OverflowError:  # an integer past the largest float
        raise ScenarioError(file, where, f"a {kind} range needs numbers of at most {np.finfo(float).max:g}") from None
    if not all(math.isfinite(v) for v in vals):
        raise ScenarioError(file, where, f"a {kind} range needs finite numbers (got {shorten(vals)})")
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


def read_toml(path: Path, error: type[BordersimError] = ScenarioError, what: str = "scenario file") -> dict:
    """A TOML file as a dict, or ``error`` (one line naming the file) for anything that is not
    UTF-8 TOML text of at most MAX_FILE_BYTES, nested at most MAX_DEPTH deep. Shared by scenario
    and targets files."""
    file = str(path)
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise error(file, None, "file not found") from None
    except IsADirectoryError:
        raise error(file, None, f"is a directory, not a {what}") from None
    except OSError as exc:  # a symlink loop (ELOOP), no permission, ...
        raise error(file, None, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(file, None, f"is larger than {MAX_FILE_BYTES:,} bytes; a {what} is a few kB of text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(file, None, f"not UTF-8 text (byte {data[exc.start]:#04x} at position {exc.start})") from None
    try:
        raw = tomllib.loads(text)
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise error(file, None, f"nested too deeply: at most {MAX_DEPTH} levels of tables and arrays") from None
    except ValueError as exc:  # TOMLDecodeError, or an integer of more than 4,300 digits
        raise error(file, None, f"not valid TOML: {shorten(exc)}") from None
    check_depth(raw, file, error)
    return raw


def check_depth(node: Any, file: str, error: type[BordersimError] = ScenarioError) -> None:
    """Refuse tables and arrays nested more than MAX_DEPTH deep (dotted keys nest without limit
    in TOML), before any recursive walk (merging, copying, validation) meets them."""
    stack = [(node, ())]
    while stack:
        node, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise error(file, path_str(path[:3]) + "…",
                        f"nested too deeply: at most {MAX_DEPTH} levels of tables and arrays")
        if isinstance(node, dict):
            stack.extend((v, path + (str(k),)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, path + (i,)) for i, v in enumerate(node))


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
    try:
        path = path.resolve()
    except RuntimeError:  # Python 3.11 and 3.12: a symlink loop (later versions leave it to open)
        raise ScenarioError(str(path), None, "cannot be read: a loop of symbolic links") from None
    if path in chain:
        cycle = " -> ".join(p.name for p in chain + (path,))
        raise ScenarioError(str(chain[-1]), "extends", f"cycle: {cycle}")
    raw = read_toml(path)
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
        return ScenarioError(file, where, f"unknown key '{shorten(loc[-1], 40)}'{hint}")  # the field shows more
    if etype == "missing":
        return ScenarioError(file, where, "required field is missing")
    msg = err["msg"]
    if etype == "union_tag_invalid":
        msg = f"unknown distribution; allowed: {', '.join(_dist_names())}"
    if etype == "union_tag_not_found":
        msg = f"needs a 'dist' key; allowed: {', '.join(_dist_names())}"
    value = err.get("input")
    shown = "" if isinstance(value, (dict, list)) or value is None else f" (got {shorten(_echo(value))})"
    return ScenarioError(file, where, f"{msg}{shown}")


def _echo(value: Any) -> str:
    """A bad value as the user wrote it: dates in ISO form, other values as Python shows them."""
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    try:
        return repr(value)
    except ValueError:  # an integer of more than 4,300 digits
        return f"an integer of {value.bit_length() * math.log10(2):,.0f} digits"


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
            raise ScenarioError(file, f"{path}[{i}]", f"'{shorten(item)}' is not 'HH:MM-HH:MM'") from None
        start, end = ha + ma / 60, hb + mb / 60
        if not (0 <= ma < 60 and 0 <= mb < 60 and 0 <= start < end <= 24):
            raise ScenarioError(file, f"{path}[{i}]", f"'{shorten(item)}' needs 00:00 <= start < end <= 24:00")
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
    if h.days > MAX_HORIZON_DAYS:
        raise ScenarioError(file, "horizon.end", f"the horizon is {h.days:,} days long; at most "
                            f"{MAX_HORIZON_DAYS:,} days (20 years) are allowed")
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
    if isinstance(value, dt.datetime):  # local time: the model converted any offset
        return value
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
    check_depth(raw, path)
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
    except IsADirectoryError:
        raise ScenarioError(path, "ensemble", f"{file} is a directory, not a CSV file") from None
    except OSError as exc:
        raise ScenarioError(path, "ensemble", f"{file} cannot be read: {exc.strerror or exc}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ScenarioError(str(file), None, f"not a readable CSV: {shorten(exc)}") from None
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
    cells = [[_number(v) for v in table[c]] for c in params]  # by column
    for j, c in enumerate(params):
        i = next((i for i, v in enumerate(cells[j]) if not math.isfinite(v)), None)
        if i is not None:
            cell = table[c].iloc[i]
            shown = repr(cell) if isinstance(cell, str) else str(cell)
            raise ScenarioError(str(file), f"row {i + 1}: {c}", f"needs a finite number (got {shorten(shown)})")
    values = pd.DataFrame(dict(zip(params, cells)), dtype=float)
    for i in range(len(table)):
        try:
            _validate(_substitute(raw, {by_name[c].path: float(values.iloc[i][c]) for c in params}), path)
        except ScenarioError as exc:
            raise ScenarioError(str(file), f"row {i + 1}: {exc.field}", exc.message) from None
    return str(file), values


def _number(cell: Any) -> float:
    """An ensemble cell as a float; nan for text, True/False or an integer past the largest float
    (pandas leaves these in columns it does not read as numbers)."""
    if isinstance(cell, (bool, np.bool_)):
        return math.nan
    try:
        return float(cell)
    except (TypeError, ValueError, OverflowError):
        return math.nan


def load(path: str | Path) -> Scenario:
    """Load a scenario file, following ``extends``, and validate it."""
    p = Path(path)
    raw = _load_raw(p)
    return from_dict(raw, str(p), base_dir=p.resolve().parent)
