"""Sweeps (sim.experiments.sweep, their folders sim.outputs.sweep) and their sensitivity indices
(sim.experiments.sensitivity).

- the same sweep gives the same table, to the byte, on 1 worker, 2 workers and a Dask
  LocalCluster of worker processes started here (whose workers run one native thread each);
- a sweep killed with SIGKILL and started again runs only the missing points, and its table
  equals an uninterrupted run's, every point exactly once;
- Sobol indices of an input that provably does nothing are 0, and the Ishigami function through
  the same path gives its known indices within their intervals;
- a grid ranks its inputs by their main effects and a Latin hypercube by Spearman's rank
  correlation, each computed again here from the sweep's own table;
- the overload warning counts the design's distinct points and names the overloaded stage;
- bad paths, specs, designs and folders are one line and exit 2, with nothing written.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.model import scenario as sc
from sim.cli import main
from sim.experiments.sensitivity import SENSITIVITY_COLUMNS, ishigami, ishigami_indices, sobol_indices
from sim import sweep
from sim.experiments.sweep import Param, derive, make_design, parse_spec
from sim.outputs.text import sweep_report

DATA = Path(__file__).parent / "data"
TINY = DATA / "tiny.toml"
SMALL = DATA / "small_2022.toml"
LANES = "gates.hoanh_mo.exit.stages.customs.lanes"
SERVICE = "gates.hoanh_mo.exit.stages.customs.service_min.mean"
LIMIT = "gates.hoanh_mo.exit.acceptance_limit"
GRID = [f"{LANES}=1,2", f"{SERVICE}=8,12,16"]


def _bordersim() -> list[str]:
    exe = Path(sys.executable).with_name("bordersim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sim.cli"]


# ------------------------------------------------------------------ specs, integers, designs


def test_specs_parse_into_values():
    assert parse_spec("x", "1,2,3").values == (1.0, 2.0, 3.0)
    assert parse_spec("x", "1, 2.5").kind == "list"
    r = parse_spec("x", "2..5")
    assert (r.kind, r.values) == ("int_range", (2.0, 3.0, 4.0, 5.0))
    i = parse_spec("x", "5:40")
    assert (i.kind, i.values) == ("interval", (5.0, 40.0))
    assert parse_spec("x", "-1e-3:2E1").values == (-0.001, 20.0)


def test_unit_values_map_each_kind():
    u = np.array([0.0, 0.2, 0.49, 0.5, 0.99, 1.0])
    assert Param("x", "list", (7.0, 9.0)).from_unit(u).tolist() == [7, 7, 7, 9, 9, 9]
    assert Param("x", "interval", (10.0, 20.0)).from_unit(u).tolist() == pytest.approx([10, 12, 14.9, 15, 19.9, 20])
    lanes = Param("x", "interval", (1.0, 3.0), integer=True).from_unit(np.linspace(0, 1, 50))
    assert set(lanes.tolist()) == {1.0, 2.0, 3.0}
    tri = Param("x", "range", (25.0, 28.0, 30.0), dist="triangular")
    q = tri.from_unit(np.array([0.0, 0.6, 1.0]))
    assert q.tolist() == pytest.approx([25.0, 28.0, 30.0])  # the mode at the share (28 - 25) / (30 - 25)
    x = tri.from_unit((np.arange(20000) + 0.5) / 20000)
    assert x.mean() == pytest.approx((25 + 28 + 30) / 3, abs=1e-3)  # the triangular distribution's mean


def test_a_plain_number_is_swept_and_integer_fields_stay_integers():
    derived, params = derive(sc.load(TINY), [(LANES, "1,2,3"), (SERVICE, "8:16")])
    assert [p.integer for p in params] == [True, False]
    assert {r.name() for r in derived.ranges} == {LANES, SERVICE}
    model = derived.model_for({LANES: 2.0, SERVICE: 9.5})
    stage = model.gates["hoanh_mo"].exit.stages[0]
    assert stage.lanes == 2 and isinstance(stage.lanes, int) and stage.service_min.mean == 9.5
    lhs = make_design("lhs", [dataclass_replace(params[0], kind="interval", values=(1.0, 3.0)), params[1]], 40, 1)
    assert set(lhs.values[:, 0]) <= {1.0, 2.0, 3.0}
    assert lhs.frame()[LANES].dtype == np.int64


def dataclass_replace(p, **kw):
    import dataclasses

    return dataclasses.replace(p, **kw)


def test_designs_have_their_sizes():
    a, b = Param("a", "interval", (0.0, 1.0)), Param("b", "list", (1.0, 2.0, 3.0))
    assert make_design("sobol", [a, b], 8, 3).points == 8 * (2 + 2)
    assert make_design("morris", [a, b], 5, 3).points == 5 * (2 + 1)
    assert make_design("lhs", [a, b], 7, 3).points == 7
    grid = make_design("grid", [b, Param("c", "list", (5.0, 6.0))], None, 3)
    assert grid.values.tolist() == [[1, 5], [1, 6], [2, 5], [2, 6], [3, 5], [3, 6]]
    same = make_design("sobol", [a, b], 8, 3)
    assert np.array_equal(same.values, make_design("sobol", [a, b], 8, 3).values)  # the seed fixes the design


# ------------------------------------------------------------------ results do not depend on the executor


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    distributed = pytest.importorskip("distributed")
    import logging

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR,
                                  local_directory=str(tmp_path_factory.mktemp("dask"))) as cluster:
        yield cluster


@pytest.mark.slow
def test_same_table_on_1_and_2_workers_and_dask(tmp_path, dask_cluster):
    kw = dict(params=GRID + [f"{LIMIT}=20,28"], reps=6, seed=11, progress=False, make_plots=False)
    one = sweep(TINY, out=tmp_path / "one", workers=1, **kw)
    two = sweep(TINY, out=tmp_path / "two", workers=2, **kw)
    dsk = sweep(TINY, out=tmp_path / "dask", scheduler="dask", address=dask_cluster.scheduler_address, **kw)
    assert dsk.scheduler == "dask" and dsk.workers == 2
    own = sweep(TINY, scheduler="dask", workers=2, **kw)  # a LocalCluster of the sweep's own, no folder
    pd.testing.assert_frame_equal(one.table, own.table, check_exact=True)
    assert one.table.shape[0] == 12 * one.table["point"].value_counts().iloc[0]
    pd.testing.assert_frame_equal(one.table, two.table, check_exact=True)
    pd.testing.assert_frame_equal(one.table, dsk.table, check_exact=True)
    for name in ("sweep.csv", "sweep.parquet"):
        data = (tmp_path / "one" / name).read_bytes()
        assert data == (tmp_path / "two" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes()
    # the points differ where their values do: lanes and service time move the mean wait
    t = one.table
    waits = t[(t.metric == "wait_mean_h") & (t.gate == "hoanh_mo") & (t.direction == "exit") & (t.stage == "")
              & (t["class"] == "")]
    assert len(waits) == 12 and waits["mean"].nunique() >= 6

    from distributed import Client

    with Client(dask_cluster.scheduler_address) as client:
        info = client.run(lambda: __import__("threadpoolctl").threadpool_info())
    assert len(info) == 2
    for pools in info.values():  # every worker of the cluster: one thread per native pool
        assert pools and all(p["num_threads"] == 1 for p in pools)


def test_without_a_folder_the_same_table(tmp_path):
    kw = dict(params=GRID, reps=4, seed=5, progress=False, make_plots=False)
    pd.testing.assert_frame_equal(sweep(TINY, workers=1, **kw).table,
                                  sweep(TINY, out=tmp_path / "s", workers=1, **kw).table, check_exact=True)


# ------------------------------------------------------------------ resume


def test_resume_runs_only_the_missing_chunks(tmp_path):
    out = tmp_path / "s"
    kw = dict(params=GRID, reps=4, seed=5, progress=False, make_plots=False, workers=1, chunk_points=2)
    first = sweep(TINY, out=out, **kw)
    assert (first.computed, first.resumed) == (6, 0)
    chunks = sorted((out / "chunks").iterdir())
    assert [c.name for c in chunks] == ["chunk-00000.parquet", "chunk-00001.parquet", "chunk-00002.parquet"]
    chunks[1].unlink()
    (out / "chunks" / ".chunk-00001.parquet.tmp-0123abcd").write_bytes(b"half a file")  # a killed writer's
    again = sweep(TINY, out=out, **kw)
    assert (again.computed, again.resumed) == (2, 4)
    pd.testing.assert_frame_equal(first.table, again.table, check_exact=True)
    assert sorted(p.name for p in (out / "chunks").iterdir()) == [c.name for c in chunks]
    done = sweep(TINY, out=out, **kw)  # nothing left to run: the tables are assembled again
    assert (done.computed, done.resumed) == (0, 6)


@pytest.mark.slow
def test_kill_and_resume_gives_the_uninterrupted_table(tmp_path):
    args = ["sweep", str(SMALL), "--param", f"{SERVICE}=6:18", "--param", f"{LIMIT}=22:35", "--design", "lhs",
            "--points", "30", "--reps", "8", "--seed", "3", "--workers", "1", "--no-plots", "--quiet"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_bordersim() + args + ["--out", str(killed)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (killed / "chunks").is_dir() and any(p.name.startswith("chunk-") for p in (killed / "chunks").iterdir()):
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    written = [p.name for p in (killed / "chunks").iterdir() if p.name.startswith("chunk-")]
    total = json.loads((killed / "sweep.json").read_text())["chunks"]
    assert 1 <= len(written) < total, "the kill should fall between the first and the last chunk"
    assert not (killed / "sweep.csv").exists()

    resumed = subprocess.run(_bordersim() + args[:-1] + ["--out", str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    done_before = int(resumed.stdout.split("resuming")[1].split(":")[1].split("points done")[0])
    assert done_before >= len(written) * 3 - 3 and done_before < 30
    assert f"{30 - done_before} points run now" in resumed.stdout

    whole = tmp_path / "whole"
    subprocess.run(_bordersim() + args + ["--out", str(whole)], check=True, capture_output=True)
    assert (killed / "sweep.csv").read_bytes() == (whole / "sweep.csv").read_bytes()
    table = pd.read_parquet(killed / "sweep.parquet")
    per_point = table.groupby("point").size()
    assert per_point.index.tolist() == list(range(30)) and per_point.nunique() == 1  # each point once, whole
    assert not table.duplicated(["point", "gate", "direction", "metric", "stage", "class"]).any()
    leftovers = [p for p in killed.rglob(".*") if p.name not in (".bordersim", ".bordersim-files.json")]
    assert leftovers == []


# ------------------------------------------------------------------ stopping a sweep on a Dask cluster

DASK_SWEEP = ["sweep", str(SMALL), "--param", f"{SERVICE}=6:18", "--design", "lhs", "--points", "60", "--reps", "8",
              "--scheduler", "dask", "--workers", "2", "--no-plots", "--quiet"]


def _dask_sweep_until_a_chunk(tmp_path: Path, out: Path):
    """A Dask sweep started by setsid (as a terminal's foreground command, Ctrl-C not
    ignored) with its own temporary folder; returned once its first chunk is written, with the
    processes it started."""
    import psutil

    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir(exist_ok=True)
    proc = subprocess.Popen(_bordersim() + DASK_SWEEP + ["--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while not (out / "chunks").is_dir() or not any(p.name.startswith("chunk-") for p in (out / "chunks").iterdir()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the sweep did not write a chunk: {proc.communicate()}")
        time.sleep(0.05)
    return proc, env, psutil.Process(proc.pid).children(recursive=True)


def _gone(processes, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while any(p.is_running() and p.status() != "zombie" for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(p.is_running() and p.status() != "zombie" for p in processes)


@pytest.mark.slow
def test_a_dask_sweep_leaves_nothing_in_the_temporary_folder(tmp_path, monkeypatch):
    """Dask's LocalCluster left dask-scratch-space/ in the system's temporary folder after every run."""
    import tempfile

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # this process's and its workers' temporary folder
    monkeypatch.setattr(tempfile, "tempdir", None)
    sweep(TINY, params=[f"{LANES}=1,2"], reps=2, scheduler="dask", workers=1, progress=False, make_plots=False)
    assert os.listdir(tmp_path) == []


@pytest.mark.slow
def test_ctrl_c_stops_a_dask_sweep_with_one_line(tmp_path):
    out = tmp_path / "s"
    proc, _env, started = _dask_sweep_until_a_chunk(tmp_path, out)
    assert started  # the cluster's worker processes
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal does on Ctrl-C: every process of the command
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [f"bordersim: interrupted; the points finished so far are kept in {out}/: "
                                        "run the same command to resume"], err
    assert _gone(started)
    assert os.listdir(tmp_path / "tmp") == []  # Dask's scratch space was in a folder of bordersim's, removed


@pytest.mark.slow
def test_a_killed_dask_sweep_leaves_no_warning_or_process_and_the_next_cleans_up(tmp_path):
    out = tmp_path / "s"
    proc, env, started = _dask_sweep_until_a_chunk(tmp_path, out)
    proc.kill()  # kill -9 of the command alone
    _out, err = proc.communicate(timeout=120)  # when the last process holding its stderr is gone
    assert proc.returncode == -signal.SIGKILL
    assert err == "", err  # not "resource_tracker: There appear to be 12 leaked semaphore objects"
    assert _gone(started)
    left = os.listdir(tmp_path / "tmp")
    assert len(left) == 1 and left[0].startswith("bordersim-dask-"), left  # the killed cluster's scratch space
    resumed = subprocess.run(_bordersim() + DASK_SWEEP + ["--out", str(out)], capture_output=True, text=True,
                             env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert os.listdir(tmp_path / "tmp") == []  # the dead one removed, and its own


# ------------------------------------------------------------------ sensitivity


def test_an_input_that_does_nothing_has_sobol_indices_of_zero(tmp_path):
    # Tiny's gate gets about 12 trucks a day over 7 days: no day can come near 1,000 crossings,
    # so a far-side limit of 1,000 to 5,000 never binds. Under common random numbers every
    # point that changes only the limit sees the very same vehicles and gives the very same
    # output, so its Sobol indices are 0 exactly (not just small).
    res = sweep(TINY, params=[f"{SERVICE}=6:18", f"{LIMIT}=1000:5000"], design="sobol", points=8, reps=3,
                out=tmp_path / "s", workers=1, progress=False, make_plots=True)
    s = res.sensitivity
    assert set(s["index"]) == {"S1", "ST"} and set(s.gate) == {"hoanh_mo", "all"}
    null = s[s.param == LIMIT]
    assert np.abs(null[["estimate", "conf"]].to_numpy()).max() < 1e-12
    live = s[(s.param == SERVICE) & (s["index"] == "ST")]
    assert (live["estimate"] > 0.3).all() and (live["rank"] == 1).all()
    written = pd.read_csv(tmp_path / "s" / "sensitivity.csv")
    assert len(written) == len(s)
    for name in ("response.png", "sensitivity.png", "sweep.csv", "sweep.parquet"):
        assert (tmp_path / "s" / name).stat().st_size > 0

    morris = sweep(TINY, params=[f"{SERVICE}=6:18", f"{LIMIT}=1000:5000"], design="morris", points=4, reps=3,
                   workers=1, progress=False, make_plots=False).sensitivity
    mu = morris[morris["index"] == "mu_star"].set_index(["gate", "param"])["estimate"]
    assert mu.xs(LIMIT, level="param").abs().max() < 1e-12
    assert (mu.xs(SERVICE, level="param") > 0).all()


def test_ishigami_indices_within_their_intervals():
    params = [Param(f"x{i}", "interval", (-math.pi, math.pi)) for i in (1, 2, 3)]
    design = make_design("sobol", params, 1024, seed=7)
    t = sobol_indices(design, ishigami(design.values), seed=7)
    s1, st = ishigami_indices()
    for i in range(3):
        assert abs(t.S1[i] - s1[i]) <= t.S1_conf[i], (i, t.S1[i], s1[i], t.S1_conf[i])
        assert abs(t.ST[i] - st[i]) <= t.ST_conf[i], (i, t.ST[i], st[i], t.ST_conf[i])
    assert t.S1_conf.max() < 0.1 and t.ST_conf.max() < 0.1  # intervals tight enough to mean something


def test_main_effects_and_rank_correlations_of_known_functions():
    from sim.experiments.sensitivity import analyse, ranking
    from sim.experiments.sweep import Output

    out = Output("y", "g")
    a, b, c = Param("a", "list", (0.0, 1.0, 2.0)), Param("b", "list", (-1.0, 1.0)), Param("c", "list", (5.0,))
    grid = make_design("grid", [a, b, c])
    x = grid.values
    # y = 2a + (a - 1) b: a's mean moves 0, 2, 4 over its levels; b acts only with a, and its
    # mean over a's levels is 2 at both of its own (its main effect is 0); c has one level
    s = analyse(grid, {out: 2 * x[:, 0] + (x[:, 0] - 1) * x[:, 1]}).set_index("param")
    assert s.loc["a", "estimate"] == pytest.approx(4.0) and s.loc["a", "rank"] == 1
    assert abs(s.loc["b", "estimate"]) < 1e-12 and s.loc["c", "estimate"] == 0
    assert set(s["index"]) == {"main_effect"} and s["conf"].isna().all()

    p, q, r = Param("p", "interval", (0.0, 1.0)), Param("q", "interval", (0.0, 1.0)), Param("r", "list", (3.0,))
    lhs = make_design("lhs", [q, p, r], 40, seed=2)
    # an output that only falls with p, however unevenly: rho = -1 exactly, and q is ranked below it
    s = analyse(lhs, {out: -np.exp(5 * lhs.values[:, 1])})
    by = s.set_index("param")
    assert by.loc["p", "estimate"] == pytest.approx(-1.0) and by.loc["p", "rank"] == 1
    assert by.loc["p", "ci_low"] == pytest.approx(-1.0) and by.loc["p", "ci_high"] == pytest.approx(-1.0)
    assert by.loc["q", "ci_low"] < 0 < by.loc["q", "ci_high"]
    assert math.isnan(by.loc["r", "estimate"]) and by.loc["r", "rank"] == 3  # one value: no rho, ranked last
    assert ranking(s, "g", "y")["param"].tolist() == ["p", "q", "r"]


def test_every_interval_stays_within_its_index_range():
    """A mean of absolute effects is at least 0, a Sobol index is within [0, 1], a correlation
    within [-1, 1]: so is every interval of them. Morris screening of a step that one trajectory
    in four crosses (mu* 3.75) printed a lower bound of -2.3, and a one-input Sobol design an ST
    interval up to 1.8. The estimate is never changed, even outside the range (Saltelli's S1 and
    Jansen's ST estimators can leave it by their noise): it is SALib's own, and said to be noise."""
    from sim.experiments.sensitivity import analyse, morris_indices
    from sim.experiments.sweep import Output

    out = Output("y", "g")
    step = [Param("a", "interval", (0.0, 1.0)), Param("b", "interval", (0.0, 1.0))]
    morris = make_design("morris", step, 4, seed=6)
    y = 10.0 * (morris.values[:, 0] > 0.9) + morris.values[:, 1]
    s = analyse(morris, {out: y}, seed=6)
    mu = s[s["index"] == "mu_star"].set_index("param")
    assert ((mu.ci_low >= 0) & (mu.ci_low <= mu.estimate) & (mu.estimate <= mu.ci_high)).all(), mu
    raw = morris_indices(morris, y, seed=6, conf_level=float(mu.loc["a", "level"])).set_index("param")
    assert mu.loc["a", "estimate"] == raw.loc["a", "mu_star"] == pytest.approx(3.75)
    assert raw.loc["a", "mu_star"] - raw.loc["a", "mu_star_conf"] < 0  # SALib's interval: estimate -+ conf
    assert mu.loc["a", "ci_low"] == 0 and mu.loc["a", "ci_high"] == raw.loc["a", "mu_star"] + raw.loc["a", "mu_star_conf"]

    one = [Param("x", "interval", (0.0, 1.0))]
    outside = 0
    for seed in range(6):
        sobol = make_design("sobol", one, 8, seed)
        s = analyse(sobol, {out: sobol.values[:, 0] ** 3 + 0.1 * np.sin(40 * sobol.values[:, 0])}, seed=seed)
        assert ((s.ci_low >= 0) & (s.ci_low <= s.ci_high) & (s.ci_high <= 1)).all(), s
        outside += int(((s.estimate < 0) | (s.estimate > 1)).sum())
        raw = sobol_indices(sobol, sobol.values[:, 0] ** 3 + 0.1 * np.sin(40 * sobol.values[:, 0]), seed=seed)
        assert s.set_index("index").loc["ST", "estimate"] == raw.ST[0]  # not cut
    assert outside > 0  # the case arises here: estimates above 1, their intervals cut at 1

    lhs = make_design("lhs", step, 6, seed=1)
    s = analyse(lhs, {out: lhs.values[:, 0] + 0.3 * lhs.values[:, 1]})
    assert ((s.ci_low >= -1) & (s.ci_high <= 1)).all()


def test_a_one_input_sobol_sweep_prints_intervals_within_0_and_1():
    res = sweep(TINY, params=[f"{SERVICE}=6:18"], design="sobol", points=8, reps=2, workers=1, progress=False,
                make_plots=False)
    s = res.sensitivity
    assert ((s.ci_low >= 0) & (s.ci_high <= 1)).all(), s
    printed = sweep_report(res)
    ends = [float(v) for part in printed.split("[")[1:] for v in part.split("]")[0].split(",")]
    assert ends and all(0 <= v <= 1 for v in ends), printed
    for _, row in s.iterrows():  # an estimate above 1 is shown as estimated, and said to be noise
        if row.estimate > 1:
            assert f"{row['index']} {row.estimate:.3f} [" in printed and "above 1: the estimator's noise" in printed


def _two_gates(tmp_path: Path) -> Path:
    """Tiny with a second gate: nothing at Km3+4 can change Hoành Mô's vehicles (their own
    arrivals, lanes and random streams), so its inputs provably do nothing to Hoành Mô's outputs."""
    path = tmp_path / "two_gates.toml"
    path.write_text(TINY.read_text(encoding="utf-8") + """
[gates.km3_4]
name = "Km3+4"
classes = ["truck"]
hours = {default = ["07:00-17:00"]}

[gates.km3_4.exit]
demand = {truck = 10}
acceptance_limit = 30

[[gates.km3_4.exit.stages]]
name = "customs"
lanes = 2
service_min = {dist = "lognormal", mean = 10, cv = 0.5}
""", encoding="utf-8")
    return path


KM3_SERVICE = "gates.km3_4.exit.stages.customs.service_min.mean"
NULL_INPUTS = [f"{KM3_SERVICE}=8:16", "gates.km3_4.exit.acceptance_limit=20:40", "gates.km3_4.exit.demand.truck=6:12",
               "gates.km3_4.exit.stages.customs.lanes=1:3"]


def test_an_input_with_no_effect_is_not_significant_on_a_small_hypercube(tmp_path, capsys):
    """Four Km3+4 inputs that provably do nothing to Hoành Mô's time in system, and Hoành Mô's
    service time, over 12 points: with seed 1, Km3+4's service time correlates with the output
    by chance (rho -0.69), and Fisher's 95 % interval alone excludes 0. Corrected for the 5
    inputs tested, it reaches 0: not significant, in the table, sensitivity.csv and the printed
    ranking; and 12 points for 5 inputs are said to be too few, once."""
    from scipy.stats import norm

    path = _two_gates(tmp_path)
    out = tmp_path / "s"
    args = ["sweep", str(path), "--param", f"{SERVICE}=6:18", *sum((["--param", p] for p in NULL_INPUTS), []),
            "--design", "lhs", "--points", "12", "--reps", "3", "--seed", "1", "--workers", "1", "--no-plots",
            "--output", "time_in_system_mean_h@hoanh_mo", "--out", str(out)]
    assert main(args) == 0
    captured = capsys.readouterr()
    sens = pd.read_csv(out / "sensitivity.csv").set_index("param")
    null = sens.loc[KM3_SERVICE]
    n = 12
    uncorrected = math.tanh(math.atanh(null.estimate) + norm.ppf(0.975) * math.sqrt(1.06 / (n - 3)))
    assert uncorrected < 0  # the 95 % interval alone excludes 0: a chance correlation, found significant
    assert null.ci_low < 0 < null.ci_high, null
    assert not null.significant
    warned = [line for line in captured.err.splitlines() if "--design lhs" in line]
    assert len(warned) == 1 and warned[0].startswith("bordersim: warning: --design lhs: 12 points are too few to "
                                                     "rank 5 inputs"), captured.err
    assert "--points 18 or more" in warned[0]
    assert null.level == pytest.approx(1 - 0.05 / 5)
    for p in NULL_INPUTS:
        assert not sens.loc[p.split("=")[0], "significant"]
    live = sens.loc[SERVICE]
    assert live.significant and live["rank"] == 1 and null["rank"] == 2
    printed = captured.out
    assert f" 2. {KM3_SERVICE}  rho {null.estimate:.3f} [" in printed
    line = next(ln for ln in printed.splitlines() if f" 2. {KM3_SERVICE}" in ln)
    assert line.endswith("not significant")
    assert not next(ln for ln in printed.splitlines() if f" 1. {SERVICE}" in ln).endswith("not significant")
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["warnings"] == [warned[0].removeprefix("bordersim: warning: ")]
    assert meta["intervals"]["inputs_tested"] == 5
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "12 points are too few to rank 5 inputs" in html and "significant (spearman)" in html


def test_designs_with_too_few_points_are_said_to_be():
    from sim.experiments.sweep import design_warning, lhs_points_needed

    params = [Param(f"x{i}", "interval", (0.0, 1.0)) for i in range(68)]
    assert lhs_points_needed(68) == 575 and lhs_points_needed(1) == lhs_points_needed(2) == 10
    said = design_warning(make_design("lhs", params, 40, 1))
    assert said.startswith("--design lhs: 40 points are too few to rank 68 inputs") and "--points 575" in said
    assert design_warning(make_design("lhs", params[:2], 10, 1)) is None
    assert "--points 10 or more" in design_warning(make_design("lhs", params[:1], 5, 1))
    assert "base N of 16 is too small" in design_warning(make_design("sobol", params[:3], 16, 1))
    assert design_warning(make_design("sobol", params[:3], 32, 1)) is None
    assert "4 trajectories are too few" in design_warning(make_design("morris", params[:3], 4, 1))
    assert design_warning(make_design("morris", params[:3], None, 1)) is None  # the defaults are enough
    assert design_warning(make_design("sobol", params[:3], None, 1)) is None


def _main_rows(table: pd.DataFrame, metric: str, gate: str) -> pd.DataFrame:
    t = table[(table.metric == metric) & (table.gate == gate) & (table.direction == "all") & (table.stage == "")
              & (table["class"] == "")]
    return t.sort_values("point")


def test_a_grid_ranks_its_inputs_by_their_main_effects(tmp_path):
    # Tiny's far-side limit of 1,000 or 5,000 a day never binds (about 12 trucks a day), so
    # under common random numbers its two levels give the very same outputs: a main effect of
    # exactly 0, ranked last.
    res = sweep(TINY, params=GRID + [f"{LIMIT}=1000,5000"], reps=3, out=tmp_path / "g", workers=1, progress=False,
                make_plots=True)
    s = res.sensitivity
    assert set(s.method) == {"grid"} and set(s["index"]) == {"main_effect"}
    assert set(s.gate) == {"hoanh_mo", "all"} and set(s.metric) == {"time_in_system_mean_h"}
    assert s[["conf", "ci_low", "ci_high"]].isna().all().all()  # no interval: see sim.experiments.sensitivity.main_effects
    for gate in ("hoanh_mo", "all"):
        rows = _main_rows(res.table, "time_in_system_mean_h", gate)
        mine = s[s.gate == gate].set_index("param")
        for name in (LANES, SERVICE, LIMIT):  # the range of the mean over the levels, the others averaged over
            means = rows.groupby(name)["mean"].mean()
            assert len(means) == {LANES: 2, SERVICE: 3, LIMIT: 2}[name]
            assert mine.loc[name, "estimate"] == pytest.approx(means.max() - means.min(), rel=1e-12, abs=0)
        assert mine.loc[LIMIT, "estimate"] == 0 and mine.loc[LIMIT, "rank"] == 3
        assert mine.loc[SERVICE, "estimate"] > 0 and mine.loc[LANES, "estimate"] > 0
        by_rank = mine.sort_values("rank")["estimate"].tolist()
        assert by_rank == sorted(by_rank, reverse=True)
    written = pd.read_csv(tmp_path / "g" / "sensitivity.csv")
    assert list(written.columns) == SENSITIVITY_COLUMNS and len(written) == len(s)
    assert set(written.method) == {"grid"}
    assert (tmp_path / "g" / "sensitivity.png").stat().st_size > 0
    printed = sweep_report(res)
    assert "main effect" in printed and "sensitivity.csv" in printed
    top = s[(s.gate == "hoanh_mo") & (s["rank"] == 1)].iloc[0]
    assert f" 1. {top.param}  main effect {top.estimate:.4g}" in printed
    assert f" 3. {LIMIT}  main effect 0" in printed


def test_a_latin_hypercube_ranks_its_inputs_by_rank_correlation():
    from scipy.stats import spearmanr

    res = sweep(TINY, params=[f"{SERVICE}=6:18", f"{LIMIT}=1000:5000"], design="lhs", points=12, reps=3, workers=1,
                progress=False, make_plots=False)
    s = res.sensitivity
    assert set(s.method) == {"lhs"} and set(s["index"]) == {"spearman"}
    n = res.design.points
    # Fisher's z with Fieller, Hartley and Pearson's variance, at 1 - 0.05 / 2 for the 2 inputs (Bonferroni)
    half = 2.241402727604947 * math.sqrt(1.06 / (n - 3))
    for gate in ("hoanh_mo", "all"):
        rows = _main_rows(res.table, "time_in_system_mean_h", gate)
        mine = s[s.gate == gate].set_index("param")
        for name in (SERVICE, LIMIT):
            rho = spearmanr(rows[name], rows["mean"]).statistic
            got = mine.loc[name]
            assert got.estimate == pytest.approx(rho, abs=1e-12)
            z = math.atanh(min(rho, 1 - 1e-15))
            assert got.ci_low == pytest.approx(math.tanh(z - half), abs=1e-9)
            assert got.ci_high == pytest.approx(math.tanh(z + half), abs=1e-9)
            assert got.ci_low <= got.estimate <= got.ci_high
        # a longer service time lengthens every vehicle's time in system (common random numbers)
        assert mine.loc[SERVICE, "estimate"] > 0.9 and mine.loc[SERVICE, "rank"] == 1
        assert mine.loc[LIMIT, "ci_low"] < 0 < mine.loc[LIMIT, "ci_high"]  # a limit never reached: no effect seen
    printed = sweep_report(res)
    assert "Spearman" in printed
    assert f" 1. {SERVICE}  rho " in printed


def test_the_overload_warning_counts_distinct_points_and_names_the_stage():
    # A Latin hypercube over two lists repeats its points. A far-side limit of 8 a day is under
    # tiny's 12 trucks a day: the points with it overload Hoành Mô's acceptance step.
    warnings: list[str] = []
    res = sweep(TINY, params=[f"{LANES}=1,2", f"{LIMIT}=8,30"], design="lhs", points=20, reps=2, workers=1,
                progress=False, make_plots=False, warn=warnings.append)
    values = res.design.values
    distinct = {tuple(v) for v in values}
    over = {v for v in distinct if v[1] == 8}
    first = next(i for i in range(len(values)) if values[i, 1] == 8)
    said = [w for w in warnings if "exceeds its capacity" in w]
    assert len(said) == 1, warnings
    assert said[0].startswith(f"{len(over)} of the design's {len(distinct)} distinct points (20 in all) "), said[0]
    assert f"point {first} " in said[0] and f"{LIMIT}=8" in said[0]
    assert "gate hoanh_mo, exit, stage 'acceptance'" in said[0], said[0]


def test_an_input_a_dated_adjustment_replaces_is_said_to_hold_only_outside_its_periods(tmp_path, capsys):
    """A new user swept the Km3+4 exit limit of the baseline and got a main effect of 0: the
    baseline sets its limits by period with dated adjustments, which replace that field on
    every day Km3+4 is open. A sweep, --set and validate say so, naming the periods; an input no
    dated adjustment sets gets no such warning, nor does one they only multiply."""
    text = TINY.read_text(encoding="utf-8") + """
[[adjust]]
id = "limit_from_the_4th"
what = "acceptance_limit"
from = 2022-03-04
set = 40

[[adjust]]
id = "faster_from_the_4th"
what = "service"
from = 2022-03-04
multiply = 0.9
"""
    path = tmp_path / "dated.toml"
    path.write_text(text, encoding="utf-8")
    warnings: list[str] = []
    sweep(path, params=[f"{LIMIT}=8,30", f"{SERVICE}=10,14"], design="grid", reps=2, workers=1, progress=False,
          make_plots=False, warn=warnings.append)
    said = [w for w in warnings if "dated adjustments" in w]
    assert len(said) == 1, warnings  # the limit, not the service time (only multiplied)
    assert said[0].startswith(f"--param {LIMIT}: ") and "adjust.limit_from_the_4th.set, 2022-03-04 to 2022-03-07" in said[0]
    assert main(["validate", str(path), "--set", f"{LIMIT}=20", "--set", f"{LANES}=2"]) == 0
    err = capsys.readouterr().err
    assert err.count("dated adjustments") == 1 and f"--set {LIMIT}: " in err, err


# ------------------------------------------------------------------ a scenario with a fitted ensemble


FITTED_SERVICE = [9.0, 9.5, 10.0, 10.5, 11.0, 12.0]  # the "fitted" values: a narrow part of the prior 6-18


def _fitted(tmp_path: Path, limit_in_ensemble: bool = False) -> Path:
    """Tiny as a calibrated scenario: its service time's prior is 6 to 18 min, the fitted
    ensemble (a small CSV) holds six values of it (and, if asked, of the far side's limit too);
    the limit's own range 20 to 40 is not fitted."""
    text = TINY.read_text(encoding="utf-8").replace("mean = 12, cv = 0.5", "mean = {uniform = [6, 18]}, cv = 0.5")
    text = text.replace("acceptance_limit = 28", "acceptance_limit = {uniform = [20, 40]}")
    path = tmp_path / "fitted.toml"
    path.write_text('ensemble = "fitted_ensemble.csv"\n' + text, encoding="utf-8")
    table = pd.DataFrame({SERVICE: FITTED_SERVICE, "_distance": 0.1})
    if limit_in_ensemble:
        table[LIMIT] = [24, 25, 26, 27, 28, 29]
    table.to_csv(tmp_path / "fitted_ensemble.csv", index=False)
    return path


def test_a_sweep_keeps_the_fitted_ensemble_of_the_inputs_it_does_not_vary(tmp_path, capsys):
    """With no --param a sweep of a calibrated scenario varies only the uncertain inputs its
    fitted ensemble does not set, and the others keep the ensemble's parameter sets, paired
    across points: each point's outputs are exactly those of `bordersim run` with the swept
    input set to the point's value (replication i takes the same set in both). It was sweeping
    the fitted service time over its prior, 6 to 18 min, as well."""
    from sim import run

    path = _fitted(tmp_path)
    out = tmp_path / "s"
    assert main(["sweep", str(path), "--design", "lhs", "--points", "3", "--reps", "4", "--seed", "7", "--workers",
                 "1", "--no-plots", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_parquet(out / "sweep.parquet")
    assert [c for c in table.columns if c.startswith("gates.")] == [LIMIT]  # the limit alone is swept
    rows = _main_rows(table, "time_in_system_mean_h", "all")
    for limit, mean in zip(rows[LIMIT], rows["mean"]):
        alone = run(sc.load(path, sets=[f"{LIMIT}={limit}"]), reps=4, seed=7, workers=1, progress=False)
        s = alone.summary
        want = s[(s.gate == "all") & (s.direction == "all") & (s.metric == "time_in_system_mean_h")
                 & (s.stage == "") & (s["class"] == "")]["mean"].item()
        assert mean == pytest.approx(want, rel=1e-12, abs=0)
    assert "fitted ensemble fitted_ensemble.csv (6 parameter sets): replication i takes the same set at every " \
           "point" in printed
    assert f"1 input from its parameter sets, not swept: {SERVICE}" in printed
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["ensemble"] == {"file": "fitted_ensemble.csv", "parameter_sets": 6, "kept": [SERVICE],
                                "fitted_range": [], "replaced": []}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "fitted ensemble" in html and "fitted_ensemble.csv (6 parameter sets)" in html


def test_an_ensemble_input_named_alone_is_swept_over_its_fitted_range(tmp_path, capsys):
    """`--param PATH` of an input the ensemble sets takes the 5-95 % range of its fitted values,
    not its prior (which the fit ruled out in part); `--param PATH=SPEC` takes the values given
    instead of the ensemble's. Both are said, in the output, metadata.json and the report."""
    path = _fitted(tmp_path)
    derived, params = derive(sc.load(path), [(SERVICE, None)])
    lo, hi = np.quantile(FITTED_SERVICE, [0.05, 0.95])
    assert (params[0].kind, params[0].values) == ("fitted", (lo, hi))
    assert params[0].prior == (6.0, 18.0)
    out = tmp_path / "s"
    assert main(["sweep", str(path), "--param", SERVICE, "--param", f"{LIMIT}=20,40", "--design", "lhs", "--points",
                 "4", "--reps", "2", "--workers", "1", "--no-plots", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_parquet(out / "sweep.parquet")
    assert table[SERVICE].between(lo, hi).all() and table[SERVICE].nunique() == 4
    assert f"1 input swept over its 5-95 % range, not the prior: {SERVICE}" in printed
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    assert meta["ensemble"]["fitted_range"] == [SERVICE] and meta["ensemble"]["kept"] == []
    page = unescape((out / "report.html").read_text(encoding="utf-8"))
    assert f"{lo:.4g} to {hi:.4g}, the fitted ensemble's 5-95 % range (its prior: uniform 6, 18)" in page

    _, params = derive(sc.load(path), [(SERVICE, "8:16")])
    assert params[0].kind == "interval"
    res = sweep(path, params=[f"{SERVICE}=8,16"], reps=2, workers=1, progress=False, make_plots=False)
    assert res.ensemble["replaced"] == [SERVICE] and res.ensemble["kept"] == []
    assert f"1 input swept over --param values instead of its: {SERVICE}" in sweep_report(res)


def test_the_load_check_of_a_sweep_reads_the_fitted_values_not_the_prior(tmp_path):
    """A prior of 6 to 100 min per truck has its middle, 53 min, far above the 40 min a lane
    can give each of Hoành Mô's 12 trucks a day; the fit keeps 9 to 12 min. A sweep of the far
    side's limit checks each point's load with the fitted service time (the ensemble's median),
    so it runs, with no overload warning (it was refused as an unstable load at the prior's middle)."""
    path = _fitted(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("uniform = [6, 18]", "uniform = [6, 100]"),
                    encoding="utf-8")
    warnings: list[str] = []
    res = sweep(path, params=[f"{LIMIT}=20,40"], reps=2, workers=1, progress=False, make_plots=False,
                warn=warnings.append)
    assert not [w for w in warnings if "capacity" in w or "unstable" in w], warnings
    assert res.ensemble["kept"] == [SERVICE]


def test_a_sweep_with_every_input_fitted_asks_for_param(tmp_path, capsys):
    path = _fitted(tmp_path, limit_in_ensemble=True)
    out = tmp_path / "s"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "every uncertain input of the scenario comes from its fitted ensemble" in err[0], err
    assert "--param PATH=SPEC" in err[0] and not out.exists()


# ------------------------------------------------------------------ errors: one line, exit 2, nothing written


BAD = [
    ["--param", "gates.nope.exit.stages.customs.lanes=1,2"],  # a gate that is not there
    ["--param", "gates.hoanh_mo.exit.stages.customs.lanez=1,2"],  # a key that is not there
    ["--param", "gates.hoanh_mo.name=1,2"],  # not a number
    ["--param", f"{LANES}"],  # a plain number needs values
    ["--param", f"{LANES}=0,1"],  # lanes must be at least 1
    ["--param", f"{LANES}=1.5,2"],  # lanes are whole numbers
    ["--param", f"{LANES}=1.."],
    ["--param", f"{LANES}=4..2"],
    ["--param", f"{LANES}=one,two"],
    ["--param", f"{SERVICE}=5:2"],
    ["--param", f"{SERVICE}=1:inf"],
    ["--param", f"{LANES}=1,1"],
    ["--param", f"{LANES}=1,2", "--param", f"{LANES}=3"],
    ["--param", f"{SERVICE}=5:40", "--design", "grid"],  # a grid needs lists
    ["--param", f"{SERVICE}=5:40", "--design", "sobol", "--points", "10"],  # Sobol's N: a power of two
    ["--param", f"{LANES}=1,2", "--points", "5"],  # a grid's size is its lists'
    ["--param", f"{SERVICE}=5:40", "--design", "morris", "--points", "1"],
    ["--param", f"{SERVICE}=1:100000", "--design", "lhs"],  # points that overload the gate
    [],  # tiny has no uncertain inputs of its own
    ["--param", f"{LANES}=1,2", "--output", "nonsense"],
    ["--param", f"{LANES}=1,2", "--output", "wait_mean_h@nowhere"],
    ["--param", f"{LANES}=1,2", "--scheduler", "local", "--address", "tcp://127.0.0.1:1"],
    ["--param", f"{LANES}=1,2", "--scheduler", "dask", "--address", "not-an-address"],
]


@pytest.mark.parametrize("extra", BAD, ids=lambda a: " ".join(a)[-60:] or "no-param")
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra):
    out = tmp_path / "out"
    rc = main(["sweep", str(TINY), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("bordersim: error: "), err
    assert not out.exists()


def test_a_folder_of_another_command_or_not_a_sweep_is_refused(tmp_path, capsys):
    out = tmp_path / "s"
    command = ["sweep", str(TINY), "--param", f"{LANES}=1,2", "--reps", "2", "--quiet", "--no-plots", "--workers", "1"]
    base = command + ["--out", str(out)]
    assert main(base) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for change in (["--reps", "3"], ["--seed", "9"], ["--param", f"{SERVICE}=8,12"], ["--set", f"{LIMIT}=30"]):
        capsys.readouterr()
        assert main(base + change) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "holds a sweep of another command" in err[0], err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing mixed in

    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("a researcher's notes")
    assert main(command + ["--out", str(foreign)]) == 2
    assert "not written by bordersim" in capsys.readouterr().err
    run_dir = tmp_path / "run"
    assert main(["run", str(TINY), "--reps", "2", "--out", str(run_dir), "--quiet", "--no-plots"]) == 0
    capsys.readouterr()
    assert main(command + ["--out", str(run_dir)]) == 2
    assert "not a sweep" in capsys.readouterr().err
    assert (run_dir / "summary.csv").exists()


def test_cli_sweep_writes_its_tables(tmp_path, capsys):
    out = tmp_path / "grid"
    assert main(["sweep", str(TINY), *sum((["--param", p] for p in GRID), []), "--reps", "3", "--out", str(out),
                 "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "grid design, 6 points x 3 replications" in printed
    table = pd.read_csv(out / "sweep.csv", keep_default_na=False)
    assert list(table.columns[:3]) == ["point", LANES, SERVICE]
    assert list(table.columns[3:]) == ["gate", "direction", "metric", "stage", "class", "mean", "ci_low", "ci_high",
                                       "p05", "p95", "std", "n"]
    assert sorted(table[LANES].unique()) == [1, 2] and table["n"].eq(3).all()
    assert (out / "heatmap.png").exists() and (out / "response.png").exists()
    assert "most influential parameters, main effect" in printed  # a grid ranks its inputs too
    sens = pd.read_csv(out / "sensitivity.csv")
    assert set(sens.method) == {"grid"} and set(sens["index"]) == {"main_effect"}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Which inputs matter" in html and "main effect" in html
