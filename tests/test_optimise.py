"""Levers and bordersim optimise (sim.experiments.levers, sim.experiments.optimise, sim.outputs.optimise).

- over the lanes of an M/M/c gate, the least lever cost that meets a mean-wait target is the
  smallest c whose Erlang C wait meets it;
- the recommended levers' evidence runs on a seed derived from --seed, not the search's;
- the same seed gives the same trials.csv, to the byte, on 1 and 2 workers (and a Dask cluster);
- an optimisation killed with SIGKILL and started again counts every trial once, and its
  trials.csv equals an uninterrupted run's;
- bad levers, objectives and constraints are one line naming the file and field, exit 2, nothing written.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main
from sim.experiments.experiment import run_design
from sim.experiments.optimise import evidence_seed, interval, measure_values, Measure
from sim.model import scenario as sc
from sim.outputs.optimise import optimise
from tests.test_analytic import erlang_c_wait
from tests.test_sweep import dask_cluster  # noqa: F401 - the sweep tests' Dask LocalCluster fixture

DATA = Path(__file__).parent / "data"
MMC = DATA / "mmc_levers.toml"
LAMBDA, MU = 2.4, 1.0  # per hour: mmc_levers.toml's 57.6 trucks a day, 60-minute exponential service
TARGET_H = 0.5
WAIT = f"wait_mean_h@g <= {TARGET_H}"
FAST = dict(trials=12, reps=5, batch=4, seed=7, progress=False, make_plots=False, report=False)


def _bordersim() -> list[str]:
    exe = Path(sys.executable).with_name("bordersim")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "sim.cli"]


def test_the_least_cost_meeting_a_wait_target_is_erlang_c_smallest_c():
    c_star = next(c for c in range(1, 7) if c * MU > LAMBDA and erlang_c_wait(LAMBDA, MU, c) <= TARGET_H)
    # the target is not a close call: the simulation's noise cannot move c* (a wrong search could)
    assert erlang_c_wait(LAMBDA, MU, c_star - 1) > 2 * TARGET_H > 4 * erlang_c_wait(LAMBDA, MU, c_star)
    result = optimise(MMC, constraints=[WAIT], workers=1, **FAST)
    assert int(result.recommended["lanes"]) == c_star
    t = result.trials
    assert sorted(t["lanes"].unique()) != [c_star], "the search should have tried other values"
    assert not t[t["lanes"] < c_star]["feasible"].any() and t[t["lanes"] >= c_star]["feasible"].all()
    lever = sc.load(MMC).nominal.levers["lanes"]
    per_lane = lever.capital_per_unit_year + lever.operating_per_unit_year
    assert result.recommended["lever_cost_vnd_per_year"] == pytest.approx((c_star - lever.base) * per_lane)
    assert int(t.iloc[0]["lanes"]) == lever.base  # trial 0: the scenario as given
    ev = result.evidence.set_index("quantity")
    assert bool(ev.loc["wait_mean_h@g", "holds"]) and ev.loc["wait_mean_h@g", "difference_ci_high"] < 0


def test_the_evidence_runs_on_fresh_seeds_paired_with_the_scenario_as_given():
    result = optimise(MMC, constraints=[WAIT], workers=1, **FAST)
    setup = result.setup
    fresh = evidence_seed(setup.seed)
    assert fresh != setup.seed
    rec = {"lanes": int(result.recommended["lanes"])}
    measure = Measure("wait_mean_h", "g")
    ev = result.evidence.set_index("quantity").loc["wait_mean_h@g"]
    for seed, same in ((fresh, True), (setup.seed, False)):
        given, chosen = run_design([setup.space.as_given(), setup.space.point(rec)], setup.reps, seed, workers=1,
                                   progress=False)
        got = interval(measure_values(chosen, [measure])["wait_mean_h@g"])[0]
        base = interval(measure_values(given, [measure])["wait_mean_h@g"])[0]
        assert (got == ev["recommended_mean"] and base == ev["as_given_mean"]) == same
    search_mean = result.trials.set_index("trial").loc[int(result.recommended["trial"]), "wait_mean_h@g_mean"]
    assert search_mean != ev["recommended_mean"]


def test_same_trials_on_1_and_2_workers(tmp_path):
    # past TPE's 10 random start-up trials, so that later proposals depend on the batches' history
    kw = dict(FAST, trials=20)
    one = optimise(MMC, constraints=[WAIT], workers=1, out=tmp_path / "one", **kw)
    two = optimise(MMC, constraints=[WAIT], workers=2, out=tmp_path / "two", **kw)
    assert two.workers == 2
    for name in ("trials.csv", "front.csv", "evidence.csv", "recommended.toml"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    assert one.trials["lanes"].nunique() > 1


@pytest.mark.slow
def test_same_trials_on_a_dask_cluster(tmp_path, dask_cluster):
    optimise(MMC, constraints=[WAIT], workers=1, out=tmp_path / "one", **FAST)
    dsk = optimise(MMC, constraints=[WAIT], scheduler="dask", address=dask_cluster.scheduler_address,
                   out=tmp_path / "dask", **FAST)
    assert dsk.setup.scheduler == "dask"
    assert (tmp_path / "one" / "trials.csv").read_bytes() == (tmp_path / "dask" / "trials.csv").read_bytes()


def _told(out: Path) -> int:
    journal = out / "study" / "journal.log"
    if not journal.exists():
        return 0
    return sum(1 for line in journal.read_text().splitlines() if '"op_code":6' in line and '"state":1' in line)


@pytest.mark.slow
def test_kill_and_resume_counts_every_trial_once(tmp_path):
    args = ["optimise", str(MMC), "--constraint", WAIT, "--trials", "24", "--reps", "6", "--batch", "4",
            "--seed", "3", "--workers", "1", "--no-plots", "--no-report", "--quiet"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_bordersim() + args + ["--out", str(killed)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None and _told(killed) < 5:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    told = _told(killed)
    assert 5 <= told < 24, "the kill should fall between the first batches and the last"
    assert not (killed / "trials.csv").exists()
    resumed = subprocess.run(_bordersim() + args[:-1] + ["--out", str(killed)], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {killed}/: {told} trials done before, {24 - told} to run" in resumed.stdout
    whole = tmp_path / "whole"
    subprocess.run(_bordersim() + args + ["--out", str(whole)], check=True, capture_output=True)
    assert (killed / "trials.csv").read_bytes() == (whole / "trials.csv").read_bytes()
    table = pd.read_csv(killed / "trials.csv")
    assert table["trial"].tolist() == list(range(24))  # every trial once
    assert _told(killed) == 24


# ------------------------------------------------------------------ bad input


def _with(tmp_path: Path, old: str, new: str) -> Path:
    text = MMC.read_text()
    assert old in text
    path = tmp_path / "levers.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("change, extra, said", [
    (("paths = [\"gates.g.exit.stages.customs.lanes\"]", "paths = [\"gates.g.exit.stages.custom.lanes\"]"), [],
     "levers.lanes.paths: gates.g.exit.stages.custom.lanes"),
    (("capital_per_unit_year = 1e9", "capital_per_unit_year = -1e9"), [], "levers.lanes.capital_per_unit_year"),
    (("integer = [1, 6]", "integer = [1, 200]"), [], "levers.lanes.paths"),  # 200 lanes: past MAX_LANES
    (("base = 1", "base = 2"), [], "levers.lanes.base"),
    # a lever's costs may be uncertain (ranges), its values not; a cost range is checked at both ends
    (("integer = [1, 6]", "integer = {uniform = [1, 6]}"), [], "levers.lanes.integer"),
    (("operating_per_unit_year = 2e9", "operating_per_unit_year = {uniform = [-1e9, 2e9]}"), [],
     "levers.lanes.operating_per_unit_year"),
    (("[levers.lanes]", "[levers.lanes.x]"), [], "levers.lanes"),
    # a lever's own input made uncertain (a range) by --set: the search would hold it at the base
    # and the scenario as given draw it
    (None, ["--set", "gates.g.exit.stages.customs.lanes={uniform = [1, 3]}"], "levers.lanes.paths"),
    # a choice that sets a range
    (("cost_source = \"assumption: a test value\"", "cost_source = \"assumption: a test value\"\n\n"
      "[levers.speed]\nbase = \"today\"\nunit = \"change\"\ncapital_per_unit_year = 0\n"
      "operating_per_unit_year = 1e9\ncost_source = \"assumption: a test value\"\n"
      "[levers.speed.choices.today]\nunits = 0\n[levers.speed.choices.faster]\nunits = 1\n"
      "set = ['gates.g.exit.stages.customs.service_min.mean={uniform = [30, 50]}']\n"), [],
     "levers.speed.choices.faster.set"),
    (None, ["--constraint", "wait_mean_hours@g <= 1"], "--constraint"),
    (None, ["--constraint", "wait_mean_h@g <= -5"], "can never hold: wait_mean_h is at least 0"),
    (None, ["--constraint", "wait_mean_hh@g <= 1"], "'wait_mean_hh' is not a metric; did you mean wait_mean_h?"),
    (None, ["--constraint", "wait_mean_h@g < 1"], "--constraint"),
    (None, ["--constraint", "wait_mean_h@nowhere <= 1"], "--constraint"),
    (None, ["--objective", "lever_cost"], "--objective"),
    (None, ["--objective", "total_cost", "--constraint", WAIT], "--objective"),
    # a misspelt objective names the objectives, not only the metrics
    (None, ["--objective", "total_cots", "--constraint", WAIT], "did you mean total_cost? allowed: lever_cost, total_cost"),
    (None, ["--objective", "time_in_system_p95_h@g", "--lever", "bridge"], "--lever"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, change, extra, said):
    path = _with(tmp_path, *change) if change else MMC
    out = tmp_path / "out"
    args = ["optimise", str(path), "--trials", "4", "--reps", "2", "--out", str(out), "--quiet"]
    if not any(a == "--constraint" for a in extra) and "--objective" not in extra[:1]:
        args += ["--constraint", WAIT]
    code = main(args + extra)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("bordersim: error: ") and said in err, err
    assert not out.exists()


def test_an_objective_without_a_lever_is_refused(tmp_path, capsys):
    path = tmp_path / "no_levers.toml"
    text = MMC.read_text()
    path.write_text(text[:text.index("[levers.lanes]")])
    code = main(["optimise", str(path), "--constraint", WAIT, "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "levers: the scenario declares no levers" in err, err
    assert not (tmp_path / "out").exists()


def test_a_repeated_lever_value_is_run_once_and_stands_once_on_the_front(monkeypatch):
    """12 trials over 6 lane counts repeat some: a repeat takes its first trial's outcome (the
    same point on the same seeds would give it again), and the front lists each value once."""
    import sim.experiments.optimise as opt

    ran = []
    real = opt.evaluate

    def counting(setup, trials, *args, **kwargs):
        ran.extend(values["lanes"] for _n, values in trials)
        return real(setup, trials, *args, **kwargs)

    monkeypatch.setattr(opt, "evaluate", counting)
    result = optimise(MMC, constraints=[WAIT], workers=1, **FAST)
    t = result.trials
    assert len(t) == FAST["trials"] and t["lanes"].nunique() < len(t)  # 12 trials, at most 6 values
    assert sorted(ran) == sorted(t["lanes"].unique())  # each value simulated once
    stats = [c for c in t.columns if c.endswith(("_mean", "_ci_low", "_ci_high"))]
    for _lanes, same in t.groupby("lanes"):
        assert (same[stats].nunique(dropna=False) == 1).all()
    assert result.front["lanes"].is_unique and not t[t.duplicated("lanes")]["front"].any()


def test_a_misspelt_lever_in_a_file_extending_is_an_unknown_lever(tmp_path, capsys):
    child = tmp_path / "child.toml"
    child.write_text(f'extends = "{MMC}"\n\n[levers.lane]\noperating_per_unit_year = 3e9\n', encoding="utf-8")
    code = main(["validate", str(child)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"{child}: levers.lane: unknown lever 'lane' (levers: lanes)" in err, err


def test_a_recommendation_at_the_end_of_a_lever_s_range_is_said():
    """Lanes 1 to 3 only: 2.4 trucks an hour need 3 lanes to be served at all, so the least lever
    cost meeting a loose wait target is 3, the top of the range (a wider one might do better if
    the target were tighter): a warning says so."""
    loose = f"wait_mean_h@g <= {2 * erlang_c_wait(LAMBDA, MU, 3) + 1}"
    warned = []
    path_text = MMC.read_text().replace("integer = [1, 6]", "integer = [1, 3]")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "levers.toml"
        path.write_text(path_text)
        result = optimise(path, constraints=[loose], workers=1, warn=warned.append, **FAST)
    assert int(result.recommended["lanes"]) == 3
    assert any("the recommended lanes = 3 is at the top of its range (1 to 3)" in w for w in warned), warned


def test_a_choice_may_scale_an_uncertain_input_but_not_set_a_range_inside_a_table(tmp_path, capsys):
    base = ('cost_source = "assumption: a test value"\n\n[levers.speed]\nbase = "today"\nunit = "change"\n'
            'capital_per_unit_year = 0\noperating_per_unit_year = 1e9\ncost_source = "assumption: a test value"\n'
            '[levers.speed.choices.today]\nunits = 0\n[levers.speed.choices.faster]\nunits = 1\n')
    ranged = _with(tmp_path, "mean = 60}", "mean = {uniform = [50, 60]}}")
    scaled = tmp_path / "scaled.toml"
    scaled.write_text(ranged.read_text().replace('cost_source = "assumption: a test value"',
                                                 base + "set = ['gates.g.exit.stages.customs.service_min.mean*=0.7']\n"))
    assert main(["validate", str(scaled)]) == 0, capsys.readouterr().err  # a factor on a range: the planner's value
    capsys.readouterr()
    nested = _with(tmp_path, 'cost_source = "assumption: a test value"', base + "set = ['gates.g.exit.stages.customs."
                   "service_min={dist=\"exponential\", mean={uniform=[30, 50]}}']\n")
    assert main(["validate", str(nested)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("bordersim: error: ")]
    assert len(errors) == 1 and "levers.speed.choices.faster.set" in errors[0] and "gives a range" in errors[0], err


def test_a_sweep_without_params_leaves_the_levers_costs_alone(tmp_path):
    """A lever's cost range changes no simulated output: a sweep of the uncertain inputs (no
    --param) leaves it out, and sweeps the others."""
    from sim.experiments.sweep import derive

    path = _with(tmp_path, "mean = 60}", "mean = {uniform = [50, 60]}}")
    path.write_text(path.read_text().replace("operating_per_unit_year = 2e9",
                                             "operating_per_unit_year = {uniform = [1e9, 3e9]}"))
    scenario = sc.load(path)
    assert "levers.lanes.operating_per_unit_year" in scenario.by_name
    _derived, params = derive(scenario, [])
    assert [p.name for p in params] == ["gates.g.exit.stages.customs.service_min.mean"]


def test_a_trial_told_before_the_total_s_interval_was_kept_still_has_its_objective():
    """A folder resumed from an earlier version holds trials whose statistics lack the total's
    own interval: their objective is the levers' cost plus the waiting cost a year."""
    from sim.experiments.optimise import TrialOutcome, derived, per_year, prepare

    priced = DATA / "mmc_levers.toml"
    setup = prepare(priced, "lever_cost", [WAIT])
    o = TrialOutcome(3, {"lanes": 3}, 2e9, 4e9, {"wait_mean_h@g": (0.1, 0.05, 0.15)})
    assert derived(setup, o)["objective"] == (6e9, 6e9, 6e9)
    k = per_year(setup.scenario)
    from dataclasses import replace

    total = replace(setup, objective=replace(setup.objective, name="total_cost",
                                             measure=Measure("cost_total_vnd", "all")))
    o.stats["cost_total_vnd@all"] = (1e9, 0.5e9, 1.5e9)
    assert derived(total, o)["objective"] == (6e9 + 1e9 * k, 6e9 + 0.5e9 * k, 6e9 + 1.5e9 * k)


def test_validate_refuses_a_bad_lever_without_saying_ok_first(capsys):
    code = main(["validate", str(MMC), "--set", "gates.g.exit.stages.customs.lanes=3"])
    out, err = capsys.readouterr()
    assert code == 2 and "ok" not in out and err.count("\n") == 1 and "levers.lanes.base" in err, (out, err)


def test_validate_lists_levers_apart_from_uncertain_inputs(capsys):
    assert main(["validate", str(DATA / "mmc_levers.toml")]) == 0
    out = capsys.readouterr().out
    assert "levers (1: what a planner controls):" in out and "lanes: integer 1 to 6, base 1" in out
    assert out.index("levers (1") < out.index("uncertain inputs (0")


def test_a_lever_cost_range_gives_the_expected_cost_and_its_bounds(tmp_path):
    """An uncertain cost (a range): a trial's levers' cost is its expectation, exactly (units
    times the range's mean: the same at every --reps, no sampling noise), with the bounds of
    what the levers may cost (every range at its low end, at its high end); the scenario as
    given costs 0."""
    low, high = 1e9, 5e9
    path = _with(tmp_path, "operating_per_unit_year = 2e9", f"operating_per_unit_year = {{uniform = [{low}, {high}]}}")
    result = optimise(path, constraints=[WAIT], workers=1, **FAST)
    lever = sc.load(path).nominal.levers["lanes"]
    assert lever.operating_per_unit_year == (low + high) / 2  # the scenario's value: the range's mean
    t = result.trials
    units = t["lanes"] - lever.base
    assert (t["lever_cost_vnd_per_year"] == units * (1e9 + (low + high) / 2)).all()
    assert (t["lever_cost_vnd_per_year_low"] == units * (1e9 + low)).all()
    assert (t["lever_cost_vnd_per_year_high"] == units * (1e9 + high)).all()
    assert (t.loc[units == 0, "lever_cost_vnd_per_year_high"] == 0).all()
    more = optimise(path, constraints=[WAIT], workers=1, **{**FAST, "reps": 7})
    same = t.merge(more.trials, on="lanes", suffixes=("", "_7"))
    assert (same["lever_cost_vnd_per_year"] == same["lever_cost_vnd_per_year_7"]).all()
    ev = result.evidence.set_index("quantity").loc["lever_cost_vnd_per_year"]
    rec_units = int(result.recommended["lanes"]) - lever.base
    assert ev["as_given_mean"] == 0 and ev["recommended_mean"] == rec_units * (1e9 + (low + high) / 2)


def test_the_least_total_cost_is_the_lanes_that_balance_their_cost_and_the_waits_erlang_c_prices(tmp_path):
    """total_cost: the levers' cost a year plus the waiting cost a year (cost_total_vnd of all
    gates, scaled to a year). With only the truck-hour priced, an M/M/c gate's waiting cost a
    year is rate x lambda x Wq(c) x 8,760 h, so the best number of lanes is the c that least
    adds its lanes' cost to that: Erlang C's, not a close call at this rate. Each trial's
    objective is its levers' cost plus its waiting cost."""
    rate = 300_000.0  # VND an hour of waiting: a test value
    priced = tmp_path / "priced.toml"
    priced.write_text(f'extends = "{MMC}"\n\n[classes.truck.costs]\ntruck_hour_vnd = {rate}\nparking_day_vnd = 0\n'
                      'gave_up_vnd = 0\ndiverted_vnd = 0\nsource = "assumption: a test value"\n', encoding="utf-8")
    lever = sc.load(MMC).nominal.levers["lanes"]
    per_lane = lever.capital_per_unit_year + lever.operating_per_unit_year

    def total(c: int) -> float:
        return (c - lever.base) * per_lane + rate * LAMBDA * erlang_c_wait(LAMBDA, MU, c) * 8760

    stable = [c for c in range(1, 7) if c * MU > LAMBDA]
    best = min(stable, key=total)
    others = sorted(total(c) for c in stable if c != best)
    assert others[0] > 1.15 * total(best)  # no close call
    result = optimise(priced, objective="total_cost", workers=1, **FAST)
    assert int(result.recommended["lanes"]) == best
    t = result.trials
    assert np.allclose(t["objective_mean"], t["lever_cost_vnd_per_year"] + t["waiting_cost_vnd_per_year_mean"],
                       rtol=1e-12)
    assert "total_cost_vnd_per_year_mean" not in t.columns  # the objective is the total: one column of it
    # the objective's interval is that of the replications' sums (tighter than adding the two intervals)
    assert np.allclose(t["objective_ci_high"] - t["objective_mean"], t["waiting_cost_vnd_per_year_ci_high"]
                       - t["waiting_cost_vnd_per_year_mean"], rtol=1e-9)
    ev = result.evidence.set_index("quantity")
    assert ev.loc["waiting_cost_vnd_per_year", "difference_ci_high"] < 0  # the lanes save waiting


def test_a_trial_stopped_between_its_creation_and_its_values_is_asked_again_as_it_was():
    """optuna's journal writes a trial's creation and its values as separate records, so a kill
    can leave a trial asked without its values; the resumed search asks them again as the
    uninterrupted one did (its own seeded sampler, the same trials before it) and every trial's
    values and outcome are the same."""
    import dataclasses

    import optuna

    from sim.experiments import optimise as opt

    setup = opt.prepare(MMC, constraints=[WAIT], trials=12, reps=3, batch=4, seed=7)
    whole = opt.search(setup, progress=False)
    storage = optuna.storages.InMemoryStorage()
    opt.search(dataclasses.replace(setup, trials=4), storage=storage, progress=False)
    storage.create_new_trial(storage.get_study_id_from_name(opt.STUDY))  # trial 4: created, no values yet
    resumed = opt.search(setup, storage=storage, progress=False)

    def done(study):
        return [(t.number, t.params, t.values) for t in study.get_trials(deepcopy=False)]

    assert done(resumed) == done(whole)
    assert len(done(whole)) == 12
