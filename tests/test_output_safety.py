"""Outputs never destroy what bordersim did not write; writes are whole, leave no debris after a
kill, and concurrent writers into one folder take turns."""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim import load, run, write_results
from sim.cli import main
from sim.experiments.run import RunResult

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "tests" / "data" / "tiny.toml"
TABLES = {"summary.csv", "per_replication.csv", "daily.csv", "queue_by_hour.csv", "time_in_system_hist.csv",
          "metadata.json", "monthly.csv", "per_replication_monthly.csv",
          "scenario_files"}  # scenario_files/: the scenario's files as the run read them
REPORT = {"report.html", ".bordersim-files.json"}  # the report, listed in the folder's manifest of written files
MARKER = ".bordersim"  # the documented marker (spelt out: these tests also run on code without sim.base.outdir)
LANES = "gates.hoanh_mo.exit.stages.customs.lanes"


@pytest.fixture(scope="module")
def results() -> tuple[RunResult, RunResult]:
    """Two small runs that differ (seeds 1 and 2), to tell apart whose files a folder holds."""
    scen = load(TINY)
    return tuple(run(scen, reps=2, seed=seed, workers=1, progress=False) for seed in (1, 2))


def _tree(root: Path) -> dict[str, str]:
    """Every entry below root (hidden ones included) with its type and, for files, its SHA-256."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "link " + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def _siblings(out: Path) -> list[str]:
    """Temporary folders of writers into ``out`` left beside it."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A copy of the repository's data folders, the current directory while the test runs."""
    copy = tmp_path / "repo"
    for sub in ("scenarios", "results", "calibration", "tests/data"):
        shutil.copytree(ROOT / sub, copy / sub, symlinks=True)
    monkeypatch.chdir(copy)
    return copy


# (what, scenario name (None: tiny's own), --out (None: the default), words the error must contain)
DATA_LOSS = [
    ("out is the scenarios folder", None, "scenarios", ["scenarios", "not written by bordersim"]),
    ("out is an existing file", None, "scenarios/baseline_2022.toml", ["baseline_2022.toml", "not a folder"]),
    ("out is results itself", None, "results", ["results", "not written by bordersim"]),
    ("out is a user's folder", None, "mine", ["mine", "not written by bordersim"]),
    ("out is a link to a folder", None, "link_to_scenarios", ["link_to_scenarios", "symbolic link"]),
    ("out is below a file", None, "scenarios/baseline_2022.toml/x", ["cannot be written", "toml is not a folder"]),
    ("name is empty", "", None, ["name", "not a plain name"]),
    ("name climbs out of results", "../scenarios", None, ["name", "'../scenarios'", "not a plain name"]),
    ("name is absolute", "ABSOLUTE", None, ["name", "not a plain name"]),
    ("name is .", ".", None, ["name", "not a plain name"]),
    ("name is ..", "..", None, ["name", "not a plain name"]),
    ("name is hidden", ".results", None, ["name", "not a plain name"]),
    ("name of the default out is a user's folder", "mine_too", None, ["results/mine_too", "not written by bordersim"]),
    ("out is inside a results folder", None, "results/examples/baseline_2022_calibrated/again",
     ["is inside results/examples/baseline_2022_calibrated", "holds the results of a bordersim run"]),
]


@pytest.mark.parametrize("what,name,out,words", DATA_LOSS, ids=[c[0] for c in DATA_LOSS])
def test_nothing_bordersim_did_not_write_is_replaced(repo, tmp_path, capsys, what, name, out, words):
    (repo / "mine").mkdir()
    (repo / "mine" / "notes.txt").write_text("my own notes\n", encoding="utf-8")
    (repo / "results" / "mine_too").mkdir()
    (repo / "results" / "mine_too" / "draft.md").write_text("a draft\n", encoding="utf-8")
    (repo / "link_to_scenarios").symlink_to("scenarios")
    absolute = tmp_path / "elsewhere"
    scenario = "tests/data/tiny.toml"
    if name is not None:
        name = str(absolute) if name == "ABSOLUTE" else name
        text = TINY.read_text(encoding="utf-8").replace('name = "tiny"', f"name = {json.dumps(name)}", 1)
        scenario = "tests/data/renamed.toml"
        (repo / scenario).write_text(text, encoding="utf-8")
    before = _tree(tmp_path)
    args = ["run", scenario, "--reps", "2", "--workers", "1", "--quiet"] + (["--out", out] if out else [])
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("bordersim: error: "), err
    assert all(w in err for w in words), err
    if "not a plain name" in words:
        assert scenario in err  # the file whose field is wrong
    assert _tree(tmp_path) == before  # every file byte for byte, nothing new anywhere
    assert not absolute.exists()


def test_rerun_replaces_its_own_results_and_says_so(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(out)]
    assert main(args + ["--seed", "1"]) == 0
    assert "replaced" not in capsys.readouterr().out
    first = (out / "summary.csv").read_bytes()
    assert main(args + ["--seed", "2"]) == 0
    assert capsys.readouterr().out.strip() == f"replaced earlier results in {out}/"
    assert (out / "summary.csv").read_bytes() != first
    assert json.loads((out / "metadata.json").read_text(encoding="utf-8"))["seed"] == 2
    assert {p.name for p in out.iterdir()} == TABLES | REPORT | {MARKER}
    assert _siblings(out) == []


def test_an_empty_folder_is_used_and_becomes_bordersims(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    args = ["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(out)]
    assert main(args) == 0
    assert "replaced" not in capsys.readouterr().out  # there was nothing to replace
    assert {p.name for p in out.iterdir()} == TABLES | REPORT | {MARKER}
    marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    assert marker["written_by"] == "bordersim" and marker["kind"] == "run"
    assert main(args) == 0
    assert "replaced earlier results" in capsys.readouterr().out


def test_the_curated_example_can_be_rewritten_as_documented(repo, capsys):
    # results/README.md: bordersim run --reps 20 --out results/examples/baseline_2022_calibrated
    out = "results/examples/baseline_2022_calibrated"
    assert main(["run", "tests/data/tiny.toml", "--reps", "2", "--workers", "1", "--quiet", "--out", out]) == 0
    assert capsys.readouterr().out.strip() == f"replaced earlier results in {out}/"


@pytest.mark.parametrize("umask, folder, file", [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_results_follow_the_umask(tmp_path, results, umask, folder, file):
    earlier = os.umask(umask)
    try:
        out = write_results(results[0], tmp_path / "out", make_plots=True)
    finally:
        os.umask(earlier)
    assert out.stat().st_mode & 0o777 == folder
    for p in out.rglob("*"):
        assert p.stat().st_mode & 0o777 == (folder if p.is_dir() else file), p.name


# A writer that stops mid-write, in a process of its own: the test kills it there.
STUCK_WRITER = """
import os, pickle, signal, sys, time
from pathlib import Path
import sim.outputs.plots
from sim.cli import main
from sim.outputs.results import write_results

how, out, started = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])

def stuck(*args, **kwargs):  # the tables are written, the plots not yet
    started.touch()
    time.sleep(600)

if how == "between renames":  # no renameat2: the fallback's two renames, and a kill between them
    try:
        import sim.base.outdir
        sim.base.outdir._renameat2 = None
    except ImportError:  # code that has only the renames
        pass
    rename = os.rename

    def rename_then_die(src, dst):
        rename(src, dst)
        if Path(src) == out:  # the earlier results have moved away; the new ones are not in
            started.touch()
            os.kill(os.getpid(), signal.SIGKILL)

    os.rename = rename_then_die
else:
    sim.outputs.plots.queue_by_hour = stuck
if how == "cli":
    sys.exit(main(["run", sys.argv[4], "--reps", "2", "--workers", "1", "--quiet", "--out", str(out)]))
write_results(pickle.loads(Path(sys.argv[4]).read_bytes()), out)
"""


def _stuck_writer(tmp_path: Path, how: str, out: Path, last_arg: str) -> subprocess.Popen:
    """Start STUCK_WRITER and wait until it is where the test stops it."""
    script = tmp_path / "stuck_writer.py"
    script.write_text(STUCK_WRITER, encoding="utf-8")
    started = tmp_path / f"started-{how.replace(' ', '_')}"
    proc = subprocess.Popen([sys.executable, str(script), how, str(out), str(started), last_arg],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 300
    while not started.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the writer did not reach the point to stop at: {proc.communicate()}")
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("how", ["mid-write", "between renames"])
def test_a_kill_leaves_no_debris_after_a_rerun(tmp_path, results, how):
    first, second = results
    out = write_results(first, tmp_path / "out", make_plots=False)
    earlier = (out / "summary.csv").read_bytes()
    pickled = tmp_path / "result.pickle"
    pickled.write_bytes(pickle.dumps(second))
    proc = _stuck_writer(tmp_path, how, out, str(pickled))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = _siblings(out)
    if how == "mid-write":
        assert len(left) == 1 and "summary.csv" in os.listdir(out.parent / left[0])  # a partial run
        assert (out / "summary.csv").read_bytes() == earlier  # the earlier results are still whole
    else:  # the earlier results moved aside, the new ones not yet in
        assert not out.exists() and len(left) == 2
    write_results(second, out, make_plots=False)
    assert _siblings(out) == []
    assert {p.name for p in out.iterdir()} == TABLES | REPORT | {MARKER}
    assert json.loads((out / "metadata.json").read_text(encoding="utf-8"))["seed"] == second.seed


def test_sigterm_during_a_run_removes_the_temporary_folder(tmp_path):
    out = tmp_path / "out"
    proc = _stuck_writer(tmp_path, "cli", out, str(TINY))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated; no results written" in err, err
    assert "Traceback" not in err
    assert _siblings(out) == [] and not out.exists()


def test_debris_is_removed_only_if_dead_and_ours(tmp_path, results):
    out = tmp_path / "out"
    dead_ours = tmp_path / ".out.tmp-0000000a"  # a killed writer's: marker, partial tables
    dead_ours.mkdir()
    (dead_ours / MARKER).write_text('{"written_by": "bordersim", "kind": "run"}\n', encoding="utf-8")
    (dead_ours / "summary.csv").write_text("gate\n", encoding="utf-8")
    dead_empty = tmp_path / ".out.old-0000000b"  # killed before anything went in
    dead_empty.mkdir()
    not_ours = tmp_path / ".out.tmp-0000000c"  # no marker: someone else's, whatever its name
    not_ours.mkdir()
    (not_ours / "thesis.tex").write_text("\\chapter{}\n", encoding="utf-8")
    write_results(results[0], out, make_plots=False)
    assert _siblings(out) == [not_ours.name]
    assert (not_ours / "thesis.tex").exists()
    assert {p.name for p in out.iterdir()} == TABLES | REPORT | {MARKER}


def test_a_live_writers_temporary_refuses_another_writer(tmp_path, results):
    """A writer of ``out`` holds the flock of its temporary beside it until its swap: another
    writer is refused meanwhile, with one line, and touches nothing."""
    from sim.base.errors import OutputError

    out = write_results(results[0], tmp_path / "out", make_plots=False)
    live = tmp_path / ".out.tmp-0000000d"  # a live writer's: it holds the flock
    live.mkdir()
    (live / MARKER).write_text('{"written_by": "bordersim", "kind": "run"}\n', encoding="utf-8")
    before = _tree(tmp_path)
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(OutputError, match="another bordersim command is using it now"):
            write_results(results[1], out, make_plots=False)
        assert _tree(tmp_path) == before
    finally:
        os.close(fd)
    write_results(results[1], out, make_plots=False)  # its writer gone: the next one writes, and removes it
    assert _siblings(out) == []
    assert json.loads((out / "metadata.json").read_text(encoding="utf-8"))["seed"] == results[1].seed


def test_a_file_is_replaced_whole_and_dead_temporaries_go(tmp_path):
    from sim.base.errors import OutputError
    from sim.base.outdir import atomic_file

    path = tmp_path / "report.md"
    dead = tmp_path / ".report.md.tmp-0000000e"  # a killed writer's (nobody holds its flock)
    dead.write_text("half a rep", encoding="utf-8")
    with atomic_file(path) as tmp:
        tmp.write_text("first\n", encoding="utf-8")
    with atomic_file(path) as tmp:  # bordersim wrote it: replaced
        tmp.write_text("second\n", encoding="utf-8")
    assert path.read_text(encoding="utf-8") == "second\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bordersim-files.json", "report.md"]
    path.write_text("second, with my edits\n", encoding="utf-8")  # now the user's work
    with pytest.raises(OutputError, match="not written by bordersim"):
        with atomic_file(path) as tmp:
            tmp.write_text("third\n", encoding="utf-8")
    assert path.read_text(encoding="utf-8") == "second, with my edits\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".bordersim-files.json", "report.md"]


# ------------------------------------------------------------------ what a user owns in a results folder

USERS_FILES = [
    ("a note beside the tables", lambda out: (out / "notes.md").write_text("my notes\n", encoding="utf-8"),
     "notes.md, which bordersim did not write"),
    ("a folder of the user's", lambda out: ((out / "sub").mkdir(), (out / "sub" / "k.txt").write_text("k\n")),
     "sub/, a folder bordersim did not make"),
    ("an edited table", lambda out: (out / "summary.csv").write_text("gate\nmine\n", encoding="utf-8"),
     "summary.csv, changed since bordersim wrote it"),
    ("an edited report", lambda out: (out / "report.html").write_text(
        (out / "report.html").read_text(encoding="utf-8").replace("</h1>", " (my notes)</h1>", 1), encoding="utf-8"),
     "report.html, changed since bordersim wrote it"),
    ("a link", lambda out: (out / "data.csv").symlink_to(out / "summary.csv"), "data.csv, which bordersim did not write"),
]


@pytest.mark.parametrize("what,make,words", USERS_FILES, ids=[c[0] for c in USERS_FILES])
def test_a_rerun_never_deletes_or_replaces_a_users_file(tmp_path, capsys, what, make, words):
    out = tmp_path / "out"
    args = ["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(out)]
    assert main(args) == 0
    make(out)
    before = _tree(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"bordersim: error: {out}: holds {words}"), err
    assert _tree(tmp_path) == before  # the user's file, the results, nothing new beside them


def test_bordersims_own_files_are_listed_and_replaced(tmp_path, capsys):
    """Every file a run writes is listed with its SHA-256; a rerun replaces a folder holding only
    those, unchanged, and the report that `bordersim report` rewrote there since."""
    out = tmp_path / "out"
    args = ["run", str(TINY), "--reps", "2", "--workers", "1", "--quiet", "--out", str(out)]
    assert main(args) == 0
    listed = json.loads((out / ".bordersim-files.json").read_text(encoding="utf-8"))["files"]
    assert set(listed) == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {
        MARKER, ".bordersim-files.json"}
    assert all(hashlib.sha256((out / name).read_bytes()).hexdigest() == sha for name, sha in listed.items())
    assert main(["report", str(out)]) == 0  # a new report.html, not as listed: it certifies itself
    capsys.readouterr()
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == f"replaced earlier results in {out}/"


def test_a_folder_written_before_files_were_listed_is_replaced_but_not_a_users_file(tmp_path, capsys):
    """A marker without "files" (an earlier bordersim's): the names such a folder held are
    bordersim's; anything else is the user's."""
    out = tmp_path / "out"
    args = ["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(out)]
    assert main(args) == 0
    (out / MARKER).write_text('{"written_by": "bordersim", "kind": "run", "version": "0.1.0"}\n', encoding="utf-8")
    (out / ".bordersim-files.json").unlink()
    shutil.rmtree(out / "scenario_files")  # not kept then either
    for name in ("monthly.csv", "per_replication_monthly.csv"):  # nor written
        (out / name).unlink()
    (out / "notes.md").write_text("mine\n", encoding="utf-8")
    assert main(args) == 2
    assert "holds notes.md, which bordersim did not write" in capsys.readouterr().err
    (out / "notes.md").unlink()
    assert main(args) == 0
    assert "replaced earlier results" in capsys.readouterr().out


# A sweep that stops once its folder is made and held, until the test lets it go on.
HELD_SWEEP = """
import sys, time
from pathlib import Path
import sim.outputs.sweep
from sim.cli import main

out, started, go = sys.argv[1:4]
run_points = sim.outputs.sweep.run_points

def waiting(*args, **kwargs):
    Path(started).touch()
    while not Path(go).exists():
        time.sleep(0.05)
    return run_points(*args, **kwargs)

sim.outputs.sweep.run_points = waiting
sys.exit(main(["sweep", sys.argv[4], "--param", "gates.hoanh_mo.exit.stages.customs.lanes=1,2", "--reps", "2",
               "--workers", "1", "--no-plots", "--quiet", "--out", out]))
"""


def test_a_running_sweep_is_never_replaced(tmp_path, capsys):
    out = tmp_path / "sweep"
    script = tmp_path / "held_sweep.py"
    script.write_text(HELD_SWEEP, encoding="utf-8")
    started, go = tmp_path / "started", tmp_path / "go"
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(started), str(go), str(TINY)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        before = _tree(out)
        for command in (["run", str(TINY)], ["compare", str(TINY), str(TINY), "--set", f"{LANES}=2"]):
            rc = main(command + ["--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(out)])
            err = capsys.readouterr().err.strip()
            assert rc == 2 and len(err.splitlines()) == 1, err
            assert "holds the results of a bordersim sweep: only a sweep replaces them" in err, err
        assert _tree(out) == before
    finally:
        go.touch()
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert (out / "sweep.csv").exists()


def test_a_folder_is_replaced_only_by_a_command_of_its_kind(tmp_path, capsys):
    kinds = {"run": ["run", str(TINY)],
             "compare": ["compare", str(TINY), str(TINY), "--set", "gates.hoanh_mo.exit.stages.customs.lanes=2"],
             "sweep": ["sweep", str(TINY), "--param", "gates.hoanh_mo.exit.stages.customs.lanes=1,2"]}
    common = ["--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out"]
    for kind, command in kinds.items():
        assert main(command + common + [str(tmp_path / kind)]) == 0
    capsys.readouterr()
    for kind, command in kinds.items():
        for other in kinds:
            if other == kind:
                continue
            before = _tree(tmp_path / other)
            assert main(command + common + [str(tmp_path / other)]) == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and (f"the results of a bordersim {other}" in err
                                                   or f"holds a bordersim {other}, not a sweep" in err), err
            assert _tree(tmp_path / other) == before


def test_a_second_run_is_refused_while_the_first_writes(tmp_path, capsys):
    """A run holds its folder from its start: another run into it is refused at once, one line
    and nothing touched, rather than replacing it under the first."""
    out = tmp_path / "out"
    proc = _stuck_writer(tmp_path, "cli", out, str(TINY))
    try:
        before = _tree(tmp_path)
        rc = main(["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert "another bordersim command is using it now" in err, err
        assert _tree(tmp_path) == before
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    assert main(["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(out)]) == 0


@pytest.mark.parametrize("command", [["run", str(TINY)], ["compare", str(TINY), str(TINY), "--set", f"{LANES}=2"],
                                     ["sweep", str(TINY), "--param", "gates.hoanh_mo.exit.stages.customs.lanes=1,2"]],
                         ids=["run", "compare", "sweep"])
def test_an_empty_out_is_refused(repo, capsys, command):
    before = _tree(repo)
    assert main(command + ["--reps", "2", "--workers", "1", "--quiet", "--out", ""]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "bordersim: error: --out: is empty; give a folder (or file) name, e.g. results/my_run", err
    assert _tree(repo) == before


def test_a_marker_that_is_a_link_makes_no_results_folder(tmp_path, capsys):
    """A folder whose marker is a symbolic link (to a real results folder's marker) is nobody's
    results for every command alike (one reader of the marker): a run refuses to replace it and
    the report refuses to read it, writing nothing in it."""
    run_dir = tmp_path / "run"
    assert main(["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(run_dir)]) == 0
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / MARKER).symlink_to(run_dir / MARKER)
    shutil.copy(run_dir / "summary.csv", linked / "summary.csv")
    before = _tree(tmp_path)
    capsys.readouterr()
    assert main(["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(linked)]) == 2
    assert "was not written by bordersim" in capsys.readouterr().err
    assert main(["report", str(linked)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not a bordersim results folder" in err, err
    assert _tree(tmp_path) == before


def test_report_o_leaves_nothing_but_the_report_and_knows_its_own(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(run_dir)]) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("my notes\n", encoding="utf-8")
    page = mine / "page.html"
    assert main(["report", str(run_dir), "-o", str(page)]) == 0
    assert sorted(p.name for p in mine.iterdir()) == ["notes.md", "page.html"]
    assert main(["report", str(run_dir), "-o", str(page)]) == 0  # its own page, unchanged: replaced
    assert sorted(p.name for p in mine.iterdir()) == ["notes.md", "page.html"]
    page.write_text(page.read_text(encoding="utf-8").replace("<h1>", "<h1>My ", 1), encoding="utf-8")
    capsys.readouterr()
    assert main(["report", str(run_dir), "-o", str(page)]) == 2
    assert "not written by bordersim" in capsys.readouterr().err
    assert main(["report", str(run_dir), "-o", ""]) == 2
    assert "-o: is empty" in capsys.readouterr().err
    other = tmp_path / "other"
    assert main(["run", str(TINY), "--reps", "2", "--workers", "1", "--no-plots", "--quiet", "--out", str(other)]) == 0
    before = _tree(other)
    for page in (other / "report.html", other / "scenario_files" / "page.html"):  # in another results folder
        assert main(["report", str(run_dir), "-o", str(page)]) == 2
        assert f"is inside {other}, which holds the results of a bordersim run" in capsys.readouterr().err
    assert _tree(other) == before


# ------------------------------------------------------------------ concurrent writers

WRITES = 50


def _write_many(out: str, pickled: bytes, offset: int) -> list[str]:
    """One writer process: WRITES runs into ``out``, alternating between the two results."""
    pair = pickle.loads(pickled)
    failures = []
    for i in range(WRITES):
        try:
            write_results(pair[(i + offset) % 2], out, make_plots=False)
        except Exception as exc:  # noqa: BLE001 - every failure is the finding
            failures.append(f"{type(exc).__name__}: {exc}")
    return failures


def _read_at(folder_fd: int, name: str) -> bytes:
    """A file of the folder open as ``folder_fd``, wherever that folder has moved since."""
    with os.fdopen(os.open(name, os.O_RDONLY, dir_fd=folder_fd), "rb") as fh:
        return fh.read()


def _read_consistent(out: Path, expected: dict[int, bytes]) -> str | None:
    """Read ``out`` once: None if whole and of one run (or if it changed while being read),
    else what is wrong."""
    try:
        fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return "the results folder is missing"
    try:
        try:
            names = set(os.listdir(fd))
            meta = json.loads(_read_at(fd, "metadata.json"))
            summary = _read_at(fd, "summary.csv")
            problem = None
            if not TABLES <= names <= TABLES | REPORT | {MARKER}:
                problem = f"files {sorted(names)}"
            elif summary != expected[meta["seed"]]:
                problem = f"summary.csv is not that of seed {meta['seed']}"
        except (OSError, ValueError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        try:
            same = os.stat(out).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return "the results folder is missing"
        return problem if same else None  # a folder swapped out while read tells nothing
    finally:
        os.close(fd)


@pytest.mark.slow
def test_concurrent_writers_never_mix_and_one_at_a_time_writes(tmp_path, results):
    """Four processes write into one folder fifty times each: a write either completes whole
    or is refused at once because another is writing (one line, nothing touched); a reader never
    sees a broken or mixed folder."""
    out = tmp_path / "out"
    expected = {}
    for r in results:
        expected[r.seed] = (write_results(r, out, make_plots=False) / "summary.csv").read_bytes()
    pickled = pickle.dumps(results)
    problems = []
    with multiprocessing.get_context("fork").Pool(4) as pool:
        jobs = [pool.apply_async(_write_many, (str(out), pickled, k)) for k in range(4)]
        reads = 0
        while not all(j.ready() for j in jobs):
            problem = _read_consistent(out, expected)
            reads += 1
            if problem:
                problems.append(problem)
        failures = [f for j in jobs for f in j.get()]
    refused = [f for f in failures if "another bordersim command is using it now" in f]
    assert refused == failures, f"{len(failures)} of {4 * WRITES} writes failed, e.g. {failures[:3]}"
    assert len(failures) < 4 * WRITES  # some wrote
    assert problems == [], f"{len(problems)} of {reads} reads found a broken folder, e.g. {problems[:3]}"
    assert _read_consistent(out, expected) is None
    assert _siblings(out) == []


# ------------------------------------------------------------------ calibration outputs

def _targets(path: Path, fitted: str, scenario: str = f"{ROOT}/scenarios/baseline_2022.toml",
             observed: int = 95370, period: str = "[2022-01-01, 2022-11-30]", tolerance: float = 0.02) -> Path:
    path.write_text(
        f'scenario = "{scenario}"\nfitted = "{fitted}"\n\n[[targets]]\n'
        f'name = "crossings_total"\nobserved = {observed}\nsource = "test"\nperiod = {period}\n'
        f"tolerance = {tolerance}\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("fitted, users_file", [
    ("../scenarios/baseline_2022.toml", "scenarios/baseline_2022.toml"),  # the scenario itself
    ("fitted_mine.toml", "calibration/report_mine.md"),  # a user's file where the report goes
    ("fitted_2022.toml", "calibration/fitted_2022_ensemble.csv"),  # bordersim's file, edited since
], ids=["fitted is a scenario", "report is a user's file", "ensemble edited since"])
def test_calibration_never_replaces_a_file_bordersim_did_not_write(repo, capsys, fitted, users_file):
    target = repo / users_file
    if users_file.endswith(".csv"):
        target.write_bytes(target.read_bytes() + target.read_bytes().splitlines(keepends=True)[-1])
    elif not target.exists():
        target.write_text("# my notes\n", encoding="utf-8")
    targets = _targets(repo / "calibration" / "mine.toml", fitted)
    before = _tree(repo)
    rc = main(["calibrate", str(targets), "--budget", "10", "--workers", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and "mine.toml: fitted:" in err and "not written by bordersim" in err, err
    assert Path(users_file).name in err
    assert _tree(repo) == before


@pytest.mark.parametrize("fitted", ["../results/examples/baseline_2022_calibrated/fitted.toml",
                                    "../results/examples/baseline_2022_calibrated/sub/fitted.toml"])
def test_calibration_never_writes_into_a_results_folder(repo, capsys, fitted):
    """A run's folder is replaced only by a run: a targets file's `fitted` pointing into one is
    refused (bordersim wrote the folder, but a rerun would then find files it did not list)."""
    targets = _targets(repo / "calibration" / "mine.toml", fitted)
    before = _tree(repo)
    assert main(["calibrate", str(targets), "--budget", "400", "--workers", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "mine.toml: fitted:" in err, err
    assert "which holds the results of a bordersim run" in err, err
    assert _tree(repo) == before


def test_the_committed_calibration_outputs_are_bordersims():
    from sim.experiments.targets import load_targets
    from sim.outputs.calibration import check_outputs

    check_outputs(load_targets(ROOT / "calibration" / "targets_2022.toml"))  # raises if not


# ------------------------------------------------------------------ every file bordersim writes loads back

# Names and texts that CSV, JSON and TOML must quote: commas, quotes, a line break, a backslash.
AWKWARD = '''# A scenario whose names and texts hold what a writer must quote (assumption: test values only).
name = "awkward"
description = """A "quoted" description
over two lines, with commas, a backslash \\\\ and ünïcödé"""

[horizon]
start = 2022-03-01
end = 2022-03-07

[classes."truck, \\"big\\""]
priority = 1

[gates."gate, \\"one\\""]
name = "Hoành Mô, \\"the\\"\\ngate"
classes = ["truck, \\"big\\""]
hours = {default = ["07:30-11:30", "13:30-17:30"]}

[gates."gate, \\"one\\"".exit]
demand = {"truck, \\"big\\"" = 12}
acceptance_limit = {uniform = [20, 30]}

[[gates."gate, \\"one\\"".exit.stages]]
name = "customs"
lanes = 1
service_min = {dist = "lognormal", mean = 12, cv = 0.5}
'''

def _same_table(path: Path, table) -> None:
    """A CSV bordersim wrote, read back: the same text columns exactly, numbers as written (6 digits)."""
    import numpy as np
    import pandas as pd

    back = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert list(back.columns) == [str(c) for c in table.columns], path.name
    assert len(back) == len(table), path.name
    for c in table.columns:
        if table[c].dtype == object or str(table[c].dtype).startswith("str"):
            assert back[str(c)].fillna("").astype(str).tolist() == table[c].fillna("").astype(str).tolist(), (path, c)
        else:
            np.testing.assert_allclose(back[str(c)].to_numpy(float), table[c].to_numpy(float), rtol=1e-5,
                                       equal_nan=True, err_msg=f"{path.name}: {c}")


def test_every_file_bordersim_writes_loads_back(tmp_path):
    import tomllib

    from sim.experiments import calibrate as cal
    from sim.experiments.compare import compare
    from sim.outputs.calibration import write_calibration
    from sim.outputs.results import write_comparison
    from sim import sweep

    (tmp_path / "awkward.toml").write_text(AWKWARD, encoding="utf-8")
    scen = load(tmp_path / "awkward.toml")
    assert "\n" in scen.nominal.description and '"' in scen.nominal.description
    result = run(scen, reps=2, seed=1, workers=1, progress=False)
    out = write_results(result, tmp_path / "run", make_plots=False)
    for name, table in (("summary.csv", result.summary), ("per_replication.csv", result.per_replication),
                        ("daily.csv", result.daily), ("queue_by_hour.csv", result.queue_by_hour),
                        ("time_in_system_hist.csv", result.time_in_system_hist)):
        _same_table(out / name, table)
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["scenario_details"]["description"] == scen.nominal.description
    assert meta["scenario_details"]["gates"]['gate, "one"']["name"] == 'Hoành Mô, "the"\ngate'
    for name in (MARKER, ".bordersim-files.json"):
        json.loads((out / name).read_text(encoding="utf-8"))
    assert tomllib.loads((out / "scenario_files" / "awkward.toml").read_text(encoding="utf-8"))["description"] == \
        scen.nominal.description

    other = load(tmp_path / "awkward.toml", sets=['gates.gate, "one".exit.stages.customs.lanes=2'])
    cmp = compare(scen, [other.renamed("awkward.two")], reps=2, seed=1, workers=1, progress=False)
    cmp_dir = write_comparison(cmp, tmp_path / "compare", make_plots=False).out
    for name, table in (("compare.csv", cmp.table), ("summary.csv", cmp.summary), ("daily.csv", cmp.daily)):
        _same_table(cmp_dir / name, table)
    json.loads((cmp_dir / "metadata.json").read_text(encoding="utf-8"))

    swept = sweep(tmp_path / "awkward.toml", params=['gates.gate, "one".exit.acceptance_limit=20,30'], reps=2,
                  out=tmp_path / "sweep", workers=1, progress=False, make_plots=False)
    _same_table(tmp_path / "sweep" / "sweep.csv", swept.table)
    _same_table(tmp_path / "sweep" / "sensitivity.csv", swept.sensitivity)
    for name in ("sweep.json", "metadata.json"):
        json.loads((tmp_path / "sweep" / name).read_text(encoding="utf-8"))

    targets = cal.load_targets(_targets(tmp_path / "targets.toml", "fitted.toml", "awkward.toml", observed=60,
                                        period="[2022-03-01, 2022-03-07]", tolerance=0.5))
    fit = cal.calibrate(targets, population=10, generations=1, budget=200, reps_per_draw=1, workers=1, progress=False)
    written = write_calibration(fit)
    fitted = load(tmp_path / "fitted.toml")  # the TOML it wrote loads, and says what it was given
    assert fitted.name == "awkward_calibrated"
    assert fitted.nominal.description == f"{scen.nominal.description} - calibrated to crossings_total"
    assert fitted.ensemble is not None and list(fitted.ensemble.columns) == [r.name() for r in scen.ranges]
    _same_table(written[0], fit.ensemble)
