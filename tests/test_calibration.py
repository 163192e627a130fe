"""Calibration: ABC recovers known inputs on synthetic data, and --check guards the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sim import calibrate as cal
from sim.cli import main
from sim.scenario import from_dict, load

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ROOT / "calibration" / "targets_2022.toml"

# One gate, both directions, 60 days. The demand level of each direction is uncertain (what
# the counts should identify); the acceptance limit is far above demand (so the counts say
# nothing about it); the service time matters little to counts.
SYNTHETIC = """
name = "synthetic"
[horizon]
start = 2022-03-01
end = 2022-04-29
[classes.truck]
priority = 0
[gates.g]
name = "G"
classes = ["truck"]
hours = {{default = ["06:00-22:00"]}}
[gates.g.exit]
demand = {{truck = 400}}
acceptance_limit = {exit_limit}
[[gates.g.exit.stages]]
name = "customs"
lanes = 6
service_min = {{dist = "exponential", mean = {service}}}
[gates.g.entry]
demand = {{truck = 300}}
[[gates.g.entry.stages]]
name = "customs"
lanes = 6
service_min = {{dist = "exponential", mean = 10}}
[[demand_steps]]
id = "exit_level"
from = 2022-03-01
factor = {exit_scale}
directions = ["exit"]
[[demand_steps]]
id = "entry_level"
from = 2022-03-01
factor = {entry_scale}
directions = ["entry"]
"""
TRUE = {"exit_scale": 0.8, "entry_scale": 1.3, "exit_limit": 1500, "service": 12}
PRIOR = {"exit_scale": "{uniform = [0.5, 1.5]}", "entry_scale": "{uniform = [0.5, 1.5]}",
         "exit_limit": "{uniform = [1200, 2000]}", "service": "{uniform = [8, 16]}"}


def _targets_toml(observed: dict, scenario: str, fitted: str = "fitted.toml") -> str:
    out = [f'scenario = "{scenario}"', f'fitted = "{fitted}"', "seed = 7", ""]
    for name, (direction, value) in observed.items():
        out += ["[[targets]]", f'name = "{name}"', f"observed = {value}", 'source = "synthetic"',
                "period = [2022-03-01, 2022-04-29]", f'output = {{gate = "all", direction = "{direction}"}}',
                "tolerance = 0.02", ""]
    return "\n".join(out)


def test_abc_recovers_the_inputs_the_counts_identify(tmp_path):
    import tomllib

    # observations: the mean of 30 replications of the scenario at known input values
    truth = from_dict(tomllib.loads(SYNTHETIC.format(**TRUE)))
    from sim.run import run

    res = run(truth, reps=30, seed=99, workers=1, progress=False)
    start = truth.nominal.horizon.start
    fake = [cal.Target(name=n, observed=1, source="x", period=(start, truth.nominal.horizon.end),
                       output=cal.Output(direction=d), tolerance=0.02) for n, d in (("exit", "exit"), ("entry", "entry"))]
    obs = cal.target_values(res.results, fake, start).mean(axis=0)
    (tmp_path / "prior.toml").write_text(SYNTHETIC.format(**PRIOR), encoding="utf-8")
    (tmp_path / "targets.toml").write_text(
        _targets_toml({"exit": ("exit", obs[0]), "entry": ("entry", obs[1])}, "prior.toml"), encoding="utf-8")

    c = cal.calibrate(cal.load_targets(tmp_path / "targets.toml"), budget=1500, accept=0.04, workers=1, progress=False)
    ident = c.identification().set_index("input")
    for name, true in (("demand_steps.exit_level.factor", TRUE["exit_scale"]),
                       ("demand_steps.entry_level.factor", TRUE["entry_scale"])):
        row = ident.loc[name]
        assert row.posterior_q05 <= true <= row.posterior_q95, (name, row.to_dict())
        assert abs(row.posterior_median - true) <= 0.05 * true, (name, row.to_dict())
        assert row.identified
    # the counts carry no information on a limit that never binds
    assert not ident.loc["gates.g.exit.acceptance_limit", "identified"]

    # the written fitted scenario samples the ensemble, and it reproduces the observations
    cal.write_calibration(c)
    fitted = load(tmp_path / "fitted.toml")
    assert fitted.ensemble is not None and len(fitted.ensemble) == len(c.kept)
    rows = cal.check(cal.load_targets(tmp_path / "targets.toml"), reps=40, workers=1, progress=False)
    assert all(r.ok() for r in rows), cal.check_table(rows)


def test_committed_calibration_passes_check(capsys):
    # what CI asserts: the calibrated 2022 baseline reproduces the 2022 counts
    assert main(["calibrate", "--check", str(TARGETS), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "all targets hold" in out and "crossings_total" in out


def test_check_fails_when_a_target_moves_beyond_its_tolerance(tmp_path, capsys):
    text = TARGETS.read_text(encoding="utf-8")
    text = text.replace('scenario = "../scenarios/baseline_2022.toml"', f'scenario = "{ROOT}/scenarios/baseline_2022.toml"')
    text = text.replace('fitted = "fitted_2022.toml"', f'fitted = "{ROOT}/calibration/fitted_2022.toml"')
    moved = text.replace("observed = 48086", f"observed = {round(48086 * 1.05)}")  # exits 5 % higher
    assert moved != text
    (tmp_path / "moved.toml").write_text(moved, encoding="utf-8")
    assert main(["calibrate", "--check", str(tmp_path / "moved.toml"), "--reps", "60", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "calibration check failed: crossings_exit" in captured.err
    assert "crossings_total" not in captured.err.split("failed:")[1]


def test_check_fails_when_the_acceptance_limits_change(tmp_path, capsys):
    # the fitted baseline with Bắc Luân II, the main goods bridge, held to 20 trucks a day
    (tmp_path / "limited.toml").write_text(
        f'extends = "{ROOT}/calibration/fitted_2022.toml"\n'
        "[gates.bac_luan_2.exit]\nacceptance_limit = 20\n[gates.bac_luan_2.entry]\nacceptance_limit = 20\n",
        encoding="utf-8")
    limited = load(tmp_path / "limited.toml")
    assert "gates.bac_luan_2.exit.acceptance_limit" not in limited.ensemble.columns  # the scenario's value wins
    code = main(["calibrate", "--check", str(TARGETS), "--scenario", str(tmp_path / "limited.toml"),
                 "--reps", "40", "--quiet"])
    assert code == 1
    assert "crossings_total" in capsys.readouterr().err


def test_fitted_baseline_gives_the_same_counts_under_the_simpy_engine():
    # on the same replications (same seed: same inputs) the SimPy engine gives the fast
    # engine's counts, so the fit that --check shows on the fast engine holds for both
    targets = cal.load_targets(TARGETS)
    des = cal.check(targets, reps=4, seed=5, engine="des", workers=2, progress=False)
    fast = cal.check(targets, reps=4, seed=5, engine="fast", workers=2, progress=False)
    for a, b in zip(des, fast):
        assert a.simulated_mean == pytest.approx(b.simulated_mean, rel=1e-9), a.target.name
        assert abs(a.relative_error) <= 0.05  # 4 replications: near the target, if noisy


@pytest.mark.parametrize("edit, field", [
    (("observed = 95370", "observed = -5"), "targets.0.observed"),
    (("tolerance = 0.02   # issue 4", "tolerances = 0.02   # issue 4"), "targets.0.tolerances"),
])
def test_bad_targets_file_is_a_one_line_error(tmp_path, capsys, edit, field):
    bad = TARGETS.read_text(encoding="utf-8").replace(*edit, 1)
    (tmp_path / "bad.toml").write_text(bad, encoding="utf-8")
    assert main(["calibrate", "--check", str(tmp_path / "bad.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "bad.toml" in err


def test_an_ensemble_column_that_names_no_input_is_an_error(tmp_path):
    from sim.errors import ScenarioError

    (tmp_path / "ens.csv").write_text("gates.nowhere.exit.acceptance_limit\n10\n", encoding="utf-8")
    (tmp_path / "s.toml").write_text(f'extends = "{ROOT}/scenarios/baseline_2022.toml"\nensemble = "ens.csv"\n',
                                     encoding="utf-8")
    with pytest.raises(ScenarioError, match="gates.nowhere.exit.acceptance_limit"):
        load(tmp_path / "s.toml")


def test_ensemble_rows_are_taken_whole():
    # each replication's inputs are one row of the ensemble, not a mix of rows
    from sim.rng import replication_seed, stream

    fitted = load(ROOT / "calibration" / "fitted_2022.toml")
    ens = fitted.ensemble
    for i in range(5):
        seq = replication_seed(1, i)
        model = fitted.sample(lambda name: stream(seq, name))
        exit_scale = model.demand_steps[0].factor
        limit = model.gates["bac_luan_2"].exit.acceptance_limit
        match = ens[(ens["demand_steps.exit_level.factor"] == exit_scale)
                    & (ens["demand_steps.entry_level.factor"] == model.demand_steps[1].factor)]
        assert len(match) >= 1
        assert round(match["gates.bac_luan_2.exit.acceptance_limit"].iloc[0]) == limit  # a count: rounded
