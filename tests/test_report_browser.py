"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, which .ci/run
installs) opens the report of a run, of a comparison and of the calibration from file://, and
the tests check that it loads with no console error, asks for nothing outside the file (data:
images only), fits a laptop screen, draws every plot (a screenshot of each is not blank) and
prints. Where no browser can be had the tests skip and say why; under CI (CI set) they fail."""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main

from .browser import Browser, chromium_or_skip
from .helpers import html_tables

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "small_2022.toml"
LAPTOP = (1366, 768)
A4_PRINTED = 703  # px at 96 dpi: A4's 210 mm less the print style's margins of 12 mm each side
SWEPT = "gates.hoanh_mo.exit.stages.customs.service_min.mean"

pytestmark = pytest.mark.slow  # a browser per page, on four written folders


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip("the report")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """A run and a comparison written by the command, as a user would, and calibration/."""
    tmp = tmp_path_factory.mktemp("reports")
    run_dir, cmp_dir = tmp / "run", tmp / "compare"
    assert main(["run", str(SMALL), "--reps", "3", "--workers", "1", "--quiet", "--out", str(run_dir)]) == 0
    assert main(["compare", str(SMALL), str(SMALL), "--set", "gates.bac_luan_2.exit.stages.customs.lanes=4",
                 "--reps", "3", "--workers", "1", "--quiet", "--out", str(cmp_dir)]) == 0
    calibration = tmp / "calibration"
    shutil.copytree(ROOT / "calibration", calibration)
    shutil.copytree(ROOT / "scenarios", tmp / "scenarios")
    assert main(["report", str(calibration)]) == 0
    sweep_dir = tmp / "sweep"
    assert main(["sweep", str(ROOT / "tests" / "data" / "tiny.toml"), "--param", f"{SWEPT}=6:18",
                 "--param", "gates.hoanh_mo.exit.acceptance_limit=1000:5000", "--design", "sobol", "--points", "8",
                 "--reps", "3", "--workers", "1", "--quiet", "--out", str(sweep_dir)]) == 0
    return {"run": run_dir, "compare": cmp_dir, "calibration": calibration, "sweep": sweep_dir}


def _png_pixels(png: bytes) -> np.ndarray:
    import matplotlib.image as mpimg

    return mpimg.imread(io.BytesIO(png), format="png")


@pytest.mark.parametrize("kind", ["run", "compare", "calibration", "sweep"])
def test_the_report_loads_draws_its_plots_and_needs_nothing_outside_the_file(chromium, folders, kind, tmp_path):
    report = folders[kind] / "report.html"
    html = report.read_text(encoding="utf-8")
    # nothing the page could fetch: every src and href is a data: URI or a link within the page
    for attr, target in re.findall(r"""\b(src|href)\s*=\s*["']([^"']*)["']""", html):
        assert target.startswith(("data:", "#")), f"{attr}={target[:80]}"
    assert "url(" not in html and "@import" not in html

    with Browser(chromium, *LAPTOP) as browser:
        browser.open(report.resolve().as_uri())
        assert browser.console_errors() == []
        outside = [u for u in browser.requests() if u != report.resolve().as_uri() and not u.startswith("data:")]
        assert outside == []
        # readable on a laptop: no sideways scrolling of the page itself (wide tables scroll in their box)
        assert browser.evaluate("document.documentElement.scrollWidth") <= LAPTOP[0]
        plots = browser.evaluate("""Array.from(document.querySelectorAll('img.plot')).map(img => {
            const r = img.getBoundingClientRect();
            return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
                    natural: img.naturalWidth, complete: img.complete, alt: img.alt};
        })""")
        expected = {"run": 4, "compare": 4, "calibration": 2, "sweep": 2}[kind]  # compare: its corridor's plot too
        assert len(plots) == expected, [p["alt"] for p in plots]
        for i, plot in enumerate(plots):
            assert plot["complete"] and plot["natural"] > 0, plot["alt"]  # the image decoded
            assert plot["width"] > 300 and plot["height"] > 150, plot
            clip = {k: plot[k] for k in ("x", "y", "width", "height")}
            pixels = _png_pixels(browser.screenshot(clip))[..., :3]
            (tmp_path / f"{kind}_{i}.png").write_bytes(browser.screenshot(clip))
            # drawn, not blank: many pixels differ from the background, in more than one colour
            background = np.median(pixels.reshape(-1, 3), axis=0)
            ink = np.abs(pixels - background).sum(axis=2) > 0.1
            assert ink.mean() > 0.01, f"{plot['alt']}: {ink.mean():.4f} of the pixels drawn"
            assert pixels.std() > 0.02, plot["alt"]
            assert len(np.unique((pixels * 15).round().reshape(-1, 3), axis=0)) > 5, plot["alt"]
        pdf = browser.pdf()
        assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page") >= 2


def test_the_run_report_says_what_was_run_and_where_each_input_comes_from(folders):
    html = (folders["run"] / "report.html").read_text(encoding="utf-8")
    for words in ("What was run", "small_2022.toml (extends baseline_2022.toml)", "horizon.end",
                  "Findings", "95 % confidence interval", "5–95 % of replications", "Where the waiting happens",
                  "Vehicles waiting by calendar day", "Time in system", "assumptions and sources",
                  "assumption: two control lanes per direction on the older bridge", "uncertain"):
        assert words in html, words
    # small_2022 extends the uncalibrated baseline: no targets file fitted it, no figures to meet
    assert not (folders["run"] / "targets.csv").exists() and 'id="observed"' not in html


def test_the_compare_report_shows_each_change_with_its_source(folders):
    html = (folders["compare"] / "report.html").read_text(encoding="utf-8")
    assert "small_2022_set" in html and "gates.bac_luan_2.exit.stages.customs.lanes" in html
    assert "set on the command line (--set gates.bac_luan_2.exit.stages.customs.lanes=4)" in html
    assert "Differences per gate" in html and "difference [95 % CI]" in html


def test_the_calibration_report_shows_the_targets_and_what_was_pinned_down(folders):
    html = (folders["calibration"] / "report.html").read_text(encoding="utf-8")
    for words in ("crossings_total", "95,370", "001_31bc361126121c6e.txt", "pinned down",
                  "demand_steps.exit_level.factor"):
        assert words in html, words


def test_the_sweep_report_ranks_the_inputs_with_their_intervals(folders):
    html = (folders["sweep"] / "report.html").read_text(encoding="utf-8")
    assert "Which inputs matter" in html and "Sobol indices" in html
    # the service time drives Hoành Mô's time in system; the limit (never reached) does not
    table = html[html.index("time_in_system_mean_h at hoanh_mo (all)"):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    first = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[1], re.S)]
    assert first[:2] == ["1", SWEPT], first
    assert "interval 6 to 18" in html and "sobol, size 8: 32 points" in html


# words of the code, not of a planner: none may head a section, a table, a column or a caption
DEVELOPER_WORDS = ("layer", "ensemble", "marker", "p05", "p95", "metadata.json", "[[expect]]", ".csv", "ci_low",
                   "wait_mean_h", "_share", "utilisation")


def _headings(html: str) -> list[str]:
    import html as html_lib

    found = re.findall(r"<(h1|h2|h3|th|caption|figcaption)[^>]*>(.*?)</\1>", html, re.S)
    return [html_lib.unescape(re.sub(r"<[^>]+>", "", text)) for _tag, text in found]


@pytest.mark.parametrize("kind", ["run", "compare"])
def test_the_report_opens_with_the_findings_and_ends_with_what_was_run(folders, kind):
    html = (folders[kind] / "report.html").read_text(encoding="utf-8")
    ids = re.findall(r'<section id="([^"]+)"', html)
    assert ids[0] == "findings", ids
    last = ["what", "sources"] if kind == "run" else ["what", "sources-small_2022_set"]
    assert ids[-2:] == last, ids
    findings = html_tables(html, "findings")
    if kind == "run":  # the headline per gate, all gates last
        assert findings[0]["header"][:3] == ["gate", "crossings", "mean wait h [95 % CI]"]
        assert "all gates" in [row[0] for row in findings[0]["rows"][-2:]]
    else:  # the differences per gate
        assert findings[0]["header"][-2:] == ["difference [95 % CI]", "relative"]
    for text in _headings(html):
        for word in DEVELOPER_WORDS:
            assert word not in text, (word, text)


@pytest.mark.parametrize("kind", ["run", "compare"])
def test_wide_tables_fit_the_screen_and_the_printed_page(chromium, folders, kind):
    """On a laptop's screen the results' tables fit their column and any wider table (the
    inputs) scrolls in its own box; printed on A4, every table wraps to the page's width."""
    report = folders[kind] / "report.html"
    boxes = """Array.from(document.querySelectorAll('div.table')).map(d => ({
        caption: (d.querySelector('caption') || d.querySelector('th')).textContent.slice(0, 50),
        results: !d.closest('#what') && !d.closest('[id^="sources"]'),
        wide: d.scrollWidth > d.clientWidth + 1, scrolls: getComputedStyle(d).overflowX === 'auto'}))"""
    for width in (1366, 1400):
        with Browser(chromium, width, 900) as browser:
            browser.open(report.resolve().as_uri())
            tables = browser.evaluate(boxes)
            assert tables and browser.evaluate("document.documentElement.scrollWidth") <= width
            assert [t["caption"] for t in tables if t["results"] and t["wide"]] == [], width
            assert all(t["scrolls"] for t in tables if t["wide"]), tables
    with Browser(chromium, A4_PRINTED, 900) as browser:
        browser.call("Emulation.setEmulatedMedia", media="print")
        browser.open(report.resolve().as_uri())
        tables = browser.evaluate(boxes)
        assert [t["caption"] for t in tables if t["wide"]] == []
        assert browser.evaluate("document.documentElement.scrollWidth") <= A4_PRINTED


def _by_gate(table: dict) -> dict[str, dict[str, list[str]]]:
    """A differences table's rows by gate (named in the first row of its group) and metric."""
    out, gate = {}, None
    for row in table["rows"]:
        gate = row[0] or gate
        out.setdefault(gate, {})[row[1]] = row
    return out


def test_the_compare_report_shows_time_in_system_and_shares_in_per_cent(folders, tmp_path):
    """The differences per gate hold the time in system, and a share held by the daily limit in
    per cent (its difference in percentage points), as the run's page shows it; the mean queue
    and the waiting truck-hours where compare.csv has them, and a page without them where not."""
    import pandas as pd

    html = (folders["compare"] / "report.html").read_text(encoding="utf-8")
    rows = _by_gate(html_tables(html, "findings")[0])["all gates"]
    assert {"mean wait h", "mean time in system h", "95 % crossed within h", "held by the daily limit"} <= set(rows)
    compared = pd.read_csv(folders["compare"] / "compare.csv", dtype={"stage": str, "class": str})
    totals = compared[compared.stage.isna() & compared["class"].isna() & (compared.gate == "all")
                      & (compared.direction == "all")].set_index("metric")
    share = totals.loc["held_by_limit_share"]
    base, alt, diff = rows["held by the daily limit"][2:5]
    assert base == f"{share.base_mean * 100:.1f} %" and alt == f"{share.alt_mean * 100:.1f} %"
    assert diff.startswith(f"{share.diff_mean * 100:+.1f}") and diff.split("[")[0].strip().endswith("pp")
    assert rows["mean time in system h"][2] == f"{totals.loc['time_in_system_mean_h'].base_mean:,.1f}"
    assert rows["mean number waiting"][2] == f"{totals.loc['queue_mean'].base_mean:,.1f}"
    assert rows["truck-hours waiting"][2] == f"{totals.loc['waiting_truck_hours'].base_mean:,.0f}"

    # a comparison written before the mean queue and the truck-hours (a compare.csv without them)
    # still gets its page, without their rows
    folder = tmp_path / "compare"
    shutil.copytree(folders["compare"], folder)
    compared[~compared.metric.isin(["queue_mean", "waiting_truck_hours"])].to_csv(folder / "compare.csv", index=False)
    assert main(["report", str(folder)]) == 0
    rows = _by_gate(html_tables((folder / "report.html").read_text(encoding="utf-8"), "findings")[0])["all gates"]
    assert "mean number waiting" not in rows and "truck-hours waiting" not in rows
    assert "mean time in system h" in rows


def test_the_reports_show_the_months_as_monthly_csv_and_compare_monthly_csv_give_them(folders):
    """The run page's tables by month hold monthly.csv's mean time in system, number waiting and
    truck-hours waiting (both directions, every gate and all gates) and the compare page's the
    paired differences of compare_monthly.csv, each month in its row: one set of numbers, the
    files', not a second computation, with each metric's digits (sim.outputs.formats.METRICS)."""
    import pandas as pd

    monthly = pd.read_csv(folders["run"] / "monthly.csv")
    tables = html_tables((folders["run"] / "report.html").read_text(encoding="utf-8"), "months")
    assert [t["caption"] for t in tables] == ["Mean time in system (h)", "Mean number waiting", "Truck-hours waiting"]
    from sim.outputs.formats import METRICS, difference

    for table, metric in zip(tables, ("time_in_system_mean_h", "queue_mean", "waiting_truck_hours")):
        rows = monthly[(monthly.metric == metric) & (monthly.direction == "all") & (monthly.gate == "all")]
        assert table["header"][0] == "month" and table["header"][-1] == "all gates"
        digits = METRICS[metric].digits
        assert [row[-1] for row in table["rows"]] == [
            f"{r.mean:,.{digits}f} [{r.ci_low:,.{digits}f}, {r.ci_high:,.{digits}f}]" for r in rows.itertuples()]

    diffs = pd.read_csv(folders["compare"] / "compare_monthly.csv")
    tables = html_tables((folders["compare"] / "report.html").read_text(encoding="utf-8"), "months")
    for words, metric in (("number waiting", "queue_mean"), ("truck-hours waiting", "waiting_truck_hours")):
        rows = diffs[(diffs.metric == metric) & (diffs.direction == "all") & (diffs.gate == "all")]
        table = next(t for t in tables if t["caption"].endswith(words))
        assert [row[-1] for row in table["rows"]] == [
            difference(r.diff_mean, r.diff_ci_low, r.diff_ci_high, METRICS[metric].digits) for r in rows.itertuples()]
