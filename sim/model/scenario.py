"""Scenarios: load a file, follow ``extends``, merge, apply ``--set``, validate.

A scenario file is TOML (see README, "Scenario files"). A child names its parent with
``extends`` and says only what it changes: tables merge key by key, and so do the named items
of a keyed list (stages by name; demand steps, random closures and adjustments by id: see
sim.model.ranges), which a child may also remove (``remove = true``) or place (``before = "<name>"``);
other arrays replace the parent's. Any number may be an uncertain range; a fitted ensemble
(``ensemble = "file.csv"``) supplies whole parameter sets, except for the inputs a later file
sets itself. Every problem is a :class:`ScenarioError` naming the file and the field.
"""

from __future__ import annotations

import copy
import errno
import functools
import math
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np
from pydantic import TypeAdapter, ValidationError

from .adjust import apply_static, check_references
from ..base.errors import BordersimError, ScenarioError, shorten
from .ranges import (
    MERGE_KEYS,
    draw_inputs,
    Assignment,
    changed_by,
    parse_assignment,
    Keyed,
    Range,
    find_ranges,
    is_range,
    keyed_at,
    leaves,
    model_form,
    path_str,
    substitute,
    to_keyed,
)
from .schema import (  # noqa: F401  (the names other modules know sim.model.scenario by)
    DIRECTIONS,
    LEVER_COST_FIELDS,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    WEEKDAYS,
    Adjustment,
    Gate,
    Horizon,
    Profile,
    RandomClosure,
    ScenarioModel,
    _check_hours,
    _pydantic_error,
    _validate,
)


# ---------------------------------------------------------------- reading and merging


def read_toml(path: Path, error: type[BordersimError] = ScenarioError, what: str = "scenario file") -> dict:
    """A TOML file as a dict, or ``error`` (one line naming the file) for anything that is not
    UTF-8 TOML text of at most MAX_FILE_BYTES, nested at most MAX_DEPTH deep. Shared by scenario
    and targets files."""
    return _read_toml(path, error, what)[0]


def read_limited(path: Path, limit: int, error: type[BordersimError], what: str, field: str | None = None,
                 file: str | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or ``error`` naming ``file`` (default:
    the path) and ``field``: a missing file, a folder, a device or pipe (which could block a read
    for ever or never end), a loop of links. Never the file's content in the message."""
    where = str(path) if file is None else file
    prefix = "" if file is None else f"{path}: "
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO would block an ordinary open
    except FileNotFoundError:
        raise error(where, field, f"{prefix}file not found") from None
    except OSError as exc:  # ELOOP, EACCES, ...
        why = "a loop of symbolic links" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise error(where, field, f"{prefix}cannot be read: {why}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise error(where, field, f"{prefix}is a directory, not a {what}")
        raise error(where, field, f"{prefix}is not a regular file (a device, pipe or socket), not a {what}")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise error(where, field, f"{prefix}cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise error(where, field, f"{prefix}is larger than {limit:,} bytes; a {what} is smaller")
    return data


def decode_text(data: bytes, file: str, error: type[BordersimError], field: str | None = None) -> str:
    """UTF-8 text (a byte-order mark at its start, which some editors write, is dropped), or
    ``error`` naming the first byte that is not UTF-8 by its position (not the text around it)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(file, field, f"not UTF-8 text (byte {data[exc.start]:#04x} at position {exc.start})") from None


def _read_toml(path: Path, error: type[BordersimError], what: str) -> tuple[dict, bytes]:
    """read_toml's dict and the file's bytes as read."""
    file = str(path)
    data = read_limited(path, MAX_FILE_BYTES, error, what)
    text = decode_text(data, file, error)
    try:
        raw = tomllib.loads(text)
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise error(file, None, f"nested too deeply: at most {MAX_DEPTH} levels of tables and arrays") from None
    except ValueError as exc:  # TOMLDecodeError, or an integer of more than 4,300 digits
        raise error(file, None, f"not valid TOML: {_toml_problem(exc)}") from None
    check_depth(raw, file, error)
    return raw, data


# tomllib's messages that quote the file (a character, a key): said without the quote
_TOML_QUOTING = {"Found invalid character": "invalid character", "Illegal character": "illegal character in a string",
                 "Unescaped": "unescaped character in a string",
                 "Duplicate inline table key": "a key given twice in an inline table",
                 "Cannot declare": "a table declared twice",
                 "Cannot mutate immutable namespace": "a table or key defined twice",
                 "Cannot redefine namespace": "a table or key defined twice"}


def _toml_problem(exc: ValueError) -> str:
    """What tomllib found wrong and where (line and column), without the file's text: the
    messages that quote a character or key of the file are said in words."""
    text = str(exc)
    if not isinstance(exc, tomllib.TOMLDecodeError):
        return "a number too long to read" if "digits" in text else "cannot be parsed"
    where = re.search(r" \(at (?:line \d+, column \d+|end of document)\)$", text)
    head = text[:where.start()] if where else text
    head = next((words for prefix, words in _TOML_QUOTING.items() if head.startswith(prefix)), head)
    return shorten(head + (where.group(0) if where else ""), 120)


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


def deep_merge(base: dict, override: dict, file: str = "", path: tuple = ()) -> dict:
    """Tables merge key by key, and so do keyed lists (by their items' names; an item with
    ``remove = true`` is taken out, one with ``before = "<name>"`` put in front of that one);
    any other value (arrays included) replaces the base's."""
    if isinstance(override, Keyed) and isinstance(base, Keyed):
        return _merge_keyed(base, override, file, path)
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not is_range(v) and not is_range(out[k]):
            out[k] = deep_merge(out[k], v, file, path + (k,))
        else:
            out[k] = _no_merge_keys(copy.deepcopy(v), file, path + (k,))
    return out


def _merge_keyed(base: Keyed, override: Keyed, file: str, path: tuple) -> Keyed:
    out = Keyed(copy.deepcopy(dict(base)))
    for name, item in override.items():
        where = path_str(path + (name,))
        item = dict(item)
        remove, before = item.pop("remove", False), item.pop("before", None)
        if remove is not False:
            if remove is not True or item:
                raise ScenarioError(file, f"{where}.remove", "remove = true takes an item out; it takes nothing else")
            if name not in out:
                raise ScenarioError(file, f"{where}.remove", f"there is no '{name}' to remove "
                                                             f"(there are: {', '.join(out) or 'none'})")
            del out[name]
            continue
        out[name] = deep_merge(out[name], item, file, path + (name,)) if name in out else copy.deepcopy(item)
        if before is not None:
            if not isinstance(before, str) or before not in out or before == name:
                raise ScenarioError(file, f"{where}.before", f"names no other item (there are: {', '.join(out)})")
            order = [k for k in out if k != name]
            order.insert(order.index(before), name)
            out = Keyed((k, out[k]) for k in order)
    return out


def _no_merge_keys(node: Any, file: str, path: tuple) -> Any:
    """A keyed list that merges with nothing (its first appearance): remove and before say
    nothing there, and are refused rather than passed on."""
    if isinstance(node, Keyed):
        for name, item in node.items():
            for k in MERGE_KEYS:
                if k in item:
                    if k == "before" and item[k] in node and item[k] != name:
                        continue
                    raise ScenarioError(file, path_str(path + (name, k)),
                                        f"'{k}' applies to an item of the scenario this one extends; there is none")
        ordered = _order_new(node, file, path)
        return Keyed((n, {k: v for k, v in ordered[n].items() if k != "before"}) for n in ordered)
    return node


def _order_new(node: Keyed, file: str, path: tuple) -> Keyed:
    out = Keyed(node)
    for name, item in node.items():
        if "before" in item:
            order = [k for k in out if k != name]
            order.insert(order.index(item["before"]), name)
            out = Keyed((k, out[k]) for k in order)
    return out


@dataclass(frozen=True)
class Layer:
    """One file of a scenario's chain (parent first), as read, with its keyed lists by name, and
    the file's bytes as read (a results folder keeps a copy: what the run read, not what the
    file holds later); a --set layer has none."""

    file: str
    raw: dict
    # --set's relative changes (name, operator, operand) of inputs no '=' of the same layer gives:
    # where a fitted ensemble supplies such an input, its column changes too, row by row
    relative: tuple[tuple[str, str, float], ...] = ()
    data: bytes = field(default=b"", repr=False, compare=False)


def _load_layers(path: Path, chain: tuple[Path, ...] = ()) -> list[Layer]:
    try:
        path = path.resolve()
    except RuntimeError:  # Python 3.11 and 3.12: a symlink loop (later versions leave it to open)
        raise ScenarioError(str(path), None, "cannot be read: a loop of symbolic links") from None
    if path in chain:
        cycle = " -> ".join(p.name for p in chain + (path,))
        raise ScenarioError(str(chain[-1]), "extends", f"cycle: {cycle}")
    raw, data = _read_toml(path, ScenarioError, "scenario file")
    if isinstance(raw.get("ensemble"), str):  # relative to the file that names it
        raw["ensemble"] = str(path.parent / raw["ensemble"])
    parent = raw.pop("extends", None)
    layer = Layer(str(path), to_keyed(raw, str(path)), data=data)
    if parent is None:
        return [layer]
    if not isinstance(parent, str):
        raise ScenarioError(str(path), "extends", "must be a file name (string), relative to this file")
    parent_path = path.parent / parent
    try:
        os.stat(parent_path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ScenarioError(str(path), "extends", f"{parent_path} is a loop of symbolic links") from None
        if os.path.islink(parent_path):
            raise ScenarioError(str(path), "extends", f"{parent_path} is a symbolic link to a file that does not "
                                                      "exist") from None
        raise ScenarioError(str(path), "extends", f"file not found: {parent_path}") from None
    return _load_layers(parent_path, chain + (path,)) + [layer]


def merge_layers(layers: list[Layer]) -> dict:
    raw: dict = {}
    for layer in layers:
        raw = deep_merge(raw, layer.raw, layer.file)
    return raw


SET_LAYER = " (--set)"  # ends the name of a scenario's --set layer (set_layer): "FILE (--set)"


def set_layer(assignments: list[str], raw: dict, file: str) -> Layer:
    """``--set`` changes (PATH an input's name, e.g. gates.km3_4.exit.stages.customs.lanes) as one
    more layer: ``PATH=VALUE`` gives a TOML value (a number, a range such as {uniform = [2, 3]});
    ``PATH+=N``, ``PATH-=N`` and ``PATH*=F`` change the value the scenario has (a number, or both
    ends of a range). A value written with a sign after a plain ``=`` (``lanes=+1``) is refused:
    it reads as a change but would set the value. Relative changes of an input a fitted ensemble
    supplies also change its column, row by row (``Layer.relative``; sim.model.scenario.from_dict)."""
    out: dict = {}
    relative: list[tuple[str, str, float]] = []
    absolute: set[str] = set()
    for text in assignments:
        a = parse_assignment(text)
        if a is None:
            raise ScenarioError(file, "--set", f"'{shorten(text)}' is not PATH=VALUE (or PATH+=N, PATH-=N, PATH*=F)")
        where, keys = a.where, a.keys
        field_ = f"--set {where}"
        if not a.relative and a.value_text[:1] in ("+", "-"):
            n = a.value_text[1:].strip() or "N"
            sign = a.value_text[0]
            how, other = ("add", "-= to subtract") if sign == "+" else ("subtract", "+= to add")
            raise ScenarioError(file, field_, f"'{shorten(a.value_text)}' has a sign, which would set the value, not "
                                              f"change it: write {where}{sign}={n} to {how} {n} ({other}, *= to "
                                              f"multiply), or {where}={n} for the value {n}")
        value = toml_value(a.value_text, file, field_, "; to change the value write PATH+=N, PATH-=N or PATH*=F")
        node: Any = raw
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node, dict) or key not in node:
                have = ", ".join(map(str, node)) if isinstance(node, dict) else "none"
                raise ScenarioError(file, field_, f"no '{key}' at {path_str(keys[:depth]) or 'the top'} "
                                                  f"(there are: {shorten(have, 160)})")
            node = node[key]
        if not isinstance(node, dict) or is_range(node):
            raise ScenarioError(file, field_, f"{path_str(keys[:-1])} holds a value, not a table")
        target = out
        for depth, key in enumerate(keys[:-1]):
            target = target.setdefault(key, Keyed() if keyed_at(keys[:depth + 1]) else {})
        if a.relative:
            if keys[-1] not in node and keys[-1] not in target:  # misspelt, or a value the scenario leaves out
                have = ", ".join(k for k in node if k not in MERGE_KEYS) or "none"
                at = path_str(keys[:-1]) or "the top"
                raise ScenarioError(file, field_, f"no '{shorten(keys[-1], 40)}' to change at {at} (there are: "
                                                  f"{shorten(have, 160)}); to give it a value, write PATH=VALUE")
            operand = value
            value = _relative_change(a, operand, target.get(keys[-1], node.get(keys[-1])), file)
            relative.append((where, a.op, float(operand)))
        else:
            absolute.add(where)
        target[keys[-1]] = to_keyed(value, file, keys)
    return Layer(f"{file}{SET_LAYER}", out, relative=tuple((w, op, v) for w, op, v in relative if w not in absolute))


def toml_value(text: str, file: str, field_: str, hint: str = "") -> Any:
    """One TOML value written as text (``--set``'s VALUE, a control of a page): a number, a date,
    a string in quotes, a range {uniform = [lo, hi]}, ...; anything else, more than one value
    (a line break and another key) included, is one ScenarioError naming ``field_``."""
    try:
        doc = tomllib.loads(f"v = {text}")
    except (tomllib.TOMLDecodeError, ValueError, RecursionError):
        doc = None
    if doc is None or list(doc) != ["v"]:
        raise ScenarioError(file, field_, f"'{shorten(text)}' is not a TOML value (a number, a string in quotes, a "
                                          f"range {{uniform = [lo, hi]}}, ...){hint}")
    return doc["v"]


def _relative_change(a: "Assignment", operand: Any, current: Any, file: str) -> Any:
    """The value at ``a.where`` after ``a``'s change (``+=``, ``-=``, ``*=``) of ``current``."""
    field_ = f"--set {a.where}"
    if isinstance(operand, bool) or not isinstance(operand, (int, float)) or not math.isfinite(operand):
        raise ScenarioError(file, field_, f"'{shorten(a.value_text)}' after {a.op} must be a finite number")
    if a.op == "*=" and not operand > 0:
        raise ScenarioError(file, field_, f"a factor after *= must be above 0 (got {operand:g})")
    changed = changed_by(current, a.op, operand)
    if changed is None:
        what = "a table (a distribution: change one of its numbers, such as .mean)" if isinstance(current, dict) \
            else f"{type(current).__name__} {shorten(repr(current), 60)}"
        raise ScenarioError(file, field_, f"holds {what}; {a.op} changes a number or both ends of a range")
    return changed


# ---------------------------------------------------------------- the scenario


@functools.lru_cache(maxsize=1)
def _adjustments() -> TypeAdapter:
    return TypeAdapter(list[Adjustment])  # built once (every replication validates its adjustments)


def build_model(data: dict, file: str) -> ScenarioModel:
    """The validated model of a raw tree with its values in place: the adjustments that hold
    all horizon applied first, each checked against what it names."""
    data = model_form(data)  # new containers throughout: the static adjustments may change them in place
    try:
        adjs = _adjustments().validate_python(data.get("adjust", []))
    except ValidationError as exc:
        raise _pydantic_error(exc, file, ("adjust",), data.get("adjust")) from None
    check_references(adjs, data, file)
    return _validate(apply_static(data, adjs, fresh=True), file)


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
    # ensemble columns a later file sets itself (its value or range wins), left out of the rows
    overridden: tuple[str, ...] = ()
    layers: tuple[Layer, ...] = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return self.nominal.name

    def renamed(self, name: str) -> "Scenario":
        """The same scenario under another name (results folders and comparisons tell them apart)."""
        import dataclasses

        raw = dict(self.raw)
        raw["name"] = name
        return dataclasses.replace(self, raw=raw, nominal=self.nominal.model_copy(update={"name": name}))

    def sample(self, rng_for: Callable[[str], np.random.Generator]) -> ScenarioModel:
        """A concrete scenario: each range drawn from the stream named ``param/<field>``."""
        return self.model_for(self.draw(rng_for))

    def draw(self, rng_for: Callable[[str], np.random.Generator],
             fixed: "Mapping[str, float] | None" = None) -> dict[str, float]:
        """The value of each uncertain input (by name) in one replication: ``fixed`` values as
        given, then one whole row of the ensemble if there is one, the other ranges drawn from
        their streams (``param/<name>``)."""
        return draw_inputs(self.ranges, self._ensemble_rows, rng_for, fixed, self.path)

    def model_for(self, values: "Mapping[str, float]") -> ScenarioModel:
        """The concrete scenario with the uncertain inputs at the given values (by name)."""
        if not self.ranges:
            return self.nominal
        return build_model(substitute(self.raw, {self.by_name[k].path: v for k, v in values.items()}), self.path)

    @cached_property
    def by_name(self) -> dict[str, Range]:
        """The uncertain inputs by name."""
        return {r.name(): r for r in self.ranges}

    @cached_property
    def _ensemble_rows(self) -> list[dict]:
        return [] if self.ensemble is None else self.ensemble.to_dict("records")


def from_dict(raw: dict, path: str = "<scenario>", base_dir: Path | None = None,
              layers: list[Layer] | None = None) -> Scenario:
    """Validate a scenario given as a dict (lists as in a file, or keyed tables; after any
    ``extends`` has been merged). An ``ensemble`` file name is relative to base_dir (the scenario
    file's folder); layers, the files it was merged from, tell which inputs a file after the
    ensemble's sets itself."""
    check_depth(raw, path)
    raw = to_keyed(copy.deepcopy(dict(raw)), path)
    raw.pop("extends", None)
    ensemble_file = raw.pop("ensemble", None)
    check_new_names(raw, layers or [], path)
    ranges = find_ranges(raw, path)
    lever_range = next((r for r in ranges if r.path[0] == "levers" and r.path[-1] not in LEVER_COST_FIELDS), None)
    if lever_range is not None:  # a lever's values are what a planner decides, not drawn; its costs may be uncertain
        raise ScenarioError(path, path_str(lever_range.path), "a lever's values are plain numbers, not ranges (its "
                                                              "values are integer = [lo, hi] or real = [lo, hi]; "
                                                              f"only {' and '.join(LEVER_COST_FIELDS)} may be ranges)")
    nominal = build_model(substitute(raw, {r.path: r.nominal() for r in ranges}), path)
    # The ends of every range must be valid too, or some replications would fail.
    for end, pick in (("low", Range.low), ("high", Range.high)):
        if not ranges:
            break
        try:
            build_model(substitute(raw, {r.path: pick(r) for r in ranges}), path)
        except ScenarioError as exc:
            raise ScenarioError(exc.file, exc.field, f"{exc.message}, at the {end} end of its range") from None
    ensemble, overridden = None, ()
    if ensemble_file is not None:
        overridden = _set_after_ensemble(layers or [], ensemble_file)
        ensemble_file, ensemble = _load_ensemble(ensemble_file, raw, ranges, path, base_dir, overridden,
                                                 _relative_after_ensemble(layers or [], ensemble_file))
    return Scenario(path=path, raw=raw, ranges=tuple(ranges), nominal=nominal, ensemble=ensemble,
                    ensemble_file=ensemble_file, overridden=overridden, layers=tuple(layers or ()))


GATE_NEEDS = ("name", "classes", "hours")
STAGE_NEEDS = ("lanes", "service_min")


LEVER_NEEDS = ("base", "unit", "capital_per_unit_year", "operating_per_unit_year", "cost_source")


def check_new_names(raw: dict, layers: list[Layer], path: str) -> None:
    """A gate, stage or lever that is incomplete is most likely a misspelt name (``[[gates.bac_luan2.
    exit.stages]]`` makes a new gate 'bac_luan2'): say it is unknown and list the known ones, naming
    the file that brought it in, rather than 'name: required field is missing'."""
    levers = raw.get("levers")
    if isinstance(levers, dict):
        known = [lid for lid, t in levers.items() if isinstance(t, dict) and all(k in t for k in LEVER_NEEDS)]
        for lid, table in levers.items():
            # a table with neither values (paths, integer, real, choices) nor all its fields: a misspelt id
            if known and isinstance(table, dict) and not all(k in table for k in LEVER_NEEDS) \
                    and not any(k in table for k in ("paths", "integer", "real", "choices")):
                missing = ", ".join(k for k in LEVER_NEEDS if k not in table)
                raise ScenarioError(_brought_in(layers, ("levers", lid), path), f"levers.{lid}",
                                    f"unknown lever '{shorten(lid, 60)}' (levers: {', '.join(known)}); a new lever "
                                    f"also needs {missing}")
    gates = raw.get("gates")
    if not isinstance(gates, dict):
        return
    complete = [g for g, t in gates.items() if isinstance(t, dict) and all(k in t for k in GATE_NEEDS)]
    for gid, table in gates.items():
        if not isinstance(table, dict):
            continue
        if complete and not all(k in table for k in GATE_NEEDS):
            missing = ", ".join(k for k in GATE_NEEDS if k not in table)
            raise ScenarioError(_brought_in(layers, ("gates", gid), path), f"gates.{gid}",
                                f"unknown gate '{shorten(gid, 60)}' (gates: {', '.join(complete)}); a new gate "
                                f"also needs {missing}")
        for d in DIRECTIONS:
            stages = table.get(d, {}).get("stages") if isinstance(table.get(d), dict) else None
            if not isinstance(stages, Keyed):
                continue
            known = [n for n, st in stages.items() if isinstance(st, dict) and all(k in st for k in STAGE_NEEDS)]
            for name, st in stages.items():
                if known and isinstance(st, dict) and not all(k in st for k in STAGE_NEEDS):
                    missing = ", ".join(k for k in STAGE_NEEDS if k not in st)
                    raise ScenarioError(_brought_in(layers, ("gates", gid, d, "stages", name), path),
                                        f"gates.{gid}.{d}.stages.{name}",
                                        f"unknown stage '{shorten(name, 60)}' (stages: {', '.join(known)}); a new "
                                        f"stage also needs {missing}")


def _brought_in(layers: list[Layer], keys: tuple, default: str) -> str:
    """The first file of the chain that names the table at ``keys``."""
    for layer in layers:
        node: Any = layer.raw
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if node is not None:
            return layer.file
    return default


def _set_after_ensemble(layers: list[Layer], ensemble_file: str) -> tuple[str, ...]:
    """The paths (as names) that a file after the one naming the ensemble sets: its values and
    ranges win over the ensemble's columns at or below them."""
    named = [i for i, layer in enumerate(layers) if layer.raw.get("ensemble") == ensemble_file]
    first = (named[-1] + 1) if named else len(layers)
    out = []
    for layer in layers[first:]:
        changed_only = {name for name, _op, _v in layer.relative}  # the column changes with them
        for p, _value in leaves(layer.raw):
            name = path_str(p[:-1] if p and p[-1] in MERGE_KEYS else p)
            if name not in changed_only:
                out.append(name)
    return tuple(dict.fromkeys(out))


def _relative_after_ensemble(layers: list[Layer], ensemble_file: str) -> list[tuple[str, str, float]]:
    """The relative --set changes made after the file naming the ensemble, in order: they change
    its columns row by row."""
    named = [i for i, layer in enumerate(layers) if layer.raw.get("ensemble") == ensemble_file]
    first = (named[-1] + 1) if named else len(layers)
    return [change for layer in layers[first:] for change in layer.relative]


MAX_ENSEMBLE_BYTES = 200_000_000  # an ensemble CSV (the fitted one is 60 kB: 200 rows of some 30 numbers)


def _load_ensemble(name, raw: dict, ranges: list[Range], path: str, base_dir: Path | None,
                   overridden: tuple[str, ...] = (), changes: list[tuple[str, str, float]] = ()):
    """Read and check an ensemble CSV: one column per uncertain input it sets (by range name),
    columns starting with '_' are notes (distance, simulated outputs); every row must give a
    valid scenario once ``changes`` (relative --set changes: name, operator, operand) are made
    to their columns. An error names the file, the column (by its place, or by the input it
    names) and the row, never the file's text: ``ensemble`` may name any file."""
    import csv
    import difflib
    import io

    import pandas as pd

    if not isinstance(name, str):
        raise ScenarioError(path, "ensemble", "must be a CSV file name, relative to this file")
    file = (base_dir or Path(".")) / name
    data = read_limited(file, MAX_ENSEMBLE_BYTES, ScenarioError, "CSV file", "ensemble", file=path)
    text = decode_text(data, str(file), ScenarioError)
    by_name = {r.name(): r for r in ranges}
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error:
        header = []
    for j, c in enumerate(header):
        first = header.index(c)
        if first < j:
            shown = f" ({c})" if c in by_name else ""
            raise ScenarioError(str(file), f"column {j + 1}", f"has the same name as column {first + 1}{shown}; "
                                                              "each input has one column")
    try:
        table = pd.read_csv(io.StringIO(text))
    except pd.errors.EmptyDataError:
        raise ScenarioError(str(file), None, "is empty: it needs a header line and at least one row") from None
    except (pd.errors.ParserError, ValueError) as exc:
        line = re.search(r"line (\d+)", str(exc))
        at = f" (line {line.group(1)} does not have the header's columns)" if line else ""
        raise ScenarioError(str(file), None, f"not a readable CSV{at}") from None
    # inputs a scenario extending a fitted one sets itself (a later file's value or range, or a
    # plain number where the prior had a range): its own values win over the ensemble's
    fixed = {path_str(p) for p, v in leaves(raw) if isinstance(v, (int, float)) and not isinstance(v, bool)}
    params = [c for c in table.columns if not str(c).startswith("_") and c not in fixed
              and not any(str(c) == o or str(c).startswith(o + ".") for o in overridden)]
    columns = list(table.columns)
    for c in params:
        if c not in by_name:
            close = difflib.get_close_matches(str(c), list(by_name), n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]}?" if close else ""
            allowed = ", ".join(by_name) or "none: the scenario has no uncertain inputs"
            raise ScenarioError(str(file), f"column {columns.index(c) + 1}",
                                f"its name is not an input of the scenario{hint} (uncertain inputs: {allowed})")
    if table.empty or not params:
        if overridden and not table.empty:  # every column is set by the scenario itself
            return str(file), None
        raise ScenarioError(str(file), None, "needs at least one row and one parameter column")
    cells = [[_number(v) for v in table[c]] for c in params]  # by column
    for j, c in enumerate(params):
        i = next((i for i, v in enumerate(cells[j]) if not math.isfinite(v)), None)
        if i is not None:
            raise ScenarioError(str(file), f"row {i + 1}: {c}", "needs a finite number (a number without text; "
                                                                 "not empty, inf or nan)")
    values = pd.DataFrame(dict(zip(params, cells)), dtype=float)
    for name_, op, operand in changes:
        if name_ in values.columns:
            values[name_] = [changed_by(v, op, operand) for v in values[name_]]
    set_paths = [by_name[c].path for c in params]
    for i, numbers in enumerate(values[params].to_numpy().tolist()):
        try:
            row = {r.path: r.nominal() for r in ranges}  # the ranges the row does not set, at their middle
            row.update(zip(set_paths, numbers))
            build_model(substitute(raw, row), path)
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


def load(path: str | Path, sets: list[str] | None = None) -> Scenario:
    """Load a scenario file, following ``extends``, with ``--set PATH=VALUE`` changes on top,
    and validate it."""
    p = Path(path)
    layers = _load_layers(p)
    if not sets:
        return from_dict(merge_layers(layers), str(p), base_dir=p.resolve().parent, layers=layers)
    layers.append(set_layer(sets, merge_layers(layers), str(p)))
    return _built_with_sets(layers, str(p), sets)


def _built_with_sets(layers: list[Layer], path: str, sets: list[str]) -> Scenario:
    """The scenario of ``layers``, the last of them ``sets``' changes; an error about a value a
    --set gave names the --set, not the file it changed."""
    try:
        return from_dict(merge_layers(layers), path, base_dir=Path(path).resolve().parent, layers=layers)
    except ScenarioError as exc:
        row, _, where = str(exc.field).rpartition(": ")  # an ensemble's "row 3: <field>"
        a = next((a for a in map(parse_assignment, reversed(sets)) if a and _names(where, a.keys)), None)
        if a is None:
            raise
        raise ScenarioError(path, f"--set {a.where}{a.op}{shorten(a.value_text, 60)}",
                            f"{exc.message} (in the ensemble's {row})" if row else exc.message) from None


def _names(field_: str, keys: tuple) -> bool:
    """Whether an error's field is the input at ``keys`` or inside it (pydantic inserts a
    distribution's kind: ``service_min.lognormal.mean`` for ``service_min.mean``)."""
    parts = iter(field_.split("."))
    return all(any(k == part for part in parts) for k in keys)


SETS_SAID = " with --set "  # between a scenario's name and its --set lines, in sets_description


def sets_description(name: str, sets: list[str]) -> str:
    """How an alternative changed by ``sets`` describes itself: "NAME with --set A; --set B"
    (metadata.json keeps it, so a report says what the alternative changes)."""
    return name + SETS_SAID + "; --set ".join(sets)


def sets_described(description: str | None) -> list[str] | None:
    """The --set lines of a description sets_description wrote; None for any other."""
    name, said, rest = (description or "").partition(SETS_SAID)
    if not said or not name or " " in name:  # a scenario's name is a plain name, without spaces
        return None
    return rest.split("; --set ")


def with_sets(scenario: Scenario, sets: list[str], name_sets: bool = True) -> Scenario:
    """The scenario with ``--set PATH=VALUE`` changes on top (sim.model.scenario.load's ``sets``), under
    its own name, described as "NAME with --set A; --set B" (sets_description) unless a set gives
    the description itself. A value a --set gave that the schema refuses is an error naming that
    --set (``name_sets``), or the input it changed (a page's control, which says where itself)."""
    layers = list(scenario.layers)
    if not layers:  # built from a dict: the dict is its one layer (its ensemble, resolved, too)
        raw = dict(scenario.raw, **({"ensemble": scenario.ensemble_file} if scenario.ensemble_file else {}))
        layers = [Layer(scenario.path, raw)]
    changes = set_layer(list(sets), merge_layers(layers), scenario.path)
    if not any((a := parse_assignment(text)) is not None and a.where == "description" for text in sets):
        changes = Layer(changes.file, {**changes.raw, "description": sets_description(scenario.name, list(sets))},
                        relative=changes.relative)
    layers.append(changes)
    changed = _built_with_sets(layers, scenario.path, list(sets) if name_sets else [])
    return changed if changed.name == scenario.name else changed.renamed(scenario.name)
