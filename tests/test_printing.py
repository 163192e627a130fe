"""What the command line prints and draws for a planner: tables that fit a terminal, shares as
percentages, differences that show their digits, plots whose labels can be read."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.cli import main
from sim.outputs.text import summary_table
from sim.experiments.compare import COMPARE_COLUMNS
from sim.outputs.text import headline_table

DATA = Path(__file__).parent / "data"
SMALL = DATA / "small_2022.toml"
WIDTH = 100


def _table_lines(text: str) -> list[str]:
    """The printed lines but those naming the output folder (a path of any length)."""
    return [ln for ln in text.splitlines() if not ln.startswith(("written to", "replaced earlier"))]


def test_the_printed_run_and_compare_tables_fit_100_columns(tmp_path, capsys):
    """The run's table (185 columns wide with the calibrated baseline, a column per metric with
    its interval) and the comparison's fit a terminal of 100 columns; each shows per gate the
    figures a planner asks first and says where the rest is."""
    assert main(["run", str(SMALL), "--reps", "3", "--out", str(tmp_path / "r"), "--no-plots", "--no-report"]) == 0
    text = capsys.readouterr().out
    lines = _table_lines(text)
    assert max(map(len, lines)) <= WIDTH, max(lines, key=len)
    for head in ("crossings", "mean wait h", "mean time in system h", "mean number waiting", "1000 truck-hours waiting"):
        assert sum(ln.strip().startswith(head) for ln in lines) == 6, head  # five gates and all gates
    assert "summary.csv" in text and "monthly.csv" in text
    alt = tmp_path / "alt.toml"
    alt.write_text(f'extends = "{SMALL}"\nname = "higher"\n\n[[adjust]]\nid = "bac_luan_2_limit_winter"\n'
                   'set = {uniform = [400, 500]}\n', encoding="utf-8")
    assert main(["compare", str(SMALL), str(alt), "--reps", "3", "--out", str(tmp_path / "c"), "--no-plots",
                 "--no-report"]) == 0
    text = capsys.readouterr().out
    lines = _table_lines(text)
    assert max(map(len, lines)) <= WIDTH, max(lines, key=len)
    for head in ("mean wait h", "mean time in system h", "95 % crossed within h", "mean number waiting",
                 "truck-hours waiting"):
        rows = [ln for ln in lines if ln.strip().startswith(head)]
        # Bắc Luân II's limit changes Bắc Luân II and all gates; the others are named as unchanged
        assert len(rows) == 2 and all(re.search(r"\[[-+~0-9.,]+, [-+~0-9.,]+\]", r) for r in rows), head
    assert " ".join(text.split("unchanged: ")[1].split("\n  ")).splitlines()[0] == (
        "mong_cai, km3_4, hoanh_mo, bac_phong_sinh (its own figures the same, replication by replication)")
    assert "compare.csv" in text and "compare_monthly.csv" in text


def _compare_rows(rows: list[tuple[str, str, float, float, float, float, float]]) -> SimpleNamespace:
    """A comparison with only a table: (gate, metric, base, alt, diff, low, high) per row."""
    table = pd.DataFrame([{"scenario": "alt", "gate": g, "direction": "all", "metric": m, "stage": "", "class": "",
                           "base_mean": b, "alt_mean": a, "diff_mean": d, "diff_ci_low": lo, "diff_ci_high": hi,
                           "rel_diff": d / b if b else np.nan, "excludes_zero": lo > 0 or hi < 0, "n": 200}
                          for g, m, b, a, d, lo, hi in rows], columns=COMPARE_COLUMNS)
    return SimpleNamespace(table=table)


def test_a_large_comparison_fits_100_columns():
    """The widest figures of the calibrated baseline's comparisons (millions of truck-hours,
    100,000 crossings) still fit."""
    cmp = _compare_rows([("bac_phong_sinh", m, v, v * 0.6, -v * 0.4, -v * 0.55, -v * 0.25) for m, v in (
        ("wait_mean_h", 148.63), ("time_in_system_mean_h", 148.9), ("time_in_system_p95_h", 2502.9),
        ("queue_mean", 1559.2), ("waiting_truck_hours", 14_482_801.0), ("crossings", 196_715.0),
        ("gave_up", 13_668.0), ("held_by_limit_share", 0.999))])
    lines = headline_table(cmp, "alt").splitlines()
    assert len(lines) == 10 and max(map(len, lines)) <= WIDTH, max(lines, key=len)


def test_shares_print_as_percentages_in_run_and_compare():
    """The share held by the limit: 9.0 % in both printed tables (compare printed 0.090), its
    difference in percentage points."""
    cmp = _compare_rows([("km3_4", "held_by_limit_share", 0.0904, 0.0402, -0.0502, -0.0611, -0.0393)])
    line = headline_table(cmp, "alt").splitlines()[2]
    assert "9.0 %" in line and "4.0 %" in line and "-5.0 pp [-6.1, -3.9] *" in line, line
    assert "0.090" not in line
    summary = pd.DataFrame([{"gate": "km3_4", "direction": "exit", "metric": "held_by_limit_share", "stage": "",
                             "class": "", "mean": 0.0904, "ci_low": 0.07, "ci_high": 0.11}])
    row = next(ln for ln in summary_table(summary).splitlines() if "held by the daily limit" in ln)
    assert row.split("held by the daily limit")[1].strip() == "9.0 % [7.0 %, 11.0 %]"


def test_a_difference_that_rounds_to_zero_shows_its_digits_or_no_star():
    """A difference whose interval excludes 0 printed "+0.0 [+0.0, +0.0] *": it now shows the
    digits that make it nonzero, or (beyond those) no star, as the interval then reads 0."""
    cmp = _compare_rows([("g", "wait_mean_h", 10.0, 10.00004, 0.00004, 0.00001, 0.00007),
                         ("g", "crossings", 100.0, 100.3, 0.3, 0.1, 0.5),
                         ("g", "time_in_system_mean_h", 10.0, 10.0, 1e-12, 1e-13, 2e-12)])
    lines = headline_table(cmp, "alt").splitlines()
    assert lines[2].endswith("+0.00004 [+0.00001, +0.00007] *"), lines[2]  # mean wait
    assert lines[3].endswith("~0 [~0, ~0]"), lines[3]  # mean time in system
    assert lines[4].endswith("+0.3 [+0.1, +0.5] *"), lines[4]  # crossings


NUMBER = re.compile(r"[-+]?[0-9][0-9,]*(?:\.[0-9]+)?|~0")


def _value(text: str) -> float:
    return 0.0 if text == "~0" else float(text.replace(",", ""))


@given(mean=st.floats(-1e4, 1e4), half=st.floats(0, 1e4), shift=st.floats(-1, 1), digits=st.integers(0, 3),
       share=st.booleans())
def test_a_printed_difference_is_starred_exactly_when_its_printed_interval_excludes_zero(mean, half, shift, digits,
                                                                                         share):
    from sim.outputs.formats import EXTRA_DIGITS, difference

    scale = 1e-2 if share else 1.0
    m = mean * 10.0 ** (-abs(shift) * 8) * scale  # differences from tiny to large
    lo, hi = m - half * abs(m) * 0.9 - abs(shift) * scale, m + half * abs(m) * 0.9
    text = difference(m, lo, hi, digits, share=share)
    numbers = NUMBER.findall(text.replace(" pp", ""))
    assert len(numbers) == 3, text
    p_mean, p_lo, p_hi = map(_value, numbers)
    starred = text.endswith(" *")
    assert starred == (p_lo > 0 or p_hi < 0), text
    assert not re.search(r"[-+]0(?:\.0+)?(?![0-9.])", text), text  # nothing nonzero printed as a signed 0
    factor = 100 if share else 1
    if (lo > 0 or hi < 0) and min(abs(lo), abs(hi)) * factor >= 10.0 ** -(digits + EXTRA_DIGITS):
        assert starred, text


def test_a_difference_prints_its_bounds_apart_from_its_mean():
    """The report printed the time in system's -0.32 [-0.35, -0.28] as "-0.3 [-0.4, -0.3]" (the
    mean on its own bound), crossings per day "+0.03 [+0.03, +0.03] *", a monthly cell
    "-0.3 [-0.3, -0.3] *": a bound that differs from the mean prints apart from it."""
    from sim.outputs.formats import difference

    assert difference(-0.3212, -0.3534, -0.2801, 1) == "-0.32 [-0.35, -0.28] *"
    assert difference(0.0253, 0.0213, 0.0296, 2) == "+0.025 [+0.021, +0.030] *"
    assert difference(-0.30, -0.33, -0.27, 1) == "-0.30 [-0.33, -0.27] *"
    assert difference(-0.0014, -0.0025, -0.0002, 1, share=True) == "-0.14 pp [-0.25, -0.02] *"
    assert difference(0.0, 0.0, 0.0, 1) == "0 [0, 0]" and difference(10.0, 5.0, 15.0, 0) == "+10 [+5, +15] *"


@given(mean=st.floats(-1e4, 1e4), below=st.floats(0, 1e3), above=st.floats(0, 1e3), scale=st.integers(-6, 2),
       digits=st.integers(0, 3), share=st.booleans())
def test_a_bound_that_differs_from_the_mean_prints_apart_from_it(mean, below, above, scale, digits, share):
    from sim.outputs.formats import EXTRA_DIGITS, difference

    m, lo, hi = mean * 10.0 ** scale, (mean - below) * 10.0 ** scale, (mean + above) * 10.0 ** scale
    text = difference(m, lo, hi, digits, share=share)
    p_mean, p_lo, p_hi = map(_value, NUMBER.findall(text.replace(" pp", "")))
    step = 2 * 10.0 ** -(digits + EXTRA_DIGITS) / (100 if share else 1)  # apart at the most decimals shown
    if m - lo >= step:
        assert p_lo != p_mean, text
    if hi - m >= step:
        assert p_hi != p_mean, text


def test_no_plots_output_does_not_say_plots(tmp_path, capsys):
    """sweep --no-plots said 'written to DIR/ (sweep.parquet, sweep.csv, ..., plots)'."""
    args = ["sweep", str(DATA / "tiny.toml"), "--param", "gates.hoanh_mo.exit.stages.customs.lanes=1,2", "--reps", "2",
            "--workers", "1", "--no-report"]
    assert main(args + ["--no-plots", "--out", str(tmp_path / "a")]) == 0
    files = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("written to")).split(" (")[-1]
    assert "plots" not in files and "sweep.csv" in files
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    files = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("written to")).split(" (")[-1]
    assert files.endswith(", plots)")


def _hist(gates: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """A time-in-system table with each gate's vehicles spread evenly over its (low, high) hours."""
    from sim.statistics.metrics import TIS_BINS_H

    frames = []
    for g, (lo, hi) in gates.items():
        mid = np.sqrt(np.maximum(TIS_BINS_H[:-1], 1e-3) * TIS_BINS_H[1:])
        frames.append(pd.DataFrame({"gate": g, "bin_low_h": TIS_BINS_H[:-1], "bin_high_h": TIS_BINS_H[1:],
                                    "vehicles": ((mid >= lo) & (mid <= hi)).astype(float)}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("plot,table", [
    ("time_in_system", _hist({"a": (0.1, 24 * 365), "b": (0.5, 24 * 30)})),
    ("time_in_system", _hist({"a": (0.02, 24 * 365 * 3)})),
    ("compare_time_in_system", pd.concat([_hist({"a": (0.1, 24 * 365), "b": (0.3, 24 * 200)}).assign(scenario=s)
                                          for s in ("base", "alt")], ignore_index=True)),
])
def test_time_axis_labels_do_not_overlap(plot, table, tmp_path, monkeypatch):
    """time_in_system.png labelled '6 months' and '1 year' on top of each other."""
    from matplotlib.figure import Figure

    from sim.outputs import plots

    boxes = []
    save = Figure.savefig

    def keep(fig, path, *args, **kwargs):  # the tick labels where the saved figure has them
        out = save(fig, path, *args, **kwargs)
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            if ax.axison:
                boxes.append(sorted((lab.get_window_extent(renderer) for lab in ax.get_xticklabels()
                                     if lab.get_visible() and lab.get_text()), key=lambda b: b.x0))
        return out

    monkeypatch.setattr(Figure, "savefig", keep)
    getattr(plots, plot)(table, {}, tmp_path / "t.png")
    assert boxes
    for axis in boxes:
        assert len(axis) >= 3
        assert all(a.x1 <= b.x0 for a, b in zip(axis, axis[1:])), [(b.x0, b.x1) for b in axis]


def test_a_signed_figure_never_reads_as_a_signed_zero():
    """A difference of -0.2 crossings printed "-0", and one of +0.3 "+0", as if there were none."""
    from sim.outputs.formats import signed

    assert signed(-0.2, 0) == "-0.2" and signed(0.3, 0) == "+0.3" and signed(0.04, 1) == "+0.04"
    assert signed(0.0, 0) == "0" and signed(-1e-9, 0) == "~0" and signed(float("nan"), 1) == "-"
    assert signed(12.34, 1) == "+12.3" and signed(-1234.0, 0) == "-1,234"


def test_timings_say_where_the_cpu_of_a_replication_went(tmp_path, capsys):
    """`run --timings` prints each phase's mean CPU per replication and their sum, the plan's
    compiling and the writing; the phases add up to the total and the engine and the
    statistics took some."""
    import re

    from sim.experiments.experiment import PHASES

    out = tmp_path / "r"
    assert main(["run", str(Path(__file__).parent / "data" / "small_2022.toml"), "--reps", "3", "--workers", "1",
                 "--timings", "--quiet",
                 "--no-plots", "--no-report", "--out", str(out)]) == 0
    text = " ".join(capsys.readouterr().out.split())
    found = dict(re.findall(r"(\w+) (\d+\.\d+)(?= [+=])", text))
    assert list(found) == list(PHASES), text
    total = float(re.search(r"= (\d+\.\d+);", text).group(1))
    assert abs(sum(map(float, found.values())) - total) <= 0.01 * len(PHASES), text
    assert float(found["engine"]) > 0 and float(found["statistics"]) > 0, text
    assert re.search(r"the plan compiled once in \d+ ms", text) and re.search(r"writing \d+\.\d+ s", text), text


def test_a_relative_difference_keeps_two_significant_digits_under_ten_per_cent():
    """The comparison page's relative differences: -0.52 % is not "-1 %" (twice its size), 0.004 %
    does not read as 0, and 23.4 % reads in whole per cents."""
    from sim.outputs.report.compare import _relative

    assert [_relative(x).replace("\u00a0", " ").replace("\u2212", "-") for x in (-0.0052, 0.00004, 0.234, -0.031)] \
        == ["-0.52 %", "+0.004 %", "+23 %", "-3.1 %"]


@given(st.lists(st.sampled_from(["6.4 %", "+1.8 pp", "3.2 h", "→", "bac_luan_2", "[+1.4,", "+2.3]", "(x)"]),
                min_size=1, max_size=80))
def test_a_wrapped_line_never_cuts_a_number_from_its_unit(words):
    """The printed lines (sim.outputs.formats.wrapped) keep "51.7 %", "+1.8 pp" and "3.2 h"
    whole: no line starts with a unit, and the text reads the same once unwrapped."""
    from sim.outputs.formats import wrapped

    text = " ".join(words)
    lines = wrapped(text, 30).splitlines()
    assert not any(line.strip().split(" ")[0] in ("%", "pp", "h") for line in lines), lines
    assert " ".join(line.strip() for line in lines) == text
