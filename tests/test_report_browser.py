"""The HTML report in a real browser: headless Chromium (Debian's `chromium`, which .ci/run
installs) opens the report of a run, of a comparison and of the calibration from file://, and
the tests check that it loads with no console error, asks for nothing outside the file (data:
images only), fits a laptop screen, draws every plot (a screenshot of each is not blank) and
prints. Where no browser can be had the tests skip and say why; under CI (CI set) they fail."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main

from .browser import Browser, find_chromium

ROOT = Path(__file__).resolve().parent.parent
SMALL = ROOT / "tests" / "data" / "small_2022.toml"
LAPTOP = (1366, 768)
SWEPT = "gates.hoanh_mo.exit.stages.customs.service_min.mean"


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        why = ("no Chromium: install Debian's package (apt-get install chromium; .ci/run does this as root) "
               "to run the browser tests of the report")
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {why}")
        pytest.skip(why)
    return binary


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
        expected = {"run": 4, "compare": 3, "calibration": 2, "sweep": 2}[kind]
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
                  "Results per gate", "95 % confidence interval", "p05–p95", "Where the waiting happens",
                  "Vehicles waiting by calendar day", "Time in system", "assumptions and sources",
                  "assumption: two control lanes per direction on the older bridge", "uncertain"):
        assert words in html, words


def test_the_compare_report_shows_each_change_with_its_source(folders):
    html = (folders["compare"] / "report.html").read_text(encoding="utf-8")
    assert "small_2022_set" in html and "gates.bac_luan_2.exit.stages.customs.lanes" in html
    assert "set on the command line (--set)" in html
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
