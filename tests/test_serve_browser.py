"""The `bordersim serve` page in a real browser (headless Chromium, Debian's `chromium`, which .ci/run
installs): it loads with no console error and asks nothing of any other host, fits a laptop and a
phone, draws its charts; a control moved changes the charts and the numbers, which are those of
`bordersim compare` for the page's --set lines and seed, and so are those of the scenario file it
downloads; a bad value gets its message beside its control; two browsers at once each get their
own answers. Where no browser can be had the tests skip and say why; under CI they fail."""

from __future__ import annotations

import json
import threading

import pytest

from sim import read_table
from sim.cli import main

from .browser import Browser, chromium_or_skip
from .serve_page import SMALL, Served, wait_for

pytestmark = pytest.mark.slow  # a server and a browser or two
LAPTOP = (1366, 768)
PHONE = (390, 844)
REPS = "3"
LANES = "lanes.km3_4.exit.customs"
DONE = "window.bordersim && bordersim.status === 'done' && bordersim.runs >= {n}"


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip("bordersim serve")


@pytest.fixture(scope="module")
def served():
    with Served(str(SMALL)) as s:
        yield s


def _type(browser: Browser, name: str, value: str) -> None:
    """Type ``value`` into the box ``name`` as a user would (an input event)."""
    browser.evaluate(f"""(() => {{ const el = document.querySelector('[name="{name}"]');
        el.value = {json.dumps(value)}; el.dispatchEvent(new Event('input', {{bubbles: true}})); }})()""")


def _page(browser: Browser) -> dict:
    return browser.evaluate("bordersim.result")


def _chart(browser: Browser, id_: str) -> list:
    """The y values of a chart's traces as plotly holds them."""
    return browser.evaluate(f"document.getElementById('{id_}').data.map(t => Array.from(t.y))")


def _same_as_compare(page: dict, compare_csv, scenario: str) -> None:
    """The page's differences are compare.csv's (ten significant digits) for ``scenario``."""
    table = read_table(compare_csv)
    table = table[(table.scenario == scenario) & (table.direction == "all") & (table.stage == "")
                  & (table["class"] == "")].set_index(["gate", "metric"])
    assert len(page["differences"]) > 10
    for d in page["differences"]:
        row = table.loc[(d["gate"], d["metric"])]
        for k in ("diff_mean", "diff_ci_low", "diff_ci_high"):
            assert d[k] == pytest.approx(float(row[k]), rel=1e-9, abs=1e-9), (d["gate"], d["metric"], k)
        assert d["base"] == pytest.approx(float(row["base_mean"]), rel=1e-9, abs=1e-9)
        assert d["alt"] == pytest.approx(float(row["alt_mean"]), rel=1e-9, abs=1e-9)


def test_the_page_follows_a_control_and_gives_compares_numbers_and_a_file_that_reproduces_them(
        chromium, served, tmp_path):
    with Browser(chromium, *LAPTOP) as browser:
        browser.open(f"{served.url}?reps={REPS}")
        wait_for(browser, DONE.format(n=1))
        assert browser.console_errors() == []
        assert [u for u in browser.requests() if not u.startswith(served.url)] == []  # nothing from elsewhere
        assert browser.evaluate("document.documentElement.scrollWidth") <= LAPTOP[0]
        assert browser.evaluate("document.querySelectorAll('#queue-chart .scatterlayer .trace').length") == 6
        assert browser.evaluate("document.querySelectorAll('#tis-chart .barlayer .trace').length") == 2
        before, queues_before = _page(browser), _chart(browser, "queue-chart")
        assert before["sets"] == [] and all(d["diff_mean"] == 0 for d in before["differences"])

        _type(browser, LANES, "4")
        wait_for(browser, DONE.format(n=2))
        after = _page(browser)
        assert after["sets"] == ["gates.km3_4.exit.stages.customs.lanes=4"]
        assert browser.evaluate("location.search").count(f"{LANES}=4") == 1  # the state is in the address
        assert any(d["diff_mean"] != 0 for d in after["differences"])  # the numbers changed
        assert _chart(browser, "queue-chart") != queues_before  # and so did the chart (the gates' sum)
        assert browser.evaluate("document.querySelectorAll('#differences tbody tr').length") == len(
            after["differences"])
        assert after["findings"] and browser.evaluate("document.getElementById('findings').textContent").startswith(
            after["findings"][0][:20])

        # the command line gives the same numbers
        out = tmp_path / "cli"
        assert main(["compare", str(SMALL), str(SMALL), *sum((["--set", s] for s in after["sets"]), []),
                     "--reps", REPS, "--seed", str(after["seed"]), "--out", str(out), "--quiet", "--no-plots",
                     "--no-report", "--allow-overload"]) == 0
        _same_as_compare(after, out / "compare.csv", after["alternative"])
        # and so does the scenario file the page offers, compared with the scenario
        toml = browser.evaluate("fetch(document.getElementById('download').href).then(r => r.text())")
        assert toml.startswith("#") and "lanes = 4" in toml
        (tmp_path / "whatif.toml").write_text(toml, encoding="utf-8")
        again = tmp_path / "again"
        assert main(["compare", str(SMALL), str(tmp_path / "whatif.toml"), "--reps", REPS, "--seed",
                     str(after["seed"]), "--out", str(again), "--quiet", "--no-plots", "--no-report",
                     "--allow-overload"]) == 0
        _same_as_compare(after, again / "compare.csv", "small_2022_whatif")
        browser.screenshot()  # (the README's own is tests/serve_page.py's)
        assert browser.console_errors() == []


def test_a_bad_value_gets_its_message_beside_its_control_and_the_page_fits_a_phone(chromium, served):
    with Browser(chromium, *PHONE) as browser:
        browser.open(f"{served.url}?reps={REPS}")
        wait_for(browser, DONE.format(n=1))
        assert browser.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
        message = f"document.querySelector('[data-error-for=\"{LANES}\"]').textContent"
        for bad, said in (("four", "'four' is not a TOML value"),
                          ("0", "lanes: Input should be greater than or equal to 1 (got 0)")):
            _type(browser, LANES, bad)
            wait_for(browser, "bordersim.status === 'error'")
            assert said in browser.evaluate(message)
            assert browser.evaluate(f"document.querySelector('[data-control=\"{LANES}\"]').classList.contains('bad')")
            assert browser.evaluate(f"document.querySelector('[data-control=\"{LANES}\"]').closest('details').open")
            _type(browser, LANES, "")
            wait_for(browser, "bordersim.status === 'done'")
            assert browser.evaluate(message) == ""
        _type(browser, "closure_from.mong_cai", "2022-02-30")
        _type(browser, "closure_until.mong_cai", "2022-03-01")
        wait_for(browser, "bordersim.status === 'error'")
        assert "'2022-02-30' is not a TOML value" in browser.evaluate(
            "document.querySelector('[data-error-for=\"closure.mong_cai\"]').textContent")
        assert browser.console_errors() == []
    # the server kept serving
    assert served.run({"reps": REPS})[-1]["type"] == "result"


def test_two_browsers_at_once_each_get_their_own_answers(chromium, served):
    with Browser(chromium, *LAPTOP) as one, Browser(chromium, *LAPTOP) as two:
        for b in (one, two):
            b.open(f"{served.url}?reps={REPS}")
        for b in (one, two):
            wait_for(b, DONE.format(n=1))
        # both change at once, each its own value
        threads = [threading.Thread(target=_type, args=(b, LANES, v)) for b, v in ((one, "5"), (two, "6"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for b, v in ((one, "5"), (two, "6")):
            wait_for(b, DONE.format(n=2) + " && bordersim.result.sets.length > 0")
            assert _page(b)["sets"] == [f"gates.km3_4.exit.stages.customs.lanes={v}"]
        assert _page(one)["differences"] != _page(two)["differences"]
        assert one.console_errors() == [] and two.console_errors() == []
