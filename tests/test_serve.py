"""`bordersim serve` without a browser: each control gives the `--set` line `bordersim compare` takes
(and a bad value its own message), the page's numbers are compare's for those lines and seed and
the downloaded scenario file reproduces them, runs are shared, kept and cancelled, and the server
stops on SIGTERM and Ctrl-C leaving no process behind. The page itself: test_serve_browser.py."""

from __future__ import annotations

import signal
import socket
import threading
import time

import numpy as np
import pandas as pd
import pytest

from sim import compare, load
from sim.cli import main
from sim.outputs import serve, whatif

from .serve_page import ROOT, SMALL, Served, alive, children

REPS = 3


@pytest.fixture(scope="module")
def small():
    return load(SMALL)


def test_each_control_gives_its_set_line_and_a_bad_value_its_own_message(small):
    state = {"lanes.km3_4.exit.customs": "4", "lanes.km3_4.exit.border_guard": "2.0",  # 2.0 is what it has
             "demand.km3_4": "1.25", "service.hoanh_mo.customs": "1", "limit.bac_luan_2": "{uniform = [1.1, 1.3]}",
             "hours.mong_cai": "06:00-12:00, 13:00-22:00", "closure_from.bac_phong_sinh": "2022-01-20",
             "closure_until.bac_phong_sinh": "2022-01-31", "reps": "5", "seed": "7"}
    ch = whatif.read_state(small, state)
    assert ch.errors == {} and ch.unknown == [] and (ch.reps, ch.seed) == (5, 7)
    assert ch.lines["lanes.km3_4.exit.customs"] == "gates.km3_4.exit.stages.customs.lanes=4"
    assert "lanes.km3_4.exit.border_guard" not in ch.lines and "service.hoanh_mo.customs" not in ch.lines
    assert ch.lines["demand.km3_4"] == 'adjust.whatif_demand_km3_4={what = "demand", gates = ["km3_4"], multiply = 1.25}'
    assert ch.lines["limit.bac_luan_2"].endswith("from = 2022-01-01, multiply = {uniform = [1.1, 1.3]}}")
    assert 'set = ["06:00-12:00", "13:00-22:00"]' in ch.lines["hours.mong_cai"]
    closures = ch.lines["closure.bac_phong_sinh"]
    assert closures.startswith("gates.bac_phong_sinh.closures=[") and closures.count("start =") == 5  # its 4 and ours
    changed = load(SMALL, sets=ch.sets)  # every line is one `bordersim --set` takes
    km = changed.nominal.gates["km3_4"]
    assert km.exit.stages[0].lanes == 4 and changed.nominal.gates["mong_cai"].hours == {
        "default": ["06:00-12:00", "13:00-22:00"]}

    # a corridor's sensitivity is a control where its trucks choose by the wait rule, not on 'open'
    assert not [c for c in whatif.controls(small) if c.key.startswith("sensitivity.")]
    choice = load(ROOT / "scenarios" / "mong_cai_choice.toml")
    assert [c.key for c in whatif.controls(choice) if c.key.startswith("sensitivity.")] == [
        "sensitivity.mong_cai_crossings.exit", "sensitivity.mong_cai_crossings.entry"]
    inf = whatif.read_state(choice, {"sensitivity.mong_cai_crossings.exit": "inf"})
    assert inf.sets == ["corridors.mong_cai_crossings.exit.sensitivity=inf"]
    assert load(choice.path, sets=inf.sets).nominal.corridors["mong_cai_crossings"].exit.sensitivity == float("inf")

    bad = whatif.read_state(small, {"lanes.km3_4.exit.customs": "four", "closure_from.km3_4": "2022-03-01",
                                    "demand.mong_cai": "1.2\nname = 'other'", "reps": "201", "seed": "-1",
                                    "nonsense": "1", "gate": "km3_4"}, serve.PAGE_PARAMS)
    assert set(bad.errors) == {"lanes.km3_4.exit.customs", "closure.km3_4", "demand.mong_cai", "reps", "seed"}
    assert "'four' is not a TOML value" in bad.errors["lanes.km3_4.exit.customs"]
    assert "both dates" in bad.errors["closure.km3_4"]
    assert "is not a TOML value" in bad.errors["demand.mong_cai"]  # one value, no second key smuggled in
    assert "from 2 to 200" in bad.errors["reps"] and bad.unknown == ["nonsense"]
    assert all("\n" not in e for e in bad.errors.values())


def test_the_page_gives_compares_numbers_and_its_file_reproduces_them(small, tmp_path):
    """The run of a state equals `compare(base, [base], sets=...)` at the same seed, and the
    scenario file the page offers, compared with the scenario, gives the same differences."""
    ch = whatif.read_state(small, {"lanes.km3_4.exit.customs": "4", "demand.km3_4": "1.1",
                                   "closure_from.mong_cai": "2022-01-20", "closure_until.mong_cai": "2022-01-26",
                                   "reps": str(REPS), "seed": "11"})
    runner = serve.Runner(small, str(SMALL), workers=1)
    try:
        kept, job = runner.submit(ch)
        assert kept is None and job.finished.wait(300)
        page = job.outcome
        assert runner.submit(ch)[0] is page  # kept: the same changes again are not run again
    finally:
        runner.close()
    assert page["sets"] == ch.sets and page["reps"] == REPS and page["seed"] == 11
    cmp = compare(small, [small], sets=ch.sets, reps=REPS, seed=11, workers=1, progress=False, allow_overload=True)
    expected = cmp.table.set_index(["gate", "direction", "metric", "stage", "class"])
    assert len(page["differences"]) > 10
    for d in page["differences"]:
        row = expected.loc[(d["gate"], "all", d["metric"], "", "")]
        for k in ("diff_mean", "diff_ci_low", "diff_ci_high"):
            assert d[k] == pytest.approx(row[k], rel=1e-12, abs=1e-12, nan_ok=True), (d["gate"], d["metric"], k)
    assert any(d["excludes_zero"] for d in page["differences"])
    # the queues by date are each scenario's own daily table (rounded for the chart)
    daily = cmp.daily[(cmp.daily.direction == "all") & (cmp.daily.metric == "queue_end")]
    km = daily[(daily.scenario == cmp.names[1]) & (daily.gate == "km3_4")]["mean"].to_numpy()
    assert np.allclose(page["queues"]["alt"]["km3_4"]["queue_end"]["mean"], km, atol=10 ** -whatif.CHART_DECIMALS)

    toml = tmp_path / "whatif.toml"
    toml.write_text(whatif.scenario_toml(small, ch), encoding="utf-8")
    again = compare(small, [load(toml)], reps=REPS, seed=11, workers=1, progress=False, allow_overload=True).table
    mine = cmp.table.drop(columns="scenario").reset_index(drop=True)
    theirs = again.drop(columns="scenario").reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, theirs)


def test_runs_are_shared_bounded_and_stop_when_nobody_waits(small, monkeypatch):
    runner = serve.Runner(small, str(SMALL), workers=1)
    try:
        first = whatif.read_state(small, {"lanes.km3_4.exit.customs": "4", "reps": "40"})
        _kept, job = runner.submit(first)
        _kept, same = runner.submit(first)
        assert same is job and job.watchers == 2  # two pages asking the same watch one run
        monkeypatch.setattr(serve, "MAX_JOBS", 1)
        with pytest.raises(serve.Busy):
            runner.submit(whatif.read_state(small, {"lanes.km3_4.exit.customs": "5"}))
        runner.release(job)
        assert not job.cancelled.is_set()
        runner.release(job)  # nobody waits: the run stops, well before its 40 replications
        assert job.cancelled.is_set() and job.finished.wait(60)
        assert job.outcome is None and job.done < 40
        monkeypatch.setattr(serve, "MAX_JOBS", 8)
        # the pool goes on serving: a new run after the cancelled one
        _kept, other = runner.submit(whatif.read_state(small, {"reps": "2"}))
        assert other.finished.wait(300) and other.outcome["reps"] == 2
    finally:
        runner.close()


def test_a_change_the_scenario_refuses_gets_the_schemas_message_beside_its_control(small):
    runner = serve.Runner(small, str(SMALL), workers=1)
    try:
        ch = whatif.read_state(small, {"lanes.km3_4.exit.customs": "0", "demand.km3_4": "1.1",
                                       "closure_from.mong_cai": "2022-02-10", "closure_until.mong_cai": "2022-02-01"})
        assert ch.errors == {}  # every value reads; the scenario refuses two of them
        _kept, job = runner.submit(ch)
        assert job.finished.wait(120)
        errors = job.outcome["errors"]
        assert set(errors) == {"lanes.km3_4.exit.customs", "closure.mong_cai"}
        assert errors["lanes.km3_4.exit.customs"].endswith(
            "gates.km3_4.exit.stages.customs.lanes: Input should be greater than or equal to 1 (got 0)")
        assert "must be after start" in errors["closure.mong_cai"]
    finally:
        runner.close()


@pytest.mark.parametrize("sig, ignored", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGINT, True)])
def test_the_server_stops_on_sigterm_and_ctrl_c_with_no_process_left(sig, ignored):
    """SIGTERM and Ctrl-C stop the server, its runs and its workers, with one line saying so; also
    a server started with Ctrl-C ignored (a shell's background job), which uvicorn still stops on it."""
    served = Served(str(SMALL), ctrl_c_ignored=ignored)
    try:
        workers = children(served.proc.pid)
        assert len(workers) >= 1  # its pool, started with it
        events = served.run({"reps": "2", "lanes.km3_4.exit.customs": "4"})
        assert events[-1]["type"] == "result"
    finally:
        code, err = served.stop(sig)
    assert code == 0 and "serve stopped" in err and "Traceback" not in err, err
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers)


def test_a_pages_newer_change_supersedes_its_older_one_and_another_pages_stands():
    with Served(str(SMALL)) as served:
        got: dict[str, list] = {}

        def ask(name: str, params: dict) -> None:
            got[name] = served.run(params)

        long = {"reps": "200", "lanes.km3_4.exit.customs": "4"}
        older = threading.Thread(target=ask, args=("older", {**long, "client": "a"}))
        other = threading.Thread(target=ask, args=("other", {**long, "client": "b"}))
        older.start()
        other.start()
        time.sleep(0.5)
        ask("newer", {"reps": "2", "lanes.km3_4.exit.customs": "5", "client": "a"})
        older.join(120)
        other.join(300)
    assert got["newer"][-1]["type"] == "result" and got["newer"][-1]["sets"] == [
        "gates.km3_4.exit.stages.customs.lanes=5"]
    assert got["older"][-1] == {"type": "superseded"}  # page a's older change: dropped
    assert got["other"][-1]["type"] == "result" and got["other"][-1]["reps"] == 200  # page b's: its own answer


def test_serve_refuses_a_port_in_use_in_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", str(SMALL), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bordersim: error: --port: cannot listen on 127.0.0.1 port") and "\n" not in err
