"""The scenario schema: typed, frozen models with the range every value must lie in, the
rules that span fields, and error messages that name the field and what is allowed.

Every number is finite and inside a stated range (the MAX_* and date bounds below, and those of
:mod:`sim.model.distributions`; README, "Allowed values"), chosen so that every allowed scenario runs:
no count overflows an integer array, no date arithmetic leaves the calendar and no horizon is
too long to hold its hourly rates.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .distributions import MAX_CV, Duration
from ..base.days import as_datetime
from ..base.errors import ScenarioError, shorten
from ..base.outdir import check_slug
from .ranges import ACCEPTANCE, Sampled, keyed_at, path_str

DIRECTIONS = ("exit", "entry")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

LOCAL_TIME = dt.timezone(dt.timedelta(hours=7), "UTC+7")
"""The model's clock: naive times in a scenario are local time; times with an offset are converted."""
MIN_DATE, MAX_DATE = dt.date(1900, 1, 1), dt.date(2199, 12, 31)
MAX_HORIZON_DAYS = 7305  # 20 years: the hourly rates of a flow stay under 1.5 MB
MAX_LANES = 100
MAX_DEMAND = 100_000.0  # vehicles per day per class
MAX_BACKLOG = 1_000_000  # vehicles per class
MAX_ACCEPTANCE = 100_000  # vehicles per day
MAX_PRIORITY = 99
MAX_BACKLOG_AGE_DAYS = 365  # a backlog vehicle came at most a year before the start
MAX_PATIENCE_DAYS = 365  # a class's mean patience (a longer one is no patience: leave it out)
MAX_FACTOR = 100.0  # a demand step's factor
MAX_PROFILE = 1e6  # each relative intensity, before normalisation
MAX_DEPTH = 32  # tables and arrays nested in one another (the baseline needs 6)
MAX_FILE_BYTES = 10_000_000  # a TOML file (the baseline is 20 kB)
MAX_DETOUR_H = 168.0  # a corridor's detour to a gate or out of the province: at most a week's drive
MAX_SENSITIVITY = 1000.0  # per hour, a finite logit sensitivity (beyond it, inf: the shortest expected wait)
# costs, in đồng (VND): a rate of waiting (an hour, a day) or a sum per truck; far above any
# reported figure (VND 1.5 million a day of cold storage, goods of VND 900 million a truck), low
# enough that a replication's sum stays exact to far below a đồng per truck in a float
MAX_RATE_VND = 1e9  # per hour or per day of waiting
MAX_TRUCK_VND = 1e11  # per truck: goods value, the cost of giving up or of leaving the province


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

    @property
    def priced_days(self) -> float:
        """The days after the warm-up: what a run's waits and costs are counted over."""
        return self.days - self.warmup_days


VND_RATE = Annotated[float, Field(ge=0, le=MAX_RATE_VND)]
VND_TRUCK = Annotated[float, Field(ge=0, le=MAX_TRUCK_VND)]


# a class's cost inputs in the order a replication carries them (sim.engines.draws.ReplicationInputs.costs)
COST_FIELDS = ("truck_hour_vnd", "parking_day_vnd", "reefer_day_vnd", "goods_value_vnd", "shelf_life_days",
               "gave_up_vnd", "diverted_vnd")
NO_COST = {"reefer_day_vnd": 0.0, "goods_value_vnd": 0.0, "shelf_life_days": math.inf}  # a field left out


class ClassCosts(_Model):
    """What waiting costs a vehicle of the class, in đồng (VND): per hour and per day of its
    waiting (the waiting of ``waiting_truck_hours``), its goods' spoilage, and per truck that
    gives up or leaves the province (sim.statistics.metrics, COST_METRICS). Every class of a
    scenario has costs or none has: a class without them would be priced at 0 silently."""

    truck_hour_vnd: VND_RATE = Field(description="the truck and its driver, per hour waited")
    parking_day_vnd: VND_RATE = Field(description="parking in the gate's yards, per day waited")
    # a refrigerated load's fuel or cold storage, per day waited; None: the class is not refrigerated
    reefer_day_vnd: VND_RATE | None = None
    # spoilage: the goods' value per truck times min(1, days waited / shelf_life_days) (both or
    # neither; None: the goods keep)
    goods_value_vnd: VND_TRUCK | None = None
    shelf_life_days: float | None = Field(None, gt=0, le=MAX_PATIENCE_DAYS,
                                          description="days waited after which the goods are lost")
    gave_up_vnd: VND_TRUCK = Field(description="per truck that gives up waiting: the trip lost")
    diverted_vnd: VND_TRUCK = Field(description="per truck that leaves the province (to Lạng Sơn)")
    source: str | None = None

    @model_validator(mode="after")
    def _spoilage_pair(self):
        if (self.goods_value_vnd is None) != (self.shelf_life_days is None):
            raise ValueError("spoilage needs both goods_value_vnd and shelf_life_days (or neither: goods that keep)")
        return self


class VehicleClass(_Model):
    priority: int = Field(0, ge=0, le=MAX_PRIORITY, description="lower is served first; FCFS within a priority")
    # how long a vehicle of the class waits to cross before it gives up (turns back, unloads
    # and sells its goods on this side): exponential, with this mean in days (the Erlang-A
    # model; memoryless, so a backlog vehicle still waiting at the start has the same law
    # from then). It runs from when the vehicle came to when it passes the far side's
    # acceptance step (every stage where a flow has none), through refusals and closures.
    # None: every vehicle waits until it crosses.
    patience_days: float | None = Field(None, gt=0, le=MAX_PATIENCE_DAYS,
                                        description="mean days a vehicle waits before it gives up")
    # None: exponential patience; a number: lognormal with this coefficient of variation (a few
    # leave soon, some wait very long; a backlog vehicle then draws its patience given that it
    # has already waited its age)
    patience_cv: float | None = Field(None, gt=0, le=MAX_CV,
                                      description="lognormal patience: standard deviation / mean")
    # the directions in which it may give up (an empty truck going home cannot)
    patience_directions: list[Literal["exit", "entry"]] = Field(default_factory=lambda: list(DIRECTIONS),
                                                                 min_length=1)
    costs: ClassCosts | None = None  # what its waiting costs; None in every class: the scenario is not priced
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
    # a class whose service differs (e.g. set by an adjustment for that class): its own distribution
    service_min_by_class: dict[str, Duration] = Field(default_factory=dict)
    source: str | None = None

    def service_for(self, vclass: str):
        return self.service_min_by_class.get(vclass, self.service_min)


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
    # how long before the horizon's start each backlog vehicle came (days; a bounded
    # distribution, at most MAX_BACKLOG_AGE_DAYS): its wait counts from then. None: at the start
    backlog_age_days: Duration | None = None
    source: str | None = None

    @field_validator("backlog_age_days")
    @classmethod
    def _bounded_age(cls, v):
        if v is None:
            return v
        top = {"uniform": "high", "triangular": "high", "deterministic": "value"}.get(v.dist)
        if top is None:
            raise ValueError("needs a bounded distribution (uniform, triangular or deterministic): an age past "
                             f"{MAX_BACKLOG_AGE_DAYS} days is not a backlog")
        if getattr(v, top) > MAX_BACKLOG_AGE_DAYS:
            raise ValueError(f"ages of at most {MAX_BACKLOG_AGE_DAYS} days (got up to {getattr(v, top):g})")
        return v


class Closure(_Model):
    start: DateOrTime
    end: DateOrTime = Field(description="a date is inclusive (through 24:00 of that day)")
    directions: list[Literal["exit", "entry"]] = Field(default_factory=lambda: list(DIRECTIONS))
    reason: str | None = None
    source: str | None = None


class RandomClosure(_Model):
    """Closures that start on a day with a given probability, at a uniform time of day."""

    id: str = Field(description="names its random stream, closures/<gate>/<id>, and its inputs")
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

    id: str = Field(description="names the step's inputs: demand_steps.<id>.factor")
    from_: Date = Field(alias="from")
    until: Date | None = None
    factor: float = Field(ge=0, le=MAX_FACTOR)  # 0: no vehicles while it holds (a gate stopped for good)
    gates: list[str] | None = None
    directions: list[Literal["exit", "entry"]] | None = None
    classes: list[str] | None = None
    source: str | None = None


ADJUSTABLE = ("service", "lanes", "hours", "acceptance_limit", "demand", "refuse")


class Adjustment(_Model):
    """A change to some gates, directions, stages or classes (all of them where a filter is
    left out): service times, lanes, opening hours, the far side's daily limit or demand,
    multiplied or set; for the whole horizon, or from a date (through ``until``, inclusive, if
    given). ``refuse`` turns vehicles of the given classes away from a date through ``until``:
    one that comes then waits outside until the refusal ends (its wait counts from when it came;
    the cold-chain bans of 2022). Adjustments apply in their order; ones that overlap compound."""

    id: str = Field(description="names the adjustment's inputs: adjust.<id>.multiply")
    what: Literal["service", "lanes", "hours", "acceptance_limit", "demand", "refuse"]
    multiply: float | None = Field(None, gt=0, le=MAX_FACTOR)
    set: Any = Field(None, description="service: a distribution; hours: opening hours; else a number")
    gates: list[str] | None = None
    directions: list[Literal["exit", "entry"]] | None = None
    stages: list[str] | None = None
    classes: list[str] | None = None
    from_: Date | None = Field(None, alias="from")
    until: Date | None = None
    description: str | None = None
    reason: str | None = None
    source: str | None = None

    @property
    def dated(self) -> bool:
        return self.from_ is not None or self.until is not None

    def applies(self, gate: str, direction: str | None = None, stage: str | None = None,
                vclass: str | None = None) -> bool:
        return ((self.gates is None or gate in self.gates)
                and (direction is None or self.directions is None or direction in self.directions)
                and (stage is None or self.stages is None or stage in self.stages)
                and (vclass is None or self.classes is None or vclass in self.classes))

    @model_validator(mode="after")
    def _one_change(self):
        if self.what == "refuse":
            if self.multiply is not None or self.set is not None or self.stages is not None:
                raise ValueError("refuse takes classes (and gates, directions, dates), not multiply, set or stages")
            if not self.classes or not self.dated:
                raise ValueError("refuse needs the classes turned away and the dates (from, until)")
            return self
        if (self.multiply is None) == (self.set is None):
            raise ValueError("needs either 'multiply' or 'set'")
        if self.what == "hours" and self.multiply is not None:
            raise ValueError("opening hours are set, not multiplied: set = ['07:00-20:00'] or a table by weekday")
        if self.stages is not None and self.what not in ("service", "lanes"):
            raise ValueError(f"'stages' filters service and lanes, not {self.what}")
        if self.classes is not None and self.what not in ("service", "demand", "refuse"):
            raise ValueError(f"'classes' filters service, demand and refusals, not {self.what}")
        if self.dated and self.set is not None and self.what in ("service", "demand"):
            raise ValueError(f"from a date, {self.what} can be multiplied, not set")
        if self.set is not None:
            object.__setattr__(self, "set", _set_value(self.what, self.set, self.dated))
        return self


def _set_value(what: str, value: Any, dated: bool):
    """An adjustment's ``set``, checked as the field it sets."""
    if what == "hours":
        value = {"default": value} if isinstance(value, list) else value
    return _set_adapter(what, dated).validate_python(value)


def _set_number(what: str, dated: bool) -> Any:
    """The type of a number an adjustment sets: demand a day, or a count of lanes or vehicles a
    day (from a date, 0 lanes or a limit of 0 closes the stage on those days)."""
    if what == "demand":
        return Annotated[float, Field(gt=0, le=MAX_DEMAND, allow_inf_nan=False)]
    top = MAX_LANES if what == "lanes" else MAX_ACCEPTANCE
    return Annotated[Count, Field(ge=0 if dated else 1, le=top)]


@functools.lru_cache(maxsize=None)
def _set_adapter(what: str, dated: bool) -> TypeAdapter:
    """The validator of an adjustment's ``set`` (built once: building one takes about a
    millisecond)."""
    if what == "service":
        return TypeAdapter(Duration)
    if what == "hours":
        return TypeAdapter(dict[str, list[str]])
    return TypeAdapter(_set_number(what, dated))


class Observation(_Model):
    """How the model's outputs map onto the units reports use (for comparing with observations)."""

    # crossings (lượt: each exit and each entry once) per vehicle a gate's management board
    # counts (Vietnamese vehicles out plus Chinese vehicles in, each once): 2 if every vehicle
    # goes and comes back within the period, 1 if none does
    crossings_per_board_vehicle: float = Field(1.8, ge=1, le=2)
    source: str | None = None


class Expectation(_Model):
    """What a scenario promises against the one it extends: the sign of a headline difference
    (checked by the tests on a short run; shown in reports)."""

    gate: str = "all"
    direction: Literal["exit", "entry", "all"] = "all"
    metric: str
    change: Literal["decrease", "increase", "none"]  # none: the same in every replication (a file that changes nothing)
    note: str | None = None


CHOICE_RULES = ("shares", "open", "wait")
WAIT_FIELDS = ("sensitivity", "detour_h", "outside_detour_h")


def _sensitivity(value: float) -> float:
    """A logit sensitivity: >= 0 and finite up to MAX_SENSITIVITY, or inf (the shortest expected wait)."""
    if not (0 <= value <= MAX_SENSITIVITY or value == math.inf):
        raise ValueError(f"must be >= 0 and <= {MAX_SENSITIVITY:g} per hour, or inf (the shortest expected wait)")
    return value


def _outside_detour(value: float) -> float:
    """The detour out of the province: >= 0 and finite up to MAX_DETOUR_H, or inf (no outside option)."""
    if not (0 <= value <= MAX_DETOUR_H or value == math.inf):
        raise ValueError(f"must be >= 0 and <= {MAX_DETOUR_H:g} h, or inf (no outside option)")
    return value


class CorridorChoice(_Model):
    """How a corridor's demand in one direction is spread over its gates, each class on its own:
    ``shares``, each gate keeps its own demand; ``open``, on a day a gate is closed all day or
    refuses the class, its demand goes to the corridor's gates that serve it that day, in
    proportion to their own demand (none serving: ``none_open``, the trucks queue for their own
    gate or leave the province); ``wait``, each
    truck chooses from the gates' queues (sim.engines.corridor). ``outside_share`` of the demand leaves the province
    (to Lạng Sơn) under every rule but ``wait``, whose outside option is a detour."""

    rule: Literal["shares", "open", "wait"] = "shares"
    outside_share: float = Field(0.0, ge=0, lt=1, description="share of the corridor's demand that leaves the province")
    # rule 'open', on a day no gate serves a class: its trucks leave the province, or keep to
    # their own gates and queue for the reopening (as the 2022 queues at each reopening show)
    none_open: Literal["leave", "queue"] = "leave"
    # rule 'wait': the logit's sensitivity (per hour of expected wait), the detour to each gate
    # and out of the province (hours; inf: trucks leave only when no gate serves them)
    sensitivity: Annotated[float, Field(allow_inf_nan=True), AfterValidator(_sensitivity)] | None = None
    detour_h: dict[str, Annotated[float, Field(ge=0, le=MAX_DETOUR_H)]] | None = None
    outside_detour_h: Annotated[float, Field(allow_inf_nan=True), AfterValidator(_outside_detour)] | None = None
    source: str | None = None


class Corridor(_Model):
    """Gates that trucks choose between (the three Móng Cái crossings): a gate is in at most one
    corridor; each direction's demand is spread over them by its choice rule."""

    name: str | None = None
    gates: list[str] = Field(min_length=2)
    exit: CorridorChoice | None = None
    entry: CorridorChoice | None = None
    source: str | None = None

    def choice(self, direction: str) -> CorridorChoice:
        """The choice rule of a direction (``shares``, nobody leaving, where none is given)."""
        return getattr(self, direction) or _SHARES

    def directions(self, model: "ScenarioModel") -> list[str]:
        """The directions some gate of the corridor handles."""
        return [d for d in DIRECTIONS if self.handling(model, d)]

    def handling(self, model: "ScenarioModel", direction: str) -> list[str]:
        """Its gates that handle a direction, in its order."""
        return [g for g in self.gates if model.gates[g].spec(direction) is not None]

    def classes(self, model: "ScenarioModel", direction: str) -> list[str]:
        """The classes its gates handle in a direction, in the scenario's order."""
        handled = {c for g in self.handling(model, direction) for c in model.gates[g].classes}
        return [c for c in model.classes if c in handled]


_SHARES = CorridorChoice()


MAX_LEVER_COST = 1e15  # VND per unit and year: some US$40 billion, beyond any border works (a typo's guard)
MAX_LEVER_CHOICES = 100
LeverCost = Annotated[float, Field(ge=0, le=MAX_LEVER_COST)]
LEVER_COST_FIELDS = ("capital_per_unit_year", "operating_per_unit_year")  # a lever's numbers that may be ranges


class LeverChoice(_Model):
    """One value of a choice lever: the changes it makes (``--set`` lines, PATH=VALUE) and the
    units of the lever's cost it takes (0 for the scenario as given)."""

    set: list[str] = Field(default_factory=list, description="PATH=VALUE changes, as --set takes them")
    units: float = Field(ge=0, le=1e6, description="units of the lever's cost this choice takes")
    description: str | None = None


class Lever(_Model):
    """What a planner controls: the inputs it sets (``paths``, set to the lever's value, or each
    choice's ``set``), the values it may take (``integer = [lo, hi]``, ``real = [lo, hi]`` or
    ``choices``), its value in the scenario as given (``base``: cost 0), and its cost per unit
    away from ``base`` and year, capital (annualised) and operating, in VND, with their source."""

    description: str | None = None
    paths: list[str] = Field(default_factory=list, description="inputs set to the lever's value (integer, real)")
    integer: list[int] | None = Field(None, min_length=2, max_length=2)
    real: list[float] | None = Field(None, min_length=2, max_length=2)
    choices: dict[str, LeverChoice] | None = Field(None, min_length=2, max_length=MAX_LEVER_CHOICES)
    base: float | str = Field(description="the value (or choice) the scenario as given has")
    unit: str = Field(min_length=1, description="what one unit of the cost is, e.g. 'customs lane each way'")
    capital_per_unit_year: LeverCost = Field(description="VND a year: the capital cost annualised (a number or a "
                                                         "range, which each replication draws)")
    operating_per_unit_year: LeverCost = Field(description="VND a year (a number or a range)")
    cost_source: str = Field(min_length=1, description="where the costs come from, or 'assumption: ...' and why")

    @property
    def kind(self) -> str:
        return "integer" if self.integer is not None else "real" if self.real is not None else "choices"


class ScenarioModel(_Model):
    name: str
    description: str = ""
    horizon: Horizon
    classes: dict[str, VehicleClass] = Field(min_length=1)
    profile: Profile = Field(default_factory=Profile)
    gates: dict[str, Gate] = Field(min_length=1)
    demand_steps: list[DemandStep] = Field(default_factory=list)
    adjust: list[Adjustment] = Field(default_factory=list)
    corridors: dict[str, Corridor] = Field(default_factory=dict)
    levers: dict[str, Lever] = Field(default_factory=dict)
    expect: list[Expectation] = Field(default_factory=list)
    observation: Observation = Field(default_factory=Observation)
    source: str | None = None

    def flows(self) -> list[tuple[str, str]]:
        """Every (gate, direction) the scenario simulates, in file order."""
        return [(g, d) for g, gate in self.gates.items() for d in gate.directions()]

    def dated(self, what: str) -> list[Adjustment]:
        """The adjustments of one kind that hold from a date (the others are in the values already)."""
        return [a for a in self.adjust if a.dated and a.what == what]



# ---------------------------------------------------------------- errors and rules across fields


def _named(loc: tuple, data: Any) -> tuple:
    """An error location with the positions in keyed lists replaced by the items' names (as
    the user wrote them: gates.km3_4.exit.stages.customs.lanes, not ...stages[0].lanes)."""
    out = []
    node = data
    for p in loc:
        key = keyed_at(tuple(out)) if isinstance(p, int) else None
        if isinstance(node, list) and isinstance(p, int) and 0 <= p < len(node):
            node = node[p]
            name = node.get(key) if key and isinstance(node, dict) else None
            out.append(name if isinstance(name, str) else p)
            continue
        out.append(p)
        node = node.get(p) if isinstance(node, dict) else None
    return tuple(out)


def _pydantic_error(exc: ValidationError, file: str, path_offset: tuple = (), data: Any = None) -> ScenarioError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    shown_loc = _named(loc, data) if data is not None else loc
    where = path_str(path_offset + shown_loc)
    etype = err["type"]
    if etype == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return ScenarioError(file, where, f"unknown key '{shorten(loc[-1], 30)}'{hint}")  # the field shows more
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


def _key_type(tp: Any, key: Any) -> tuple[str | None, Any, list] | None:
    """One key down a type: a model's field (by name or alias: its name, annotation and
    metadata), a dict's values or a list's items (no name, no metadata); None where the type has
    no such key. The step both walks of the schema take (_allowed_keys, leaf_bounds)."""
    import typing

    if isinstance(tp, type) and issubclass(tp, BaseModel):
        name, fld = next(((n, f) for n, f in tp.model_fields.items() if key in (n, f.alias)), (None, None))
        return None if fld is None else (name, fld.annotation, list(fld.metadata))
    if typing.get_origin(tp) is dict:
        return None, typing.get_args(tp)[1], []
    if typing.get_origin(tp) is list:
        return None, typing.get_args(tp)[0], []
    return None


def _allowed_keys(loc: tuple) -> list[str]:
    """The keys the table at ``loc`` allows, found by walking the model classes."""
    import typing

    tp: Any = ScenarioModel
    for key in loc:
        tp = _strip(tp, key)
        if isinstance(tp, tuple):  # the tag of a discriminated union: stay on the chosen model
            tp = tp[1]
            continue
        step = _key_type(tp, key)
        if step is None:
            return []
        tp = step[1]
    tp = _strip(tp)
    if isinstance(tp, tuple):
        tp = tp[1]
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


@dataclass(frozen=True)
class Bounds:
    """The interval a number of the scenario must lie in (each end open or closed)."""

    low: float = -math.inf
    low_open: bool = False
    high: float = math.inf
    high_open: bool = False

    def holds(self, x: float) -> bool:
        return ((x > self.low if self.low_open else x >= self.low)
                and (x < self.high if self.high_open else x <= self.high) and math.isfinite(x))

    def text(self) -> str:
        low = f"{'>' if self.low_open else '>='} {self.low:g}" if self.low > -math.inf else ""
        high = f"{'<' if self.high_open else '<='} {self.high:g}" if self.high < math.inf else ""
        return f"must be {' and '.join(b for b in (low, high) if b) or 'finite'}"


def _bounds_of(metadata: list) -> Bounds:
    b = Bounds()
    for m in metadata:
        for name, low_open, is_low in (("gt", True, True), ("ge", False, True), ("lt", True, False),
                                       ("le", False, False)):
            value = getattr(m, name, None)
            if value is not None:
                b = replace(b, low=value, low_open=low_open) if is_low else replace(b, high=value, high_open=low_open)
    return b


def leaf_bounds(path: tuple, tree: dict) -> Bounds | None:
    """The bounds the schema sets on the number at ``path`` of a model-form tree (lists by
    position; a distribution's fields by its ``dist``; an adjustment's ``set`` by what it sets);
    None where the schema has none to give (the number is checked where it is used)."""
    import typing

    tp: Any = ScenarioModel
    node: Any = tree
    metadata: list = []
    for depth, key in enumerate(path):
        metadata = []
        while True:  # Annotated, Optional and a discriminated union, down to the type at this node
            origin = typing.get_origin(tp)
            if origin is typing.Annotated:
                args = typing.get_args(tp)
                metadata += [m for a in args[1:] for m in getattr(a, "metadata", [a])]
                tp = args[0]
            elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
                args = [a for a in typing.get_args(tp) if a is not type(None)]
                tagged = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)
                          and "dist" in a.model_fields and isinstance(node, dict)
                          and node.get("dist") in typing.get_args(a.model_fields["dist"].annotation)]
                tp = (tagged or args)[0]
            else:
                break
        step = _key_type(tp, key)
        if step is None:
            return None
        name, annotation, field_metadata = step
        if tp is Adjustment and name == "set" and depth == len(path) - 1:
            what = node.get("what")
            if what in ("lanes", "acceptance_limit", "demand"):
                dated = node.get("from") is not None or node.get("until") is not None
                tp, metadata = _set_number(what, dated), []
                continue
            return None
        if name is not None:  # a model's field: its own constraints
            metadata = field_metadata
        tp = annotation
        node = node[key] if isinstance(node, (dict, list)) else None
    while typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        metadata += [m for a in args[1:] for m in getattr(a, "metadata", [a])]
        tp = args[0]
    return _bounds_of(metadata)


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
            for st in spec.stages:
                for c in st.service_min_by_class:
                    if c not in gate.classes:
                        raise ScenarioError(file, f"{gp}.{d}.stages.{st.name}.service_min_by_class.{c}",
                                            f"class '{c}' is not handled by this gate (classes: "
                                            f"{', '.join(gate.classes)})")
        for i, c in enumerate(gate.closures):
            if as_datetime(c.end, end=True) <= as_datetime(c.start):
                raise ScenarioError(file, f"{gp}.closures[{i}].end", "must be after start")
    for step in m.demand_steps:
        where = f"demand_steps.{step.id}"
        if step.until is not None and step.until < step.from_:
            raise ScenarioError(file, f"{where}.until", f"{step.until} is before 'from' {step.from_}")
        for g in step.gates or []:
            if g not in m.gates:
                raise ScenarioError(file, f"{where}.gates", f"unknown gate '{g}' (gates: {', '.join(m.gates)})")
        for c in step.classes or []:
            if c not in m.classes:
                raise ScenarioError(file, f"{where}.classes", f"unknown class '{c}'")
    _check_corridors(m, file)
    priced = [c for c, cls in m.classes.items() if cls.costs is not None]
    if priced and len(priced) < len(m.classes):
        missing = next(c for c in m.classes if c not in priced)
        raise ScenarioError(file, f"classes.{missing}.costs", f"required field is missing: every class needs costs "
                                                              f"once one has them ({', '.join(priced)} has), or its "
                                                              "waiting would be priced at 0")
    _check_levers(m, file)
    for e in m.expect:
        if e.gate != "all" and e.gate not in m.gates and e.gate not in m.corridors:
            raise ScenarioError(file, "expect.gate", f"unknown gate '{e.gate}' (gates: all, "
                                                     f"{', '.join([*m.gates, *m.corridors])})")


def _check_corridors(m: ScenarioModel, file: str) -> None:
    """A corridor names gates of the scenario, each in no other corridor; its id is a plain name
    apart from the gates' (corridor rows share the tables' gate column); each rule's fields
    are its own, the rule 'wait' has a detour for each of its gates and no other."""
    member: dict[str, str] = {}
    for cid, corridor in m.corridors.items():
        where = f"corridors.{cid}"
        check_slug(cid, file, where)
        if cid in m.gates or cid == "all":
            raise ScenarioError(file, where, f"'{cid}' names a gate; a corridor's id must differ from every gate's "
                                             "and from 'all' (its rows share the tables' gate column)")
        for g in corridor.gates:
            if g not in m.gates:
                raise ScenarioError(file, f"{where}.gates", f"unknown gate '{shorten(g, 60)}' (gates: "
                                                            f"{', '.join(m.gates)})")
            if member.get(g) == cid:
                raise ScenarioError(file, f"{where}.gates", f"gate '{g}' is listed twice")
            if g in member:
                raise ScenarioError(file, f"{where}.gates", f"gate '{g}' is in corridor '{member[g]}' already; a "
                                                            "gate is in at most one corridor")
            member[g] = cid
        for d in DIRECTIONS:
            choice = getattr(corridor, d)
            if choice is None:
                continue
            cw = f"{where}.{d}"
            handled = corridor.handling(m, d)
            if not handled:
                raise ScenarioError(file, cw, f"no gate of the corridor handles {d}; leave the table out")
            if choice.rule != "open" and choice.none_open != "leave":  # 'leave' is what every other rule does
                raise ScenarioError(file, f"{cw}.none_open", f"'queue' belongs to the rule 'open', not "
                                                             f"'{choice.rule}' (a file extending one on 'open' sets "
                                                             "none_open = \"leave\")")
            if choice.rule != "wait":
                for f in WAIT_FIELDS:
                    if getattr(choice, f) is not None:
                        raise ScenarioError(file, f"{cw}.{f}", f"belongs to the rule 'wait', not '{choice.rule}'")
                continue
            if len(handled) < 2:
                raise ScenarioError(file, f"{cw}.rule", f"the rule 'wait' chooses between gates: only "
                                                        f"'{handled[0]}' of the corridor handles {d}")
            for f in WAIT_FIELDS:
                if getattr(choice, f) is None:
                    raise ScenarioError(file, f"{cw}.{f}", "required field is missing (the rule 'wait' needs "
                                                           f"{', '.join(WAIT_FIELDS)})")
            for g in choice.detour_h:
                if g not in handled:
                    raise ScenarioError(file, f"{cw}.detour_h.{g}", f"'{shorten(g, 60)}' is not a gate of the "
                                                                    f"corridor handling {d} ({', '.join(handled)})")
            for g in handled:
                if g not in choice.detour_h:
                    raise ScenarioError(file, f"{cw}.detour_h", f"needs a detour for every gate of the corridor "
                                                                f"handling {d}: '{g}' has none")
            if choice.outside_share:
                raise ScenarioError(file, f"{cw}.outside_share", "the rule 'wait' leaves the province by its "
                                                                 "outside_detour_h, not a share")


def _check_levers(m: ScenarioModel, file: str) -> None:
    """A lever has one kind of values (integer, real or choices) that hold its base, sets inputs
    (paths for a number, each choice's set, the base choice's none: it is the scenario as given),
    and no input is set by two levers. Whether the paths name inputs is checked against the
    scenario by the optimisation (sim.experiments.levers), as --set checks its own."""
    owner: dict[str, str] = {}
    for lid, lever in m.levers.items():
        where = f"levers.{lid}"
        check_slug(lid, file, where)
        kinds = [k for k in ("integer", "real", "choices") if getattr(lever, k) is not None]
        if len(kinds) != 1:
            raise ScenarioError(file, where, "needs exactly one of integer = [lo, hi], real = [lo, hi] or "
                                             f"[{where}.choices.<name>] (has {', '.join(kinds) or 'none'})")
        if lever.kind == "choices":
            if lever.paths:
                raise ScenarioError(file, f"{where}.paths", "a choice lever sets inputs in each choice's set; "
                                                            "paths belong to integer and real levers")
            if not isinstance(lever.base, str) or lever.base not in lever.choices:
                raise ScenarioError(file, f"{where}.base", f"{_echo(lever.base)} is not one of its choices "
                                                           f"({', '.join(lever.choices)})")
            base = lever.choices[lever.base]
            if base.set or base.units:
                raise ScenarioError(file, f"{where}.choices.{lever.base}", "is the base, the scenario as given: it "
                                                                           "sets nothing and costs 0 units")
            targets = {}
            for name, choice in lever.choices.items():
                check_slug(name, file, f"{where}.choices")
                for i, text in enumerate(choice.set):
                    path = text.partition("=")[0].rstrip("+-*").strip()
                    if not path or "=" not in text:
                        raise ScenarioError(file, f"{where}.choices.{name}.set[{i}]",
                                            f"'{shorten(text)}' is not PATH=VALUE (as --set takes it)")
                    targets[path] = name
            paths = list(targets)
        else:
            lo, hi = getattr(lever, lever.kind)
            if not lo < hi:
                raise ScenarioError(file, f"{where}.{lever.kind}", f"[{lo:g}, {hi:g}] needs lo < hi")
            if isinstance(lever.base, str) or not lo <= lever.base <= hi:
                raise ScenarioError(file, f"{where}.base", f"{_echo(lever.base)} must be a number in "
                                                           f"[{lo:g}, {hi:g}], its {lever.kind} range")
            if lever.kind == "integer" and not float(lever.base).is_integer():
                raise ScenarioError(file, f"{where}.base", f"{lever.base:g} is not a whole number")
            if not lever.paths:
                raise ScenarioError(file, f"{where}.paths", "names no input: give the inputs the lever sets")
            paths = list(lever.paths)
        for path in paths:
            if path in owner and owner[path] != lid:
                raise ScenarioError(file, where, f"sets {shorten(path, 120)}, which lever '{owner[path]}' sets "
                                                 "already; an input belongs to one lever")
            if path in owner:
                raise ScenarioError(file, f"{where}.paths", f"lists {shorten(path, 120)} twice")
            owner[path] = lid


def _validate(data: dict, file: str) -> ScenarioModel:
    """The scenario model of a tree in model form (sim.model.ranges.model_form)."""
    try:
        model = ScenarioModel.model_validate(data)
    except ValidationError as exc:
        raise _pydantic_error(exc, file, data=data) from None
    _cross_check(model, file)
    return model


