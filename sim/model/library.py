"""The scenario library: finding a scenario by file or by name, from any folder.

The 2022 baseline, the calibrated scenario and the library of planning questions ship with the
package (``scenarios/`` and ``calibration/`` of the repository are installed as
``sim/scenarios`` and ``sim/calibration``, so their relative ``extends`` paths still hold), so
``bordersim run`` works in any folder, not only in a checkout. A scenario given as an existing
file is that file; a plain name (``baseline_2022``, ``faster_procedures.toml``, or a scenario's
``name`` such as ``baseline_2022_calibrated``) is looked up in ``./scenarios/`` and
``./calibration/`` first, then in the installed library, then in the checkout bordersim runs from.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..base.errors import ScenarioError

BASELINE = "baseline_2022.toml"
# what a command with no scenario runs: the baseline calibrated to 2022 (its ensemble of fitted
# inputs); the baseline alone has the wide prior ranges, whose queues no planner should read as 2022's
DEFAULT = "fitted_2022.toml"
TARGETS = "targets_2022.toml"  # the 2022 calibration's observed figures, which calibrate uses by default
PACKAGE = Path(__file__).resolve().parent.parent  # sim/: the library is installed as sim/scenarios, sim/calibration
FOLDERS = ("scenarios", "calibration")


def folders() -> list[Path]:
    """Where scenarios are looked up, in order: this folder's scenarios/ and calibration/, the
    installed library's, the checkout's (an editable install runs from one)."""
    out = []
    for base in (Path.cwd(), PACKAGE, PACKAGE.parent):
        out += [base / f for f in FOLDERS if (base / f).is_dir()]
    return list(dict.fromkeys(out))


def default_scenario() -> Path:
    """The calibrated 2022 baseline: ./calibration/ first, then the installed library, then the checkout's."""
    return find(DEFAULT)


def default_targets() -> Path:
    """The 2022 targets file, looked up as a scenario is (./calibration/, the installed
    library, the checkout's), so that `bordersim calibrate --check` runs from any folder."""
    return find(TARGETS)


def find(arg: str | Path) -> Path:
    """The scenario file ``arg`` names: an existing file as it is; else a file of that name (with
    or without .toml) or a scenario with that ``name`` in the library's folders. A name found
    nowhere is a ScenarioError listing what the library holds."""
    path = Path(arg)
    if path.exists() or len(path.parts) != 1:
        return path
    for folder in folders():
        for candidate in (folder / path.name, folder / f"{path.name}.toml"):
            if candidate.is_file():
                return candidate
    for folder in folders():
        for candidate in sorted(folder.glob("*.toml")):
            if _name_of(candidate) == path.name:
                return candidate
    names = sorted({p.stem for folder in folders() for p in folder.glob("*.toml") if _name_of(p) is not None})
    raise ScenarioError(str(arg), None, "file not found, and no scenario of that name in scenarios/ or the library "
                                        f"installed with bordersim ({', '.join(names) or 'none'})")


def _name_of(path: Path) -> str | None:
    """A scenario file's ``name`` (None for a file that is not a scenario, such as a targets file)."""
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except (OSError, ValueError):
        return None
    name = raw.get("name")
    return name if isinstance(name, str) and "targets" not in raw else None
