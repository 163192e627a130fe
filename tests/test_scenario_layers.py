"""Scenarios a planner writes in a few lines: stable names, stages merged by name, adjustments,
--set, and values that win over a fitted ensemble."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from sim import from_dict, load
from sim.engines import des, fast
from sim.cli import main
from sim.experiments.experiment import replicate
from sim.engines.draws import replication_inputs
from sim.base.rng import replication_seed

from .helpers import metric

ROOT = Path(__file__).parent.parent
BASELINE = ROOT / "scenarios" / "baseline_2022.toml"
FITTED = ROOT / "calibration" / "fitted_2022.toml"
SMALL = Path(__file__).parent / "data" / "small_2022.toml"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ stable names


def _flow(rep, gate, direction):
    return next(f for f in rep.flows if (f.gate, f.direction) == (gate, direction))


def test_inserting_a_step_or_a_stage_moves_no_other_input(tmp_path):
    """A new demand step and a new stage leave every other input's name, its drawn value (its
    stream) and the arrivals and service draws of every flow unchanged."""
    child = _write(tmp_path, "child.toml", f'''extends = "{BASELINE}"
name = "with_more"

[[demand_steps]]
id = "new_step"
before = "exit_level"
from = 2022-06-01
factor = {{uniform = [0.9, 1.1]}}
gates = ["hoanh_mo"]

[[gates.bac_luan_2.exit.stages]]
name = "scan"
before = "customs"
lanes = 2
service_min = {{dist = "uniform", low = 1, high = {{uniform = [2, 4]}}}}
''')
    base, more = load(BASELINE), load(child)
    names_base = [r.name() for r in base.ranges]
    names_more = [r.name() for r in more.ranges]
    assert set(names_base) < set(names_more)
    assert set(names_more) - set(names_base) == {"demand_steps.new_step.factor",
                                                 "gates.bac_luan_2.exit.stages.scan.service_min.high"}
    for i in range(3):
        seq = replication_seed(7, i)
        a, b = replicate(base, 7, i).inputs, replicate(more, 7, i).inputs
        assert {k: v for k, v in b.items() if k in a} == a  # every shared input drew the same value
        ra, rb = replication_inputs(base, seq), replication_inputs(more, seq)
        fa, fb = _flow(ra, "bac_luan_2", "exit"), _flow(rb, "bac_luan_2", "exit")
        np.testing.assert_array_equal(fa.arrival, fb.arrival)
        for name in fa.stage_names:  # the old stages' service draws, wherever the new one went
            np.testing.assert_array_equal(fa.service[:, fa.stage_names.index(name)],
                                          fb.service[:, fb.stage_names.index(name)])
    assert [s.name for s in more.nominal.gates["bac_luan_2"].exit.stages] == ["scan", "customs", "border_guard"]
    assert [s.id for s in more.nominal.demand_steps][:2] == ["new_step", "exit_level"]


def test_ensemble_columns_follow_their_inputs_when_a_step_is_inserted(tmp_path):
    """A child of the fitted baseline that inserts a demand step still takes the exit demand
    level from the ensemble's exit-level column (by name, not by position)."""
    child = _write(tmp_path, "child.toml", f'''extends = "{FITTED}"
name = "fitted_plus_step"

[[demand_steps]]
id = "extra"
before = "exit_level"
from = 2022-06-01
factor = 1.05
gates = ["hoanh_mo"]
''')
    fitted, more = load(FITTED), load(child)
    for i in range(4):
        a, b = replicate(fitted, 3, i).inputs, replicate(more, 3, i).inputs
        assert a == b
        assert b["demand_steps.exit_level.factor"] in set(fitted.ensemble["demand_steps.exit_level.factor"])


# ------------------------------------------------------------------ stages merge by name


def test_a_child_listing_one_stage_keeps_the_others(tmp_path):
    child = _write(tmp_path, "child.toml", f'''extends = "{BASELINE}"
name = "faster_bl2_customs"

[[gates.bac_luan_2.exit.stages]]
name = "customs"
lanes = 3
''')
    stages = load(child).nominal.gates["bac_luan_2"].exit.stages
    assert [s.name for s in stages] == ["customs", "border_guard"]
    assert stages[0].lanes == 3
    assert stages[0].service_min == load(BASELINE).nominal.gates["bac_luan_2"].exit.stages[0].service_min


def test_a_stage_is_removed_only_when_asked(tmp_path):
    child = _write(tmp_path, "child.toml", f'''extends = "{BASELINE}"
name = "no_quarantine"

[[gates.bac_luan_2.entry.stages]]
name = "quarantine"
remove = true
''')
    assert [s.name for s in load(child).nominal.gates["bac_luan_2"].entry.stages] == ["border_guard", "customs"]
    wrong = _write(tmp_path, "wrong.toml", f'''extends = "{BASELINE}"
name = "wrong"

[[gates.bac_luan_2.entry.stages]]
name = "quarantin"
remove = true
''')
    assert main(["validate", str(wrong)]) == 2


def test_acceptance_is_a_reserved_stage_name(tmp_path, capsys):
    bad = _write(tmp_path, "bad.toml", (Path(__file__).parent / "data" / "tiny.toml").read_text(encoding="utf-8")
                 .replace('name = "customs"', 'name = "acceptance"'))
    assert main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "reserved" in err and "stages" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ adjustments


def test_customs_thirty_percent_faster_everywhere_in_four_lines(tmp_path):
    child = _write(tmp_path, "child.toml", f'''extends = "{BASELINE}"
name = "faster_customs"

[[adjust]]
id = "customs_faster"
what = "service"
stages = ["customs"]
multiply = 0.7
''')
    base, fast_ = load(BASELINE).nominal, load(child).nominal
    for g, d in base.flows():
        for a, b in zip(base.gates[g].spec(d).stages, fast_.gates[g].spec(d).stages):
            want = 0.7 if a.name == "customs" else 1.0
            assert b.service_min.expected() == pytest.approx(want * a.service_min.expected())
    cmp_child = replicate(load(child), 5, 0)
    cmp_base = replicate(load(BASELINE), 5, 0)
    assert metric(cmp_child, "all", "all", "wait_mean_h", stage="customs") < \
        metric(cmp_base, "all", "all", "wait_mean_h", stage="customs")


def test_an_adjustment_for_one_class_gives_it_its_own_service(tmp_path):
    child = _write(tmp_path, "child.toml", f'''extends = "{BASELINE}"
name = "green_lane_faster"

[[adjust]]
id = "green"
what = "service"
gates = ["km3_4"]
classes = ["perishable"]
multiply = 0.5
''')
    m = load(child).nominal
    st = m.gates["km3_4"].exit.stages[0]
    assert st.service_for("perishable").expected() == pytest.approx(0.5 * st.service_for("truck").expected())


def _one_gate(**exit_extra) -> dict:
    raw = {
        "name": "one_gate",
        "horizon": {"start": "2022-03-01", "end": "2022-03-20"},
        "classes": {"truck": {"priority": 1}, "fruit": {"priority": 0}},
        "gates": {"g": {
            "name": "g", "classes": ["truck", "fruit"], "hours": {"default": ["07:00-19:00"]},
            "exit": {"demand": {"truck": 40.0, "fruit": 10.0}, "acceptance_limit": 60, "initial_backlog": {"truck": 30},
                     "stages": [{"name": "customs", "lanes": 2,
                                 "service_min": {"dist": "lognormal", "mean": 20.0, "cv": 0.6}}]},
        }},
    }
    raw["gates"]["g"]["exit"].update(exit_extra)
    return raw


def _both_engines(raw: dict, seed: int = 4):
    rep = replication_inputs(from_dict(raw), replication_seed(seed, 0))
    a, b = des.simulate(rep), fast.simulate(rep)
    for x, y in zip(a, b):
        for name in ("start", "end"):
            u, v = getattr(x, name), getattr(y, name)
            assert np.array_equal(np.isnan(u), np.isnan(v))
            np.testing.assert_allclose(u[~np.isnan(u)], v[~np.isnan(v)], atol=1e-7)
    return rep, b


def test_a_limit_that_drops_on_a_date_is_respected_from_that_date_on():
    raw = _one_gate()
    raw["adjust"] = [{"id": "drop", "what": "acceptance_limit", "set": 5, "from": "2022-03-10"}]
    rep, records = _both_engines(raw)
    f, rec = records[0].inputs, records[0]
    k = f.acceptance
    s = rec.start[:, k]
    per_day = np.bincount((s[~np.isnan(s)] // 24).astype(int), minlength=20)
    assert per_day[:9].max() > 5  # before the drop the day's limit is 60
    assert per_day[9:].max() <= 5 and per_day[9:].sum() > 0


def test_fewer_lanes_from_a_date_serve_one_at_a_time():
    raw = _one_gate()
    raw["adjust"] = [{"id": "one_lane", "what": "lanes", "set": 1, "from": "2022-03-05", "until": "2022-03-12"},
                     {"id": "shut", "what": "lanes", "set": 0, "from": "2022-03-14", "until": "2022-03-14"}]
    rep, records = _both_engines(raw)
    rec = records[0]
    s, e, lane = rec.start[:, 0], rec.end[:, 0], rec.lane[:, 0]
    ok = ~np.isnan(s)
    day = (s[ok] // 24).astype(int)
    assert set(lane[ok][(day >= 4) & (day <= 11)]) == {0}  # one lane on those days
    assert not np.any(day == 13)  # no lane on the 14th
    assert {0, 1} <= set(lane[ok][day < 4])
    util = metric(replicate(from_dict(raw), 4, 0), "g", "exit", "utilisation", stage="customs")
    assert 0 < util <= 1


def test_hours_and_service_times_that_change_by_date():
    raw = _one_gate()
    raw["adjust"] = [{"id": "long_days", "what": "hours", "set": ["06:00-22:00"], "from": "2022-03-08"},
                     {"id": "slow", "what": "service", "multiply": 2.0, "classes": ["truck"], "from": "2022-03-15"}]
    rep, records = _both_engines(raw)
    f, rec = records[0].inputs, records[0]
    s = rec.start[:, 0]
    ok = ~np.isnan(s) & ~np.isnan(rec.end[:, 0])
    hour, day = s % 24, s // 24
    assert np.all((hour[ok & (day < 7)] >= 7 - 1e-9) & (hour[ok & (day < 7)] < 19))
    assert np.any(hour[ok & (day >= 7)] >= 19) or np.any(hour[ok & (day >= 7)] < 7)
    took = rec.end[:, 0] - s
    truck = f.vclass == f.classes.index("truck")
    late = ok & (day >= 14)
    np.testing.assert_allclose(took[late & truck], 2 * f.service[late & truck, 0])
    np.testing.assert_allclose(took[late & ~truck], f.service[late & ~truck, 0])
    np.testing.assert_allclose(took[ok & (day < 14)], f.service[ok & (day < 14), 0])


def test_an_adjustment_that_matches_nothing_is_an_error(tmp_path, capsys):
    child = _write(tmp_path, "child.toml", f'''extends = "{BASELINE}"
name = "typo"

[[adjust]]
id = "x"
what = "lanes"
stages = ["custom"]
set = 3
''')
    assert main(["validate", str(child)]) == 2
    err = capsys.readouterr().err
    assert "adjust.x" in err and "custom" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ --set and the ensemble


def test_set_on_the_command_line_changes_one_input(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", str(SMALL), "--reps", "2", "--quiet", "--no-plots", "--out", str(out),
            "--set", "gates.bac_luan_2.exit.stages.customs.lanes=4",
            "--set", "gates.bac_luan_2.exit.acceptance_limit={uniform = [150, 160]}"]
    assert main(args) == 0
    warned = capsys.readouterr().err  # the baseline sets Bắc Luân II's limits by period: said, once
    assert warned.count("dated adjustments set it") == 1, warned
    assert "--set gates.bac_luan_2.exit.acceptance_limit: " in warned and "adjust.bac_luan_2_limit_winter" in warned
    m = load(SMALL, sets=args[-3:-2] + args[-1:]).nominal
    assert m.gates["bac_luan_2"].exit.stages[0].lanes == 4
    assert m.gates["bac_luan_2"].exit.acceptance_limit == 155
    for bad in ("gates.bac_luan_2.exit.stages.custom.lanes=4", "gates.bac_luan_2.exit.stages.customs.lanes=0",
                "gates.bac_luan_2.exit.stages.customs.lanes", "gates.nowhere.exit.demand.truck=3"):
        rc = main(["run", str(SMALL), "--reps", "2", "--quiet", "--out", str(tmp_path / "bad"), "--set", bad])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and ("--set" in err or "lanes" in err), (bad, err)
        assert not (tmp_path / "bad").exists()


def test_a_range_a_child_sets_wins_over_the_ensemble_column(tmp_path):
    """Extending the fitted baseline with Hoành Mô's demand level {uniform = [0.6, 0.7]} (a fitted
    input): the replications draw it from that range, not from the ensemble (whose column it
    replaces)."""
    child = _write(tmp_path, "child.toml", f'''extends = "{FITTED}"
name = "quieter_hoanh_mo"

[[adjust]]
id = "level_hoanh_mo"
multiply = {{uniform = [0.6, 0.7]}}
''')
    scen = load(child)
    col = "adjust.level_hoanh_mo.multiply"
    ensemble = load(FITTED).ensemble
    assert ensemble[col].min() > 0.7  # the fit's values all lie above the child's range
    assert col in scen.overridden or col not in scen.ensemble.columns
    drawn = [replicate(scen, 1, i).inputs for i in range(4)]  # any ensemble row would lie above 0.7
    assert all(0.6 <= inputs[col] <= 0.7 for inputs in drawn)
    other = "demand_steps.exit_level.factor"  # the rest still comes from the ensemble
    assert all(inputs[other] in set(ensemble[other]) for inputs in drawn)


def test_a_backlog_that_came_before_the_start_waits_from_when_it_came():
    raw = _one_gate(backlog_age_days={"dist": "uniform", "low": 10, "high": 20})
    rep, records = _both_engines(raw)
    f, rec = records[0].inputs, records[0]
    backlog = f.arrival < 0
    assert backlog.sum() == 30
    assert np.all((f.arrival[backlog] >= -20 * 24) & (f.arrival[backlog] <= -10 * 24))
    assert np.all(np.diff(f.arrival) >= 0)  # the oldest at the head of the queue
    result = replicate(from_dict(raw), 4, 0)
    crossed = ~np.isnan(rec.depart)
    waits = (rec.depart - f.arrival - np.nansum(rec.end - rec.start, axis=1))[crossed]
    assert np.isclose(metric(result, "g", "exit", "wait_mean_h"), waits.mean())
    assert waits.max() > 10 * 24  # the oldest waited over ten days, counted from when they came
    # the queue at 00:00 on day one holds the backlog: its level is 30 before any arrival
    assert result.daily_queue_end[("g", "exit")][0] > 0


def test_a_class_turned_away_by_date_waits_outside_until_the_refusal_ends():
    raw = _one_gate()
    raw["adjust"] = [{"id": "cold_chain_ban", "what": "refuse", "classes": ["fruit"],
                      "from": "2022-03-05", "until": "2022-03-09"}]
    rep, records = _both_engines(raw)
    f, rec = records[0].inputs, records[0]
    fruit = f.vclass == f.classes.index("fruit")
    came = fruit & (f.arrival >= 4 * 24) & (f.arrival < 9 * 24)
    assert came.sum() > 10
    assert np.all(rec.start[came, 0] >= 9 * 24)  # none served before 10 March 00:00
    others = ~fruit & (f.arrival >= 4 * 24) & (f.arrival < 8 * 24)
    assert np.nanmin(rec.start[others, 0]) < 9 * 24  # the trucks go on
    result = replicate(from_dict(raw), 4, 0)
    assert metric(result, "g", "exit", "wait_mean_h", vclass="fruit") > metric(
        replicate(from_dict(_one_gate()), 4, 0), "g", "exit", "wait_mean_h", vclass="fruit")


def test_set_changes_a_value_relatively_and_refuses_a_sign_after_a_plain_equals(tmp_path, capsys):
    """A planner's --set is a change: lanes+=1 adds a lane to today's 2 (lanes=+1 set 1 lane, half
    of today's, and is now refused in one line); *= multiplies both ends of a range; -= subtracts."""
    lanes = "gates.mong_cai.exit.stages.customs.lanes"
    before = load(FITTED).nominal.gates["mong_cai"].exit.stages[0].lanes
    assert load(FITTED, sets=[f"{lanes}+=1"]).nominal.gates["mong_cai"].exit.stages[0].lanes == before + 1
    assert load(FITTED, sets=[f"{lanes}+=1", f"{lanes}*=2"]).nominal.gates["mong_cai"].exit.stages[0].lanes == \
        2 * (before + 1)  # in order, each on the value the one before left
    limit = "gates.bac_luan_2.exit.acceptance_limit"
    ranged = load(SMALL, sets=[f"{limit}={{uniform = [100, 120]}}", f"{limit}-=10"])
    assert [r.values for r in ranged.ranges if r.name() == limit] == [(90.0, 110.0)]
    out = tmp_path / "out"
    for bad, said in ((f"{lanes}=+1", f"{lanes}+=1 to add 1"), (f"{lanes}=-1", f"{lanes}-=1 to subtract 1"),
                      (f"{lanes}*=0", "above 0"), (f"{lanes}+=abc", "not a TOML value"),
                      (f"{lanes}-=5", f"--set {lanes}-=5"),
                      ("gates.mong_cai.exit.stages.customs.service_min*=0.7", "such as .mean"),
                      ("gates.mong_cai.name+=1", "changes a number or both ends of a range")):
        rc = main(["run", str(FITTED), "--reps", "2", "--quiet", "--out", str(out), "--set", bad])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1 and said in err, (bad, err)
        assert not out.exists()


def test_a_relative_set_of_a_fitted_input_changes_every_ensemble_row(capsys):
    """Bắc Luân II's customs time is fitted: *= 0.7 must scale the value each replication takes
    from its ensemble row (the same row as without the change: common random numbers), not
    replace the fitted values by the prior's range."""
    col = "gates.bac_luan_2.exit.stages.customs.service_min.mean"
    base, faster = load(FITTED), load(FITTED, sets=[f"{col}*=0.7"])
    assert col in faster.ensemble.columns and col not in faster.overridden
    for i in range(4):
        assert replicate(faster, 3, i).inputs[col] == pytest.approx(0.7 * replicate(base, 3, i).inputs[col])
    other = "demand_steps.exit_level.factor"
    assert replicate(faster, 3, 0).inputs[other] == replicate(base, 3, 0).inputs[other]
    from sim.model.adjust import set_warnings
    warned = set_warnings(base.nominal, ["gates.bac_luan_2.exit.acceptance_limit*=1.2"])
    assert len(warned) == 1 and "adjust.bac_luan_2_limit_winter" in warned[0]


def test_a_what_if_run_gets_a_name_and_folder_of_its_own(tmp_path, monkeypatch, capsys):
    """`bordersim run --set ...` is another scenario than the file's: it must not replace the
    plain run's folder (a planner lost a 10-replication baseline so), and two different what-ifs
    must not replace each other; the same one again goes to the same folder. A misspelt input
    with a relative change lists what is there (it told the planner to give it a value)."""
    monkeypatch.chdir(tmp_path)
    base = ["run", str(SMALL), "--reps", "2", "--workers", "1", "--quiet", "--no-plots", "--no-report"]
    lanes = "gates.bac_luan_2.exit.stages.customs.lanes"
    assert main(base) == 0
    plain = tmp_path / "results" / "small_2022"
    before = (plain / "summary.csv").read_bytes()
    assert main(base + ["--set", f"{lanes}+=1"]) == 0
    assert main(base + ["--set", f"{lanes}+=2"]) == 0
    assert main(base + ["--set", f"{lanes}+=1"]) == 0
    folders = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert len(folders) == 3 and "small_2022" in folders
    assert all(f.startswith("small_2022_set-") for f in folders if f != "small_2022")
    assert (plain / "summary.csv").read_bytes() == before
    import json
    changed = next(p for p in (tmp_path / "results").iterdir() if p.name != "small_2022")
    meta = json.loads((changed / "metadata.json").read_text())
    assert meta["scenario"] == "small_2022_set"
    said = json.dumps(meta, ensure_ascii=False)  # the run says what it changed, as a comparison does
    assert f"small_2022 with --set {lanes}+=" in said
    capsys.readouterr()
    assert main(base + ["--set", "gates.bac_luan_2.exit.stages.customs.lane+=1"]) == 2
    err = capsys.readouterr().err
    assert "no 'lane' to change" in err and "lanes" in err and len(err.strip().splitlines()) == 1


def test_two_what_if_comparisons_go_to_folders_of_their_own(tmp_path, monkeypatch):
    """compare BASE BASE --set ... twice with different changes: two folders, not one replaced."""
    monkeypatch.chdir(tmp_path)
    base = ["compare", str(SMALL), str(SMALL), "--reps", "2", "--workers", "1", "--quiet", "--no-plots",
            "--no-report"]
    lanes = "gates.bac_luan_2.exit.stages.customs.lanes"
    assert main(base + ["--set", f"{lanes}+=1"]) == 0
    assert main(base + ["--set", f"{lanes}+=2"]) == 0
    folders = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert len(folders) == 2 and all(f.startswith("compare_small_2022_vs_small_2022_set-") for f in folders)
