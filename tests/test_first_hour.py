"""What a new user meets in the first hour: the command installed from the wheel works in an
empty folder (run and calibrate --check), says its version, validates the baseline like run runs
it, names a misspelt gate as unknown, warns when replications outnumber a fitted ensemble's rows,
and shows its progress bar on a terminal."""

from __future__ import annotations

import csv
import io
import os
import pty
import select
import site
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from sim import load, run
from sim.cli import main
from sim.experiments.experiment import Point, design_tasks, run_design
from sim.base.outdir import version

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scenarios" / "baseline_2022.toml"
TINY = ROOT / "tests" / "data" / "tiny.toml"


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"bordersim {version()}"


def test_validate_without_a_file_checks_the_calibrated_baseline_as_run_runs_it(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no calibration/ here: the installed library's calibrated baseline
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    assert "fitted_2022.toml: ok (5 gates" in out


def test_a_scenario_by_its_library_name(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "faster_procedures", "baseline_2022_calibrated"]) == 0
    out = capsys.readouterr().out
    assert "faster_procedures.toml: ok" in out and "fitted_2022.toml: ok" in out


def test_a_name_found_nowhere_lists_the_library(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "baseline_2033"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "baseline_2033: file not found" in err and "faster_procedures" in err


def _child(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "child.toml"
    path.write_text(f'extends = "{BASELINE}"\nname = "child"\n{body}', encoding="utf-8")
    return path


def test_a_misspelt_gate_in_a_table_header_is_an_unknown_gate(capsys, tmp_path):
    child = _child(tmp_path, '[[gates.bac_luan2.exit.stages]]\nname = "customs"\nlanes = 3\n')
    assert main(["validate", str(child)]) == 2
    err = capsys.readouterr().err
    assert "required field is missing" not in err
    assert f"{child}: gates.bac_luan2: unknown gate 'bac_luan2'" in err
    assert "mong_cai, bac_luan_2, km3_4, hoanh_mo, bac_phong_sinh" in err


def test_a_misspelt_stage_is_an_unknown_stage(capsys, tmp_path):
    child = _child(tmp_path, '[[gates.bac_luan_2.exit.stages]]\nname = "custom"\nlanes = 3\n')
    assert main(["validate", str(child)]) == 2
    err = capsys.readouterr().err
    assert "unknown stage 'custom' (stages: customs, border_guard)" in err
    assert "needs service_min" in err


def _fitted(tmp_path: Path, rows: int) -> Path:
    """A tiny scenario with one uncertain input and an ensemble of ``rows`` parameter sets."""
    text = TINY.read_text(encoding="utf-8").replace("acceptance_limit = 28", "acceptance_limit = {uniform = [20, 30]}")
    path = tmp_path / "fitted.toml"
    path.write_text('ensemble = "ens.csv"\n' + text, encoding="utf-8")
    values = "\n".join(str(20 + i) for i in range(rows))
    (tmp_path / "ens.csv").write_text(f"gates.hoanh_mo.exit.acceptance_limit\n{values}\n", encoding="utf-8")
    return path


def test_more_replications_than_ensemble_rows_warn(tmp_path, capsys):
    scen = load(_fitted(tmp_path, 3))
    assert not run(scen, reps=3, workers=1, progress=False).warnings
    (warning,) = run(scen, reps=4, workers=1, progress=False).warnings
    assert "4 replications" in warning and "3 parameter sets" in warning and "reused" in warning
    assert main(["run", str(tmp_path / "fitted.toml"), "--reps", "4", "--workers", "1", "--no-plots", "--quiet",
                 "--no-report", "--out", str(tmp_path / "out")]) == 0
    assert "bordersim: warning: tiny: 4 replications" in capsys.readouterr().err


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """bordersim's wheel, built from this checkout as pip builds it for an install."""
    folder = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(ROOT)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (built,) = folder.glob("bordersim-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_ships_the_library_the_calibration_and_the_report_template(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for scenario in (ROOT / "scenarios").glob("*.toml"):
        assert f"sim/scenarios/{scenario.name}" in names
    for name in ("fitted_2022.toml", "fitted_2022_ensemble.csv", "targets_2022.toml"):
        assert f"sim/calibration/{name}" in names
    assert "sim/outputs/templates/report.html.j2" in names


def _install(wheel: Path, venv: Path) -> Path:
    """A new virtual environment with the wheel installed in it; its `bordersim` command.

    The wheel is installed alone (no checkout, no editable install) and its dependencies are
    this interpreter's: a .pth file in the new environment lists this interpreter's
    site-packages after the environment's own, so the wheel's `sim` comes first (the test
    checks it) and an editable install's hook there is not run (a .pth in a listed folder is
    not read). Installing the dependencies afresh would take a minute or more and the network
    or pip's cache; what is tested is bordersim's own files as a wheel installs them."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    theirs = [p for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    (Path(own) / "bordersim_test_dependencies.pth").write_text("\n".join(theirs) + "\n", encoding="utf-8")
    return venv / "bin" / "bordersim"


@pytest.mark.slow
def test_the_installed_wheel_runs_and_checks_the_calibration_from_an_empty_folder(wheel, tmp_path):
    """From a folder with no scenarios/ or calibration/, the command installed from the wheel
    finds the calibrated baseline, its targets and the report template in the installed package:
    `bordersim run` writes its tables, the targets' table and the report, and `bordersim
    calibrate --check` tests the installed fit against the installed targets; nothing else is
    written in the folder."""
    command = _install(wheel, tmp_path / "venv")
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = subprocess.run([str(command.with_name("python")), "-c", "import sim; print(sim.__file__)"], cwd=empty,
                           env=env, capture_output=True, text=True, timeout=120)
    package = Path(where.stdout.strip()).parent
    assert package.is_relative_to(tmp_path / "venv"), where.stdout + where.stderr  # not this checkout's sim

    ran = subprocess.run([str(command), "run", "--reps", "2", "--workers", "1"], cwd=empty, env=env,
                         capture_output=True, text=True, timeout=900)
    assert ran.returncode == 0, ran.stderr
    assert "written to results/baseline_2022_calibrated/" in ran.stdout
    out = empty / "results" / "baseline_2022_calibrated"
    written = {p.name for p in out.iterdir()}
    assert {"summary.csv", "daily.csv", "per_replication.csv", "targets.csv", "report.html"} <= written, written
    assert any(name.endswith(".png") for name in written), written
    with (out / "targets.csv").open(encoding="utf-8") as fh:
        targets = list(csv.DictReader(fh))
    assert "crossings_total" in {t["target"] for t in targets}
    assert {t["targets_file"] for t in targets} == {"targets_2022.toml"}

    checked = subprocess.run([str(command), "calibrate", "--check", "--quiet"], cwd=empty, env=env,
                             capture_output=True, text=True, timeout=900)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"targets from {package / 'calibration' / 'targets_2022.toml'}" in checked.stdout, checked.stdout
    assert "all targets hold" in checked.stdout or "all fit targets hold" in checked.stdout, checked.stdout
    assert os.listdir(empty) == ["results"] and os.listdir(empty / "results") == ["baseline_2022_calibrated"]


def test_first_and_last_tasks_are_single_replications():
    tasks = design_tasks(1, 200, 25, 2)
    assert tasks[:3] == [(0, 0, 1), (0, 1, 2), (0, 2, 27)]
    assert design_tasks(1, 3, 1, 2) == [(0, 0, 1), (0, 1, 2), (0, 2, 3)]
    for n_points, reps, size, workers in ((1, 1000, 25, 2), (10, 20, 10, 2), (3, 7, 10, 4), (40, 1, 10, 2)):
        tasks = design_tasks(n_points, reps, size, workers)
        for p in range(n_points):  # each point's replications once, in order
            own = [(a, b) for q, a, b in tasks if q == p]
            assert own[0][0] == 0 and own[-1][1] == reps and all(x[1] == y[0] for x, y in zip(own, own[1:]))
        assert [q for q, _a, _b in tasks] == sorted(q for q, _a, _b in tasks)
        assert max(b - a for _q, a, b in tasks) <= size
        # the end tapers: the last tasks are single replications, none larger than the ones before
        ends = [b - a for _q, a, b in tasks[-workers:]]
        assert ends == [1] * len(ends)
        if n_points == 1:  # after the first round, never larger than the task before
            sizes = [b - a for _q, a, b in tasks[workers:]]
            assert all(x >= y for x, y in zip(sizes, sizes[1:])), sizes


class _SlowExecutor:
    """An executor whose results come after a pause, as on a first run that compiles."""

    def map(self, fn, *iterables):
        def results():
            time.sleep(2.5)  # the first result is awaited, as from a pool's map
            for args in zip(*iterables):
                yield fn(*args)

        return results()


def test_the_progress_bar_clock_runs_before_the_first_results(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    run_design([Point(load(TINY))], 2, 1, executor=_SlowExecutor(), progress=True, desc="slow")
    text = err.getvalue()
    assert "0/2 [00:01" in text or "0/2 [00:02" in text, text


def test_the_progress_bar_appears_on_a_terminal(tmp_path):
    """Under a real pseudo-terminal (as in a terminal window or tmux) the bar is drawn."""
    main_fd, child_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli", "run", str(TINY), "--reps", "30", "--workers", "1",
                             "--no-plots", "--no-report", "--out", str(tmp_path / "out")],
                            stdin=child_fd, stdout=child_fd, stderr=child_fd, cwd=tmp_path)
    os.close(child_fd)
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main_fd], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:  # the terminal closed: the program ended
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(main_fd)
    assert proc.wait(timeout=60) == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert "tiny (fast):" in text and "30/30" in text and "rep/s" in text, text
