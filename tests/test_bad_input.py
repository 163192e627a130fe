"""Bad input: one line on stderr naming the file and the field, exit code 2, nothing written."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.experiments import capacity
from sim.cli import main

TINY = (Path(__file__).parent / "data" / "tiny.toml").read_text(encoding="utf-8")
PROFILE = "[classes.truck]"  # a profile or demand step goes before this table
LONG = 320  # longest acceptable error line beyond its file and field: an echoed value is cut at 200


def _variant(tmp_path: Path, old: str, new: str, name: str = "bad.toml") -> Path:
    assert old in TINY, old
    path = tmp_path / name
    path.write_text(TINY.replace(old, new, 1), encoding="utf-8")
    return path


CASES = [
    # (what, old text, new text, field named in the message, words the message must contain)
    ("unknown key", 'name = "Hoành Mô"', 'name = "Hoành Mô"\ncolour = "red"', "gates.hoanh_mo.colour", "allowed"),
    ("wrong type", "lanes = 1", 'lanes = "two"', "gates.hoanh_mo.exit.stages.customs.lanes", "integer"),
    ("negative rate", "demand = {truck = 12}", "demand = {truck = -5}", "gates.hoanh_mo.exit.demand.truck", "greater than 0"),
    ("zero rate", "demand = {truck = 12}", "demand = {truck = 0}", "gates.hoanh_mo.exit.demand.truck", "greater than 0"),
    ("lanes below 1", "lanes = 1", "lanes = 0", "gates.hoanh_mo.exit.stages.customs.lanes", "greater than or equal to 1"),
    ("fractional lanes", "lanes = 1", "lanes = 1.5", "gates.hoanh_mo.exit.stages.customs.lanes", "integer"),
    ("unknown distribution", 'dist = "lognormal"', 'dist = "weibull"', "service_min", "exponential"),
    ("bad distribution parameter", "cv = 0.5", "cv = -0.5", "service_min.lognormal.cv", "greater than 0"),
    ("unknown gate", "[classes.truck]",
     '[[demand_steps]]\nid = "up"\nfrom = 2022-03-02\nfactor = 1.2\ngates = ["nowhere"]\n\n[classes.truck]',
     "demand_steps.up.gates", "unknown gate 'nowhere'"),
    ("unknown class", "demand = {truck = 12}", "demand = {truck = 12, bus = 3}", "gates.hoanh_mo.exit.demand.bus", "not handled"),
    ("horizon ends before it starts", "end = 2022-03-07", "end = 2022-02-01", "horizon.end", "before"),
    ("bad hours", '"13:30-17:30"', '"13:30-27:30"', "gates.hoanh_mo.hours.default[1]", "24:00"),
    ("malformed range", "acceptance_limit = 28", "acceptance_limit = {uniform = [5]}", "gates.hoanh_mo.exit.acceptance_limit", "uniform"),
    ("range reaching a forbidden value", "demand = {truck = 12}", "demand = {truck = {uniform = [-2, 12]}}",
     "gates.hoanh_mo.exit.demand.truck", "greater than 0"),
    ("not TOML", "[horizon]", "[horizon", "", "TOML"),
    ("unstable load", "demand = {truck = 12}", "demand = {truck = 400}", "gates.hoanh_mo.exit.demand", "--allow-overload"),
    # values that ran and gave nonsense
    ("cv inf", "cv = 0.5", "cv = inf", "service_min.lognormal.cv", "finite number"),
    ("hourly 1e308", PROFILE, "[profile]\nhourly = [1e308, 1e308" + ", 1" * 22 + "]\n\n" + PROFILE,
     "profile.hourly[0]", "less than or equal to 1000000"),
    # what gave tracebacks
    ("cv 1e200", "cv = 0.5", "cv = 1e200", "service_min.lognormal.cv", "less than or equal to 10"),
    ("inf in hourly, overload allowed", PROFILE, "[profile]\nhourly = [inf" + ", 1" * 23 + "]\n\n" + PROFILE,
     "profile.hourly[0]", "finite number"),
    ("closure end 9999-12-31", 'classes = ["truck"]',
     'classes = ["truck"]\nclosures = [{start = 2022-03-02, end = 9999-12-31}]',
     "gates.hoanh_mo.closures[0].end", "between 1900-01-01 and 2199-12-31"),
    ("horizon to 9999", "end = 2022-03-07", "end = 9999-12-31", "horizon.end", "less than or equal to 2199-12-31"),
    ("horizon of 300 years", "start = 2022-03-01\nend = 2022-03-07", "start = 1900-01-01\nend = 2199-12-31",
     "horizon.end", "at most 7,305 days"),
    ("lanes 1e12", "lanes = 1", "lanes = 1000000000000", "stages.customs.lanes", "less than or equal to 100"),
    ("lanes range to 1e12", "lanes = 1", "lanes = {uniform = [1, 1e12]}", "stages.customs.lanes",
     "less than or equal to 100"),
    ("acceptance range to 1e300", "acceptance_limit = 28", "acceptance_limit = {uniform = [20, 1e300]}",
     "exit.acceptance_limit", "less than or equal to 100000"),
    ("range to inf", "acceptance_limit = 28", "acceptance_limit = {uniform = [20, inf]}",
     "exit.acceptance_limit", "finite numbers"),
    ("integer of 5,000 digits", "lanes = 1", "lanes = " + "1" * 5000, "", "not valid TOML"),
    ("3,000-deep array", PROFILE, "x = " + "[" * 3000 + "]" * 3000 + "\n" + PROFILE, "", "nested too deeply"),
    ("3,000-deep inline table", PROFILE, "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n" + PROFILE, "",
     "nested too deeply"),
    ("3,000-deep table", PROFILE, "[" + ".".join(["a"] * 3000) + "]\n" + PROFILE, "a.a.a", "nested too deeply"),
    ("a value of 40,000 characters", "lanes = 1", "lanes = '" + "x" * 40_000 + "'", "stages.customs.lanes", "integer"),
    ("a key of 5,000 characters", "lanes = 1", "lanes = 1\n" + "k" * 5000 + " = 1", "stages.customs.kkkk",
     "(allowed: name, lanes"),
    ("file of 10 MB", "[horizon]", "# " + "x" * 10_000_000 + "\n[horizon]", "", "larger than 10,000,000 bytes"),
    # the other stated ranges
    ("priority 100", "priority = 1", "priority = 100", "classes.truck.priority", "less than or equal to 99"),
    ("patience 0", "priority = 1", "priority = 1\npatience_days = 0", "classes.truck.patience_days", "greater than 0"),
    ("patience nan", "priority = 1", "priority = 1\npatience_days = nan", "classes.truck.patience_days",
     "finite number"),
    ("patience range over a year", "priority = 1", "priority = 1\npatience_days = {uniform = [5, 400]}",
     "classes.truck.patience_days", "less than or equal to 365"),
    ("patience cv over 10", "priority = 1", "priority = 1\npatience_days = 3\npatience_cv = 11",
     "classes.truck.patience_cv", "less than or equal to 10"),
    ("patience direction", "priority = 1", 'priority = 1\npatience_days = 3\npatience_directions = ["out"]',
     "classes.truck.patience_directions[0]", "'exit' or 'entry'"),
    ("demand over 100,000 a day", "demand = {truck = 12}", "demand = {truck = 100001}", "exit.demand.truck",
     "less than or equal to 100000"),
    ("backlog over 1,000,000", "acceptance_limit = 28", "acceptance_limit = 28\ninitial_backlog = {truck = 1000001}",
     "exit.initial_backlog.truck", "less than or equal to 1000000"),
    ("step factor over 100", PROFILE, "[[demand_steps]]\nid = \"up\"\nfrom = 2022-03-02\nfactor = 101\n\n" + PROFILE,
     "demand_steps.up.factor", "less than or equal to 100"),
    ("step date 9999", PROFILE, "[[demand_steps]]\nid = \"up\"\nfrom = 9999-03-02\nfactor = 2\n\n" + PROFILE,
     "demand_steps.up.from", "less than or equal to 2199-12-31"),
    ("warm-up nan", "end = 2022-03-07", "end = 2022-03-07\nwarmup_days = nan", "horizon.warmup_days", "finite number"),
    ("service mean over 100,000 minutes", "mean = 12", "mean = 100001", "service_min.lognormal.mean",
     "less than or equal to 100000"),
]
RUN_ARGS = {"inf in hourly, overload allowed": ["--allow-overload"]}


def _assert_one_line_error(rc: int, err: str, file: str, field: str, words: str) -> None:
    """Exit 2 and exactly one line 'bordersim: error: <file>: <field>: ...' with ``words``, of a
    readable length."""
    assert rc == 2, err
    assert "Traceback" not in err and "Warning:" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("bordersim: error: ")
    assert file in err and field in err and words in err, err
    assert len(err.strip()) - len(file) - len(field) <= LONG, len(err)


@pytest.mark.parametrize("what,old,new,field,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, what, old, new, field, words):
    path = _variant(tmp_path, old, new)
    out = tmp_path / "out"
    rc = main(["run", str(path), "--reps", "2", "--out", str(out), "--quiet", *RUN_ARGS.get(what, [])])
    _assert_one_line_error(rc, capsys.readouterr().err, str(path), field, words)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]  # no partial output anywhere


# the tiny scenario with a second gate, and a corridor of both (test values, as above)
TWO_GATES = TINY + """
[gates.bac_phong_sinh]
name = "Bắc Phong Sinh"
classes = ["truck"]
hours = {default = ["07:30-11:30", "13:30-17:30"]}

[gates.bac_phong_sinh.exit]
demand = {truck = 8}

[[gates.bac_phong_sinh.exit.stages]]
name = "customs"
lanes = 1
service_min = {dist = "lognormal", mean = 12, cv = 0.5}

[corridors.inland]
gates = ["hoanh_mo", "bac_phong_sinh"]

[corridors.inland.exit]
rule = "open"
"""
WAIT = 'rule = "wait"\nsensitivity = 0.5\ndetour_h = {hoanh_mo = 1, bac_phong_sinh = 0.5}\noutside_detour_h = 6'
CORRIDOR_CASES = [
    # (what, old text, new text, field named in the message, words the message must contain)
    ("unknown gate", '"hoanh_mo", "bac_phong_sinh"]', '"hoanh_mo", "bac_phong"]', "corridors.inland.gates",
     "unknown gate 'bac_phong' (gates: hoanh_mo, bac_phong_sinh)"),
    ("one gate", '"hoanh_mo", "bac_phong_sinh"]', '"hoanh_mo"]', "corridors.inland.gates", "at least 2 items"),
    ("a gate twice", '"hoanh_mo", "bac_phong_sinh"]', '"hoanh_mo", "hoanh_mo"]', "corridors.inland.gates",
     "listed twice"),
    ("a gate in two corridors", "[corridors.inland.exit]",
     '[corridors.again]\ngates = ["bac_phong_sinh", "hoanh_mo"]\n\n[corridors.inland.exit]', "corridors.again.gates",
     "in corridor 'inland' already"),
    ("named as a gate", '[corridors.inland]\ngates = ["hoanh_mo", "bac_phong_sinh"]\n\n[corridors.inland.exit]',
     '[corridors.hoanh_mo]\ngates = ["hoanh_mo", "bac_phong_sinh"]\n\n[corridors.hoanh_mo.exit]', "corridors.hoanh_mo",
     "names a gate"),
    ("unknown rule", 'rule = "open"', 'rule = "nearest"', "corridors.inland.exit.rule", "'shares', 'open' or 'wait'"),
    ("outside share 1", 'rule = "open"', 'rule = "open"\noutside_share = 1', "corridors.inland.exit.outside_share",
     "less than 1"),
    ("negative outside share", 'rule = "open"', "outside_share = -0.1", "corridors.inland.exit.outside_share",
     "greater than or equal to 0"),
    ("outside share range to 1", 'rule = "open"', "outside_share = {uniform = [0.5, 1]}",
     "corridors.inland.exit.outside_share", "less than 1"),
    ("a direction no gate handles", "[corridors.inland.exit]", "[corridors.inland.entry]",
     "corridors.inland.entry", "no gate of the corridor handles entry"),
    ("negative sensitivity", 'rule = "open"', WAIT.replace("0.5", "-1", 1), "corridors.inland.exit.sensitivity",
     "must be >= 0"),
    ("sensitivity nan", 'rule = "open"', WAIT.replace("0.5", "nan", 1), "corridors.inland.exit.sensitivity",
     "or inf"),
    ("negative detour", 'rule = "open"', WAIT.replace("hoanh_mo = 1", "hoanh_mo = -1"),
     "corridors.inland.exit.detour_h.hoanh_mo", "greater than or equal to 0"),
    ("negative outside detour", 'rule = "open"', WAIT.replace("= 6", "= -6"),
     "corridors.inland.exit.outside_detour_h", "must be >= 0"),
    ("wait without its sensitivity", 'rule = "open"', WAIT.replace("sensitivity = 0.5\n", ""),
     "corridors.inland.exit.sensitivity", "required field is missing"),
    ("wait without a gate's detour", 'rule = "open"', WAIT.replace(", bac_phong_sinh = 0.5", ""),
     "corridors.inland.exit.detour_h", "'bac_phong_sinh' has none"),
    ("wait without its outside detour", 'rule = "open"', WAIT.replace("\noutside_detour_h = 6", ""),
     "corridors.inland.exit.outside_detour_h", "required field is missing"),
    ("a wait field on another rule", 'rule = "open"', 'rule = "open"\nsensitivity = 2',
     "corridors.inland.exit.sensitivity", "belongs to the rule 'wait'"),
    ("a detour for a gate not in the corridor", 'rule = "open"', WAIT.replace("hoanh_mo = 1", "hoanh_mo = 1, km3_4 = 2"),
     "corridors.inland.exit.detour_h.km3_4", "'km3_4' is not a gate of the corridor handling exit"),
    ("outside detour nan", 'rule = "open"', WAIT.replace("= 6", "= nan"), "corridors.inland.exit.outside_detour_h",
     "or inf (no outside option)"),
    ("outside detour beyond a week", 'rule = "open"', WAIT.replace("= 6", "= 200"),
     "corridors.inland.exit.outside_detour_h", "<= 168 h"),
    ("wait with one gate handling the direction", "[corridors.inland.exit]",
     '[gates.hoanh_mo.entry]\ndemand = {truck = 5}\n\n[[gates.hoanh_mo.entry.stages]]\nname = "customs"\nlanes = 1\n'
     'service_min = {dist = "exponential", mean = 10}\n\n[corridors.inland.entry]\n' + WAIT.split("\ndetour_h")[0]
     + '\ndetour_h = {hoanh_mo = 1}\noutside_detour_h = 6\n\n[corridors.inland.exit]',
     "corridors.inland.entry.rule", "only 'hoanh_mo' of the corridor handles entry"),
]


@pytest.mark.parametrize("what,old,new,field,words", CORRIDOR_CASES, ids=[c[0] for c in CORRIDOR_CASES])
def test_a_bad_corridor_gives_one_line_and_exit_2(tmp_path, capsys, what, old, new, field, words):
    assert_run_refused(tmp_path, capsys, TWO_GATES, old, new, field, words)


def assert_run_refused(tmp_path: Path, capsys, good: str, old: str, new: str, field: str, words: str) -> None:
    """``good`` with ``old`` changed to ``new``, run: one error line naming the file and the
    field, exit 2, nothing written beside the file."""
    assert old in good, old
    path = tmp_path / "bad.toml"
    path.write_text(good.replace(old, new, 1), encoding="utf-8")
    out = tmp_path / "out"
    rc = main(["run", str(path), "--reps", "2", "--out", str(out), "--quiet"])
    _assert_one_line_error(rc, capsys.readouterr().err, str(path), field, words)
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]  # nothing written


def test_the_corridor_of_the_bad_input_tests_runs(tmp_path):
    """The scenario the corridor cases change is itself valid: each case fails by its change alone."""
    path = tmp_path / "good.toml"
    path.write_text(TWO_GATES, encoding="utf-8")
    assert main(["validate", str(path)]) == 0


@pytest.mark.parametrize("sensitivity,outside", [("0.5", "6"), ("inf", "6"), ("0", "inf"), ("{uniform = [0, 2]}", "6")])
def test_a_wait_corridor_of_the_bad_input_tests_runs(tmp_path, sensitivity, outside):
    """The rule 'wait' with its fields is valid and runs (the shortest expected wait, no
    outside option, a sensitivity over a range), writing its results."""
    path = tmp_path / "wait.toml"
    path.write_text(TWO_GATES.replace('rule = "open"', WAIT.replace("0.5", sensitivity, 1).replace("= 6", f"= {outside}")),
                    encoding="utf-8")
    assert main(["run", str(path), "--reps", "2", "--out", str(tmp_path / "out"), "--quiet", "--no-plots",
                 "--no-report"]) == 0
    assert (tmp_path / "out" / "summary.csv").exists()


def test_closure_with_a_utc_offset_is_converted_to_local_time(tmp_path):
    """09:00 UTC is 16:00 in the model's UTC+7: the gate, open all day, reopens at 16:00."""
    from sim import load
    from sim.model.calendar import build_calendar

    path = _variant(tmp_path, 'hours = {default = ["07:30-11:30", "13:30-17:30"]}',
                    'hours = {default = ["00:00-24:00"]}\n'
                    "closures = [{start = 2022-03-02T08:00:00+07:00, end = 2022-03-02T09:00:00Z}]")
    m = load(path).nominal
    assert m.gates["hoanh_mo"].closures[0].end == dt.datetime(2022, 3, 2, 16)
    cal = build_calendar(m.gates["hoanh_mo"], "exit", m.horizon)
    assert list(cal.starts) == [0.0, 24.0 + 16.0] and list(cal.ends) == [24.0 + 8.0, 24.0 * 7]


# ------------------------------------------------------------------ files that are not UTF-8 TOML


def _not_utf8(path: Path) -> Path:
    path.write_bytes(TINY.encode("latin-1"))  # 'Hoành Mô' saved in the wrong encoding
    return path


def _binary(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)
    return path


@pytest.mark.parametrize("command", ["run", "validate"])
@pytest.mark.parametrize("make", [_not_utf8, _binary], ids=["not UTF-8", "binary"])
def test_a_file_that_is_not_utf8_text(tmp_path, capsys, command, make):
    path = make(tmp_path / "bad.toml")
    rc = main([command, str(path)] + (["--out", str(tmp_path / "out"), "--quiet"] if command == "run" else []))
    _assert_one_line_error(rc, capsys.readouterr().err, str(path), "", "not UTF-8 text")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]


TARGETS = """scenario = "prior.toml"
fitted = "fitted.toml"
[[targets]]
name = "crossings"
observed = 60
source = "assumption: a test value"
period = [2022-03-01, 2022-03-07]
tolerance = 0.02
"""


@pytest.mark.parametrize("content,words", [
    (TARGETS.encode("utf-8").replace(b"a test value", b"\xe9t\xe9"), "not UTF-8 text"),
    (TARGETS.encode("utf-8") + b"x = " + b"[" * 3000 + b"]" * 3000, "nested too deeply"),
], ids=["not UTF-8", "3,000-deep array"])
def test_a_targets_file_that_is_not_utf8_toml(tmp_path, capsys, content, words):
    (tmp_path / "prior.toml").write_text(TINY, encoding="utf-8")
    path = tmp_path / "targets.toml"
    path.write_bytes(content)
    rc = main(["calibrate", "--check", str(path), "--reps", "2", "--quiet"])
    _assert_one_line_error(rc, capsys.readouterr().err, str(path), "", words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior.toml", "targets.toml"]


@pytest.mark.parametrize("links", [["loop.toml"], ["a.toml", "b.toml"]], ids=["to itself", "a -> b -> a"])
def test_a_symlink_loop(tmp_path, capsys, links):
    for name, target in zip(links, links[1:] + links[:1]):
        os.symlink(target, tmp_path / name)
    path = tmp_path / links[0]
    for command in (["run", str(path), "--out", str(tmp_path / "out"), "--quiet"], ["validate", str(path)]):
        rc = main(command)
        _assert_one_line_error(rc, capsys.readouterr().err, str(path), "", "cannot be read")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(links)


# ------------------------------------------------------------------ ensembles

RANGE = "acceptance_limit = {uniform = [20, 30]}"
COLUMN = "gates.hoanh_mo.exit.acceptance_limit"


@pytest.mark.parametrize("ensemble,csv,field,words", [
    (".", None, "ensemble", "is a directory"),
    ("ens.csv", f"{COLUMN}\n25\nlots\n", f"row 2: {COLUMN}", "needs a finite number"),
    ("ens.csv", f"{COLUMN}\n25\n1e300\n", f"row 2: {COLUMN}", "less than or equal to 100000"),
    ("ens.csv", f"{COLUMN}\n25\n{'9' * 400}\n", f"row 2: {COLUMN}", "needs a finite number"),
    ("ens.csv", f'{COLUMN}\n25\n""\n', f"row 2: {COLUMN}", "needs a finite number"),
    ("ens.csv", f"{COLUMN},{COLUMN}\n25,26\n", "column 2", f"has the same name as column 1 ({COLUMN})"),
    ("ens.csv", f"\ufeff{COLUMN}\n25\nlots\n", f"row 2: {COLUMN}", "needs a finite number"),
    ("ens.csv", "gates.hoanh_mo.exit.acceptance_limt\n25\n", "column 1", f"not an input of the scenario; did you "
                                                                       f"mean {COLUMN}?"),
    ("ens.csv", "", "", "is empty"),
], ids=["a directory", "text", "1e300 for an integer", "an integer of 400 digits", "an empty cell",
        "a column twice", "a byte-order mark", "a misspelt column", "an empty file"])
def test_a_bad_ensemble(tmp_path, capsys, ensemble, csv, field, words):
    path = _variant(tmp_path, "acceptance_limit = 28", RANGE)
    path.write_text(f'ensemble = "{ensemble}"\n' + path.read_text(encoding="utf-8"), encoding="utf-8")
    if csv is not None:
        (tmp_path / ensemble).write_text(csv, encoding="utf-8")
    rc = main(["run", str(path), "--reps", "2", "--out", str(tmp_path / "out"), "--quiet"])
    file = str(path) if csv is None else str(tmp_path / ensemble)
    _assert_one_line_error(rc, capsys.readouterr().err, file, field, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"] + (["ens.csv"] if csv is not None else [])


# ------------------------------------------------------------------ replications


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a run gets as far as its first piece of work (the capacity check)."""
    def started(*args, **kwargs):
        raise AssertionError("the run started work before refusing --reps")

    monkeypatch.setattr(capacity, "check", started)


@pytest.mark.parametrize("reps", [1_000_000_000, 100_000_000])
def test_more_replications_than_allowed(tmp_path, capsys, monkeypatch, no_work, reps):
    monkeypatch.setattr(sys.modules["sim.experiments.run"], "memory_available", lambda: (1 << 50, "a machine of 1 PiB"))
    path = _variant(tmp_path, "lanes = 1", "lanes = 1")
    rc = main(["run", str(path), "--reps", str(reps), "--out", str(tmp_path / "out"), "--quiet"])
    _assert_one_line_error(rc, capsys.readouterr().err, "--reps", f"{reps:,} replications",
                           "at most 1,000,000 are allowed")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]


@pytest.mark.parametrize("args, words", [
    (["--budget", "100000000", "--reps-per-draw", "1"], ["100,000,000 replications", "at most 1,000,000 are allowed"]),
    (["--budget", "10", "--population", "10"], ["is below one generation", "at least 2 x 10 = 20 simulations, got 10"]),
], ids=["over the limit", "below one generation"])
def test_a_calibration_budget_refused_before_any_work(tmp_path, capsys, no_work, args, words):
    """calibrate --budget is a number of replications too, over the limit or not even enough for
    the prior sample and one generation (rather than run past it): refused before any work."""
    (tmp_path / "prior.toml").write_text(TINY.replace("acceptance_limit = 28", RANGE), encoding="utf-8")
    path = tmp_path / "targets.toml"
    path.write_text(TARGETS, encoding="utf-8")
    rc = main(["calibrate", str(path), *args, "--quiet"])
    _assert_one_line_error(rc, capsys.readouterr().err, "--budget", *words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prior.toml", "targets.toml"]


def test_more_replications_than_memory_holds(tmp_path, capsys, monkeypatch, no_work):
    """The results of 100 million replications of the default scenario, the calibrated baseline
    (some 120 kB each, twice that at the peak of computing the tables), would fill terabytes:
    refused before any work, naming how many fit."""
    from sim import load
    from sim.statistics.metrics import result_bytes
    from sim.experiments.run import WRITE_PEAK

    monkeypatch.setattr(sys.modules["sim.experiments.run"], "physical_memory", lambda: 24 << 30)
    monkeypatch.setattr(sys.modules["sim.experiments.run"], "cgroup_memory_limit", lambda: None)
    monkeypatch.setattr(sys.modules["sim.experiments.run"], "address_space_left", lambda: None)
    rc = main(["run", "--reps", "100000000", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    per_rep = result_bytes(load(Path(__file__).parent.parent / "calibration" / "fitted_2022.toml").nominal) * WRITE_PEAK
    need = f"{100_000_000 * per_rep / 2**40:.1f} TiB"
    fit = (12 << 30) // per_rep
    fit = fit // 10 ** (len(str(fit)) - 2) * 10 ** (len(str(fit)) - 2)
    _assert_one_line_error(rc, err, "--reps", f"100,000,000 replications of baseline_2022_calibrated need about {need}",
                           f"at most {fit:,} fit in half of this machine's 24.0 GiB")
    assert list(tmp_path.iterdir()) == []


# A command under an address-space limit (ulimit -v) of what it maps already and 1 GiB more: it
# exits 99 if the run gets as far as its first piece of work (the capacity check).
UNDER_ULIMIT = """
import os, resource, sys
from pathlib import Path
import sim.experiments.capacity, sim.cli, sim.experiments.run, sim.model.scenario, numba, pandas

def started(*args, **kwargs):
    sys.exit(99)

sim.experiments.capacity.check = started
used = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (used + (1 << 30), resource.RLIM_INFINITY))
sys.exit(sim.cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("reps, refused", [(20_000, True), (100, False)])
def test_the_replications_must_fit_the_address_space_limit(tmp_path, reps, refused):
    """Under `ulimit -v`, --reps 20,000 of the baseline (2 GiB of results, more at the peak) was let
    through on the machine's physical memory, ran, and died with a numpy MemoryError traceback."""
    script = tmp_path / "under_ulimit.py"
    script.write_text(UNDER_ULIMIT, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(script), "run", "--reps", str(reps), "--out", str(tmp_path / "out"),
                           "--quiet"], capture_output=True, text=True, timeout=300)
    if refused:
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert f"--reps: {reps:,} replications" in proc.stderr
        assert "left of this process's address-space limit (ulimit -v)" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 99, proc.stderr  # let through, to the first piece of work
    assert not (tmp_path / "out").exists()


def test_running_out_of_memory_all_the_same_is_one_line_and_nothing_written(tmp_path, capsys, monkeypatch):
    """Should the estimate fall short, a failed allocation (numpy's MemoryError) ends the command
    with one line, not a traceback, and no results."""
    import sim.outputs.results

    def no_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 3.2 GiB for an array")

    monkeypatch.setattr(sim.outputs.results, "write_large_csv", no_memory)
    path = _variant(tmp_path, "lanes = 1", "lanes = 1")
    rc = main(["run", str(path), "--reps", "2", "--workers", "1", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("bordersim: error: ran out of memory ("), err
    assert "run fewer replications" in err
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]


@pytest.mark.parametrize("cgroup, files, limit", [
    ("0::/user.slice/job\n", {"user.slice/job/memory.max": "max\n", "user.slice/memory.max": "4294967296\n"}, 4 << 30),
    ("4:memory:/docker/abc\n1:cpu:/docker/abc\n", {"memory/memory.limit_in_bytes": "9223372036854771712\n",
                                                    "memory/docker/abc/memory.limit_in_bytes": "2147483648\n"}, 2 << 30),
    ("0::/\n", {"memory.max": "max\n"}, None),
], ids=["cgroup v2, a parent's limit", "cgroup v1", "no limit"])
def test_the_control_groups_memory_limit_is_read(tmp_path, cgroup, files, limit):
    from sim.experiments.run import cgroup_memory_limit

    (tmp_path / "cgroup").write_text(cgroup, encoding="utf-8")
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text, encoding="utf-8")
    assert cgroup_memory_limit(tmp_path / "cgroup", tmp_path / "fs") == limit


@pytest.mark.slow
def test_the_write_peak_covers_computing_the_tables():
    """check_reps counts WRITE_PEAK bytes per byte of results held for a run that writes its
    tables: the most memory computing them takes (over the results, per replication) must stay
    within it, measured on the baseline."""
    import tracemalloc

    from sim import load, run
    from sim.statistics.metrics import result_bytes
    from sim.experiments.run import WRITE_PEAK

    scen = load(Path(__file__).parent.parent / "calibration" / "fitted_2022.toml")
    peaks = {}
    for reps in (40, 120):
        result = run(scen, reps=reps, workers=1, progress=False)
        tracemalloc.start()
        for table in ("summary", "per_replication", "daily", "queue_by_hour", "time_in_system_hist"):
            getattr(result, table)
        peaks[reps] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    per_rep = (peaks[120] - peaks[40]) / 80 + result_bytes(scen.nominal)  # the tables' and the results'
    assert per_rep <= WRITE_PEAK * result_bytes(scen.nominal), per_rep / result_bytes(scen.nominal)


def test_the_python_api_refuses_too_many_replications_before_any_work(no_work):
    from sim import BordersimError, load, run

    with pytest.raises(BordersimError, match=r"1,000,000,000 replications .*at most [0-9,]+ (are allowed|fit)"):
        run(load(Path(__file__).parent / "data" / "tiny.toml"), reps=10**9)


def test_result_size_estimate_matches_the_memory_a_run_holds():
    """The --reps limit rests on result_bytes: it must be close to what a run holds per
    replication, the results as they arrive from the workers (a pickled chunk) and the
    per-replication table."""
    import pickle
    import tracemalloc

    from sim import load
    from sim.statistics.metrics import per_replication, result_bytes
    from sim.experiments.run import run_replication

    scen = load(Path(__file__).parent / "data" / "small_2022.toml")
    chunk = pickle.dumps([run_replication(scen, 1, i) for i in range(10)])
    tracemalloc.start()
    try:
        results = [r for _ in range(4) for r in pickle.loads(chunk)]
        table = per_replication(results)
        held = tracemalloc.get_traced_memory()[0] / len(results)
    finally:
        tracemalloc.stop()
    assert len(table) and 0.8 < result_bytes(scen.nominal) / held < 1.25, held


# ------------------------------------------------------------------ warnings


def test_python_warnings_reach_the_terminal_as_one_line_each(tmp_path, capsys, monkeypatch):
    """A numpy or library warning during a command prints 'bordersim: warning: ...', not the
    raw 'file:line: RuntimeWarning: ...' form with its source line."""
    import warnings

    import numpy as np

    import sim.cli

    def noisy(args):
        np.array([1e308]) * 10  # numpy: overflow encountered in multiply
        warnings.warn("a library's\nwarning", UserWarning)
        return 0

    monkeypatch.setattr(sim.cli, "_cmd_validate", noisy)
    assert main(["validate", "any.toml"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines() == ["bordersim: warning: overflow encountered in multiply",
                                "bordersim: warning: a library's warning"], err


def test_extends_cycle(tmp_path, capsys):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\nname = "a"\n', encoding="utf-8")
    (tmp_path / "b.toml").write_text('extends = "a.toml"\nname = "b"\n', encoding="utf-8")
    rc = main(["validate", str(tmp_path / "a.toml")])
    err = capsys.readouterr().err
    assert rc == 2 and "extends" in err and "cycle" in err and "a.toml -> b.toml -> a.toml" in err


def test_missing_file(tmp_path, capsys):
    rc = main(["run", str(tmp_path / "nowhere.toml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "nowhere.toml" in err and "not found" in err
    assert not (tmp_path / "out").exists()


def test_missing_extends_parent(tmp_path, capsys):
    path = tmp_path / "child.toml"
    path.write_text('extends = "parent.toml"\nname = "child"\n', encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "child.toml: extends: file not found" in err


def test_overload_allowed_reports_the_growing_backlog(tmp_path, capsys):
    path = _variant(tmp_path, "demand = {truck = 12}", "demand = {truck = 60}")
    out = tmp_path / "out"
    rc = main(["run", str(path), "--reps", "2", "--out", str(out), "--quiet", "--no-plots", "--allow-overload"])
    err = capsys.readouterr().err
    assert rc == 0 and "warning" in err and "unstable load" in err
    import pandas as pd

    s = pd.read_csv(out / "summary.csv", keep_default_na=False)
    backlog = s[(s.gate == "hoanh_mo") & (s.direction == "exit") & (s.metric == "in_system_end")]["mean"].item()
    assert backlog > 100  # 60 a day against 28 accepted for a week


def test_console_script_exit_code_and_no_traceback(tmp_path):
    path = _variant(tmp_path, "lanes = 1", "lanes = 0")
    proc = subprocess.run(
        [sys.executable, "-m", "sim.cli", "run", str(path), "--out", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "lanes" in proc.stderr


@pytest.mark.parametrize("argv, field", [(["run", "--reps", "0"], "--reps"), (["run", "--reps", "-5"], "--reps"),
                                         (["compare", "--reps", "abc", "a.toml", "b.toml"], "--reps"),
                                         (["sweep", "--nonsense"], "--nonsense"), (["fly"], "fly")])
def test_bad_command_line_value(capsys, argv, field):
    # one line naming the option and what is allowed, as every other bad input: no usage block
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and field in err and err.startswith("bordersim"), err


# ------------------------------------------------------------------ files that are not what a field says

SECRET = "s3cr3t-token-4f9a"  # a value that must never reach an error line


@pytest.mark.parametrize("field", ["ensemble", "extends"])
def test_an_error_never_quotes_a_file_a_field_points_at(tmp_path, field):
    """`ensemble` or `extends` naming a file of someone's (the process's environment, a file of
    tokens): the error names the file and what is wrong, and quotes none of its text."""
    (tmp_path / "tokens.txt").write_text(f"GITHUB_TOKEN={SECRET}\nAWS_KEY,{SECRET}\n{SECRET}\n", encoding="utf-8")
    for target in ("/proc/self/environ", str(tmp_path / "tokens.txt")):
        path = tmp_path / "bad.toml"
        head = f'ensemble = "{target}"\n' if field == "ensemble" else f'extends = "{target}"\n'
        body = TINY.replace("acceptance_limit = 28", RANGE) if field == "ensemble" else ""
        path.write_text(head + body, encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "sim.cli", "validate", str(path)], capture_output=True, text=True,
                              timeout=120, env=dict(os.environ, BORDERSIM_TEST_SECRET=SECRET))
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert SECRET not in proc.stderr and "TOKEN" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("field", ["ensemble", "extends"])
def test_a_pipe_or_device_is_refused_without_waiting(tmp_path, capsys, field):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    path = tmp_path / "bad.toml"
    head = f'ensemble = "{fifo}"\n' if field == "ensemble" else f'extends = "{fifo}"\n'
    path.write_text(head + (TINY.replace("acceptance_limit = 28", RANGE) if field == "ensemble" else ""),
                    encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "sim.cli", "validate", str(path)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "not a regular file" in proc.stderr, proc.stderr


def test_a_byte_order_mark_is_accepted(tmp_path, capsys):
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + TINY.encode("utf-8"))
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err


def test_extends_through_a_symlink_loop_says_so(tmp_path, capsys):
    os.symlink("loop.toml", tmp_path / "loop.toml")
    os.symlink("nowhere.toml", tmp_path / "dangling.toml")
    path = tmp_path / "child.toml"
    for parent, words in (("loop.toml", "is a loop of symbolic links"),
                          ("dangling.toml", "is a symbolic link to a file that does not exist")):
        path.write_text(f'extends = "{parent}"\nname = "child"\n', encoding="utf-8")
        assert main(["validate", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"child.toml: extends: {tmp_path / parent} {words}" in err, err


def test_an_option_a_command_does_not_take_points_to_that_command_s_help(capsys):
    """`bordersim compare ... --timings` (an option of run's alone) is refused in one line that
    sends the user to `bordersim compare --help`, where the options of compare are listed."""
    with pytest.raises(SystemExit) as stop:
        main(["compare", "baseline_2022", "faster_procedures", "--timings"])
    rc, err = stop.value.code, capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "unrecognized arguments: --timings" in err and "(see 'bordersim compare --help')" in err, err
