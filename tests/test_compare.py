"""Comparisons on common random numbers: exact where nothing changed, tight where little did,
and consistent with what adding capacity must do."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sim import compare, from_dict, load
from sim.cli import main
from sim.experiments.experiment import replicate

from .helpers import OVERLOADED, comparison_figures, metric

DATA = Path(__file__).parent / "data"
SMALL = DATA / "small_2022.toml"


def test_a_scenario_against_its_copy_differs_by_exactly_zero():
    base = load(SMALL)
    copy_ = from_dict({**copy.deepcopy(base.raw), "name": "copy"}, base_dir=SMALL.parent)
    cmp = compare(base, [copy_], reps=4, seed=3, workers=1, progress=False)
    t = cmp.table
    assert len(t) > 100
    assert (t["diff_mean"].fillna(0) == 0).all()
    assert (t["diff_ci_low"].fillna(0) == 0).all() and (t["diff_ci_high"].fillna(0) == 0).all()
    assert not t["excludes_zero"].any()


def _two_lane_gate(lanes: int, mean_min: float) -> dict:
    return {
        "name": f"g{lanes}_{mean_min}",
        "horizon": {"start": "2022-03-01", "end": "2022-03-20"},
        "classes": {"truck": {"priority": 0}},
        "gates": {"g": {
            "name": "gate", "classes": ["truck"], "hours": {"default": ["07:00-19:00"]},
            "exit": {"demand": {"truck": 60.0}, "stages": [
                {"name": "customs", "lanes": lanes,
                 "service_min": {"dist": "lognormal", "mean": mean_min, "cv": 0.8}}]},
        }},
    }


def test_common_random_numbers_tighten_the_difference_of_a_small_change():
    """Service 5 % faster: the variance of the paired difference (same seeds) is at most a
    quarter of that between independent runs (other seeds for the alternative)."""
    base, alt = from_dict(_two_lane_gate(2, 20.0)), from_dict(_two_lane_gate(2, 19.0))
    reps = 30
    same = compare(base, [alt], reps=reps, seed=11, workers=1, progress=False)
    other = compare(alt, [from_dict({**_two_lane_gate(2, 19.0), "name": "x"})], reps=reps, seed=12, workers=1,
                    progress=False)

    def waits(results):
        return np.array([metric(r, "g", "exit", "wait_mean_h") for r in results])

    crn = waits(same.results[1]) - waits(same.results[0])
    independent = waits(other.results[0]) - waits(same.results[0])  # alt on seed 12, base on seed 11
    assert crn.var(ddof=1) <= 0.25 * independent.var(ddof=1), (crn.var(ddof=1), independent.var(ddof=1))
    row = same.table.query("gate == 'g' and direction == 'exit' and metric == 'wait_mean_h' and stage == ''"
                           " and `class` == ''").iloc[0]
    assert row.diff_ci_high < 0  # faster service: a shorter wait, and the interval says so


@st.composite
def capacity_scenarios(draw):
    """Small scenarios with one priority class, no daily limits and no closures, whose last
    day brings no arrivals (so the queue can drain before the end)."""
    days = draw(st.integers(3, 6))
    stages = [{"name": f"s{k}", "lanes": draw(st.integers(1, 3)),
               "service_min": draw(st.sampled_from([
                   {"dist": "exponential", "mean": 20.0}, {"dist": "lognormal", "mean": 15.0, "cv": 0.8},
                   {"dist": "deterministic", "value": 12.0}, {"dist": "uniform", "low": 5.0, "high": 30.0}]))}
              for k in range(draw(st.integers(1, 3)))]
    start = pd.Timestamp("2022-03-07") + pd.Timedelta(days=draw(st.integers(0, 6)))
    weekday = [1.0] * 7
    weekday[(start + pd.Timedelta(days=days - 1)).weekday()] = 0.0
    return {
        "name": "cap",
        "horizon": {"start": start.date(), "end": (start + pd.Timedelta(days=days - 1)).date()},
        "classes": {"truck": {"priority": 0}, "green": {"priority": 0}},
        "profile": {"weekday": weekday},
        "gates": {"g": {
            "name": "g", "classes": ["truck", "green"],
            "hours": {"default": [f"0{draw(st.integers(0, 7))}:00-{draw(st.integers(17, 23))}:00"]},
            "exit": {"demand": {"truck": draw(st.floats(5.0, 40.0)), "green": draw(st.floats(1.0, 10.0))},
                     "initial_backlog": {"truck": draw(st.integers(0, 20))}, "stages": stages},
        }},
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=capacity_scenarios(), seed=st.integers(0, 2**32 - 1))
def test_adding_a_lane_never_lengthens_the_mean_wait(raw, seed):
    """A lane more at the last stage (the only one, or the one after the others) shortens or
    keeps every vehicle's wait under common random numbers (FCFS: each start is the earliest
    open time at which a lane is free, monotone in the lanes). Not so for a lane before another
    stage: vehicles then reach the next stage in another order, each with its own service time
    there, and the mean wait can grow (hypothesis found a two-stage case: +3 %)."""
    more = copy.deepcopy(raw)
    more["gates"]["g"]["exit"]["stages"][-1]["lanes"] += 1
    a = replicate(from_dict(raw), seed, 0)
    b = replicate(from_dict(more), seed, 0)
    arrivals = metric(a, "g", "exit", "arrivals")
    assume(metric(a, "g", "exit", "crossings") == arrivals)  # every vehicle crossed: nothing cut by the end
    assert metric(b, "g", "exit", "crossings") == arrivals
    assert metric(b, "g", "exit", "wait_mean_h") <= metric(a, "g", "exit", "wait_mean_h") + 1e-9


def test_compare_command_writes_tables_and_plots(tmp_path, capsys):
    alt = tmp_path / "alt.toml"
    # Bắc Luân II's limit goes by period: over these seven weeks the winter one holds
    alt.write_text(f'extends = "{SMALL}"\nname = "small_higher_limit"\n\n[[adjust]]\n'
                   'id = "bac_luan_2_limit_winter"\nset = {uniform = [400, 500]}\n', encoding="utf-8")
    out = tmp_path / "cmp"
    assert main(["compare", str(SMALL), str(alt), "--reps", "6", "--out", str(out), "--quiet"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"compare.csv", "summary.csv", "daily.csv", "compare_differences.png", "time_in_system.png",
            "queue_by_date.png", "metadata.json"} <= names
    t = pd.read_csv(out / "compare.csv")
    t[["stage", "class"]] = t[["stage", "class"]].fillna("")
    assert list(t.columns[:6]) == ["scenario", "gate", "direction", "metric", "stage", "class"]
    row = t[(t.gate == "bac_luan_2") & (t.direction == "exit") & (t.metric == "held_by_limit_share")
            & (t.stage == "") & (t["class"] == "")].iloc[0]
    assert row.diff_mean < 0 and row.excludes_zero  # a higher daily limit holds fewer vehicles back


LIBRARY = sorted(p for p in (Path(__file__).parent.parent / "scenarios").glob("*.toml") if p.name != "baseline_2022.toml")


def test_the_library_has_the_mission_questions():
    names = {p.stem for p in LIBRARY}
    assert {"km3_4_permanent_bridge", "bac_luan_2_more_lanes_longer_hours", "spillway_bridges", "faster_procedures",
            "higher_acceptance_limits", "expressway_demand_growth", "normal_operations_2023"} <= names


@pytest.mark.parametrize("path", LIBRARY, ids=[p.stem for p in LIBRARY])
def test_each_library_scenario_changes_what_its_header_promises(path):
    """A short run of the scenario against the one it extends (common random numbers): every
    promise in its [[expect]] list holds in sign."""
    import tomllib

    scen = load(path)
    assert scen.nominal.expect, f"{path.name} promises nothing"
    parent = load(path.parent / tomllib.loads(path.read_text(encoding="utf-8"))["extends"])
    cmp = compare(parent, [scen], reps=6, seed=5, workers=1, progress=False, allow_overload=path.stem in OVERLOADED)
    t = cmp.table
    for e in scen.nominal.expect:
        row = t[(t.gate == e.gate) & (t.direction == e.direction) & (t.metric == e.metric) & (t.stage == "")
                & (t["class"] == "")].iloc[0]
        if e.change == "none":  # every replication the same as the parent's (common random numbers)
            assert row.diff_mean == 0 and row.diff_ci_low == 0 and row.diff_ci_high == 0, (e, row.to_dict())
        else:
            assert (row.diff_mean < 0) if e.change == "decrease" else (row.diff_mean > 0), (e, row.to_dict())


def _alternative(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'extends = "{SMALL}"\nname = "{name}"\n\n{body}', encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def higher_limit(tmp_path_factory) -> Path:
    """The small baseline with a higher winter limit at Bắc Luân II."""
    return _alternative(tmp_path_factory.mktemp("alts"), "higher_limit",
                        '[[adjust]]\nid = "bac_luan_2_limit_winter"\nset = {uniform = [400, 500]}\n')


@pytest.fixture(scope="module")
def one_alternative(higher_limit):
    """The small baseline against its higher limit, 5 replications."""
    return compare(load(SMALL), [load(higher_limit)], reps=5, seed=4, workers=1, progress=False)


@pytest.fixture(scope="module")
def two_alternatives(higher_limit):
    """The small baseline against its higher limit and against itself with a lane more at Km3+4's
    exit customs (--set on every alternative), 5 replications."""
    return compare(load(SMALL), [load(higher_limit), load(SMALL)], reps=5, seed=4, workers=1, progress=False,
                   sets=["gates.km3_4.exit.stages.customs.lanes=4"])


def _paired(values_base: np.ndarray, values_alt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95 % t-interval of the paired differences (replications on axis 0)."""
    from scipy import stats

    d = values_alt - values_base
    half = stats.t.ppf(0.975, d.shape[0] - 1) * d.std(axis=0, ddof=1) / np.sqrt(d.shape[0])
    return d.mean(axis=0), d.mean(axis=0) - half, d.mean(axis=0) + half


def test_compare_gives_time_in_system_queue_and_truck_hours_with_paired_intervals(one_alternative):
    """compare.csv has, per gate and both directions, the mean and 95th percentile time in system,
    the mean queue and the waiting truck-hours, each with its paired difference and interval."""
    cmp = one_alternative
    t = cmp.table
    for metric in ("time_in_system_mean_h", "time_in_system_p95_h", "queue_mean", "waiting_truck_hours"):
        i = cmp.results[0][0].labels.index(("bac_luan_2", "all", metric, "", ""))
        base = np.array([r.values[i] for r in cmp.results[0]])
        alt = np.array([r.values[i] for r in cmp.results[1]])
        row = t[(t.gate == "bac_luan_2") & (t.direction == "all") & (t.metric == metric) & (t.stage == "")
                & (t["class"] == "")].iloc[0]
        assert np.allclose([row.diff_mean, row.diff_ci_low, row.diff_ci_high], _paired(base, alt), rtol=1e-9)
        assert row.diff_mean < 0, (metric, row.to_dict())  # a higher limit: less waiting
        assert row.excludes_zero or metric == "time_in_system_p95_h", (metric, row.to_dict())
    for g in ("mong_cai", "bac_luan_2", "km3_4", "hoanh_mo", "bac_phong_sinh", "all"):
        assert {"time_in_system_mean_h", "queue_mean", "waiting_truck_hours"} <= set(t[t.gate == g].metric)


def test_differences_by_month_and_by_day_are_paired_replication_by_replication(two_alternatives):
    """compare_monthly.csv and compare_daily.csv: per alternative, each month's (day's) difference
    alt - base with the t-interval of the replications' paired differences; the months' crossings
    add up to the whole horizon's difference."""
    from sim.statistics.metrics import MONTHLY_METRICS

    cmp = two_alternatives
    assert cmp.names == ["small_2022", "higher_limit", "small_2022_set"]
    for k, alt in ((1, "higher_limit"), (2, "small_2022_set")):
        monthly = cmp.monthly_differences[cmp.monthly_differences.scenario == alt]
        gi = cmp.results[0][0].monthly_groups.index(("km3_4", "exit"))
        for j, month in enumerate(["2022-01", "2022-02"]):
            for mi, metric in enumerate(MONTHLY_METRICS):
                base = np.array([r.monthly[gi, mi, j] for r in cmp.results[0]])
                other = np.array([r.monthly[gi, mi, j] for r in cmp.results[k]])
                row = monthly[(monthly.gate == "km3_4") & (monthly.direction == "exit") & (monthly.month == month)
                              & (monthly.metric == metric)].iloc[0]
                assert np.allclose([row.diff_mean, row.diff_ci_low, row.diff_ci_high], _paired(base, other),
                                   rtol=1e-9, equal_nan=True), (alt, month, metric)
        crossings = monthly[(monthly.gate == "all") & (monthly.direction == "all") & (monthly.metric == "crossings")]
        whole = cmp.table[(cmp.table.scenario == alt) & (cmp.table.gate == "all") & (cmp.table.direction == "all")
                          & (cmp.table.metric == "crossings") & (cmp.table.stage == "") & (cmp.table["class"] == "")]
        assert np.isclose(crossings.diff_mean.sum(), whole.diff_mean.iloc[0])
        daily = cmp.daily_differences[(cmp.daily_differences.scenario == alt) & (cmp.daily_differences.gate == "km3_4")
                                      & (cmp.daily_differences.direction == "all")
                                      & (cmp.daily_differences.metric == "queue_mean")]
        base = np.array([r.daily_queue_mean[("km3_4", "all")] for r in cmp.results[0]], dtype=float)
        other = np.array([r.daily_queue_mean[("km3_4", "all")] for r in cmp.results[k]], dtype=float)
        assert np.allclose(np.array([daily.diff_mean, daily.diff_ci_low, daily.diff_ci_high]), _paired(base, other),
                           rtol=1e-6, atol=1e-6, equal_nan=True)


def test_compare_writes_its_monthly_and_daily_tables_and_reads_back_as_the_api_gives_them(one_alternative, tmp_path):
    """monthly.csv (each scenario's), compare_monthly.csv and compare_daily.csv are written; a
    table read back with sim.read_table equals the API's, an empty stage or class "" in both."""
    from sim import read_table, write_comparison

    cmp = one_alternative
    out = tmp_path / "cmp"
    write_comparison(cmp, out, make_plots=False, report=False)
    monthly = read_table(out / "monthly.csv")
    assert list(monthly.columns) == ["scenario", "gate", "direction", "month", "metric", "mean", "ci_low", "ci_high",
                                     "p05", "p95"]
    assert set(monthly.scenario) == {"small_2022", "higher_limit"} and set(monthly.month) == {"2022-01", "2022-02"}
    for name, table in (("compare.csv", cmp.table), ("compare_monthly.csv", cmp.monthly_differences),
                        ("summary.csv", cmp.summary), ("monthly.csv", cmp.monthly)):
        back = read_table(out / name)
        assert list(back.columns) == list(table.columns), name
        for c in table.columns:
            if not pd.api.types.is_numeric_dtype(table[c]):
                assert back[c].tolist() == table[c].tolist(), (name, c)
            else:
                np.testing.assert_allclose(back[c].to_numpy(dtype=float), table[c].to_numpy(dtype=float),
                                           rtol=1e-5, equal_nan=True, err_msg=f"{name} {c}")
    assert (read_table(out / "compare.csv")["stage"] == "").any()
    daily = read_table(out / "compare_daily.csv")
    assert list(daily.columns[:5]) == ["scenario", "gate", "direction", "date", "metric"]


def test_compare_queue_by_date_draws_each_alternatives_paired_difference(one_alternative, tmp_path, monkeypatch):
    """queue_by_date.png: per gate, a line per alternative (not per scenario) at its paired
    difference to the base on each day, inside a band of its 95 % interval."""
    cmp = one_alternative
    fig = comparison_figures(cmp, tmp_path / "cmp", monkeypatch)["queue_by_date.png"]
    d = cmp.daily_differences
    assert len(fig.axes) == 5
    for ax in fig.axes:
        lines = [ln for ln in ax.get_lines() if ln.get_label() in cmp.names]
        assert [ln.get_label() for ln in lines] == cmp.names[1:]
        gate = {g.name: gid for gid, g in cmp.base.nominal.gates.items()}[ax.get_title(loc="left")]
        bands = ax.collections
        assert len(bands) == len(lines)
        for ln, band in zip(lines, bands):
            sel = d[(d.scenario == ln.get_label()) & (d.gate == gate) & (d.direction == "all")
                    & (d.metric == "queue_mean")]
            np.testing.assert_allclose(ln.get_ydata(), sel.diff_mean.to_numpy(), rtol=1e-9)
            y = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
            assert np.isclose(y.min(), sel.diff_ci_low.min()) and np.isclose(y.max(), sel.diff_ci_high.max())


def test_two_scenarios_of_one_name_are_told_apart():
    """The same file twice (or two files with one name) compare; the second is NAME_2."""
    tiny = load(DATA / "tiny.toml")
    cmp = compare(tiny, [load(DATA / "tiny.toml"), tiny], reps=2, seed=1, workers=1, progress=False)
    assert cmp.names == ["tiny", "tiny_2", "tiny_3"]
    assert set(cmp.table.scenario) == {"tiny_2", "tiny_3"}
    assert (cmp.table.diff_mean.fillna(0) == 0).all()  # the same scenario: no difference at all


def test_compare_applies_sets_to_the_alternatives_only():
    """compare(..., sets=[...]) changes every alternative, not the base, as `compare --set` does;
    an alternative so changed that has the base's name is NAME_set."""
    tiny = load(DATA / "tiny.toml")
    cmp = compare(tiny, [tiny], reps=3, seed=1, workers=1, progress=False,
                  sets=["gates.hoanh_mo.exit.stages.customs.lanes=3"])
    assert cmp.names == ["tiny", "tiny_set"]
    assert [s.nominal.gates["hoanh_mo"].exit.stages[0].lanes for s in cmp.scenarios] == [1, 3]
    row = cmp.table[(cmp.table.gate == "hoanh_mo") & (cmp.table.direction == "exit")
                    & (cmp.table.metric == "wait_mean_h") & (cmp.table.stage == "")].iloc[0]
    assert row.diff_mean < 0
    assert "sets" in compare.__doc__


def test_a_value_out_of_range_from_compares_set_names_the_set(tmp_path, capsys):
    """As for `run`, an alternative's value a --set gave that the schema refuses is one line naming
    that --set (not only the file it changed); exit 2, nothing written."""
    out = tmp_path / "c"
    tiny = str(DATA / "tiny.toml")
    code = main(["compare", tiny, tiny, "--set", "gates.hoanh_mo.exit.stages.customs.lanes=0", "--reps", "2",
                 "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--set gates.hoanh_mo.exit.stages.customs.lanes=0: " in err and "greater than or equal to 1" in err, err
    assert not out.exists()
