"""Bad input: one line on stderr naming the file and the field, exit code 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main

TINY = (Path(__file__).parent / "data" / "tiny.toml").read_text(encoding="utf-8")


def _variant(tmp_path: Path, old: str, new: str, name: str = "bad.toml") -> Path:
    assert old in TINY, old
    path = tmp_path / name
    path.write_text(TINY.replace(old, new, 1), encoding="utf-8")
    return path


CASES = [
    # (what, old text, new text, field named in the message, words the message must contain)
    ("unknown key", 'name = "Hoành Mô"', 'name = "Hoành Mô"\ncolour = "red"', "gates.hoanh_mo.colour", "allowed"),
    ("wrong type", "lanes = 1", 'lanes = "two"', "gates.hoanh_mo.exit.stages[0].lanes", "integer"),
    ("negative rate", "demand = {truck = 12}", "demand = {truck = -5}", "gates.hoanh_mo.exit.demand.truck", "greater than 0"),
    ("zero rate", "demand = {truck = 12}", "demand = {truck = 0}", "gates.hoanh_mo.exit.demand.truck", "greater than 0"),
    ("lanes below 1", "lanes = 1", "lanes = 0", "gates.hoanh_mo.exit.stages[0].lanes", "greater than or equal to 1"),
    ("fractional lanes", "lanes = 1", "lanes = 1.5", "gates.hoanh_mo.exit.stages[0].lanes", "integer"),
    ("unknown distribution", 'dist = "lognormal"', 'dist = "weibull"', "service_min", "exponential"),
    ("bad distribution parameter", "cv = 0.5", "cv = -0.5", "service_min.lognormal.cv", "greater than 0"),
    ("unknown gate", "[classes.truck]",
     '[[demand_steps]]\nfrom = 2022-03-02\nfactor = 1.2\ngates = ["nowhere"]\n\n[classes.truck]',
     "demand_steps[0].gates", "unknown gate 'nowhere'"),
    ("unknown class", "demand = {truck = 12}", "demand = {truck = 12, bus = 3}", "gates.hoanh_mo.exit.demand.bus", "not handled"),
    ("horizon ends before it starts", "end = 2022-03-07", "end = 2022-02-01", "horizon.end", "before"),
    ("bad hours", '"13:30-17:30"', '"13:30-27:30"', "gates.hoanh_mo.hours.default[1]", "24:00"),
    ("malformed range", "acceptance_limit = 28", "acceptance_limit = {uniform = [5]}", "gates.hoanh_mo.exit.acceptance_limit", "uniform"),
    ("range reaching a forbidden value", "demand = {truck = 12}", "demand = {truck = {uniform = [-2, 12]}}",
     "gates.hoanh_mo.exit.demand.truck", "greater than 0"),
    ("not TOML", "[horizon]", "[horizon", "", "TOML"),
    ("unstable load", "demand = {truck = 12}", "demand = {truck = 400}", "gates.hoanh_mo.exit.demand", "--allow-overload"),
]


@pytest.mark.parametrize("what,old,new,field,words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(tmp_path, capsys, what, old, new, field, words):
    path = _variant(tmp_path, old, new)
    out = tmp_path / "out"
    rc = main(["run", str(path), "--reps", "2", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("bordersim: error: ")
    assert str(path) in err and field in err and words in err, err
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]  # no partial output anywhere


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


def test_bad_command_line_value(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--reps", "0"])
    assert exc.value.code == 2
    assert "--reps" in capsys.readouterr().err
