"""Calibration: ABC recovers known inputs on synthetic data, and --check guards the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.experiments import calibrate as cal
from sim.cli import main
from sim.outputs.calibration import check_table, write_calibration
from sim.model.scenario import from_dict, load

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "calibration" / "targets_2022.toml"

# Two gates, 60 days. Each gate's demand level is uncertain (what the per-gate counts should
# identify); gate g1's far-side limit drops from day 31 to an uncertain value below its demand
# (what its second-half count identifies); the service time is left out of the fit.
SYNTHETIC = """
name = "synthetic"
[horizon]
start = 2022-03-01
end = 2022-04-29
[classes.truck]
priority = 0
[gates.g1]
name = "G1"
classes = ["truck"]
hours = {{default = ["06:00-22:00"]}}
[gates.g1.exit]
demand = {{truck = 200}}
acceptance_limit = 400
[[gates.g1.exit.stages]]
name = "customs"
lanes = 6
service_min = {{dist = "exponential", mean = {service}}}
[gates.g2]
name = "G2"
classes = ["truck"]
hours = {{default = ["06:00-22:00"]}}
[gates.g2.exit]
demand = {{truck = 100}}
[[gates.g2.exit.stages]]
name = "customs"
lanes = 4
service_min = {{dist = "exponential", mean = 10}}
[[adjust]]
id = "level_g1"
what = "demand"
gates = ["g1"]
multiply = {level_g1}
[[adjust]]
id = "level_g2"
what = "demand"
gates = ["g2"]
multiply = {level_g2}
[[adjust]]
id = "g1_limit_april"
what = "acceptance_limit"
gates = ["g1"]
from = 2022-03-31
set = {limit}
"""
TRUE = {"level_g1": 0.9, "level_g2": 1.2, "limit": 120, "service": 12}
PRIOR = {"level_g1": "{uniform = [0.5, 1.5]}", "level_g2": "{uniform = [0.5, 1.5]}", "limit": "{uniform = [80, 200]}",
         "service": "{uniform = [8, 16]}"}
PERIODS = {"g1_march": ("g1", "2022-03-01", "2022-03-30", "fit"), "g1_april": ("g1", "2022-03-31", "2022-04-29", "fit"),
           "g2_all": ("g2", "2022-03-01", "2022-04-29", "fit"), "total": ("all", "2022-03-01", "2022-04-29", "validate")}


def _targets_toml(observed: dict, scenario: str, fitted: str = "fitted.toml") -> str:
    out = [f'scenario = "{scenario}"', f'fitted = "{fitted}"', "seed = 7",
           'fit_inputs = ["adjust.*"]', ""]
    for name, (gate, first, last, use) in PERIODS.items():
        out += ["[[targets]]", f'name = "{name}"', f'use = "{use}"', f"observed = {observed[name]}",
                'source = "synthetic"', f"period = [{first}, {last}]",
                f'output = {{gate = "{gate}", direction = "exit"}}', "tolerance = 0.05", ""]
    return "\n".join(out)


@pytest.mark.slow
def test_abc_smc_recovers_a_per_gate_split_and_a_limit_schedule(tmp_path):
    import tomllib

    from sim.experiments.run import run

    # observations: the mean of 20 replications of the scenario at known input values
    truth = from_dict(tomllib.loads(SYNTHETIC.format(**TRUE)))
    res = run(truth, reps=20, seed=99, workers=1, progress=False)
    (tmp_path / "prior.toml").write_text(SYNTHETIC.format(**PRIOR), encoding="utf-8")
    (tmp_path / "targets.toml").write_text(_targets_toml({k: 1 for k in PERIODS}, "prior.toml"), encoding="utf-8")
    dummy = cal.load_targets(tmp_path / "targets.toml")
    obs = cal.target_values(res.results, dummy.targets, truth.nominal).mean(axis=0)
    (tmp_path / "targets.toml").write_text(
        _targets_toml({t.name: round(v, 1) for t, v in zip(dummy.targets, obs)}, "prior.toml"), encoding="utf-8")

    targets = cal.load_targets(tmp_path / "targets.toml")
    c = cal.calibrate(targets, population=50, generations=10, budget=4000, reps_per_draw=2, workers=2, progress=False)
    assert c.epsilons[-1] <= 1.0, c.epsilons  # every fit target within its tolerance in the last population
    ident = c.identification().set_index("input")
    assert set(ident.index) == {"adjust.level_g1.multiply", "adjust.level_g2.multiply", "adjust.g1_limit_april.set"}
    for name, true in (("adjust.level_g1.multiply", TRUE["level_g1"]), ("adjust.level_g2.multiply", TRUE["level_g2"]),
                       ("adjust.g1_limit_april.set", TRUE["limit"])):
        row = ident.loc[name]
        assert row.posterior_q05 <= true <= row.posterior_q95, (name, row.to_dict())
        assert row.identified, (name, row.to_dict())
    # the written fitted scenario samples the ensemble, and it reproduces the observations,
    # the validation total included
    write_calibration(c)
    fitted = load(tmp_path / "fitted.toml")
    assert fitted.ensemble is not None and set(fitted.ensemble.columns) == set(ident.index)
    rows = cal.check(targets, reps=40, workers=1, progress=False)
    assert all(r.ok() for r in rows), check_table(rows)


@pytest.mark.slow
def test_the_same_seed_gives_the_same_calibration_on_any_number_of_workers(tmp_path):
    (tmp_path / "prior.toml").write_text(SYNTHETIC.format(**PRIOR), encoding="utf-8")
    (tmp_path / "targets.toml").write_text(_targets_toml(
        {"g1_march": 5300, "g1_april": 3600, "g2_all": 7100, "total": 16000}, "prior.toml"), encoding="utf-8")
    targets = cal.load_targets(tmp_path / "targets.toml")
    one = cal.calibrate(targets, population=20, generations=2, budget=400, reps_per_draw=1, workers=1, progress=False)
    two = cal.calibrate(targets, population=20, generations=2, budget=400, reps_per_draw=1, workers=2, progress=False)
    pd.testing.assert_frame_equal(one.population, two.population)
    np.testing.assert_array_equal(one.weights, two.weights)


def test_a_second_stage_fit_takes_the_first_stages_inputs_whole(tmp_path):
    # stage 1 fitted level_g2 (its ensemble, three parameter sets); stage 2 fits g1's level and
    # limit with each replication taking one of those sets, and its fitted ensemble carries
    # them whole beside its own
    stage1 = pd.DataFrame({"adjust.level_g2.multiply": [1.15, 1.2, 1.25]})
    stage1.to_csv(tmp_path / "stage1_ensemble.csv", index=False)
    (tmp_path / "base.toml").write_text(SYNTHETIC.format(**PRIOR), encoding="utf-8")
    (tmp_path / "prior.toml").write_text('extends = "base.toml"\nensemble = "stage1_ensemble.csv"\n', encoding="utf-8")
    text = _targets_toml({"g1_march": 5300, "g1_april": 3600, "g2_all": 7100, "total": 16000}, "prior.toml")
    (tmp_path / "targets.toml").write_text(text, encoding="utf-8")
    with pytest.raises(cal.CalibrationError, match="fit_inputs.*adjust.level_g2.multiply.*set by the prior's ensemble"):
        cal.calibrate(cal.load_targets(tmp_path / "targets.toml"), population=10, budget=20, workers=1, progress=False)
    text = text.replace('fit_inputs = ["adjust.*"]', 'fit_inputs = ["adjust.level_g1.multiply", "adjust.g1_limit_april.set"]')
    (tmp_path / "targets.toml").write_text(text, encoding="utf-8")
    c = cal.calibrate(cal.load_targets(tmp_path / "targets.toml"), population=20, generations=2, budget=400,
                      reps_per_draw=1, workers=1, progress=False)
    assert c.names == ["adjust.level_g1.multiply", "adjust.g1_limit_april.set"]
    ens = c.ensemble
    assert set(ens["adjust.level_g2.multiply"]) <= {1.15, 1.2, 1.25}
    assert len(set(ens["adjust.level_g2.multiply"])) == 3  # drawn across the first stage's sets
    pairs = set(zip(c.population["adjust.level_g1.multiply"], c.population["adjust.g1_limit_april.set"]))
    assert all(p in pairs for p in zip(ens["adjust.level_g1.multiply"], ens["adjust.g1_limit_april.set"]))
    write_calibration(c)
    fitted = load(tmp_path / "fitted.toml")
    assert set(fitted.ensemble.columns) == {"adjust.level_g2.multiply", *c.names}
    assert "earlier stage" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_a_generation_that_fails_leaves_the_one_before_as_the_fit(tmp_path, monkeypatch):
    import pyabc

    (tmp_path / "prior.toml").write_text(SYNTHETIC.format(**PRIOR), encoding="utf-8")
    (tmp_path / "targets.toml").write_text(_targets_toml(
        {"g1_march": 5300, "g1_april": 3600, "g2_all": 7100, "total": 16000}, "prior.toml"), encoding="utf-8")
    targets = cal.load_targets(tmp_path / "targets.toml")
    original = pyabc.ABCSMC.run

    def two_then_fail(self, *args, **kwargs):
        original(self, minimum_epsilon=0.0, max_nr_populations=2)
        raise AssertionError("The population total weight nan is not normalized.")

    monkeypatch.setattr(pyabc.ABCSMC, "run", two_then_fail)
    with pytest.warns(UserWarning, match="stopped in generation 3"):
        c = cal.calibrate(targets, population=20, generations=5, budget=400, reps_per_draw=1, workers=1,
                          progress=False)
    assert len(c.epsilons) == 2 and len(c.population) == 20


def _targets_text() -> str:
    """The committed targets file, its scenario paths made absolute (for an edited copy elsewhere)."""
    text = TARGETS.read_text(encoding="utf-8")
    text = text.replace('scenario = "stage1_2022.toml"', f'scenario = "{ROOT}/calibration/stage1_2022.toml"')
    return text.replace('fitted = "fitted_2022.toml"', f'fitted = "{ROOT}/calibration/fitted_2022.toml"')


def test_committed_calibration_passes_check(capsys):
    # what CI asserts: the calibrated 2022 baseline reproduces the 2022 counts
    # and every validation target lies inside its band or is a recorded known miss
    assert main(["calibrate", "--check", str(TARGETS), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "crossings_total" in out and "FAIL" not in out
    assert "all targets hold" in out or "all fit targets hold" in out


def test_check_fails_when_a_target_moves_beyond_its_tolerance(tmp_path, capsys):
    text = _targets_text()
    moved = text.replace("observed = 48086", f"observed = {round(48086 * 1.12)}")  # exits 12 % higher (tolerance 5 %)
    assert moved != text
    (tmp_path / "moved.toml").write_text(moved, encoding="utf-8")
    assert main(["calibrate", "--check", str(tmp_path / "moved.toml"), "--reps", "60", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "calibration check failed: crossings_exit" in captured.err
    assert "crossings_total" not in captured.err.split("failed:")[1]


def test_check_fails_when_a_validation_target_moves_outside_its_band(tmp_path, capsys):
    text = _targets_text()
    # a validation target the fitted model meets, moved far out of its band
    moved = text.replace('name = "queue_km3_4_30_may"\nuse = "validate"\nobserved = 300',
                         'name = "queue_km3_4_30_may"\nuse = "validate"\nobserved = 3000')
    assert moved != text
    (tmp_path / "moved.toml").write_text(moved, encoding="utf-8")
    assert main(["calibrate", "--check", str(tmp_path / "moved.toml"), "--reps", "60", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "calibration check failed: queue_km3_4_30_may" in captured.err
    assert "observed outside the 90 % band" in captured.out
    assert "bac_luan_2_q1" not in captured.err  # the fit targets still hold


def test_check_fails_when_the_acceptance_limits_change(tmp_path, capsys):
    # the fitted baseline with Bắc Luân II, the main goods bridge, held to 20 trucks a day from
    # June (its limits go by period: the summer one is a fitted input, which the scenario sets)
    (tmp_path / "limited.toml").write_text(
        f'extends = "{ROOT}/calibration/fitted_2022.toml"\n'
        '[[adjust]]\nid = "bac_luan_2_limit_summer"\nset = 20\n', encoding="utf-8")
    limited = load(tmp_path / "limited.toml")
    assert "adjust.bac_luan_2_limit_summer.set" not in limited.ensemble.columns  # the scenario's value wins
    assert "adjust.bac_luan_2_limit_winter.set" in limited.ensemble.columns  # the other periods still fitted
    code = main(["calibrate", "--check", str(TARGETS), "--scenario", str(tmp_path / "limited.toml"),
                 "--reps", "40", "--quiet"])
    assert code == 1
    assert "crossings_total" in capsys.readouterr().err


@pytest.mark.parametrize("edit, field", [
    (("observed = 95370", "observed = -5"), "targets.0.observed"),
    (("tolerance = 0.03   # the source", "tolerances = 0.03   # the source"), "targets.0.tolerances"),
    (('use = "fit"', 'use = "fitted"'), "targets.0.use"),
    (('use = "fit"', 'use = "fit"\nknown_miss = "a fit target must hold"'), "targets.0"),
    (('fitted = "fitted_2022.toml"', 'fitted = ""'), "fitted: must name a .toml file"),
    (('fitted = "fitted_2022.toml"', 'fitted = "."'), "fitted: must name a .toml file"),
    (('scenario = "stage1_2022.toml"', 'scenario = ""'), "scenario: must name a .toml file"),
])
def test_bad_targets_file_is_a_one_line_error(tmp_path, capsys, edit, field):
    assert edit[0] in TARGETS.read_text(encoding="utf-8")
    bad = TARGETS.read_text(encoding="utf-8").replace(*edit, 1)
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    for command in (["calibrate", "--check", str(tmp_path / "bad.toml")],
                    ["calibrate", str(tmp_path / "bad.toml"), "--quiet"]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and field in err and "bad.toml" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["bad.toml"]


@pytest.mark.slow
def test_the_budget_bounds_every_simulation_and_an_ample_one_changes_nothing(tmp_path):
    """--budget counts every simulation, the prior sample's too, and a generation it cannot
    complete stops short of it (the fit is the generation before); the draws are those of a fit
    without a budget, so a budget that suffices gives the same fit."""
    (tmp_path / "prior.toml").write_text(SYNTHETIC.format(**PRIOR), encoding="utf-8")
    (tmp_path / "targets.toml").write_text(_targets_toml(
        {"g1_march": 5300, "g1_april": 3600, "g2_all": 7100, "total": 16000}, "prior.toml"), encoding="utf-8")
    targets = cal.load_targets(tmp_path / "targets.toml")
    kw = dict(population=20, generations=5, reps_per_draw=1, workers=1, progress=False)
    ample = cal.calibrate(targets, budget=100_000, **kw)
    assert ample.simulations < 100_000
    for budget in (150, 300):
        cut = cal.calibrate(targets, budget=budget, **kw)
        assert cut.simulations <= budget
        assert len(cut.epsilons) < len(ample.epsilons) and cut.epsilons == ample.epsilons[:len(cut.epsilons)]
    with pytest.raises(cal.CalibrationError, match="ran out within the first generation"):
        cal.calibrate(targets, budget=40, **kw)
    with pytest.raises(cal.CalibrationError, match="is below one generation: .* at least 2 x 20 = 40 simulations"):
        cal.calibrate(targets, budget=39, **kw)


def test_an_ensemble_column_that_names_no_input_is_an_error(tmp_path):
    from sim.base.errors import ScenarioError

    (tmp_path / "ens.csv").write_text("gates.nowhere.exit.acceptance_limit\n10\n", encoding="utf-8")
    (tmp_path / "s.toml").write_text(f'extends = "{ROOT}/scenarios/baseline_2022.toml"\nensemble = "ens.csv"\n',
                                     encoding="utf-8")
    with pytest.raises(ScenarioError, match="ens.csv: column 1: its name is not an input of the scenario"):
        load(tmp_path / "s.toml")


def test_ensemble_rows_are_taken_whole():
    # each replication's fitted inputs are one row of the ensemble, not a mix of rows
    from sim.experiments.experiment import replicate

    fitted = load(ROOT / "calibration" / "fitted_2022.toml")
    ens = fitted.ensemble
    rows = {tuple(r) for r in ens.to_numpy()}
    for i in range(5):
        drawn = replicate(fitted, 1, i).inputs
        assert tuple(drawn[c] for c in ens.columns) in rows


def test_the_fit_plot_draws_a_target_every_simulation_agrees_on(tmp_path):
    # a posterior whose values are all the same: np.quantile may return a value a rounding error
    # above the mean, and matplotlib refuses a negative error bar (a finished fit was lost so)
    from types import SimpleNamespace

    from sim.outputs import plots

    targets = cal.load_targets(TARGETS)
    value = 0.1 + 0.2  # 0.30000000000000004: its mean over many copies is not itself
    sims = pd.DataFrame({t.name: np.full(200, value) for t in targets.targets})
    fake = SimpleNamespace(targets=targets, prior_simulated=sims,
                           ensemble=sims.rename(columns=lambda c: f"_sim_{c}"))
    assert np.quantile(sims.iloc[:, 0], 0.05) > sims.iloc[:, 0].mean()  # the case itself
    plots.calibration_fit(fake, tmp_path / "fit.png")
    assert (tmp_path / "fit.png").stat().st_size > 1000


def test_a_known_miss_that_the_model_now_meets_fails_the_check(tmp_path, capsys):
    # a validation target recorded as missed is printed as a miss, never passed over in silence;
    # once it lies inside its band the record must go, so the check fails until it is removed
    text = _targets_text()
    marked = text.replace('name = "queue_km3_4_30_may"\nuse = "validate"',
                          'name = "queue_km3_4_30_may"\nuse = "validate"\nknown_miss = "a test: it is inside"')
    assert marked != text
    (tmp_path / "marked.toml").write_text(marked, encoding="utf-8")
    assert main(["calibrate", "--check", str(tmp_path / "marked.toml"), "--reps", "60", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "calibration check failed: queue_km3_4_30_may" in captured.err
    assert "inside the band now; remove its known_miss" in captured.out
    assert "MISS, known" in captured.out  # the recorded misses are shown as misses


@given(st.lists(st.floats(0, 1e12, allow_nan=False), min_size=1, max_size=300).filter(lambda w: sum(w) > 0))
@settings(max_examples=200, deadline=None)
def test_truncated_weights_cap_each_set_and_keep_the_order(w):
    from sim.experiments.abc_sampler import truncated_weights

    w = np.array(w)
    t = truncated_weights(w)
    n = len(w)
    support = w / w.max() >= 1e-300  # a weight 1e-300 of the largest or less counts as 0
    assert t.sum() == pytest.approx(1.0) and np.all(t >= 0)
    assert t.max() <= np.sqrt(n) / n * (1 + 1e-6) or support.sum() <= np.sqrt(n)  # the cap, or too few to share it
    assert 1 / (t ** 2).sum() >= min(np.sqrt(n), support.sum()) * (1 - 1e-6)  # at least sqrt(n) sets effectively
    o = np.argsort(w, kind="stable")
    assert np.all(np.diff(t[o]) >= -1e-15)  # a larger raw weight never gets a smaller truncated one
    assert np.all((t > 0) == support)
    if w.max() / w.sum() <= np.sqrt(n) / n:  # nothing above the cap: the weights are only normalised
        np.testing.assert_allclose(t, w / w.sum(), atol=1e-300)


def test_abc_weights_that_fall_on_one_set_are_truncated_in_the_proposal():
    # a population whose raw weights sit on one set (as pyabc's did in the fit of commit cd919ff): the
    # proposal must spread over the population, not perturb that one set alone
    from sim.experiments.abc_sampler import TruncatedWeightTransition

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.uniform(size=(100, 3)), columns=["p0", "p1", "p2"])
    w = np.full(100, 1e-9)
    w[7] = 1.0
    k = TruncatedWeightTransition()
    k.fit(X, w)
    assert 1 / (k.w ** 2).sum() >= 10  # at least sqrt(100) sets effectively
    np.random.seed(1)
    near = np.linalg.norm(k.rvs(size=500).to_numpy() - X.iloc[7].to_numpy(), axis=1) < 0.05
    assert near.mean() < 0.5


def test_a_fit_removes_the_database_folders_that_killed_fits_left_and_no_other(tmp_path, monkeypatch):
    import fcntl
    import os
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    dead = tmp_path / "tmp" / "bordersim-abc-dead1234"  # a kill -9 left it: unlocked, pyabc's files only
    dead.mkdir()
    (dead / "abc.db").write_bytes(b"x")
    (dead / "abc.db-journal").write_bytes(b"x")
    foreign = tmp_path / "tmp" / "bordersim-abc-notours"  # the name, but a file pyabc does not write
    foreign.mkdir()
    (foreign / "abc.db").write_bytes(b"x")
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    live = tmp_path / "tmp" / "bordersim-abc-live5678"  # a running fit's: locked
    live.mkdir()
    (live / "abc.db").write_bytes(b"x")
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        (tmp_path / "prior.toml").write_text(SYNTHETIC.format(**PRIOR), encoding="utf-8")
        (tmp_path / "targets.toml").write_text(_targets_toml(
            {"g1_march": 5300, "g1_april": 3600, "g2_all": 7100, "total": 16000}, "prior.toml"), encoding="utf-8")
        cal.calibrate(cal.load_targets(tmp_path / "targets.toml"), population=10, generations=1, budget=200,
                      reps_per_draw=1, workers=1, progress=False)
    finally:
        os.close(fd)
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == ["bordersim-abc-live5678", "bordersim-abc-notours"]
    assert (foreign / "notes.txt").exists() and (live / "abc.db").exists()
