"""A results folder that the same command, run again, resumes: a sweep's (sim.outputs.sweep) and an
optimisation's (sim.outputs.optimise). It holds the bordersim marker, a JSON file naming the
command that made it, and a folder of the pieces done so far; another command's folder, or one
bordersim did not write, is refused with one line."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import OutputError, shorten
from ..base.outdir import atomic_dir, check_target, holding, read_marker


@dataclass(frozen=True)
class Resumable:
    """One kind of resumable folder: its marker's kind, what a user calls it, its identity file and
    the folder of its pieces; ``words``: each key of its command as a user names it; ``shows``:
    whether a differing key's two values are worth printing (not a hash)."""

    kind: str  # the marker's kind: "sweep", "optimise"
    noun: str  # "sweep", "optimisation"
    article: str  # "a", "an"
    spec_file: str  # sweep.json, optimise.json: the command and how the folder is laid out
    pieces: str  # chunks, study: what is done so far
    words: dict[str, str]
    shows: Callable[[str], bool]

    def read_spec(self, out: Path) -> dict:
        """The folder's identity file; one that cannot be read is one OutputError."""
        try:
            return json.loads((out / self.spec_file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise OutputError(str(out), self.spec_file, f"cannot be read ({shorten(exc, 120)}); this folder's "
                                                        f"{self.noun} cannot be resumed: choose another --out") from None

    def same_command(self, out: Path, had: dict, now: dict) -> None:
        """Refuse to resume a folder written by another command: one line naming the first difference."""
        for key in now:
            if had.get(key) != now[key]:
                shown = f" (it was {had.get(key)}, now {now[key]})" if self.shows(key) else ""
                raise OutputError(str(out), None, f"holds {self.article} {self.noun} of another command: "
                                                  f"{self.words.get(key, key)} differs{shown}; run the same command "
                                                  "to resume it, or choose another --out")

    @contextlib.contextmanager
    def held(self, out: Path, command: dict, spec: Callable[[], dict]) -> Iterator[dict]:
        """The folder, held for the block (sim.base.outdir.holding: two runs never write one folder,
        and no other command replaces it meanwhile): made whole with its marker, its identity
        file (``spec()``, with ``command`` in it) and its pieces' folder if absent or empty
        (sim.base.outdir.atomic_dir), or reopened to resume; refused if it holds anything but
        this kind's folder of this very command. Yields the identity file as read once held."""
        marker = read_marker(out) if os.path.isdir(out) and not os.path.islink(out) else None
        if marker is not None:
            kind = marker.get("kind")
            if kind != self.kind:
                raise OutputError(str(out), None, f"holds a bordersim {kind or 'output'}, not {self.article} "
                                                  f"{self.noun}; choose another --out")
            self.same_command(out, self.read_spec(out).get("command", {}), command)
        else:
            check_target(out, self.kind)  # absent or empty: created below; anything else refused
            with atomic_dir(out, self.kind) as staged:
                (staged.dir / self.spec_file).write_text(json.dumps(spec(), indent=2, ensure_ascii=False) + "\n",
                                                         encoding="utf-8")
                (staged.dir / self.pieces).mkdir()
        with holding(out, elsewhere=True):
            found = self.read_spec(out)  # the folder held: a run started at the same instant may have made it
            self.same_command(out, found.get("command", {}), command)
            (out / self.pieces).mkdir(exist_ok=True)
            yield found
