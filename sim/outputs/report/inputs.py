"""A scenario's inputs on a page: its files, parent first, with what each says it models and what
it changes against the file it extends; every input with the comment and source its file gives it;
the --set changes a scenario was made with. Read from the copies of the files a results folder
keeps (scenario_files/), never from a path its metadata.json names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...base.errors import BordersimError
from .page import Section, Table, inside


TEXT_KEYS = ("name", "description", "source", "reason", "note", "id")


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


def _layer_file(layer: dict, root: Path | None) -> tuple[Path | None, str]:
    """Where a scenario file's comments are read from, or why they are not. In a results folder
    (``root``), only from the copy the run kept in it: a path that leads outside the folder is
    not followed (its metadata.json could name any file). Else (a calibration's prior, loaded
    as a scenario) the file itself, where it still is."""
    file = layer.get("file") or ""
    if is_set_layer(layer):
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
    from ...model.ranges import to_keyed
    from ...model.scenario import read_toml

    try:
        raw = read_toml(path)
    except BordersimError:
        return {}
    raw.pop("extends", None)
    return to_keyed(raw, str(path))


def is_set_layer(layer: dict) -> bool:
    """A scenario's --set changes (recorded as a file of their own, its name ending in " (--set)")."""
    from ...model.scenario import SET_LAYER

    return (layer.get("file") or "").endswith(SET_LAYER)


def set_lines(layer: dict) -> list[str] | None:
    """The --set lines a scenario's --set changes were made with, as its description records
    them (a comparison's alternative: sim.model.scenario.sets_description); None where not recorded."""
    from ...model.scenario import sets_described

    return sets_described(layer.get("description"))


OPERATORS = {"*=": "×", "+=": "+", "-=": "−"}
FITTED = "the fitted values"  # an input the fitted ensemble supplies, row by row


def set_rows(layer: dict, scen: dict) -> list[list[str]]:
    """The inputs a --set layer changes: [input, before, after, the --set line]. An input the
    fitted ensemble supplies and the --set changed relatively keeps its fitted values, each
    changed (sim.model.scenario.set_layer): it is shown so, "the fitted values × 0.8", not as its prior
    range (which metadata.json's before and after hold) scaled."""
    from ...model.ranges import parse_assignment

    lines = set_lines(layer)
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


def layer_blocks(section: Section, scen: dict, show_first: bool, shown: set[str] | None = None,
                  root: Path | None = None) -> None:
    """A scenario's files, parent first: each with what it says it models (its opening comment)
    and, for each file after the first, the inputs it changes with their sources; files in
    ``shown`` (described already, for another scenario) are named only. ``root``: the results
    folder the files' copies are in (see _layer_file)."""
    from ...model.sources import header_comment, notes_for, read_notes

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
        rows = set_rows(layer, scen) if is_set_layer(layer) else []
        for ch in [] if is_set_layer(layer) else changes:
            keys = tuple(ch["input"].split("."))
            if keys[-1] in TEXT_KEYS and keys[-1] not in ("name",):
                continue
            comment, source = notes_for(keys, notes, raw) if notes is not None else ("", "")
            rows.append([ch["input"], value_text(ch["before"]), value_text(ch["after"]),
                         "; ".join(t for t in (comment, source) if t)])
        section.add("table", Table(["input", "before (its parent)", "this file", "source or assumption"], rows,
                                   caption=f"What {Path(name).name} changes against the scenario it extends"))


def sources_section(scen: dict, title: str = "Inputs: assumptions and sources", sid: str = "sources",
                     root: Path | None = None) -> Section:
    """Every input each file of the scenario sets, with its value and the comment and source
    the file gives it; uncertain inputs (ranges) marked, and those the ensemble supplies.
    ``root``: the results folder the files' copies are in (see _layer_file)."""
    from ...model.ranges import path_str
    from ...model.sources import notes_for, read_notes

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
        if is_set_layer(layer):
            rows = [[input_, after, "", comment] for input_, _before, after, comment in set_rows(layer, scen)]
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
    from ...model.ranges import leaves

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
