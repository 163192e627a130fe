"""The page and the folder it is made from: a page is sections of blocks (text, notes, facts,
tables, figures) that the Jinja2 template (sim/outputs/templates/report.html.j2) lays out the same
way for every kind of folder; a folder is read only inside itself, and its kind is the one its
``.bordersim`` marker names. build_report turns a folder into its signed HTML page."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ...base.errors import BordersimError, shorten
from ...base.outdir import MARKER, read_marker, sign_html, version


class ReportError(BordersimError):
    """A folder that cannot be reported on."""


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
    marker = read_marker(path)
    if marker is not None and isinstance(marker.get("kind"), str):
        return marker["kind"]
    if targets_files(path):
        return "calibration"
    raise ReportError(str(path), None, f"is not a bordersim results folder (no {MARKER} marker, no targets file)")


def targets_files(path: Path) -> list[Path]:
    """A calibration folder's targets files (in it, not links)."""
    return sorted(p for p in path.glob("targets*.toml") if inside(path, p.name) is not None)


def build_report(folder: str | Path, draw_missing: bool = True) -> str:
    """The HTML page for a results folder (see sim.outputs.report's docstring)."""
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
