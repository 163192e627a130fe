"""What a results folder records of the scenarios behind it (metadata.json's scenario details,
read by its report): each file of a scenario's chain and what it changes, a copy of each file
in the folder, and every path as seen from the folder, so that it names no path of this
machine. Both the writers of results folders (sim.outputs.results, sim.outputs.sweep) and the
report (the calibration page, of a prior scenario) use it."""

from __future__ import annotations

import os
from pathlib import Path

from ..model.ranges import is_range, path_str
from ..model.scenario import SET_LAYER, merge_layers


def _jsonable(value):
    """A raw scenario value as JSON: dates and times in ISO form, tables and lists throughout."""
    import datetime as dt

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return value


def layer_changes(scenario) -> list[dict]:
    """Each file of the scenario's chain (parent first; a --set layer too): its name and
    description, and for every file after the first the inputs it changes against the scenario
    it extends, each as {input, before, after} (before None: new). The first file defines the
    scenario: its inputs are not listed here (the report reads them from the file)."""
    out = []
    merged: dict = {}
    for i, layer in enumerate(scenario.layers):
        before = dict(_units(merged))
        merged = merge_layers(list(scenario.layers[:i + 1]))
        entry = {"file": layer.file, "name": layer.raw.get("name"), "description": layer.raw.get("description")}
        if i:
            after = dict(_units(merged))
            changed = [p for p in after if before.get(p, _MISSING) != after[p]]
            changed += [p for p in before if p not in after]
            entry["changes"] = [{"input": path_str(p), "before": _jsonable(before.get(p)),
                                 "after": _jsonable(after.get(p))} for p in changed]
        out.append(entry)
    return out


_MISSING = object()


def _units(node, path: tuple = ()):
    """(path, value) of each input of a raw tree as a file writes it: plain values, ranges and
    lists whole (hours, a filter's gates), tables key by key; promises ([[expect]]) left out."""
    if isinstance(node, dict) and not is_range(node):
        for k, v in node.items():
            if not path and k == "expect":
                continue
            yield from _units(v, path + (k,))
    else:
        yield path, node


SCENARIO_FILES = "scenario_files"  # in a results folder: each scenario file as the run read it


def keep_scenario_files(scenarios, folder: Path) -> dict[str, str]:
    """Copy each file of the scenarios' chains, as the run read it, into ``folder``/scenario_files/
    (one copy of each; a name that two different files share gets a number), so that the report
    reads the comments and sources behind each input from the results folder itself, never from
    a path its metadata.json names. Returns each file -> its copy, relative to ``folder``."""
    copies: dict[str, str] = {}
    kept: dict[str, bytes] = {}
    for scenario in scenarios:
        for layer in scenario.layers:
            if not layer.data or layer.file in copies:
                continue
            path = Path(layer.file)
            name, k = path.name, 1
            while name in kept and kept[name] != layer.data:
                k += 1
                name = f"{path.stem}-{k}{path.suffix}"
            if name not in kept:
                (folder / SCENARIO_FILES).mkdir(exist_ok=True)
                (folder / SCENARIO_FILES / name).write_bytes(layer.data)
                kept[name] = layer.data
            copies[layer.file] = f"{SCENARIO_FILES}/{name}"
    return copies


def seen_from(folder: Path | None, path: str | None) -> str | None:
    """A file's path as seen from a results folder, which metadata.json records (so that it names
    no absolute path of this machine); as it is without a folder."""
    if folder is None or not path:
        return path
    return os.path.relpath(Path(path).resolve(), Path(folder).resolve())


def scenario_metadata(scenario, folder: Path | None = None, copies: dict[str, str] | None = None) -> dict:
    """What a report needs of a scenario besides the tables: its files and what each changes,
    its ensemble, its gates' names and fixed closures, its promises ([[expect]]). With the
    results ``folder``, paths are relative to it: each file's ``origin``, and as ``file`` its
    copy in the folder (``copies``: keep_scenario_files) that the report reads."""
    from dataclasses import asdict

    from .findings import closures_of, corridors_of

    m = scenario.nominal
    layers = layer_changes(scenario)
    if folder is not None:
        for entry in layers:
            origin = entry["file"]
            if origin.endswith(SET_LAYER):
                entry["file"] = seen_from(folder, origin[:-len(SET_LAYER)]) + SET_LAYER
                continue
            entry["origin"] = seen_from(folder, origin)
            entry["file"] = (copies or {}).get(origin, entry["origin"])
            for change in entry.get("changes", []):
                if change["input"] == "ensemble":
                    change["before"], change["after"] = (seen_from(folder, change["before"]),
                                                         seen_from(folder, change["after"]))
    out = {
        "name": scenario.name,
        "file": seen_from(folder, scenario.path),
        "description": m.description,
        "horizon": {"start": str(m.horizon.start), "end": str(m.horizon.end), "days": m.horizon.days,
                    "warmup_days": m.horizon.warmup_days},
        "layers": layers,
        "ensemble": None if scenario.ensemble is None else {
            "file": seen_from(folder, scenario.ensemble_file), "rows": len(scenario.ensemble),
            "inputs": list(scenario.ensemble.columns)},
        "gates": {g: {"name": gate.name, "closures": [asdict(c) for c in closures_of(m)[g]]}
                  for g, gate in m.gates.items()},
        "expect": [e.model_dump() for e in m.expect],
        "uncertain_inputs": {r.name(): {r.kind: list(r.values)} for r in scenario.ranges},
    }
    if m.corridors:
        out["corridors"] = corridors_of(m)
    return out
