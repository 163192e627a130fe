"""A planner's what-if, as the command line prints it and the report shows it: the calibrated
baseline against itself with Bắc Luân II's customs a lane more and 20 % faster each way (four
relative --set lines, two of them on inputs the fitted ensemble supplies). The page opens with
what the alternative changes and where it shows, names the gates nothing changed at, says where
the saved wait went, and prints every figure as the command line does."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import compare, load, write_comparison
from sim.outputs.text import headline_table

from .helpers import comparison_figures, html_tables

ROOT = Path(__file__).resolve().parent.parent
FITTED = ROOT / "calibration" / "fitted_2022.toml"
WHAT_IF = ["gates.bac_luan_2.exit.stages.customs.lanes+=1", "gates.bac_luan_2.entry.stages.customs.lanes+=1",
           "gates.bac_luan_2.exit.stages.customs.service_min.mean*=0.8",
           "gates.bac_luan_2.entry.stages.customs.service_min.mean*=0.8"]
ALT = "baseline_2022_calibrated_set"
BAC_LUAN_2 = "Bắc Luân II bridge (goods)"
UNTOUCHED = ["Móng Cái international gate (Bắc Luân I bridge)", "Km3+4 Hải Yên pontoon crossing", "Hoành Mô (Bình Liêu)",
             "Bắc Phong Sinh (Hải Hà)"]


@pytest.fixture(scope="module")
def what_if(tmp_path_factory):
    """The comparison, its folder (with report.html) and the page's text."""
    base = load(FITTED)
    cmp = compare(base, [base], reps=8, workers=1, progress=False, sets=WHAT_IF)
    out = tmp_path_factory.mktemp("what_if") / "compare"
    write_comparison(cmp, out)
    return cmp, out, (out / "report.html").read_text(encoding="utf-8")


def _text(html: str) -> str:
    """A fragment of a page as a reader reads it: tags out, runs of white space as one space."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _findings(html: str) -> list[str]:
    """The findings' sentences (the list items of the findings section), as text."""
    section = html[html.index('<section id="findings">'):]
    section = section[:section.index("</section>")]
    return [_text(item) for item in re.findall(r"<li>(.*?)</li>", section, re.S)]


def _row(table: pd.DataFrame, gate: str, direction: str, metric: str, stage: str = "") -> pd.Series:
    sel = table[(table.scenario == ALT) & (table.gate == gate) & (table.direction == direction)
                & (table.metric == metric) & (table.stage == stage) & (table["class"] == "")]
    return sel.iloc[0]


def test_the_page_opens_with_what_the_alternative_changes_and_where_it_shows(what_if):
    """The title said "…_set against …", the subtitle listed the fitted scenario's calibration
    targets and the first finding spoke of all gates only: now the subtitle and the first finding
    give every --set line, and the first finding names the gate where the change shows clearly."""
    cmp, _out, html = what_if
    subtitle = " ".join(_text(p) for p in re.findall(r'<p class="subtitle">(.*?)</p>', html, re.S))
    assert all(line in subtitle for line in WHAT_IF), subtitle
    assert "crossings_total" not in subtitle  # the calibration's targets say nothing of the change
    first = _findings(html)[0]
    assert first.startswith(f"{ALT} changes: ") and all(line in first for line in WHAT_IF), first
    assert f"it shows clearly at {BAC_LUAN_2}: " in first, first
    # metadata.json keeps the lines: the alternative describes itself by them
    assert cmp.scenarios[1].nominal.description.startswith("baseline_2022_calibrated with --set ")


def test_gates_where_nothing_changed_are_named_in_one_line_not_as_rows_of_zeros(what_if):
    """The differences table held 28 rows of "0 [0, 0]" for the four gates the change cannot
    touch, and the printed table 32: each now names them in one line."""
    cmp, _out, html = what_if
    table = html_tables(html, "findings")[-1]
    assert {row[0] for row in table["rows"]} - {""} == {BAC_LUAN_2, "all gates"}
    assert not any(cell.startswith("0 [0, 0]") for row in table["rows"] for cell in row)
    line = f"Unchanged: {', '.join(UNTOUCHED)} (its own figures the same, replication by replication)."
    assert line in _findings(html)
    printed = headline_table(cmp, ALT)
    assert "mong_cai" not in printed.split("unchanged:")[0] and "0 [0, 0]" not in printed
    assert " ".join(printed.split("unchanged: ")[1].split()) == ("mong_cai, km3_4, hoanh_mo, bac_phong_sinh (its own "
                                                                 "figures the same, replication by replication)")
    # the months: no column of zeros for them either
    for t in html_tables(html, "months"):
        assert t["header"][1:] == [BAC_LUAN_2, "all gates"], t["caption"]
    from sim.outputs.findings import unchanged

    assert unchanged(cmp.table, ALT) == ["mong_cai", "km3_4", "hoanh_mo", "bac_phong_sinh"]


def test_a_gate_with_any_difference_is_not_called_unchanged():
    """One difference not exactly 0 (a bound of 1e-12, or two means that differ) keeps a gate; a
    gate's share of its corridor, which moves with the other gates' crossings, does not."""
    from sim.outputs.findings import unchanged

    rows = [("a", 0.0, 0.0, 0.0, 5.0, 5.0), ("a", 0.0, 0.0, 0.0, 1.0, 1.0), ("b", 0.0, 0.0, 1e-12, 5.0, 5.0),
            ("c", 0.0, 0.0, 0.0, 5.0, 5.5), ("d", np.nan, np.nan, np.nan, np.nan, np.nan),
            ("e", np.nan, np.nan, np.nan, 2.0, np.nan), ("all", 0.0, 0.0, 0.0, 1.0, 1.0)]
    table = pd.DataFrame([{"scenario": "x", "gate": g, "metric": "crossings", "diff_mean": d, "diff_ci_low": lo,
                           "diff_ci_high": hi, "base_mean": b, "alt_mean": a} for g, d, lo, hi, b, a in rows]
                         + [{"scenario": "x", "gate": "a", "metric": "corridor_share", "diff_mean": 0.01,
                             "diff_ci_low": 0.005, "diff_ci_high": 0.015, "base_mean": 0.4, "alt_mean": 0.41}])
    assert unchanged(table, "x") == ["a", "d"]


def test_the_extreme_gate_is_noted_once(what_if):
    """Bắc Phong Sinh's note was printed once per scenario: it is shown once, for the base."""
    _cmp, _out, html = what_if
    notes = [n for n in _findings(html) if "Bắc Phong Sinh (Hải Hà): mean wait" in n]
    assert len(notes) == 1, notes
    assert notes[0].startswith("In baseline_2022_calibrated, the base (Bắc Phong Sinh (Hải Hà) stands out in every "
                               "alternative too"), notes[0]
    assert _text(html).count("times the other gates' median") == 1


def test_a_finding_says_where_the_saved_wait_went(what_if):
    """At Bắc Luân II's exit customs saves time and the far side's daily limit takes most of it
    back: a finding says so with compare.csv's figures of each stage's mean wait."""
    cmp, out, html = what_if
    table = pd.read_csv(out / "compare.csv", dtype={"stage": str, "class": str}).fillna({"stage": "", "class": ""})
    customs = _row(table, "bac_luan_2", "exit", "wait_mean_h", "customs")
    limit = _row(table, "bac_luan_2", "exit", "wait_mean_h", "acceptance")
    assert customs.diff_ci_high < 0 < limit.diff_ci_low  # both clear, opposite
    said = [n for n in _findings(html) if n.startswith(f"{BAC_LUAN_2}, exit: ")]
    assert len(said) == 1, _findings(html)
    from sim.outputs.formats import METRICS, difference_mean

    digits = METRICS["wait_mean_h"].digits
    assert f"customs {difference_mean(customs.diff_mean, customs.diff_ci_low, customs.diff_ci_high, digits)} h" \
        in said[0], said[0]
    assert f"far side's acceptance {difference_mean(limit.diff_mean, limit.diff_ci_low, limit.diff_ci_high, digits)} h" \
        in said[0], said[0]
    assert "of what customs saves" in said[0] and "the far side's daily limit, not customs" in said[0], said[0]
    stages = table[(table.scenario == ALT) & (table.gate == "bac_luan_2") & (table.direction == "exit")
                   & (table.metric == "wait_mean_h") & (table.stage != "") & (table["class"] == "")
                   & table.excludes_zero]
    share = stages.diff_mean[stages.diff_mean > 0].sum() / -stages.diff_mean[stages.diff_mean < 0].sum()
    assert f"({share * 100:.0f} %)" in said[0], (share, said[0])
    # nothing of the kind where no stage's wait moves the other way (the entry: customs alone)
    assert not any(n.startswith(f"{BAC_LUAN_2}, entry") for n in _findings(html))


def test_displaced_waits_take_only_clear_opposite_moves():
    """A stage whose interval includes 0 is no move; a gate and direction where every clear move
    goes one way has nothing displaced."""
    from sim.outputs.findings import displaced_waits

    def row(gate, direction, stage, mean, low, high):
        return {"scenario": "x", "gate": gate, "direction": direction, "metric": "wait_mean_h", "stage": stage,
                "class": "", "diff_mean": mean, "diff_ci_low": low, "diff_ci_high": high,
                "excludes_zero": low > 0 or high < 0}

    table = pd.DataFrame([row("g", "exit", "customs", -1.0, -1.2, -0.8), row("g", "exit", "acceptance", 0.6, 0.4, 0.8),
                          row("g", "exit", "guard", 0.3, -0.1, 0.7), row("g", "entry", "customs", -1.0, -1.2, -0.8),
                          row("g", "entry", "acceptance", 0.5, -0.1, 1.1), row("g", "all", "customs", -1, -1.2, -0.8),
                          row("g", "all", "acceptance", 0.3, 0.2, 0.4)])
    (moved,) = displaced_waits(table, "x")
    assert (moved.gate, moved.direction) == ("g", "exit")
    assert [s for s, _r in moved.fell] == ["customs"] and [s for s, _r in moved.rose] == ["acceptance"]
    assert moved.taken_up == pytest.approx(0.6)


def test_the_printed_table_and_the_report_show_the_same_metrics_labels_and_figures(what_if):
    """The printed table gave crossings and "p95 time in system h", the report crossings per day
    and "95 % crossed within h"; the time in system was -0.32 [-0.35, -0.28] printed and
    "-0.3 [-0.4, -0.3]" in the report. Both now take sim.outputs.formats.METRICS and its formatter."""
    cmp, _out, html = what_if
    printed = headline_table(cmp, ALT).split("unchanged:")[0].splitlines()[1:]
    labels = ["mean wait h", "mean time in system h", "95 % crossed within h", "mean number waiting",
              "truck-hours waiting", "crossings", "gave up waiting", "held by the daily limit", "cost of waiting VND bn"]
    rows, gate = [], None
    for line in printed:
        if not line.startswith("  "):
            gate = line
            continue
        label = next((lab for lab in labels if line[2:].startswith(lab)), line[2:26].strip())
        rows.append((gate, label, line.split("  ")[-1].strip()))
    shown, gate = [], None
    ids = {BAC_LUAN_2: "bac_luan_2", "all gates": "all gates"}
    for row in html_tables(html, "findings")[-1]["rows"]:
        gate = row[0] or gate
        shown.append((ids[gate], row[1], row[4]))
    assert [label for g, label, _d in rows if g == "all gates"] == labels
    assert shown == rows
    from sim.outputs.findings import HEADLINE
    from sim.outputs.formats import METRICS

    assert labels == [METRICS[m].label for m in HEADLINE]  # one table of labels for both


def test_the_share_held_by_the_limit_is_plotted_in_percentage_points(what_if, tmp_path, monkeypatch):
    """compare_differences.png drew the share's difference in raw share units, its axis an offset
    of 1e-5 from a number at its end; the tables give it in percentage points, and so does the plot."""
    cmp, _out, _html = what_if
    fig = comparison_figures(cmp, tmp_path / "cmp", monkeypatch)["compare_differences.png"]
    panel = next(ax for ax in fig.axes if ax.get_title().startswith("held by the daily limit"))
    assert "percentage points" in panel.get_title()
    share = _row(cmp.table, "all", "all", "held_by_limit_share")
    points = [x for line in panel.get_lines() for x in np.atleast_1d(line.get_xdata()) if x != 0]
    assert np.isclose(points, share.diff_mean * 100).any(), points
    fig.canvas.draw()
    for ax in fig.axes:
        assert ax.xaxis.get_offset_text().get_text() == "", ax.get_title()


def test_an_input_a_set_scaled_reads_as_the_fitted_values_scaled(what_if):
    """The inputs tables gave the prior range scaled ("uniform [10, 15]" -> "uniform [8, 12]",
    and "uniform [9.600000000000001, 16]") while the run scaled each fitted value of the ensemble."""
    _cmp, _out, html = what_if
    name = "gates.bac_luan_2.entry.stages.customs.service_min.mean"
    (inputs,) = html_tables(html, f"sources-{ALT}")
    row = next(r for r in inputs["rows"] if r[0] == name)
    assert row[1] == "the fitted values × 0.8" and row[3] == f"set on the command line (--set {name}*=0.8)", row
    changes = next(t for t in html_tables(html, "what") if "(--set) changes" in t["caption"])
    row = next(r for r in changes["rows"] if r[0] == name)
    assert row[1:3] == ["the fitted values", "the fitted values × 0.8"], row
    lanes = next(r for r in changes["rows"] if r[0] == "gates.bac_luan_2.entry.stages.customs.lanes")
    assert lanes[1:3] == ["3", "4"], lanes
    assert "9.600000000000001" not in html and "uniform [8, 12]" not in html


def test_inputs_show_at_most_twelve_significant_digits():
    from sim.outputs.report import value_text

    assert value_text(12 * 0.8) == "9.6" and value_text({"uniform": [9.600000000000001, 16]}) == "uniform [9.6, 16]"
    assert value_text(0.1 + 0.2) == "0.3" and value_text(123456.789012345) == "123456.789012"
    assert value_text(3) == "3" and value_text([1.5, 2]) == "[1.5, 2]" and value_text({"uniform": [1.0, 2.0]}) == \
        "uniform [1.0, 2.0]"  # a number as the file writes it where that is short


def test_a_library_alternative_with_sets_says_both_and_shows_both_files_inputs(tmp_path):
    """A library scenario compared with --set on top: the page says its description and its --set
    line, and its inputs section shows its own file's inputs as well as the --set (it showed the
    --set alone, as if the library file changed nothing)."""
    bridge = load(ROOT / "scenarios" / "km3_4_permanent_bridge.toml")
    line = "gates.hoanh_mo.exit.stages.customs.lanes+=1"
    cmp = compare(load(FITTED), [bridge], reps=2, workers=1, progress=False, sets=[line])
    write_comparison(cmp, tmp_path / "cmp", make_plots=False)
    html = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    subtitle = _text(re.search(r'<p class="subtitle">(.*?)</p>', html, re.S).group(1))
    assert subtitle == (f"km3_4_permanent_bridge changes: {bridge.nominal.description}; and {line} (with --set)")
    inputs = [row[0] for t in html_tables(html, "sources-km3_4_permanent_bridge") for row in t["rows"]]
    assert "gates.km3_4.exit.stages.customs.lanes" in inputs and "gates.hoanh_mo.exit.stages.customs.lanes" in inputs
