"""The raw scenario tree: stable names for its inputs, uncertain ranges, and substitution.

A scenario is read into a tree of tables. Lists whose items have a name of their own (a
flow's stages by ``name``; demand steps, random closures and adjustments by ``id``) are kept
as ``Keyed`` tables, by that name, so that every input has a stable name, its path of keys:
``gates.km3_4.exit.stages.customs.service_min.mean`` or ``demand_steps.exit_level.factor``.
Inserting a stage or a step then moves no other input's name, random stream or ensemble
column, and a child scenario changes a stage by naming it. The tree goes back to lists only
when it is validated (``model_form``).

Any number may be an uncertain range, ``{uniform = [lo, hi]}`` or ``{triangular = [lo, mode,
hi]}``; each replication samples it from its own stream, ``param/<name>``.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..base.errors import ScenarioError, shorten

RANGE_KINDS = ("uniform", "triangular")
ACCEPTANCE = "acceptance"  # the far side's acceptance step in the outputs: no stage may take the name
# where a keyed list sits (a path of keys, '*' for any key) and the key its items are named by
KEYED_LISTS = {
    ("gates", "*", "exit", "stages"): "name",
    ("gates", "*", "entry", "stages"): "name",
    ("gates", "*", "random_closures"): "id",
    ("demand_steps",): "id",
    ("adjust",): "id",
}
MERGE_KEYS = ("remove", "before")  # what a child may say of a keyed item besides its contents
_ITEM_NAME = re.compile(r"[A-Za-z0-9_-]+")


class Sampled(float):
    """A value drawn from a range (or a range's nominal value), as opposed to one typed in a file."""


class Keyed(dict):
    """A list of named items, as a table by their names (in their order)."""


def keyed_at(path: tuple) -> str | None:
    """The key the items of a list at this path are named by, if it is a keyed list."""
    for pattern, key in KEYED_LISTS.items():
        if len(pattern) == len(path) and all(p == "*" or p == q for p, q in zip(pattern, path)):
            return key
    return None


def check_item_name(name: Any, file: str, where: str, key: str) -> str:
    """A stage's name or an item's id: it becomes part of input names, stream names and labels."""
    if not (isinstance(name, str) and _ITEM_NAME.fullmatch(name) and len(name) <= 64):
        raise ScenarioError(file, where, f"{key} {shorten(repr(name), 80)} is not a plain name: letters, digits, "
                                         "'_' and '-', 1 to 64 characters")
    if key == "name" and name == ACCEPTANCE:
        raise ScenarioError(file, where, f"'{ACCEPTANCE}' is reserved for the far side's acceptance step (set it "
                                         "with acceptance_limit); give the stage another name")
    return name


def to_keyed(node: Any, file: str, path: tuple = ()) -> Any:
    """A tree read from a file with its keyed lists as Keyed tables (their items keep their key
    too, out of the way: it is put back by model_form)."""
    if isinstance(node, Keyed):  # keyed already (a merged tree)
        return Keyed((name, to_keyed(item, file, path + (name,))) for name, item in node.items())
    key = keyed_at(path) if isinstance(node, list) else None
    if key is not None:
        out = Keyed()
        for i, item in enumerate(node):
            where = path_str(path + (i,))
            if not isinstance(item, dict):
                raise ScenarioError(file, where, f"each item needs a table with a '{key}'")
            if key not in item:
                raise ScenarioError(file, f"{where}.{key}", "required field is missing (items of this list are "
                                                            f"named by their '{key}')")
            name = check_item_name(item[key], file, f"{where}.{key}", key)
            if name in out:
                raise ScenarioError(file, path_str(path), f"two items have the {key} '{name}'; each needs its own")
            out[name] = to_keyed({k: v for k, v in item.items() if k != key}, file, path + (name,))
        return out
    if isinstance(node, dict):
        return {k: to_keyed(v, file, path + (k,)) for k, v in node.items()}
    if isinstance(node, list):
        return [to_keyed(v, file, path + (i,)) for i, v in enumerate(node)]
    return node


def model_form(node: Any, path: tuple = ()) -> Any:
    """The tree as the schema reads it: keyed tables back to lists, each item with its key."""
    if isinstance(node, Keyed):
        key = keyed_at(path) or "name"
        return [{key: name, **model_form(item, path + (name,))} for name, item in node.items()]
    if isinstance(node, dict):
        return {k: model_form(v, path + (k,)) for k, v in node.items()}
    if isinstance(node, list):
        return [model_form(v, path + (i,)) for i, v in enumerate(node)]
    return node


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

    def scipy_form(self) -> tuple[str, tuple[float, ...]]:
        """scipy.stats' name of the distribution and its shape parameters, on [0, 1]: what
        ``distribution`` scales to the range, and what a fit's prior (pyabc.RV) takes."""
        if self.kind == "uniform":
            return "uniform", ()
        lo, mode, hi = self.values
        return "triang", ((mode - lo) / (hi - lo) if hi > lo else 0.5,)

    def distribution(self):
        """The input's distribution (a frozen scipy.stats one), or None for a range of one value."""
        if not self.high() > self.low():
            return None
        from scipy import stats

        name, shape = self.scipy_form()
        return getattr(stats, name)(*shape, loc=self.low(), scale=self.high() - self.low())

    def ppf(self, u) -> np.ndarray:
        """The values at the points u of [0, 1] (the inverse of the distribution function): how
        a design's unit points become values of the input."""
        dist = self.distribution()
        u = np.asarray(u, dtype=float)
        return np.full(u.shape, self.low()) if dist is None else dist.ppf(u)

    def central_width(self, share: float = 0.9) -> float:
        """The width of the range's central ``share`` (its 5-95 % quantiles for 0.9)."""
        lo, hi = self.ppf([(1 - share) / 2, (1 + share) / 2])
        return float(hi - lo)

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
    """A path of keys as a name: keys joined by '.', list positions as [i]."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def is_range(node: Any) -> bool:
    return (
        isinstance(node, dict)
        and not isinstance(node, Keyed)
        and sum(k in node for k in RANGE_KINDS) == 1
        and set(node) <= set(RANGE_KINDS) | {"source", "note"}
    )


def parse_range(node: dict, path: tuple, file: str) -> Range:
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


# --set's operators: "=" gives a value; the others change the value the scenario has (a number,
# or both ends of a range; a fitted ensemble's column row by row), as a planner's changes are
SET_OPERATORS = ("+=", "-=", "*=", "=")


@dataclass(frozen=True)
class Assignment:
    """One ``--set``: an input's name, its operator (SET_OPERATORS) and the value's text."""

    where: str
    op: str
    value_text: str

    @property
    def keys(self) -> tuple:
        return tuple(self.where.split("."))

    @property
    def relative(self) -> bool:
        return self.op != "="


def parse_assignment(text: str) -> Assignment | None:
    """``PATH=VALUE``, ``PATH+=N``, ``PATH-=N`` or ``PATH*=F`` split at its first ``=`` (a value
    may hold one: ``{uniform = [1, 2]}``); None if there is no ``=`` or no path."""
    head, sep, value = text.partition("=")
    op = "="
    if head[-1:] in ("+", "-", "*"):
        op, head = head[-1] + "=", head[:-1]
    where = head.strip()
    if not sep or not where:
        return None
    return Assignment(where, op, value.strip())


def changed_by(current: Any, op: str, operand: float) -> Any:
    """A number, or a range's ends, after ``op`` (+=, -=, *=) with ``operand``; None if current
    is neither (a distribution's table, a text, a list: nothing a relative change can mean).
    Whole numbers stay whole where the result is (3 lanes += 1 is 4, not 4.0)."""
    def apply(x):
        y = x + operand if op == "+=" else x - operand if op == "-=" else x * operand
        return int(y) if isinstance(x, int) and float(y).is_integer() and abs(y) < 2**53 else float(y)

    if isinstance(current, (int, float)) and not isinstance(current, bool):
        return apply(current)
    if is_range(current):
        kind = next(k for k in RANGE_KINDS if k in current)
        ends = current[kind]
        if isinstance(ends, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in ends):
            return {**current, kind: [apply(v) for v in ends]}
    return None


def draw_inputs(ranges: "tuple[Range, ...]", rows: "list[dict]", rng_for, fixed=None, file: str = "") -> dict:
    """The value of each uncertain input (by name) in one replication: ``fixed`` values as
    given, then one whole row of the ensemble (``rows``, if any: picked from the stream
    ``param/ensemble``), the other ranges drawn from their streams (``param/<name>``)."""
    fixed = dict(fixed or {})
    names = [r.name() for r in ranges]
    unknown = [k for k in fixed if k not in names]
    if unknown:
        raise ScenarioError(file, unknown[0], "is not an uncertain input of the scenario "
                            f"(inputs: {shorten(', '.join(names) or 'none', 300)})")
    row = rows[int(rng_for("param/ensemble").integers(len(rows)))] if rows else {}
    out = {}
    for r, name in zip(ranges, names):
        if name in fixed:
            out[name] = float(fixed[name])
        elif name in row:
            out[name] = float(row[name])
        else:
            out[name] = r.sample(rng_for(f"param/{name}"))
    return out


def value_at(raw: Any, keys: tuple) -> Any:
    """The node of a scenario tree at ``keys`` (an input's path); None where there is none."""
    node = raw
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def leaves(node: Any, path: tuple = ()):
    """(path, node) for every range and every plain value of a raw scenario."""
    if isinstance(node, dict) and not is_range(node):
        for k, v in node.items():
            yield from leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, path + (i,))
    else:
        yield path, node


def find_ranges(node: Any, file: str) -> list[Range]:
    return [parse_range(leaf, p, file) for p, leaf in leaves(node) if is_range(leaf)]


def substitute(raw: dict, values: dict[tuple, float]) -> dict:
    """raw with the values put at their paths, as sampled numbers (placed)."""
    return placed(raw, {path: Sampled(value) for path, value in values.items()})


def placed(raw: dict, leaves_at: dict[tuple, Any]) -> dict:
    """raw with each leaf put at its path; only the containers on those paths are copied (the
    rest is shared with raw, which is never modified)."""
    data = dict(raw)
    copied: dict[tuple, Any] = {(): data}
    for path, leaf in leaves_at.items():
        node = data
        for depth in range(len(path) - 1):
            key = path[:depth + 1]
            child = copied.get(key)
            if child is None:
                child = copy.copy(node[path[depth]])
                node[path[depth]] = child
                copied[key] = child
            node = child
        node[path[-1]] = leaf
    return data
