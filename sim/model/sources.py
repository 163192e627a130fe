"""The source or assumption behind each input of a scenario file, for reports.

Scenario files give every number its source in a comment (``lanes = 2  # assumption: ...``), in
the comment lines above it or above its table, or in a ``source`` field; TOML parsers drop
comments, so this reads the file's lines. Each key line (and each table header) is found by its
path of keys, with keyed lists' items by their name (``gates.mong_cai.exit.stages.customs.lanes``,
as sim.model.ranges names inputs), and gets the comment at its end and the comment block just above
it. ``notes_for`` then gives an input its own comment, else its enclosing table's, and the
nearest ``source`` field at or above it.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .ranges import keyed_at

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_RULE = re.compile(r"-{4,}")  # a ruled line in a comment, '# ------ Móng Cái'
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*)\s*=")


@dataclass(frozen=True)
class Note:
    """What the file says next to a key: the comment after it and the comment lines just above."""

    line: int  # 1-based
    trailing: str
    above: str
    key: bool = False  # a 'key = value' line (not a table header): one input as the file writes it

    @property
    def text(self) -> str:
        return " ".join(t for t in (self.above, self.trailing) if t)


def _split_comment(line: str) -> tuple[str, str]:
    """A line's code and its comment (the text after a '#' outside quotes)."""
    quote, escaped = None, False
    for i, ch in enumerate(line):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#":
            return line[:i], _RULE.sub("", line[i + 1:]).strip()
    return line, ""


def _depth_change(code: str) -> int:
    """How many brackets and braces a line opens, less those it closes (outside quotes)."""
    depth, quote = 0, None
    for ch in code:
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
    return depth


def file_notes(text: str) -> dict[tuple, Note]:
    """Every key and table header of a TOML text, by its path, with its comments."""
    lines = text.splitlines()
    notes: dict[tuple, Note] = {}
    table: tuple = ()
    pending_item: tuple | None = None  # a keyed list's item whose name is still to come
    pending_note: Note | None = None
    counts: dict[tuple, int] = {}
    depth = 0
    above: list[str] = []
    for number, raw in enumerate(lines, start=1):
        code, comment = _split_comment(raw)
        stripped = code.strip()
        if depth > 0:  # inside a value that spans lines
            depth += _depth_change(code)
            continue
        if not stripped:
            above = above + [comment] if comment else []  # a comment line adds to the block; a blank ends it
            continue
        header = _HEADER.match(raw)
        if header and stripped.startswith("["):
            path = tuple(p.strip().strip('"') for p in header.group(2).split("."))
            note = Note(number, comment, " ".join(above))
            above = []
            if header.group(1) == "[[":
                if keyed_at(path):
                    table, pending_item, pending_note = path, path, note
                    continue
                index = counts.get(path, 0)
                counts[path] = index + 1
                path = path + (index,)
            table, pending_item = path, None
            notes[path] = note
            continue
        key = _KEY.match(code)
        if key:
            parts = tuple(p.strip() for p in key.group(1).split("."))
            if pending_item is not None and parts == (keyed_at(pending_item),):
                try:
                    name = tomllib.loads(stripped)[parts[0]]
                except (tomllib.TOMLDecodeError, ValueError):
                    name = None
                if isinstance(name, str):
                    table = pending_item + (name,)
                    # the item's note: the comments at its header, else those at its name
                    named = Note(number, comment, " ".join(above))
                    notes[table] = pending_note if pending_note is not None and pending_note.text else named
                pending_item, pending_note = None, None
            notes[table + parts] = Note(number, comment, " ".join(above), key=True)
            depth = _depth_change(code.split("=", 1)[1])
        above = []
    return notes


def read_notes(path: str | Path) -> dict[tuple, Note] | None:
    """file_notes of a file, or None if it cannot be read now (moved, removed)."""
    try:
        return file_notes(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def header_comment(path: str | Path) -> str:
    """The comment block a file opens with (what a scenario models and changes), as paragraphs."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""
    out = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        out.append(line[1:].strip())
    return "\n".join(out).strip()


def notes_for(path: tuple, notes: dict[tuple, Note], raw: dict) -> tuple[str, str]:
    """(comment, source) of an input at ``path`` (keys, keyed items by name) of a file's raw tree:
    its own comment, else the nearest enclosing table's (marked as the table's), and the
    nearest ``source`` field at or above it (a range's own ``source`` first)."""
    comment = ""
    for n in range(len(path), 0, -1):
        note = notes.get(path[:n])
        if note is not None and note.text:
            comment = note.text if n == len(path) else f"({'.'.join(map(str, path[:n]))}) {note.text}"
            break
    source = ""
    for n in range(len(path), -1, -1):
        node = raw
        for key in path[:n]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get("source"), str):
            own = n >= len(path) - 1  # the input's own table (or range) says it
            source = node["source"] if own else f"({'.'.join(map(str, path[:n])) or 'file'}) {node['source']}"
            break
    return comment, source
