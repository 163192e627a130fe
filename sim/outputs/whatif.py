"""A planner's what-if, as the `bordersim serve` page asks it: controls a planner moves (lanes of a
stage, a gate's opening hours, a closure, demand, the far side's daily limit, service times, a
corridor's choice rule), each the ``--set PATH=VALUE`` lines `bordersim compare SCENARIO SCENARIO
--set ...` takes; the page's figures from the Comparison they give; and the scenario file that
reproduces them (``extends`` the scenario, the changes as its own tables).

A control's value is read as one TOML value (sim.model.scenario.toml_value) and its line is written
from that value's data, never by pasting the text into a line, so a value can change nothing but
its own control's input. Changes that a path alone cannot say are adjustments of the scenario's own
kind (``[[adjust]]`` with an id of ours, ``whatif_...``), or a gate's closures with one more.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..base.errors import ScenarioError, shorten
from ..experiments.compare import Comparison
from ..model.ranges import model_form, value_at
from ..model.scenario import Scenario, merge_layers, set_layer, toml_value
from ..statistics.metrics import ReplicationResult, daily_table, summarise
from .findings import ALL, UNCHANGED, change_words, corridor_changes, corridors_of, headline_rows, stage_label, unchanged
from .formats import metric
from .text import level, shown_difference

DEFAULT_REPS = 20
MAX_REPS = 200  # replications a request may ask: bounds the work one change starts
MIN_REPS = 2  # a paired interval needs two (as `bordersim compare --reps`)
MAX_SEED = 2**64 - 1
DEFAULT_SEED = 20221130  # sim.experiments.run.DEFAULT_SEED, as `bordersim compare` takes it
ID = "whatif"  # the ids of the adjustments a what-if adds start with it
COST = re.compile(r"cost_.*_vnd")  # a cost metric, in dong, where a scenario has them
QUEUES = ("queue_mean", "queue_end")  # the daily queue figures the page draws (daily.csv)
SAID = 2  # clear differences a gate's sentence names, the headline's first (as the report's first finding)
CHART_DECIMALS = 3  # the charts' series are rounded to this many decimals (vehicles, hours): drawn, not read


@dataclass(frozen=True)
class Control:
    """One thing a planner changes: ``params`` name its boxes in the page's address (one, or a
    closure's two dates), ``current`` is what the scenario has as the box shows it."""

    key: str
    label: str
    group: str  # the gate's or corridor's id
    kind: str  # value (an input by its path), factor (an adjustment's multiply), hours, closure
    current: str = ""
    path: tuple = ()  # value: the input's keys
    adjust: Mapping[str, Any] = field(default_factory=dict)  # factor, hours: the adjustment but its change
    params: tuple[str, ...] = ()


def _inline(value: Any) -> str:
    """A value as one line of TOML (an inline table, an array, a scalar: tomlkit's quoting)."""
    import tomlkit

    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{tomlkit.key(str(k)).as_string()} = {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return tomlkit.item(value).as_string()


def controls(scenario: Scenario) -> list[Control]:
    """The page's controls for a scenario, gate by gate (in the scenario's order), then each
    corridor direction whose trucks choose by the ``wait`` rule."""
    raw, model = scenario.raw, scenario.nominal
    out: list[Control] = []
    for g, gate in model.gates.items():
        hours = gate.hours
        shown = ", ".join(hours.get("default", []))
        days = [d for d in hours if d != "default"]
        label = "opening hours, every day" + (f" (now also {', '.join(days)} hours of their own)" if days else "")
        out.append(Control(f"hours.{g}", label, g, "hours", shown, params=(f"hours.{g}",),
                           adjust={"what": "hours", "gates": [g]}))
        out.append(Control(f"closure.{g}", "closed from / until (dates, inclusive)", g, "closure",
                           params=(f"closure_from.{g}", f"closure_until.{g}")))
        out.append(Control(f"demand.{g}", "demand ×", g, "factor", "1", params=(f"demand.{g}",),
                           adjust={"what": "demand", "gates": [g]}))
        limited = [d for d in gate.directions() if getattr(gate, d).acceptance_limit is not None]
        if limited:
            out.append(Control(f"limit.{g}", "far side's daily limit ×", g, "factor", "1", params=(f"limit.{g}",),
                               adjust={"what": "acceptance_limit", "gates": [g], "directions": limited,
                                       "from": model.horizon.start}))
        kinds: list[str] = []
        for d in gate.directions():
            for stage in getattr(gate, d).stages:
                path = ("gates", g, d, "stages", stage.name, "lanes")
                out.append(Control(f"lanes.{g}.{d}.{stage.name}", f"{d} {stage_label(stage.name)} lanes", g, "value",
                                   _inline(value_at(raw, path)), path=path, params=(f"lanes.{g}.{d}.{stage.name}",)))
                kinds += [stage.name] if stage.name not in kinds else []
        for s in kinds:
            out.append(Control(f"service.{g}.{s}", f"{stage_label(s)} service time ×", g, "factor", "1",
                               params=(f"service.{g}.{s}",), adjust={"what": "service", "gates": [g], "stages": [s]}))
    for cid, corridor in model.corridors.items():
        for d in ("exit", "entry"):
            choice = getattr(corridor, d, None)
            if choice is not None and choice.rule == "wait":
                path = ("corridors", cid, d, "sensitivity")
                out.append(Control(f"sensitivity.{cid}.{d}", f"{d}: sensitivity to the wait, per hour", cid, "value",
                                   _inline(value_at(raw, path)), path=path, params=(f"sensitivity.{cid}.{d}",)))
    return out


@dataclass
class Changes:
    """A page's state read: each changed control's ``--set`` line, the errors of the values that
    could not be read (by control), the replications and seed, what the address held that is no
    control's."""

    lines: dict[str, str]  # control key -> its line, in the controls' order
    texts: dict[str, str]  # each box of a changed control -> its text
    errors: dict[str, str]
    reps: int
    seed: int
    unknown: list[str]

    @property
    def sets(self) -> list[str]:
        return list(self.lines.values())

    @property
    def key(self) -> tuple:
        """What the results depend on (the scenario aside)."""
        return tuple(self.sets), self.seed, self.reps


def _whole(text: str | None, default: int, low: int, high: int, name: str, errors: dict[str, str]) -> int:
    """A whole number within [low, high] from a box; a message in ``errors`` otherwise."""
    if text is None or not text.strip():
        return default
    try:
        value = int(text.strip())
    except ValueError:
        errors[name] = f"{name}: '{shorten(text, 40)}' is not a whole number"
        return default
    if not low <= value <= high:
        errors[name] = f"{name}: must be a whole number from {low:,} to {high:,} (got {shorten(value, 40)})"
    return value


def read_state(scenario: Scenario, items: Mapping[str, str], known: tuple[str, ...] = ()) -> Changes:
    """The changes a page's state asks (its address's query: a box's name and its text), each
    control's value read alone: a value that is no TOML value, a closure with one date, or
    replications or a seed out of range is an error of its control. ``known``: other names the
    address may hold (the page's own, such as the chart's gate)."""
    errors: dict[str, str] = {}
    lines: dict[str, str] = {}
    texts: dict[str, str] = {}
    ctrls = controls(scenario)
    names = {p for c in ctrls for p in c.params} | {"reps", "seed", *known}
    unknown = [k for k in items if k not in names]
    reps = _whole(items.get("reps"), DEFAULT_REPS, MIN_REPS, MAX_REPS, "reps", errors)
    seed = _whole(items.get("seed"), DEFAULT_SEED, 0, MAX_SEED, "seed", errors)
    for c in ctrls:
        boxes = [(items.get(p) or "").strip() for p in c.params]
        if not any(boxes):
            continue
        try:
            line = _line(scenario, c, boxes)
        except ScenarioError as exc:
            errors[c.key] = exc.one_line()
            continue
        if line is not None:
            lines[c.key] = line
            texts.update(zip(c.params, boxes))
    return Changes(lines, texts, errors, reps, seed, unknown)


def _line(scenario: Scenario, c: Control, texts: list[str]) -> str | None:
    """A control's ``--set`` line for the values in its boxes; None where they are what the
    scenario has."""
    file = scenario.path
    if c.kind == "value":
        where = ".".join(c.path)
        value = toml_value(texts[0], file, f"--set {where}")
        return None if texts[0] == c.current or value == toml_value(c.current, file, where) else f"{where}={_inline(value)}"
    item = f"adjust.{ID}_{c.key.replace('.', '_')}"
    if c.kind == "factor":
        value = toml_value(texts[0], file, f"--set {item}.multiply")
        if value == 1 and not isinstance(value, bool):
            return None
        return f"{item}={_inline({**c.adjust, 'multiply': value})}"
    if c.kind == "hours":
        spans = [s for s in re.split(r"[,\s]+", texts[0]) if s]
        if spans == [s for s in re.split(r"[,\s]+", c.current) if s]:
            return None
        return f"{item}={_inline({**c.adjust, 'set': spans})}"
    # a closure: both dates, added to the gate's own closures (a list a file replaces whole)
    where = f"gates.{c.group}.closures"
    if not all(texts):
        raise ScenarioError(file, where, "a closure needs both dates, from and until (YYYY-MM-DD)")
    start, end = (toml_value(t, file, f"--set {where}") for t in texts)
    own = list(scenario.raw["gates"][c.group].get("closures") or [])
    return f"{where}={_inline(own + [{'start': start, 'end': end, 'reason': 'what-if closure'}])}"


def scenario_toml(scenario: Scenario, changes: Changes, name: str | None = None) -> str:
    """The scenario file of a what-if: ``extends`` the scenario's file (by its absolute path, so
    that the file runs wherever it is saved), its name and what it changes, then the changes as
    its own tables: the layer ``--set`` makes of ``lines`` (sim.model.scenario.set_layer), so
    `bordersim run` or `compare` of it gives what the page gave at the same seed."""
    import tomlkit

    said = described(scenario, changes)
    layer = set_layer(changes.sets, merge_layers(list(scenario.layers)), scenario.path)
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f" A what-if of {scenario.name}, written by `bordersim serve`; run it with"))
    doc.add(tomlkit.comment(f" `bordersim compare {Path(scenario.path).name} THIS_FILE` (same --reps and --seed)."))
    doc.add("extends", str(Path(scenario.path).resolve()))
    doc.add("name", name or f"{scenario.name}_{ID}")
    doc.add("description", f"{scenario.name} with: {'; '.join(said)}" if said else f"{scenario.name}, unchanged")
    for key, value in model_form(layer.raw).items():
        doc.add(key, value)
    return tomlkit.dumps(doc)


def described(scenario: Scenario, changes: Changes) -> list[str]:
    """Each change in a planner's words: "Km3+4 Hải Yên pontoon crossing: exit customs lanes 3"."""
    names = {g: gate.name for g, gate in scenario.nominal.gates.items()}
    names.update({cid: c.name or cid for cid, c in scenario.nominal.corridors.items()})
    out = []
    for c in controls(scenario):
        if c.key in changes.lines:
            value = " to ".join(changes.texts[p] for p in c.params)
            out.append(f"{names.get(c.group, c.group)}: {c.label.split(' (')[0]} {value}")
    return out


def command_line(scenario_arg: str, changes: Changes) -> str:
    """The `bordersim compare` command that gives the page's numbers."""
    words = ["bordersim", "compare", scenario_arg, scenario_arg]
    for line in changes.sets:
        words += ["--set", line]
    words += ["--reps", str(changes.reps), "--seed", str(changes.seed)]
    return " ".join(shlex.quote(w) for w in words)


# ------------------------------------------------------------------ the page's figures


@dataclass(frozen=True)
class Tables:
    """What the page draws of a scenario's own replications, computed once for each set of them:
    its summary (summary.csv) and its queues by date (_queues, from daily.csv)."""

    summary: pd.DataFrame
    dates: list[str]
    queues: dict


def own_tables(results: list[ReplicationResult], scenario: Scenario) -> Tables:
    return Tables(summarise(results), *_queues(daily_table(results, scenario.nominal.horizon.start)))


def _series(values) -> list[float | None]:
    """A chart's series: rounded (CHART_DECIMALS), no figure as null (JSON has no NaN)."""
    return [None if not math.isfinite(v) else round(float(v), CHART_DECIMALS) for v in values]


def _number(v) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _queues(daily: pd.DataFrame) -> tuple[list[str], dict]:
    """Per gate (and all gates) and daily queue figure: mean, p05, p95 by date, both directions."""
    d = daily[(daily.direction == ALL) & daily.metric.isin(QUEUES)]
    dates = sorted(map(str, d.date.unique()))
    out: dict = {}
    for (g, m), rows in d.groupby(["gate", "metric"], sort=False):
        rows = rows.set_index(rows.date.map(str)).reindex(dates)
        out.setdefault(str(g), {})[str(m)] = {k: _series(rows[k].to_numpy(dtype=float)) for k in ("mean", "p05", "p95")}
    return dates, out


def _main_row(summary: pd.DataFrame, gate: str, metric_: str) -> pd.Series | None:
    rows = summary[(summary.gate == gate) & (summary.direction == ALL) & (summary.metric == metric_)
                   & (summary.stage == "") & (summary["class"] == "")]
    return None if rows.empty else rows.iloc[0]


def _difference_row(m: pd.Series, names: Mapping[str, str]) -> dict:
    how = metric(str(m.metric))
    return {"gate": str(m.gate), "name": names.get(str(m.gate), "all gates"), "metric": str(m.metric),
            "label": how.label, "share": how.share, "digits": how.digits,
            "base": _number(m.base_mean), "alt": _number(m.alt_mean), "diff_mean": _number(m.diff_mean),
            "diff_ci_low": _number(m.diff_ci_low), "diff_ci_high": _number(m.diff_ci_high),
            "excludes_zero": bool(m.excludes_zero), "words": change_words(m, interval=True),
            "base_text": level(m.base_mean, how), "alt_text": level(m.alt_mean, how), "diff_text": shown_difference(m, how)}


def findings(rows: list[tuple[str, pd.Series]], same: list[str], names: Mapping[str, str]) -> list[str]:
    """A sentence per gate of what the change does, its first SAID clear differences (an interval
    that excludes 0; the table has them all) with their intervals ("Km3+4 pontoon: mean time in system -7.3 h [-12.5, -2.1] *"),
    all gates last; the gates where it shows nothing clearly and those where it changes nothing.
    ``rows``: (gate, its row of compare.csv) of the headline metrics (headline_rows)."""
    clear: dict[str, list[str]] = {}
    quiet: list[str] = []
    for g, m in rows:
        if m.excludes_zero:
            clear.setdefault(g, []).append(change_words(m, interval=True))
        elif g not in quiet:
            quiet.append(g)
    out = [f"{names.get(g, g)}: {'; '.join(words[:SAID])}." for g, words in clear.items() if g != ALL]
    if ALL in clear:
        out.append(f"All gates: {'; '.join(clear[ALL][:SAID])}.")
    quiet = [g for g in quiet if g not in clear and g != ALL]
    if quiet:
        out.append(f"No clear change (every interval includes 0) at {', '.join(names.get(g, g) for g in quiet)}.")
    if same:
        out.append(f"Unchanged: {', '.join(names.get(g, g) for g in same)} ({UNCHANGED}).")
    return out


def page_result(cmp: Comparison, tables: list[Tables], changes: Changes, command: str) -> dict:
    """Everything the page shows of a comparison of the scenario (first) with its change: the
    queues by date of each, the time in system by gate, the paired differences with their
    intervals and sentences, the costs where the scenario has them, the warnings."""
    base, alt = cmp.scenarios[0], cmp.scenarios[1]
    gates = list(base.nominal.gates)
    names = {g: gate.name for g, gate in base.nominal.gates.items()}
    tis = []
    for g in [*gates, ALL]:
        pair = [_main_row(t.summary, g, "time_in_system_mean_h") for t in tables]
        if all(r is not None for r in pair):
            tis.append({"gate": g, "name": names.get(g, "all gates"),
                        **{k: [_number(r["mean"]), _number(r["ci_low"]), _number(r["ci_high"])]
                           for k, r in zip(("base", "alt"), pair)}})
    table = cmp.table
    same = unchanged(table, alt.name)
    t = table[(table.scenario == alt.name) & (table.direction == ALL) & (table.stage == "") & (table["class"] == "")]
    rows = [(g, m) for g, _shown, m in headline_rows(t, alt.name, skip=same)]
    differences = [_difference_row(m, names) for _g, m in rows]
    costs = [_difference_row(m, names) for _i, m in t[t.metric.map(lambda x: bool(COST.fullmatch(str(x))))].iterrows()]
    corridors = {cid: c for s in cmp.scenarios for cid, c in corridors_of(s.nominal).items()}
    said = findings(rows, same, names) + corridor_changes(table, alt.name, corridors, dict(names))
    return {"scenario": base.name, "alternative": alt.name, "reps": cmp.reps, "seed": cmp.seed,
            "sets": changes.sets, "command": command, "gates": [{"id": g, "name": names[g]} for g in gates],
            "dates": tables[0].dates, "queues": {"base": tables[0].queues, "alt": tables[1].queues}, "time_in_system": tis,
            "differences": differences, "unchanged": [names.get(g, g) for g in same],
            "findings": said, "costs": costs, "warnings": list(cmp.warnings),
            "wall_s": round(cmp.wall_s, 3)}


def json_safe(value: Any) -> Any:
    """numpy's numbers as Python's, no figure (NaN) as null, dates as text: what json.dumps takes
    (and JSON.parse reads: it has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value
