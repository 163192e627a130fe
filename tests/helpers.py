"""Builders for small scenarios used across the tests."""

from __future__ import annotations

import numpy as np

from sim.engines.des import simulate
from sim.engines.draws import replication_inputs
from sim.statistics.metrics import replication_metrics
from sim.base.rng import replication_seed


def single_queue(per_hour: float, lanes: int, service: dict, days: int = 200, warmup_days: float = 20) -> dict:
    """One gate, one direction, one class, one stage, open around the clock: an M/G/c queue."""
    return {
        "name": "single_queue",
        "horizon": {"start": "2022-01-01", "end": _date_after("2022-01-01", days - 1), "warmup_days": warmup_days},
        "classes": {"truck": {"priority": 0}},
        "gates": {
            "g": {
                "name": "test gate",
                "classes": ["truck"],
                "hours": {"default": ["00:00-24:00"]},
                "exit": {
                    "demand": {"truck": per_hour * 24.0},
                    "stages": [{"name": "clearance", "lanes": lanes, "service_min": service}],
                },
            }
        },
    }


def deadlines_in_service(stage_b: dict | None = None) -> dict:
    """Patience shorter than the services (green 43 min, trucks 72 min), two lane stages and the
    far side's daily limit after them: many deadlines pass while a vehicle is in service, and
    the next step then can or cannot start at the instant it is reached. Deterministic services
    at the first stage make simultaneous events."""
    return {
        "name": "deadlines_in_service",
        "horizon": {"start": "2022-03-01", "end": "2022-03-10"},
        "classes": {"green": {"priority": 0, "patience_days": 0.03},
                    "truck": {"priority": 1, "patience_days": 0.05, "patience_cv": 0.3}},
        "gates": {"g": {
            "name": "g", "classes": ["green", "truck"], "hours": {"default": ["06:00-12:00", "13:00-18:00"]},
            "exit": {
                "demand": {"green": 30.0, "truck": 60.0},
                "acceptance_limit": 30,
                "stages": [
                    {"name": "a", "lanes": 2, "service_min": {"dist": "deterministic", "value": 20.0}},
                    {"name": "b", "lanes": 1, "service_min": stage_b or {"dist": "triangular", "low": 2.0,
                                                                         "mode": 5.0, "high": 20.0}},
                ],
            },
        }},
    }


def assert_same_times(a, b) -> None:
    """Two engines' records of one flow give every vehicle the same start and end at every
    stage and the same time of giving up (NaN alike), to float rounding."""
    where = f"{a.inputs.gate}/{a.inputs.direction}"
    for name in ("start", "end", "left"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, f"{where} {name}: shapes {x.shape} and {y.shape}"
        assert np.array_equal(np.isnan(x), np.isnan(y)), f"{where} {name}: not the same vehicles"
        ok = ~np.isnan(x)
        np.testing.assert_allclose(x[ok], y[ok], rtol=0, atol=1e-7, err_msg=f"{where} {name}")


def _date_after(start: str, days: int) -> str:
    import datetime as dt

    return (dt.date.fromisoformat(start) + dt.timedelta(days=days)).isoformat()


def run_one(scenario, seed: int = 1, index: int = 0):
    """One replication: its inputs, per-vehicle records and metrics."""
    rep = replication_inputs(scenario, replication_seed(seed, index))
    records = simulate(rep)
    return rep, records, replication_metrics(rep, records)


def metric(result, gate: str, direction: str, name: str, stage: str = "", vclass: str = "") -> float:
    for g, d, m, s, c, v in result.rows:
        if (g, d, m, s, c) == (gate, direction, name, stage, vclass):
            return v
    raise KeyError((gate, direction, name, stage, vclass))


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def html_tables(html: str, section: str | None = None) -> list[dict]:
    """The tables of a report page (of its section with that id): each a dict of its caption,
    its header cells and its rows of cells, as text (runs of white space, no-break spaces
    included, as one space)."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.cell, self.row, self.where, self.depth = [], None, None, None, 0

        def handle_starttag(self, tag, attrs):
            if tag == "section":
                self.depth += 1
                if dict(attrs).get("id") == section:
                    self.where = self.depth
            inside = section is None or self.where is not None
            if tag == "table" and inside:
                self.tables.append({"caption": "", "header": [], "rows": []})
            elif tag == "tr" and inside and self.tables:
                self.row = []
            elif tag in ("td", "th", "caption") and inside and self.tables:
                self.cell = []

        def handle_endtag(self, tag):
            if tag == "section":
                if self.where == self.depth:
                    self.where = None
                self.depth -= 1
            if self.cell is not None and tag in ("td", "th", "caption"):
                text = " ".join("".join(self.cell).split())
                if tag == "caption":
                    self.tables[-1]["caption"] = text
                else:
                    self.row.append((tag, text))
                self.cell = None
            elif tag == "tr" and self.row is not None:
                cells = [t for _, t in self.row]
                if all(kind == "th" for kind, _ in self.row):
                    self.tables[-1]["header"] = cells
                else:
                    self.tables[-1]["rows"].append(cells)
                self.row = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data)

    parser = Tables()
    parser.feed(html)
    return parser.tables


def comparison_figures(cmp, folder, monkeypatch) -> dict:
    """The figures write_comparison draws for a comparison (into ``folder``), by file name, kept
    as matplotlib draws them (to read their lines and axes)."""
    from pathlib import Path

    from matplotlib.figure import Figure

    from sim import write_comparison

    drawn = {}
    save = Figure.savefig

    def keep(fig, path, *args, **kwargs):
        drawn[Path(path).name] = fig
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    write_comparison(cmp, folder, report=False)
    return drawn


# the library's scenarios whose headers say to run them with --allow-overload: the expressway's
# growth, with the limits as they were, loads Bắc Luân II and Km3+4 to about 1.0 over the horizon,
# and a Móng Cái crossing shut for weeks sends its trucks to the others, over their nominal capacity
OVERLOADED = ("km3_4_storm_season",)
