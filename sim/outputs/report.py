"""``bordersim report``: one self-contained HTML page for a results folder, to open, read, print
and pass on without Python or a network.

A page is built from the folder alone: its tables, metadata.json, the kind its ``.bordersim``
marker names, and the copies of the scenario files a run keeps in it (``scenario_files/``) for
the comments and ``source`` fields behind each input. A results folder may come from anyone, so
no path it records is followed outside it, and a link in it is not read. Plots are the folder's PNGs, embedded as
``data:`` images (drawn from its tables in memory where the folder has none). Each kind of
folder is one function that turns the folder into a :class:`Page` of sections; the Jinja2
template (sim/outputs/templates/report.html.j2) lays out any page the same way. A kind is added by
writing its function and registering it with ``@kind("name")``.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..base.errors import BordersimError, shorten
from .findings import ALL, extreme_gates, extreme_notes, gate_value, main_rows, stage_label, wait_shares, wait_without
from ..base.outdir import MARKER, sign_html, version

TEXT_KEYS = ("name", "description", "source", "reason", "note", "id")
HIGH_UTILISATION = 0.9  # a stage busier than this is near its capacity: the report warns
INTERVALS = ("Two kinds of interval. [low, high] after a mean is its 95 % confidence interval: how sure "
             "the mean over replications is (more replications narrow it). 5–95 % of replications is their "
             "spread: the range in which nine runs of this scenario in ten fall, with input uncertainty and "
             "day-to-day randomness together.")
NBSP = "\u00a0"  # inside a figure, so that a narrow column breaks a cell between a mean and its interval only


class ReportError(BordersimError):
    """A folder that cannot be reported on."""


# ------------------------------------------------------------------ the page


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    numeric: set[int] = field(default_factory=set)  # columns aligned right
    emphasis: set[int] = field(default_factory=set)  # rows shown in bold (totals)


@dataclass
class Figure:
    title: str
    caption: str
    src: str | None  # a data: URI, or None with ``missing`` saying why
    missing: str = ""


@dataclass
class Block:
    kind: str  # text, notes, warnings, facts, table, figure, pre
    value: Any


@dataclass
class Section:
    id: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def text(self, text: str) -> "Section":
        if text:
            self.blocks.append(Block("text", text))
        return self

    def add(self, kind: str, value: Any) -> "Section":
        self.blocks.append(Block(kind, value))
        return self


@dataclass
class Page:
    title: str
    subtitle: str | list[str]  # a line, or one per alternative of a comparison
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)


KINDS: dict[str, Callable[["Folder"], Page]] = {}


def kind(name: str):
    """Register the function that reports on folders of one kind (the marker's ``kind``)."""

    def register(fn: Callable[["Folder"], Page]) -> Callable[["Folder"], Page]:
        KINDS[name] = fn
        return fn

    return register


# ------------------------------------------------------------------ reading a folder


@dataclass
class Folder:
    """A results folder being reported on."""

    path: Path
    kind: str
    draw_missing: bool
    meta: dict = field(default_factory=dict)

    def file(self, name: str) -> Path | None:
        """One of the folder's files (inside it, not a link), or None."""
        return inside(self.path, name)

    def csv(self, name: str) -> pd.DataFrame | None:
        """One of the folder's tables (stage and class columns as text, '' where empty)."""
        path = self.file(name)
        if path is None:
            return None
        try:
            table = pd.read_csv(path, dtype={"stage": str, "class": str, "scenario": str, "gate": str})
        except (OSError, ValueError) as exc:
            raise ReportError(str(path), None, f"cannot be read: {exc}") from None
        for col in ("stage", "class"):
            if col in table:
                table[col] = table[col].fillna("")
        return table

    def figure(self, png: str, title: str, caption: str, draw: Callable[[Path | io.BytesIO], None] | None) -> Figure:
        """The folder's PNG as a data: URI; drawn now from the tables where it is missing (if
        asked to draw and the tables are there)."""
        path = self.file(png)
        if path is not None:
            return Figure(title, caption, _data_uri(path.read_bytes()))
        if self.draw_missing and draw is not None:
            buffer = io.BytesIO()
            draw(buffer)
            return Figure(title, caption, _data_uri(buffer.getvalue()))
        why = "not drawn: the run was made with --no-plots" if self.meta.get("plots") is False else f"{png} is missing"
        return Figure(title, caption, None, why)


def inside(root: Path, recorded: str | None) -> Path | None:
    """The regular file ``recorded`` (a path relative to the folder ``root``) names inside
    ``root``, or None: an absolute path, one that climbs out, a link, or nothing there."""
    if not recorded or Path(recorded).is_absolute():
        return None
    path = root / recorded
    try:
        real = path.resolve(strict=True)
        if not real.is_relative_to(root.resolve(strict=True)) or path.is_symlink():
            return None
        return path if real.is_file() else None
    except (OSError, RuntimeError):
        return None


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def folder_kind(path: Path) -> str:
    """The kind of results a folder holds: its marker's, or 'calibration' for a folder with a
    targets file and its report (calibration/ has no marker: bordersim writes its files one by one)."""
    marker = path / MARKER
    if marker.is_file():
        try:
            data = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) and data.get("written_by") == "bordersim" and isinstance(data.get("kind"), str):
            return data["kind"]
    if _targets_files(path):
        return "calibration"
    raise ReportError(str(path), None, f"is not a bordersim results folder (no {MARKER} marker, no targets file)")


def _targets_files(path: Path) -> list[Path]:
    """A calibration folder's targets files (in it, not links)."""
    return sorted(p for p in path.glob("targets*.toml") if inside(path, p.name) is not None)


def build_report(folder: str | Path, draw_missing: bool = True) -> str:
    """The HTML page for a results folder (see the module's docstring)."""
    path = Path(folder)
    if not path.is_dir():
        raise ReportError(str(path), None, "is not a folder" if path.exists() else "folder not found")
    name = folder_kind(path)
    if name not in KINDS:
        raise ReportError(str(path), None, f"holds results of kind '{name}', which bordersim {version()} cannot "
                                           f"report on (it reports on: {', '.join(KINDS)})")
    meta = {}
    recorded = inside(path, "metadata.json")
    if recorded is not None:
        try:
            meta = json.loads(recorded.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ReportError(str(recorded), None, f"cannot be read: {shorten(exc, 120)}") from None
    page = KINDS[name](Folder(path, name, draw_missing, meta))
    return render(page)


def render(page: Page) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("sim.outputs", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = _cell
    template = env.get_template("report.html.j2")
    html = template.render(page=page, version=version(), made=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                           findings=any(s.id == "findings" for s in page.sections))
    return sign_html(html)  # bordersim knows its own unchanged report by this, wherever it is


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return str(value)


# ------------------------------------------------------------------ formatting


def num(value: Any, digits: int = 1) -> str:
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value):,.{digits}f}"


def percent(value: Any, digits: int = 0) -> str:
    """A share (0 to 1) in per cent."""
    if value is None or pd.isna(value):
        return "–"
    return f"{float(value) * 100:,.{digits}f}{NBSP}%"


def with_ci(row: pd.Series | None, digits: int) -> str:
    """'mean [low, high]' of a summary row."""
    if row is None:
        return "–"
    text = num(row["mean"], digits)
    if pd.notna(row.get("ci_low")) and pd.notna(row.get("ci_high")):
        text += f" [{num(row['ci_low'], digits)},{NBSP}{num(row['ci_high'], digits)}]"
    return text


def spread(row: pd.Series | None, digits: int) -> str:
    if row is None or pd.isna(row.get("p05")):
        return "–"
    return f"{num(row['p05'], digits)}–{num(row['p95'], digits)}"


def value_text(value: Any) -> str:
    """A scenario value as written in TOML, short."""
    if value is None:
        return "(not set)"
    if isinstance(value, dict):
        if set(value) - {"source", "note"} in ({"uniform"}, {"triangular"}):
            k = "uniform" if "uniform" in value else "triangular"
            return f"{k} {value_text(value[k])}"
        return "{" + ", ".join(f"{k} = {value_text(v)}" for k, v in value.items() if k not in ("source", "note")) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):  # as the file writes it (2.0), but 9.600000000000001 (12 × 0.8) as 9.6
        short = f"{value:.{SIGNIFICANT}g}"
        return str(value) if float(short) == value else short
    return str(value)


SIGNIFICANT = 12  # digits an input's number shows at most in the inputs tables (the value is not rounded)


def gate_names(meta_scenario: dict) -> dict[str, str]:
    names = {g: info.get("name", g) for g, info in (meta_scenario.get("gates") or {}).items()}
    names[ALL] = "all gates"
    return names


def _lookup(summary: pd.DataFrame, gate: str, direction: str, metric: str, stage: str = "") -> pd.Series | None:
    sel = summary[(summary.gate == gate) & (summary.direction == direction) & (summary.metric == metric)
                  & (summary.stage == stage) & (summary["class"] == "")]
    return None if sel.empty else sel.iloc[0]


# ------------------------------------------------------------------ sections shared by the kinds


def _layer_file(layer: dict, root: Path | None) -> tuple[Path | None, str]:
    """Where a scenario file's comments are read from, or why they are not. In a results folder
    (``root``), only from the copy the run kept in it: a path that leads outside the folder is
    not followed (its metadata.json could name any file). Else (a calibration's prior, loaded
    as a scenario) the file itself, where it still is."""
    file = layer.get("file") or ""
    if _is_set(layer):
        return None, ""
    if root is None:
        return (Path(file), "") if Path(file).is_file() else (None, "no longer there")
    path = inside(root, file)
    if path is not None:
        return path, ""
    if Path(file).is_absolute() or not (root / file).resolve().is_relative_to(root.resolve()):
        return None, "outside this results folder, which keeps no copy of it (an earlier bordersim's): not read"
    return None, "its copy is missing from this results folder"


def _layer_raw(path: Path) -> dict:
    """One scenario file's own tree (its keyed lists by name), without the files it extends."""
    from ..model.ranges import to_keyed
    from ..model.scenario import read_toml

    try:
        raw = read_toml(path)
    except BordersimError:
        return {}
    raw.pop("extends", None)
    return to_keyed(raw, str(path))


def _is_set(layer: dict) -> bool:
    """A scenario's --set changes (recorded as a file of their own, its name ending in " (--set)")."""
    from ..model.scenario import SET_LAYER

    return (layer.get("file") or "").endswith(SET_LAYER)


def _set_lines(layer: dict) -> list[str] | None:
    """The --set lines a scenario's --set changes were made with, as its description records
    them (a comparison's alternative: sim.model.scenario.sets_description); None where not recorded."""
    from ..model.scenario import sets_described

    return sets_described(layer.get("description"))


OPERATORS = {"*=": "×", "+=": "+", "-=": "−"}
FITTED = "the fitted values"  # an input the fitted ensemble supplies, row by row


def _set_rows(layer: dict, scen: dict) -> list[list[str]]:
    """The inputs a --set layer changes: [input, before, after, the --set line]. An input the
    fitted ensemble supplies and the --set changed relatively keeps its fitted values, each
    changed (sim.model.scenario.set_layer): it is shown so, "the fitted values × 0.8", not as its prior
    range (which metadata.json's before and after hold) scaled."""
    from ..model.ranges import parse_assignment

    lines = _set_lines(layer)
    said = [(text, parse_assignment(text)) for text in lines or []]
    fitted = set((scen.get("ensemble") or {}).get("inputs") or [])
    rows = []
    for ch in layer.get("changes") or []:
        if ch["input"].split(".")[-1] in TEXT_KEYS:
            continue
        mine = [(text, a) for text, a in said if a is not None and a.where == ch["input"]]
        before, after = value_text(ch["before"]), value_text(ch["after"])
        if ch["input"] in fitted:
            before = FITTED
            changes = [f"{OPERATORS[a.op]} {a.value_text}" for _t, a in mine if a.op in OPERATORS]
            after = (f"{FITTED} " + " ".join(changes) if changes and len(changes) == len(mine) else
                     f"{FITTED}, each changed (their prior range: {value_text(ch['before'])} to "
                     f"{value_text(ch['after'])})")
        comment = "; ".join(f"--set {t}" for t, _a in mine) if mine else "--set"
        rows.append([ch["input"], before, after, f"set on the command line ({comment})"])
    return rows


def _layer_blocks(section: Section, scen: dict, show_first: bool, shown: set[str] | None = None,
                  root: Path | None = None) -> None:
    """A scenario's files, parent first: each with what it says it models (its opening comment)
    and, for each file after the first, the inputs it changes with their sources; files in
    ``shown`` (described already, for another scenario) are named only. ``root``: the results
    folder the files' copies are in (see _layer_file)."""
    from ..model.sources import header_comment, notes_for, read_notes

    shown = set() if shown is None else shown
    layers = scen.get("layers") or [{"file": scen.get("file")}]
    for i, layer in enumerate(layers):
        if i == 0 and not show_first and len(layers) > 1:
            continue
        name = layer.get("origin") or layer.get("file") or ""
        if name in shown:
            section.add("notes", [f"{Path(name).name}: as above"])
            continue
        shown.add(name)
        path, why = _layer_file(layer, root)
        title = Path(name).name
        if i:
            title += f" (extends {Path(layers[i - 1].get('origin') or layers[i - 1].get('file') or '').name})"
        section.add("subhead", title)
        facts = [("file", name + (f" ({why}; the changes below are from metadata.json)" if why else ""))]
        if layer.get("description"):
            facts.append(("description", layer["description"]))
        section.add("facts", facts)
        if path is not None:
            section.add("pre", header_comment(path))
        changes = layer.get("changes")
        if i == 0 or changes is None:
            continue
        notes = read_notes(path) if path is not None else None
        raw = _layer_raw(path) if path is not None else {}
        rows = _set_rows(layer, scen) if _is_set(layer) else []
        for ch in [] if _is_set(layer) else changes:
            keys = tuple(ch["input"].split("."))
            if keys[-1] in TEXT_KEYS and keys[-1] not in ("name",):
                continue
            comment, source = notes_for(keys, notes, raw) if notes is not None else ("", "")
            rows.append([ch["input"], value_text(ch["before"]), value_text(ch["after"]),
                         "; ".join(t for t in (comment, source) if t)])
        section.add("table", Table(["input", "before (its parent)", "this file", "source or assumption"], rows,
                                   caption=f"What {Path(name).name} changes against the scenario it extends"))


def _sources_section(scen: dict, title: str = "Inputs: assumptions and sources", sid: str = "sources",
                     root: Path | None = None) -> Section:
    """Every input each file of the scenario sets, with its value and the comment and source
    the file gives it; uncertain inputs (ranges) marked, and those the ensemble supplies.
    ``root``: the results folder the files' copies are in (see _layer_file)."""
    from ..model.ranges import path_str
    from ..model.sources import notes_for, read_notes

    section = Section(sid, title)
    section.text("Each input as its file sets it, with the comment beside or above it in the file and the nearest "
                 "source field (a text in brackets names the table the note belongs to). Ranges "
                 "({uniform = [low, high]}, {triangular = [low, mode, high]}) are uncertain inputs: each "
                 "replication draws its own value.")
    uncertain = scen.get("uncertain_inputs") or {}
    ensemble = set((scen.get("ensemble") or {}).get("inputs") or [])
    for layer in scen.get("layers") or [{"file": scen.get("file")}]:
        file = layer.get("file") or ""
        name = layer.get("origin") or file
        section.add("subhead", Path(name).name or name)
        if _is_set(layer):
            rows = [[input_, after, "", comment] for input_, _before, after, comment in _set_rows(layer, scen)]
            section.add("table", Table(["input", "value", "", "comment"], rows))
            continue
        path, why = _layer_file(layer, root)
        if path is None:
            section.add("notes", [f"{name}: {why}; its comments and sources cannot be shown."])
            continue
        raw = _layer_raw(path)
        notes = read_notes(path) or {}
        rows, last = [], ("", "")
        for keys, value in _inputs_as_written(raw, notes):
            if not keys or keys[-1] in TEXT_KEYS or keys[0] in ("expect", "extends", "ensemble"):
                continue
            input_name = path_str(keys)
            comment, source = notes_for(keys, notes, raw)
            within = [u for u in uncertain if u == input_name or u.startswith(input_name + ".")]
            status = ""
            if within:
                status = "uncertain" + (", from the ensemble" if all(u in ensemble for u in within) and ensemble else "")
            shown = [comment if comment != last[0] else "″"]
            if source:
                shown.append(f"source: {source}" if source != last[1] else "source ″")
            last = (comment, source)
            rows.append([input_name, value_text(value), status, " — ".join(t for t in shown if t)])
        if rows:
            section.add("table", Table(["input", "value", "", "comment in the file — source field"], rows,
                                       caption="″: as in the row above"))
        else:
            section.add("notes", ["sets no numbers of its own"])
    return section


def _inputs_as_written(raw: dict, notes: dict) -> list[tuple[tuple, Any]]:
    """The inputs of a file's raw tree as the file writes them, in its order: each 'key = value'
    line one input (a distribution, an inline table or a list whole); every leaf where the file's
    lines are not known."""
    from ..model.ranges import leaves

    keyed = [p for p, note in notes.items() if note.key]
    if not keyed:
        return list(leaves(raw))
    out = []
    for path in keyed:
        node: Any = raw
        for k in path:
            node = node.get(k) if isinstance(node, dict) else None
        if node is not None:
            out.append((path, node))
    return out


def _run_facts(meta: dict, scen: dict) -> list[tuple[str, str]]:
    horizon = scen.get("horizon") or {}
    facts = [("scenario", f"{scen.get('name', meta.get('scenario', '?'))}: {scen.get('description', '')}".strip(": "))]
    if horizon:
        facts.append(("period simulated", f"{horizon['start']} to {horizon['end']}"
                      + (f", the first {horizon['warmup_days']:g} days left out of the waits (warm-up)"
                         if horizon.get("warmup_days") else "")))
    facts += [("replications", f"{meta.get('reps', '?'):,}" if isinstance(meta.get("reps"), int) else "?"),
              ("seed", f"{meta.get('seed', '?')} (the same seed gives the same results)"),
              ("engine", str(meta.get("engine", "?"))),
              ("bordersim", str(meta.get("bordersim_version", "?"))),
              ("simulation time", f"{meta['wall_time_s']:.1f} s" if "wall_time_s" in meta else "?")]
    ens = scen.get("ensemble")
    if ens:
        facts.append(("fitted inputs", f"{Path(ens['file']).name}: {ens['rows']:,} sets of values of "
                                       f"{len(ens['inputs'])} inputs, fitted to observed figures; each "
                                       "replication takes one whole set at random"))
    return facts


REPLICATIONS = ("A replication is one simulation of the whole period, with its own random arrivals, clearance times "
                "and closures and its own draw of every uncertain input; the figures are means over the "
                "replications, and their spread shows what could happen.")


def _derived_warnings(meta: dict, scens: list[dict], summaries: list[tuple[str, pd.DataFrame]],
                      names: dict[str, str] | None = None) -> list[str]:
    """The run's own warnings and those a reader should see: a stage near capacity, fitted inputs
    with fewer sets of values than replications."""
    names = names or {}
    out = list(meta.get("warnings") or [])
    reps = meta.get("reps")
    for scen in scens:
        ens = scen.get("ensemble")
        if ens and isinstance(reps, int) and reps > ens["rows"] and not any("parameter sets" in w for w in out):
            out.append(f"{scen['name']}: {reps:,} replications but {ens['rows']:,} sets of fitted inputs: sets are "
                       "reused")
    for label, summary in summaries:
        util = summary[(summary.metric == "utilisation") & (summary["mean"] >= HIGH_UTILISATION)]
        for r in util.itertuples():
            out.append(f"{label + ': ' if label else ''}{names.get(r.gate, r.gate)} {r.direction} "
                       f"{stage_label(r.stage)}: lanes busy {r.mean:.0%} of their open hours: near capacity, queues "
                       "there grow quickly with demand")
    return out


OPTIONAL = ("queue_mean", "waiting_truck_hours")  # metrics a summary may lack (written by later versions)


def _headline_table(summary: pd.DataFrame, names: dict[str, str]) -> Table:
    """Per gate (both directions) first, then all gates, then all gates without an extreme gate."""
    gates = [g for g in dict.fromkeys(main_rows(summary).gate) if g != ALL] + [ALL]
    present = set(summary.metric)
    columns = [("crossings", "crossings", lambda r: num(r["mean"], 0)),
               ("wait_mean_h", "mean wait h [95 % CI]", lambda r: with_ci(r, 1)),
               ("wait_mean_h", "mean wait h, 5–95 % of replications", lambda r: spread(r, 1)),
               ("time_in_system_mean_h", "mean time in system h [95 % CI]", lambda r: with_ci(r, 1)),
               ("queue_mean", "mean number waiting", lambda r: num(r["mean"], 0)),
               ("queue_max", "most waiting at once", lambda r: num(r["mean"], 0)),
               ("waiting_truck_hours", "truck-hours waiting", lambda r: num(r["mean"], 0)),
               ("held_by_limit_share", "held by the daily limit", lambda r: percent(r["mean"]))]
    columns = [c for c in columns if c[0] not in OPTIONAL or c[0] in present]
    rows, emphasis = [], set()
    for g in gates:
        cells = [names.get(g, g)]
        for metric, _head, show in columns:
            row = _lookup(summary, g, ALL, metric)
            cells.append("–" if row is None else show(row))
        rows.append(cells)
        if g == ALL:
            emphasis.add(len(rows) - 1)
    extreme = extreme_gates(summary)
    if extreme:
        label = ", ".join(names.get(g, g) for g in extreme)
        rows.append([f"all gates without {label}", "", f"≈ {num(wait_without(summary, extreme), 1)}"]
                    + [""] * (len(columns) - 2))
    return Table(["gate"] + [head for _m, head, _s in columns], rows, numeric=set(range(1, len(columns) + 1)),
                 emphasis=emphasis, caption="Per gate, both directions; all gates last")


def _direction_table(summary: pd.DataFrame, names: dict[str, str]) -> Table:
    rows = []
    for (g, d), _grp in main_rows(summary).groupby(["gate", "direction"], sort=False):
        if d == ALL:
            continue
        get = lambda metric: _lookup(summary, g, d, metric)  # noqa: E731
        rows.append([names.get(g, g), d, with_ci(get("crossings"), 0), with_ci(get("gave_up"), 0),
                     with_ci(get("wait_mean_h"), 1), with_ci(get("time_in_system_p95_h"), 1),
                     num(get("in_system_end")["mean"], 0) if get("in_system_end") is not None else "–"])
    return Table(["gate", "direction", "crossings", "gave up waiting", "mean wait h", "95 % crossed within h",
                  "still there at the end"], _grouped(rows), numeric={2, 3, 4, 5, 6},
                 caption="Per gate and direction (exit: to China; entry: to Vietnam); 95 % confidence intervals")


def _waiting_table(summary: pd.DataFrame, names: dict[str, str]) -> Table:
    rows = []
    flows = [(g, d) for (g, d), _ in main_rows(summary).groupby(["gate", "direction"], sort=False)
             if ALL not in (g, d)]
    for g, d in flows:
        total = _lookup(summary, g, d, "wait_mean_h")
        for stage, hours, share in wait_shares(summary, g, d):
            util = _lookup(summary, g, d, "utilisation", stage)
            rows.append([names.get(g, g), d, stage_label(stage),
                         with_ci(_lookup(summary, g, d, "wait_mean_h", stage), 2),
                         percent(share) if pd.notna(share) else "–",
                         "daily limit" if stage == "acceptance" else
                         (percent(util["mean"]) if util is not None and pd.notna(util["mean"]) else "–"),
                         num(total["mean"], 2) if total is not None else "–"])
    return Table(["gate", "direction", "waiting for", "wait h [95 % CI]", "share of the wait", "lanes busy",
                  "total wait h"], _grouped(rows, 2), numeric={3, 4, 5, 6},
                 caption="The wait for each stage and for the far side's acceptance adds up to the total wait")


def _plot(name: str, table: pd.DataFrame | None, names: dict[str, str]):
    if table is None:
        return None

    def draw(target):
        from . import plots

        getattr(plots, name)(table, names, target)

    return draw


def _time_in_system_table(summary: pd.DataFrame, names: dict[str, str]) -> Table:
    rows = []
    for g in [g for g in dict.fromkeys(main_rows(summary).gate) if g != ALL] + [ALL]:
        mean = _lookup(summary, g, ALL, "time_in_system_mean_h")
        p95 = _lookup(summary, g, ALL, "time_in_system_p95_h")
        rows.append([names.get(g, g), with_ci(mean, 1), _days(mean), with_ci(p95, 1), _days(p95)])
    return Table(["gate", "mean h [95 % CI]", "mean in days", "95 % crossed within h", "in days"], rows,
                 numeric={1, 2, 3, 4}, emphasis={len(rows) - 1})


def _days(row: pd.Series | None) -> str:
    return "–" if row is None or pd.isna(row["mean"]) else f"{row['mean'] / 24:,.1f}{NBSP}d"


UNITS = {"crossings": "crossings", "board_vehicles": "board vehicles", "vehicles": "vehicles waiting"}


def _period(start: str, end: str) -> str:
    """A target's period, its dates kept whole (non-breaking hyphens) in a narrow column."""
    first, last = (str(d).replace("-", "\u2011") for d in (start, end))
    return first if first == last else f"{first} to {last}"


def _targets_fit(folder: Folder, scen: dict) -> tuple[Section, str] | None:
    """Where a targets file fitted the scenario (the run wrote targets.csv): each observed figure
    against this run, with the verdict sim.experiments.targets gives it, and a sentence for the findings."""
    from ..experiments.calibrate import DEFAULT_CHECK_REPS

    from ..experiments.targets import TABLE_COLUMNS

    table = folder.csv("targets.csv")
    if table is None or table.empty:
        return None
    missing = [c for c in TABLE_COLUMNS if c not in table]
    if missing:
        raise ReportError(str(folder.path / "targets.csv"), None, f"lacks the columns {', '.join(missing)}")
    for col in ("observed", "simulated_mean", "band_low", "band_high", "relative_error", "tolerance"):
        table[col] = pd.to_numeric(table[col], errors="coerce")
    table["holds"] = table.holds.astype(str).str.lower() == "true"
    reps = folder.meta.get("reps", "?")
    targets_file, fitted = str(table.targets_file.iloc[0]), str(table.fitted_scenario.iloc[0])
    table["known_miss"] = table.known_miss.fillna("").astype(str)
    fit, check = table[table.use == "fit"], table[table.use == "validate"]
    known = check[check.known_miss != ""]
    own = [Path(layer.get("file") or "").name for layer in scen.get("layers") or []]
    changed = bool(own) and own[-1] != fitted
    section = Section("observed", "Against the observed figures")
    section.text(
        f"The scenario takes inputs fitted ({fitted}) to the observed figures of {targets_file}. Each figure against "
        f"this run's {reps} replications, tested as `bordersim calibrate --check` tests them: a figure the inputs "
        "were fitted to holds when the run's mean is within its tolerance; a figure kept out of the fit to check it "
        "holds when the observed value lies inside the range of nine replications in ten (5–95 %). The check runs "
        f"{DEFAULT_CHECK_REPS} replications; with {reps} these verdicts are this run's own, and noisier."
        + (f" This scenario changes {fitted}: the figures show how far the change moves them from what was "
           "observed, not whether the fit holds." if changed else ""))
    for part, caption, tolerance in ((fit, "Figures the inputs were fitted to", True),
                                     (check, "Figures kept out of the fit, to check it", False)):
        if part.empty:
            continue
        rows = [[r.target, _period(r.period_start, r.period_end), num(r.observed, 0), UNITS.get(r.unit, r.unit),
                 num(r.simulated_mean, 0), f"{num(r.band_low, 0)}–{num(r.band_high, 0)}",
                 _signed_percent(r.relative_error)]
                + ([f"±{percent(r.tolerance)}"] if tolerance else []) + [r.verdict] for r in part.itertuples()]
        section.add("table", Table(["figure", "period", "observed", "unit", "this run's mean",
                                    "5–95 % of replications", "difference"] + (["tolerance"] if tolerance else [])
                                   + ["verdict"], rows, numeric={2, 4, 5, 6, 7} if tolerance else {2, 4, 5, 6},
                                   caption=caption))
    if not known.empty:
        section.add("notes", [f"{r.target}: the model is known to miss it: {r.known_miss}" for r in known.itertuples()])
    section.add("table", Table(["figure", "source"], [[r.target, r.source] for r in table.itertuples()],
                               caption="Where each observed figure comes from"))
    fails = table[~table.holds]
    against = (f"This scenario changes {fitted}, fitted to the observed figures of {targets_file}; against them"
               if changed else f"Against the observed figures it was fitted to ({targets_file})")
    summary = (f"{against}: {int(fit.holds.sum())} of {len(fit)} "
               f"within their tolerance; of the {len(check)} kept to check the fit, "
               f"{int((check.holds & (check.known_miss == '')).sum())} inside the range of the replications"
               + (f", {len(known)} a known miss" if len(known) else "") + "."
               + (f" Not holding in this run: {', '.join(fails.target)}." if len(fails) else ""))
    return section, summary


def _signed_percent(share: float) -> str:
    """A relative difference in per cent, with its sign (as `calibrate --check` prints it)."""
    return "–" if pd.isna(share) else f"{share:+.1%}"


def _grouped(rows: list[list[Any]], depth: int = 1) -> list[list[Any]]:
    """Rows with their first ``depth`` cells (a gate, a direction) shown only where they change,
    as a reader scans them."""
    out, last = [], None
    for row in rows:
        same = 0
        while last is not None and same < depth and row[:same + 1] == last[:same + 1]:
            same += 1
        out.append([""] * same + row[same:])
        last = row
    return out


def _run_findings(summary: pd.DataFrame, names: dict[str, str]) -> list[str]:
    """The answer in a few sentences: all gates' crossings, wait and time in system (and queue
    and truck-hours where the summary has them), the gates by mean wait, who gave up."""
    get = lambda metric: _lookup(summary, ALL, ALL, metric)  # noqa: E731
    out = []
    crossings, per_day = get("crossings"), get("crossings_per_day")
    wait, tis = get("wait_mean_h"), get("time_in_system_mean_h")
    if crossings is not None and wait is not None:
        text = (f"All gates: {num(crossings['mean'], 0)} crossings"
                + (f" ({num(per_day['mean'], 0)} a day)" if per_day is not None else "")
                + f"; a vehicle that crossed waited {with_ci(wait, 1)} h on average")
        if tis is not None:
            text += f" and took {with_ci(tis, 1)} h from arrival to crossing"
        queue, hours = get("queue_mean"), get("waiting_truck_hours")
        if queue is not None:
            text += f"; {num(queue['mean'], 0)} vehicles were waiting on average"
        if hours is not None:
            text += f"; {num(hours['mean'], 0)} truck-hours were spent waiting"
        out.append(text + ".")
    waits = gate_value(summary, "wait_mean_h").dropna().sort_values(ascending=False)
    if len(waits):
        out.append("Mean wait by gate, longest first: "
                   + ", ".join(f"{names.get(g, g)} {num(w, 1)}{NBSP}h" for g, w in waits.items()) + ".")
    gave_up = get("gave_up")
    if gave_up is not None and gave_up["mean"] > 0:
        out.append(f"{num(gave_up['mean'], 0)} vehicles gave up waiting and turned back (not counted in the crossings "
                   "nor in the waits).")
    return out


# ------------------------------------------------------------------ by month

# what the tables by month show, both directions (labels and digits: sim.outputs.formats.METRICS)
MONTHLY = ("time_in_system_mean_h", "queue_mean", "waiting_truck_hours")
MONTH_NOTE = ("A month's time in system is that of the vehicles that crossed in it; the number waiting is its "
              "average over the month's hours, and the truck-hours waiting are the hours vehicles spent waiting "
              "within the month.")


def _month_label(month: str) -> str:
    try:
        return dt.date.fromisoformat(f"{month}-01").strftime("%b %Y")
    except ValueError:
        return month


def _by_month(table: pd.DataFrame, names: dict[str, str], metric: str, cell, skip=()) -> Table | None:
    """A month per row and a gate per column (all gates last; those in ``skip`` left out), both
    directions: cell(row of the table) in each; None where the table has no such metric (a folder
    written before it)."""
    sel = table[(table.metric == metric) & (table.direction == ALL)]
    if sel.empty:
        return None
    gates = [g for g in dict.fromkeys(sel.gate) if g != ALL and g not in skip] + ([ALL] if (sel.gate == ALL).any()
                                                                                   else [])
    by = {(r.month, r.gate): r for r in sel.itertuples(index=False)}
    rows = [[_month_label(str(month))] + [cell(by[(month, g)]) if (month, g) in by else "–" for g in gates]
            for month in dict.fromkeys(sel.month)]
    heads = [names.get(g, g) if g != ALL else "all gates" for g in gates]
    return Table(["month"] + heads, rows, numeric=set(range(1, len(gates) + 1)))


def _month_caption(metric: str) -> str:
    """A table by month's caption: its metric's label, its unit in brackets ("Mean wait (h)")."""
    from .formats import metric as shown

    label = shown(metric).label
    label = f"{label.removesuffix(' h')} (h)" if label.endswith(" h") else label
    return label[0].upper() + label[1:]


def _run_months(folder: Folder, names: dict[str, str]) -> Section | None:
    from .formats import metric as shown

    monthly = folder.csv("monthly.csv")
    if monthly is None:
        return None
    section = Section("months", "By month")
    section.text(f"Means over the replications with their 95 % confidence intervals, both directions. {MONTH_NOTE} "
                 "monthly.csv has every gate and direction, crossings and waits too.")
    for metric in MONTHLY:
        t = _by_month(monthly, names, metric, lambda r, d=shown(metric).digits: with_ci(pd.Series(r._asdict()), d))
        if t is not None:
            t.caption = _month_caption(metric)
            section.add("table", t)
    return section


def _compare_months(folder: Folder, names: dict[str, str], alts: list[dict], base: str) -> Section | None:
    from .findings import UNCHANGED, unchanged

    monthly = folder.csv("compare_monthly.csv")
    if monthly is None:
        return None
    section = Section("months", "The differences by month")
    section.text(f"Each alternative minus {base}, paired replication by replication, with its 95 % confidence "
                 f"interval (* where it excludes 0), both directions. {MONTH_NOTE} compare_monthly.csv has every "
                 "gate, direction and metric.")
    for s in alts:
        own = monthly[monthly.scenario == s["name"]]
        same = unchanged(own, s["name"])
        for metric in MONTHLY:
            t = _by_month(own, names, metric, lambda r, m=metric: _difference(r, m), skip=same)
            if t is not None:
                caption = _month_caption(metric)
                t.caption = f"{s['name']} against {base}: {caption[0].lower()}{caption[1:]}"
                section.add("table", t)
        if same:
            section.add("notes", [f"Unchanged in every month: {', '.join(names.get(g, g) for g in same)} "
                                  f"({UNCHANGED})."])
    return section


# ------------------------------------------------------------------ a run


@kind("run")
def run_page(folder: Folder) -> Page:
    meta = folder.meta
    scen = meta.get("scenario_details") or {"name": meta.get("scenario"), "file": meta.get("scenario_file"),
                                            "uncertain_inputs": meta.get("uncertain_inputs", {})}
    names = gate_names(scen)
    summary = folder.csv("summary.csv")
    if summary is None:
        raise ReportError(str(folder.path), None, "has no summary.csv: not a complete run")
    daily = folder.csv("daily.csv")
    tis = folder.csv("time_in_system_hist.csv")
    qbh = folder.csv("queue_by_hour.csv")
    observed = _targets_fit(folder, scen)

    findings = Section("findings", "Findings")
    findings.text(f"Means over {meta.get('reps', '?')} replications. {REPLICATIONS}")
    notes = _run_findings(summary, names)
    closures = {g: info.get("closures", []) for g, info in (scen.get("gates") or {}).items()}
    notes += extreme_notes(summary, names, closures)
    if observed is not None:
        notes.append(observed[1])
    findings.add("notes", notes)
    findings.text(INTERVALS)
    findings.add("table", _headline_table(summary, names))

    directions = Section("directions", "Per gate and direction")
    directions.add("table", _direction_table(summary, names))

    waiting = Section("waiting", "Where the waiting happens")
    waiting.text("Per gate and direction, the time spent waiting for each stage and for the far side's acceptance "
                 "(its daily limit), and how busy each stage's lanes were within their opening hours.")
    waiting.add("table", _waiting_table(summary, names))
    waiting.add("figure", folder.figure("queue_by_hour.png", "Queue by hour of day",
                                        "Mean number of vehicles waiting at each hour of day, per gate, over the "
                                        "days the gate is open (days closed all day are left out)",
                                        _plot("queue_by_hour", qbh, names)))

    dates = Section("dates", "Queues over the calendar")
    dates.add("figure", folder.figure("queue_by_date.png", "Vehicles waiting by calendar day",
                                      "The day's mean number waiting (band: 5–95 % of replications) and the number "
                                      "waiting at the day's end; each axis starts at 0",
                                      _plot("queue_by_date", daily, names)))
    dates.add("figure", folder.figure("crossings_per_day.png", "Crossings per day",
                                      "All gates and each gate, with the 95 % confidence band of the mean",
                                      _plot("crossings_per_day", daily, names)))

    time_in = Section("time", "Time from arrival to crossing")
    time_in.add("table", _time_in_system_table(summary, names))
    time_in.add("figure", folder.figure("time_in_system.png", "Time in system",
                                        "Share of vehicles that crossed within a given time of arriving, per gate",
                                        _plot("time_in_system", tis, names)))

    what = Section("what", "What was run")
    what.add("facts", _run_facts(meta, scen))
    _layer_blocks(what, scen, show_first=True, root=folder.path)

    sections = [findings, directions, waiting, dates, time_in]
    months = _run_months(folder, names)
    if months is not None:
        sections.insert(1, months)
    if observed is not None:
        sections.append(observed[0])
    sections += [what, _sources_section(scen, root=folder.path)]
    return Page(f"bordersim: {scen.get('name') or meta.get('scenario')}", scen.get("description") or "", sections,
                _derived_warnings(meta, [scen], [("", summary)], names))


# ------------------------------------------------------------------ a comparison


def _difference(m: pd.Series, metric: str) -> str:
    """A paired difference with its 95 % interval (* where the interval as printed excludes 0), as
    the command line prints it (sim.experiments.compare.shown_difference); a share's in percentage points. No
    break inside it but between the mean and its interval."""
    from .text import shown_difference
    from .formats import metric as shown

    if pd.isna(m.diff_mean):
        return "–"
    text = shown_difference(m, shown(metric))
    return text.replace(", ", f",{NBSP}").replace(" *", f"{NBSP}*").replace(" pp", f"{NBSP}pp")


def _relative(share: float) -> str:
    """A relative difference in per cent, with the decimals that keep a small one from reading as 0."""
    from .formats import signed

    return "–" if pd.isna(share) else f"{signed(100 * share, 0)}{NBSP}%"


def _level(value: float, metric: str) -> str:
    """A scenario's figure as the differences' tables show it (the metric's digits; a share in %)."""
    from .formats import metric as shown

    how = shown(metric)
    return percent(value, how.digits) if how.share else num(value, how.digits)


def _change(m: pd.Series) -> str:
    """A difference in words, as its table prints it: "mean wait −0.63 h (−2 %)", "held by the
    daily limit −0.5 percentage points"."""
    from .formats import difference_mean
    from .formats import metric as shown

    how = shown(str(m.metric))
    figure = difference_mean(m.diff_mean, m.diff_ci_low, m.diff_ci_high, how.digits, how.share)
    if how.share:
        text = f"{how.label} {figure} percentage points"
    elif how.label.endswith(" h"):
        text = f"{how.label.removesuffix(' h')} {figure}{NBSP}h"
    else:
        text = f"{how.label} {figure}"
    return text + (f" ({_relative(m.rel_diff)})" if pd.notna(m.rel_diff) else "")


def _expectations(table: pd.DataFrame, scen: dict, names: dict[str, str]) -> list[list[str]]:
    from .formats import metric as shown

    rows = []
    for e in scen.get("expect") or []:
        sel = table[(table.scenario == scen["name"]) & (table.gate == e["gate"]) & (table.direction == e["direction"])
                    & (table.metric == e["metric"]) & (table.stage == "") & (table["class"] == "")]
        where = names.get(e["gate"], e["gate"]) + ("" if e["direction"] == ALL else f" {e['direction']}")
        label = shown(e["metric"]).label
        if sel.empty:
            rows.append([scen["name"], where, label, f"to {e['change']}", "–", "not in the results"])
            continue
        r = sel.iloc[0]
        holds = r.diff_ci_high < 0 if e["change"] == "decrease" else r.diff_ci_low > 0
        against = r.diff_ci_low > 0 if e["change"] == "decrease" else r.diff_ci_high < 0
        verdict = "holds" if holds else ("the opposite" if against else "not shown (the interval includes 0)")
        rows.append([scen["name"], where, label, f"to {e['change']}", _difference(r, e["metric"]), verdict])
    return rows


def _own_files(scen: dict) -> list[str]:
    """The files a scenario is made of, its --set changes left out."""
    return [layer.get("origin") or layer.get("file") or "" for layer in scen.get("layers") or [] if not _is_set(layer)]


def _own_layers(scen: dict, base: dict) -> list[dict]:
    """An alternative's own files, those the base is not made of, and its --set changes (its last
    file where it is made of the base's files alone)."""
    layers = scen.get("layers") or []
    shared = set(_own_files(base))
    own = [layer for layer in layers if _is_set(layer) or (layer.get("origin") or layer.get("file")) not in shared]
    return own or layers[-1:]


def _what_changes(scen: dict, base: dict) -> str:
    """What an alternative changes against the base, in a line: its own file's description where
    it is another scenario, and the --set lines it was made with (all its --set changes, input by
    input, where the lines were not recorded); the same scenario otherwise."""
    parts = []
    if _own_files(scen) != _own_files(base):
        own = [layer.get("description") for layer in scen.get("layers") or [] if not _is_set(layer)]
        parts.append(next((d for d in reversed(own) if d), None) or scen.get("description") or "another scenario")
    for layer in scen.get("layers") or []:
        if not _is_set(layer):
            continue
        lines = _set_lines(layer)
        if lines is None:  # not recorded (a folder of an earlier bordersim): what metadata.json has
            lines = [f"{input_}: {after}" if before == FITTED else f"{input_} {before} → {after}"
                     for input_, before, after, _c in _set_rows(layer, scen)]
        parts.append("; ".join(lines) + " (with --set)")
    return "; and ".join(parts) if parts else "nothing (the same scenario as the base)"


def _gates_finding(table: pd.DataFrame, alt: dict, base: dict, names: dict[str, str]) -> str:
    """The first finding of an alternative: what it changes, the gates where that shows clearly
    (an interval that excludes 0; the first two such figures of the headline's), those where it
    does not, and those where nothing changed at all."""
    from .findings import UNCHANGED, headline_rows, unchanged

    same = unchanged(table, alt["name"])
    clear: dict[str, list[pd.Series]] = {}
    unclear: list[str] = []
    for g, _shown, m in headline_rows(table, alt["name"], skip=same):
        if g == ALL:
            continue
        if m.excludes_zero:
            clear.setdefault(g, []).append(m)
        elif g not in unclear:
            unclear.append(g)
    unclear = [g for g in unclear if g not in clear]
    text = f"{alt['name']} changes: {_what_changes(alt, base)}. Against {base['name']}, "
    if clear:
        text += "it shows clearly at " + "; ".join(
            f"{names.get(g, g)}: {', '.join(_change(m) for m in rows[:2])}" for g, rows in clear.items()) + "."
    else:
        text += "no gate shows a clear change."
    if unclear:
        text += f" Not clearly at {', '.join(names.get(g, g) for g in unclear)} (every interval includes 0)."
    if same:
        others = "every other gate" if not unclear else ", ".join(names.get(g, g) for g in same)
        text += f" Unchanged: {others} ({UNCHANGED})."
    return text


def _all_gates_finding(table: pd.DataFrame, alt: str, base: str) -> str:
    """One sentence: what an alternative changes across all gates, the changes the replications
    show clearly (the interval excludes 0) first."""
    from .findings import headline_rows

    clear, unclear = [], []
    for g, _shown, m in headline_rows(table, alt):
        if g != ALL or pd.isna(m.diff_mean):
            continue
        (clear if m.excludes_zero else unclear).append(_change(m))
    if not clear and not unclear:
        return ""
    text = f"{alt} against {base}, all gates: " + ("; ".join(clear) if clear else "no clear change")
    if unclear:
        text += "; not clear (the interval includes 0): " + "; ".join(unclear)
    return text + "."


def _displaced_findings(table: pd.DataFrame, alt: str, names: dict[str, str], named: bool) -> list[str]:
    """A sentence per gate and direction where the wait one stage saves clearly goes, in part, to
    another (sim.experiments.compare.displaced_waits): "Bắc Luân II bridge (goods), exit: customs -1.05 h, far
    side's acceptance +0.75 h: far side's acceptance takes up most (71 %) of what customs saves;
    ..." (``named``: the alternative's name first, where there are several)."""
    from .findings import displaced_waits

    out = []
    for d in displaced_waits(table, alt):
        moves = ", ".join(f"{stage_label(st)} {_change_h(r)}" for st, r in d.fell + d.rose)
        fell = " and ".join(stage_label(st) for st, _r in d.fell)
        rose = " and ".join(stage_label(st) for st, _r in d.rose)
        share = d.taken_up
        amount = "more than all" if share >= 1 else "most" if share >= 0.5 else "part"
        text = (f"{alt + ': ' if named else ''}{names.get(d.gate, d.gate)}, {d.direction}: {moves}: {rose} "
                f"take{'s' if len(d.rose) == 1 else ''} up {amount} ({percent(share)}) of what {fell} "
                f"save{'s' if len(d.fell) == 1 else ''}")
        if share >= 0.5 and any(st == "acceptance" for st, _r in d.rose):
            text += f"; the far side's daily limit, not {fell}, holds the vehicles back"
        out.append(text + ".")
    return out


def _change_h(m: pd.Series) -> str:
    """A stage's change of mean wait, as its table prints it: "−1.05 h"."""
    from .formats import METRICS, difference_mean

    return f"{difference_mean(m.diff_mean, m.diff_ci_low, m.diff_ci_high, METRICS['wait_mean_h'].digits)}{NBSP}h"


def _extreme_notes(summary: pd.DataFrame, scens: list[dict], base: str, names: dict[str, str]) -> list[str]:
    """The extreme-gate notes (sim.outputs.findings) once: for every scenario at once where they say the
    same of each; for the base where the same gates stand out in every scenario, saying so; else
    for each scenario whose notes differ from the base's."""
    notes = {}
    for s in scens:
        own = summary[summary.scenario == s["name"]]
        closures = {g: i.get("closures", []) for g, i in (s.get("gates") or {}).items()}
        notes[s["name"]] = (extreme_gates(own), extreme_notes(own, names, closures))
    gates, said = notes[base]
    if not any(n for _g, n in notes.values()):
        return []
    if all(n == said for _g, n in notes.values()):
        return [f"In every scenario alike: {' '.join(said)}"]
    if gates and all(g == gates for g, _n in notes.values()):
        label = ", ".join(names.get(g, g) for g in gates)
        return [f"In {base}, the base ({label} stands out in every alternative too, with figures of its own): "
                + " ".join(said)]
    return [f"In {name}: {' '.join(ns)}" if ns else f"In {name}, no gate stands out."
            for name, (_g, ns) in notes.items() if name == base or ns != said]


@kind("compare")
def compare_page(folder: Folder) -> Page:
    from .findings import UNCHANGED, headline_rows, unchanged

    meta = folder.meta
    scens = meta.get("scenario_details") or [{"name": s["name"], "file": s.get("file")}
                                             for s in meta.get("scenarios", [])]
    names = {}
    for s in scens:
        names.update(gate_names(s))
    table = folder.csv("compare.csv")
    summary = folder.csv("summary.csv")
    if table is None or summary is None:
        raise ReportError(str(folder.path), None, "has no compare.csv or summary.csv: not a complete comparison")
    base = meta.get("base") or scens[0]["name"]
    base_scen = next((s for s in scens if s["name"] == base), scens[0])
    alts = [s for s in scens if s["name"] != base]

    head = Section("findings", "Findings: the differences per gate")
    head.text(f"Each alternative against {base}, over {meta.get('reps', '?')} replications of each. {REPLICATIONS} "
              "Replication i of every scenario uses the same random numbers, so a difference is what the change "
              "did: alternative − base, paired replication by replication, with its 95 % confidence interval; "
              "* where the interval excludes 0 (a difference the replications show clearly). Shares are in % and "
              "their differences in percentage points.")
    findings = []
    for s in alts:
        findings.append(_gates_finding(table, s, base_scen, names))
        findings += [t for t in [_all_gates_finding(table, s["name"], base)] if t]
        findings += _displaced_findings(table, s["name"], names, named=len(alts) > 1)
    head.add("notes", findings)
    expect_rows = [r for s in alts for r in _expectations(table, s, names)]
    if expect_rows:
        head.add("table", Table(["scenario", "where", "metric", "expected", "difference [95 % CI]", "verdict"],
                                expect_rows, caption="What each alternative's file says it should change, and "
                                                     "whether it does"))
    for s in alts:
        same = unchanged(table, s["name"])
        rows, emphasis = [], set()
        for g, shown, m in headline_rows(table, s["name"], skip=same):
            metric = str(m.metric)
            rows.append([names.get(g, g), shown.label, _level(m.base_mean, metric), _level(m.alt_mean, metric),
                         _difference(m, metric), _relative(m.rel_diff)])
            if g == ALL:
                emphasis.add(len(rows) - 1)
        head.add("table", Table(["gate", "metric", base, s["name"], "difference [95 % CI]", "relative"],
                                _grouped(rows), caption=f"{s['name']} against {base}, per gate (all gates last)",
                                numeric={2, 3, 4, 5}, emphasis=emphasis))
        if same:
            which = f" ({s['name']})" if len(alts) > 1 else ""
            head.add("notes", [f"Unchanged{which}: {', '.join(names.get(g, g) for g in same)} ({UNCHANGED})."])
    head.add("notes", _extreme_notes(summary, scens, base, names))

    plot = Section("plot", "The differences as a plot")
    plot.add("figure", folder.figure("compare_differences.png", "Differences per gate",
                                     "Each alternative's difference to the base with its 95 % interval "
                                     "(filled: the interval excludes 0)", _plot("compare_differences", table, names)))

    waiting = Section("waiting", "Where the waiting happens")
    rows = []
    gates = [g for g in dict.fromkeys(main_rows(summary).gate) if g != ALL]
    for g in gates:
        stages = list(dict.fromkeys(st for s in scens for st, _h, _sh in
                                    wait_shares(summary[summary.scenario == s["name"]], g)))
        for st in stages:
            cells = []
            for s in scens:
                r = _lookup(summary[summary.scenario == s["name"]], g, ALL, "wait_mean_h", st)
                cells.append(num(r["mean"], 2) if r is not None else "–")
            rows.append([names.get(g, g), stage_label(st)] + cells)
    waiting.add("table", Table(["gate", "waiting for"] + [f"{s['name']} h" for s in scens], _grouped(rows),
                               numeric=set(range(2, 2 + len(scens))),
                               caption="Mean wait for each stage and for the far side's acceptance, both directions"))

    tis = folder.csv("time_in_system_hist.csv")
    dates = Section("dates", "Queues over the calendar")
    dates.add("figure", folder.figure("queue_by_date.png", "Change in the number waiting, by calendar day",
                                      "Each alternative minus the base: the paired difference in the mean number "
                                      "waiting each day, both directions, with its 95 % confidence band; below 0 "
                                      "fewer wait", _plot("compare_queue_differences", folder.csv("compare_daily.csv"),
                                                          names)))
    time_in = Section("time", "Time from arrival to crossing")
    time_in.add("figure", folder.figure("time_in_system.png", "Time in system", "Share of vehicles that crossed "
                                        "within a given time, per gate, a line per scenario",
                                        _plot("compare_time_in_system", tis, names)))

    what = Section("what", "What was compared")
    what.add("facts", [("base", base), ("alternatives", ", ".join(s["name"] for s in alts)),
                       ("replications", f"{meta.get('reps', '?')} of each, on common random numbers: replication i of "
                                        "every scenario uses the same seed, so a difference is what the change did"),
                       ("seed", str(meta.get("seed", "?"))), ("engine", str(meta.get("engine", "?"))),
                       ("bordersim", str(meta.get("bordersim_version", "?"))),
                       ("simulation time", f"{meta['wall_time_s']:.1f} s" if "wall_time_s" in meta else "?")])
    shown: set[str] = set()
    for s in scens:
        what.add("subhead2", f"{s['name']}{' (base)' if s['name'] == base else ''}: {s.get('description', '')}")
        _layer_blocks(what, s, show_first=len(s.get("layers") or []) <= 1, shown=shown, root=folder.path)

    sections = [head, plot, waiting, dates, time_in, what]
    months = _compare_months(folder, names, alts, base)
    if months is not None:
        sections.insert(2, months)
    for s in alts:
        own = dict(s, layers=_own_layers(s, base_scen))
        sections.append(_sources_section(own, f"Inputs of {s['name']}: assumptions and sources", f"sources-{s['name']}",
                                         root=folder.path))
    summaries = [(s["name"], summary[summary.scenario == s["name"]]) for s in scens]
    return Page(f"bordersim: {', '.join(s['name'] for s in alts)} against {base}",
                [f"{s['name']} changes: {_what_changes(s, base_scen)}" for s in alts], sections,
                _derived_warnings(meta, scens, summaries, names))


# ------------------------------------------------------------------ a calibration


def _prior_width90(kind_: str, values: list[float]) -> float:
    """The width of a range's central 90 % (uniform or triangular)."""
    if kind_ == "uniform":
        return 0.9 * (values[1] - values[0])
    lo, mode, hi = values

    def q(p: float) -> float:
        c = (mode - lo) / (hi - lo) if hi > lo else 0.5
        return lo + math.sqrt(p * (hi - lo) * (mode - lo)) if p < c else hi - math.sqrt((1 - p) * (hi - lo) * (hi - mode))

    return q(0.95) - q(0.05) if hi > lo else 0.0


@kind("calibration")
def calibration_page(folder: Folder) -> Page:
    from ..experiments.calibrate import INFORMED, CalibrationError, load_targets
    from .calibration import ensemble_path
    from ..model.scenario import load
    from ..model.sources import header_comment

    candidates = _targets_files(folder.path)
    try:
        targets = load_targets(candidates[0])
    except CalibrationError as exc:
        raise ReportError(str(candidates[0]), None, exc.one_line()) from None
    # the fitted scenario and its ensemble are read only inside the folder (the targets file's
    # `fitted` could name any file); the prior is read as `calibrate` reads it, as a scenario
    ens_file = inside(folder.path, os.path.relpath(ensemble_path(targets), folder.path))
    fitted = inside(folder.path, os.path.relpath(targets.fitted_path, folder.path))
    what = Section("what", "What was calibrated")
    facts = [("targets", str(targets.path)), ("prior scenario", str(targets.scenario_path)),
             ("fitted scenario", str(targets.fitted_path) + ("" if fitted else " (not in this folder: not read)"))]
    ensemble = pd.read_csv(ens_file) if ens_file is not None else None
    if ensemble is not None:
        facts.append(("ensemble", f"{ens_file.name}: {len(ensemble):,} parameter sets kept"))
    what.add("facts", facts)
    what.add("pre", header_comment(targets.path))
    if fitted is not None:
        what.add("pre", header_comment(fitted))

    fit = Section("fit", "Targets: observed against the fitted ensemble")
    rows = []
    for t in targets.targets:
        col = f"_sim_{t.name}"
        sim = ensemble[col] if ensemble is not None and col in ensemble else None
        mean = sim.mean() if sim is not None else float("nan")
        lo, hi = (sim.quantile(0.025), sim.quantile(0.975)) if sim is not None else (float("nan"),) * 2
        rel = (mean - t.observed) / t.observed
        rows.append([t.name, t.use, num(t.observed, 0), f"{t.period[0]} to {t.period[1]}",
                     f"±{t.tolerance:.0%}" if t.use == "fit" else "–",
                     num(mean, 0), f"{num(lo, 0)}–{num(hi, 0)}", f"{rel:+.1%}" if pd.notna(rel) else "–", t.source])
    fit.add("table", Table(["target", "use", "observed", "period", "tolerance", "ensemble mean", "ensemble 95 %",
                            "relative error", "source"], rows, numeric={2, 4, 5, 6, 7},
                           caption="Fit targets drove the calibration; validation targets were kept out of it. "
                                   "Simulated: the kept parameter sets' own simulations"))
    misses = [f"{t.name} (validation): the model is known to miss it: {t.known_miss}"
              for t in targets.targets if t.known_miss]
    if misses:
        fit.add("notes", misses)
    stem = targets.fitted_path.stem.replace("fitted", "report")
    fit.add("figure", folder.figure(f"{stem}_fit.png", "Observed against simulated",
                                    "Per target: the prior's and the ensemble's simulated values (95 %) and the "
                                    "observed value with its tolerance", None))

    inputs = Section("inputs", "Inputs: what the data pinned down")
    inputs.text(f"An input is pinned down when its ensemble's central 90 % is under {INFORMED:.0%} of its prior "
                "range's (width ratio).")
    prior = None
    try:
        prior = load(targets.scenario_path)
    except BordersimError as exc:
        inputs.add("notes", [f"the prior scenario cannot be read now: {exc.one_line()}"])
    if prior is not None and ensemble is not None:
        rows = []
        for r in prior.ranges:
            name = r.name()
            if name not in ensemble:
                continue
            col = ensemble[name]
            q05, med, q95 = col.quantile([0.05, 0.5, 0.95])
            width = _prior_width90(r.kind, list(r.values))
            ratio = (q95 - q05) / width if width > 0 else float("nan")
            rows.append([name, f"{r.kind} {list(r.values)}", f"{med:.4g}", f"{q05:.4g}–{q95:.4g}", f"{ratio:.2f}",
                         "yes" if ratio < INFORMED else "no"])
        inputs.add("table", Table(["input", "prior", "ensemble median", "ensemble 90 %", "width ratio", "pinned down"],
                                  rows, numeric={2, 3, 4}))
    inputs.add("figure", folder.figure(f"{stem}_marginals.png", "Prior and ensemble of each input",
                                       "Histograms of the prior draws and of the kept ensemble", None))
    sections = [what, fit, inputs]
    if prior is not None:
        from .provenance import scenario_metadata

        sections.append(_sources_section(scenario_metadata(prior), "Prior inputs: assumptions and sources"))
    return Page(f"bordersim calibration: {targets.path.name}", "", sections)


# ------------------------------------------------------------------ a sweep


SWEEP_OUTPUTS = [("time_in_system_mean_h", "mean time in system h", 2), ("wait_mean_h", "mean wait h", 2),
                 ("crossings_per_day", "crossings per day", 1)]  # what a folder without its outputs shows
SWEEP_METHODS = {
    "sobol": "Sobol indices (SALib, Saltelli design): S1 is the share of an output's variance across the design "
             "that an input explains alone, ST alone and with the others; [low, high] is each index's bootstrap "
             "interval, cut to [0, 1] (the range of a share). An estimate can itself fall below 0 or above 1: "
             "the estimator's noise, marked where it happens.",
    "morris": "Morris screening (SALib): mu* is the mean absolute effect of moving an input over its range, sigma "
              "how much that effect depends on the other inputs; [low, high] is mu*'s bootstrap interval, cut at "
              "0 (a mean of absolute effects cannot be negative).",
    "grid": "Main effects over the grid: an input's main effect is the range (highest minus lowest) of the "
            "output's mean over the input's levels, each level's mean taken over every combination of the other "
            "inputs' levels, in the output's unit. It has no interval: the sweep keeps each point's summary, not "
            "its replications, and the points share their random numbers; compare it with the points' own "
            "intervals in the response plot. An input that acts only together with another can show a small "
            "main effect: the plot draws a line per combination of the others.",
    "lhs": "Spearman's rank correlation rho between an input's values over the Latin hypercube and the output, "
           "with Fisher's interval [low, high] (inside [-1, 1] by construction); inputs are ranked by |rho|. rho "
           "near +1 or -1: the output rises or falls with the input; an effect that rises and then falls over the "
           "range shows as a small rho (a Sobol or Morris design measures those). An input with no effect still "
           "correlates with the output by chance, and with many inputs some chance correlations are large: "
           "only the inputs whose corrected interval excludes 0 are significant.",
}
SWEEP_LEVEL = ("Each input's interval is at level {level}: corrected for the {tested} inputs tested (Bonferroni), so "
               "that all of an output's intervals hold together with 95 % confidence. An input is significant when "
               "its interval excludes 0; the others may not matter at all.")


def _sweep_table(folder: Folder) -> pd.DataFrame | None:
    path = folder.path / "sweep.parquet"
    if path.exists():
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
            raise ReportError(str(path), None, f"cannot be read: {exc}") from None
    table = folder.csv("sweep.csv")
    return table


_OUTPUT_LABELS = {metric: (label, digits) for metric, label, digits in SWEEP_OUTPUTS}


def _sweep_outputs(rows: pd.DataFrame, outputs: list[str] | None):
    """(metric, gate, its rows) of each output the sweep analysed, in the order of its --output
    (metadata.json's ``outputs``, METRIC@GATE each), as the printed ranking follows them; a folder
    written before metadata.json held them shows SWEEP_OUTPUTS at every gate."""
    if not outputs:
        for metric, _label, _digits in SWEEP_OUTPUTS:
            for gate, grp in rows[rows.metric == metric].groupby("gate", sort=False):
                yield metric, gate, grp
        return
    for text in outputs:
        metric, _, gate = str(text).rpartition("@")
        grp = rows[(rows.metric == metric) & (rows.gate == gate)]
        if not grp.empty:
            yield metric, gate, grp


def _sensitivity_rows(sens: pd.DataFrame, limit: int = 15) -> dict[tuple, Table]:
    """Per output (method, metric, gate, direction): its parameters by rank, each index with
    its interval (an estimate outside its index's range marked as the estimator's noise), and
    whether the ranked index's interval excludes 0 (a column, where the index has intervals)."""
    from ..experiments.sensitivity import RANKED_INDEX, outside_range

    tables = {}
    for key, grp in sens.groupby(["method", "metric", "gate", "direction"], sort=False):
        indices = list(dict.fromkeys(grp["index"]))
        ranked = RANKED_INDEX.get(str(key[0]))
        flags = "significant" in grp and grp.loc[grp["index"] == ranked, "significant"].notna().any()
        rows = []
        for (rank, param), rgrp in grp.groupby(["rank", "param"], sort=True):
            by = rgrp.set_index("index")
            cells = []
            for ix in indices:
                if ix not in by.index:
                    cells.append("–")
                    continue
                r = by.loc[ix]
                where = outside_range(str(ix), float(r.estimate)) if pd.notna(r.estimate) else None
                noise = f" ({where}: the estimator's noise)" if where else ""
                ci = (f" [{num(r.ci_low, 3)}, {num(r.ci_high, 3)}]"
                      if pd.notna(r.get("ci_low")) and pd.notna(r.get("ci_high")) else "")
                cells.append(num(r.estimate, 3) + noise + ci)
            if flags:
                sig = by.loc[ranked, "significant"] if ranked in by.index else None
                cells.append("–" if sig is None or pd.isna(sig) else "yes" if _truthy(sig) else "no")
            rows.append([str(int(rank)), str(param)] + cells)
            if len(rows) >= limit:
                break
        head = ["rank", "input"] + indices + ([f"significant ({ranked})"] if flags else [])
        tables[key] = Table(head, rows, numeric=set(range(2, 2 + len(indices))))
    return tables


def _truthy(value: Any) -> bool:
    """A flag read back from a CSV: True, 'True' or 1."""
    return str(value).strip().lower() in ("true", "1", "1.0", "yes")


def _ensemble_facts(use: dict | None) -> list[tuple[str, str]]:
    """The facts row of what a sweep took from the scenario's fitted ensemble (metadata.json's
    ``ensemble``), as sim.experiments.sweep prints it; none for a scenario without one."""
    if not use:
        return []
    from ..experiments.sweep import ensemble_lines

    first, *rest = ensemble_lines(use, limit=None)
    return [("fitted ensemble", "; ".join([first.removeprefix("fitted ensemble ")] + [r.strip() for r in rest]))]


@kind("sweep")
def sweep_page(folder: Folder) -> Page:
    from ..experiments.sweep import describe_param

    try:
        spec = json.loads((folder.path / "sweep.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(str(folder.path / "sweep.json"), None, f"cannot be read: {exc}") from None
    cmd = spec.get("command", {})
    meta = folder.meta
    table = _sweep_table(folder)
    if table is None or meta.get("points") is None:
        raise ReportError(str(folder.path), None, "has no sweep.parquet or metadata.json: the sweep has not finished "
                                                  "(run the same command again to resume it)")
    params = cmd.get("params", [])
    what = Section("what", "What was swept")
    what.add("facts", [
        ("scenario", f"{cmd.get('scenario', '?')} ({meta.get('scenario_file', '?')}; SHA-256 "
                     f"{str(cmd.get('scenario_sha256', ''))[:12]}…)"),
        ("design", f"{cmd.get('design', '?')}, size {cmd.get('size', '?')}: {cmd.get('points', '?'):,} points"),
        ("replications", f"{cmd.get('reps', '?')} at each point, on common random numbers: replication i of every "
                         "point uses the same seed, so two points differ only by their inputs"),
        ("outputs", ", ".join(str(o).replace("@", " at ") for o in meta["outputs"]) + " (--output)"
         if meta.get("outputs") else "not recorded (an older sweep): the table below shows "
         + ", ".join(label for _m, label, _d in SWEEP_OUTPUTS) + " at every gate"),
        *_ensemble_facts(meta.get("ensemble")),
        ("seed", str(cmd.get("seed", "?"))), ("engine", str(cmd.get("engine", "?"))),
        ("run on", f"{meta.get('scheduler', '?')}, {meta.get('workers', '?')} workers; "
                   f"{meta.get('computed_this_run', '?')} points computed in the last run, "
                   f"{meta.get('found_done', 0)} found done before"),
        ("simulation time", f"{meta['wall_time_s']:.1f} s (the last run)" if "wall_time_s" in meta else "?"),
        ("bordersim", str(meta.get("bordersim_version", spec.get("version", "?"))))])
    rows = []
    for p in params:
        rows.append([p.get("name", "?"), p.get("kind", "?"), describe_param(p)])
    what.add("table", Table(["input", "kind", "values swept"], rows, caption="The parameters (by their stable names)"))

    sections = [what]
    sens = folder.csv("sensitivity.csv")
    if sens is not None and not sens.empty:
        st = Section("sensitivity", "Which inputs matter")
        st.text(SWEEP_METHODS.get(str(sens["method"].iloc[0]), ""))
        intervals = meta.get("intervals") or {}
        if intervals.get("level") is not None:
            st.text(SWEEP_LEVEL.format(level=f"{100 * float(intervals['level']):.4g} %",
                                       tested=intervals.get("inputs_tested", "?")))
        for (m, metric, gate, direction), tab in _sensitivity_rows(sens).items():
            tab.caption = f"{metric} at {gate} ({direction}), inputs by rank ({m})"
            st.add("table", tab)
        st.add("figure", folder.figure("sensitivity.png", "Sensitivity", "Each input's indices with their intervals "
                                       "(a grid's main effects have none), per output", None))
        sections.append(st)

    resp = Section("response", "How the outputs respond")
    rows = []
    main_rows_ = table[(table.direction == ALL) & (table.stage.fillna("") == "") & (table["class"].fillna("") == "")]
    for metric, gate, grp in _sweep_outputs(main_rows_, meta.get("outputs")):
        label, digits = _OUTPUT_LABELS.get(metric, (metric, 3 if metric.endswith("_share") else 2))
        means = grp["mean"].astype(float)
        best = grp.loc[means.idxmin()]
        rows.append([gate, label, num(means.min(), digits), num(means.median(), digits), num(means.max(), digits),
                     ", ".join(f"{p['name']} = {best[p['name']]:.4g}"
                               for p in params[:4] if p.get("name") in best)])
    resp.add("table", Table(["gate", "output", "lowest", "median", "highest", "at the lowest (first 4 inputs)"], rows,
                            numeric={2, 3, 4}, caption="Each point's mean over its replications, across the design"))
    resp.add("figure", folder.figure("response.png", "Response curves", "Each output against each parameter, a "
                                     "point per design point with its interval", None))
    if (folder.path / "heatmap.png").exists():
        resp.add("figure", folder.figure("heatmap.png", "Two-parameter grid", "Each output's mean over the grid",
                                         None))
    sections.append(resp)
    name = cmd.get("scenario", "?")
    return Page(f"bordersim: sweep of {name}", f"{cmd.get('design', '?')} design over {len(params)} inputs",
                sections, [str(w) for w in meta.get("warnings", [])])
