"""The costs of waiting (VND): a closed form, components and groups that add up, spoilage from each
vehicle's own wait, bad cost inputs, both engines alike."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sim import from_dict, load, run
from sim.cli import main
from sim.experiments.run import run_replication
from sim.model.schema import COST_FIELDS
from sim.statistics.flowstats import BIN_EDGES, BIN_TABLE, N_COUNTS, N_HIST, N_MONTHLY, flow_pass
from sim.statistics.metrics import COST_METRICS, COST_PARTS, DIVERTED_COST, daily_table

from .helpers import metric, single_queue
from .test_analytic import erlang_c_wait
from .test_bad_input import TINY, assert_run_refused

SMALL = Path(__file__).parent / "data" / "small_2022.toml"
COSTS = {"truck_hour_vnd": 0.0, "parking_day_vnd": 0.0, "gave_up_vnd": 0.0, "diverted_vnd": 0.0}


def _priced_queue(lam: float, lanes: int, rate: float, days: int, warmup_days: float) -> dict:
    """An M/M/c queue whose only cost is the truck-hour of waiting, ``rate`` VND."""
    raw = single_queue(lam, lanes, {"dist": "exponential", "mean": 60.0}, days=days, warmup_days=warmup_days)
    raw["classes"]["truck"]["costs"] = {**COSTS, "truck_hour_vnd": rate}
    return raw


def _inside_95(values: np.ndarray, expected: float) -> bool:
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    assert half < 0.1 * expected  # informative, or the check could not fail
    return abs(values.mean() - expected) <= half


def test_mmc_waiting_cost_matches_little_and_erlang_c():
    """Only the truck-hour priced: the cost of waiting over the horizon after the warm-up is
    rate x (time-average number waiting) x hours = rate x lambda x Wq x hours (Little), inside
    the replications' 95 % interval; the cost of each vehicle's time in system is not."""
    lam, c, rate, days, warm = 2.55, 3, 250_000.0, 300, 20  # per hour, lanes, VND an hour
    scen = from_dict(_priced_queue(lam, c, rate, days, warm))
    results = [run_replication(scen, 21, i) for i in range(20)]
    cost = np.array([metric(r, "g", "exit", "cost_total_vnd") for r in results])
    hours = 24.0 * (days - warm)
    wq = erlang_c_wait(lam, 1.0, c)
    assert _inside_95(cost, rate * lam * wq * hours)
    assert not _inside_95(cost, rate * lam * (wq + 1.0) * hours)  # the check has power
    # the time component is the priced waiting_truck_hours, vehicle for vehicle
    for r in results[:3]:
        assert metric(r, "g", "exit", "cost_time_vnd") == pytest.approx(
            rate * metric(r, "g", "exit", "waiting_truck_hours"), rel=1e-9)


def test_the_printed_cost_says_its_days_and_what_that_is_a_year():
    """The run's cost line: the total over the horizon after the warm-up, its days, and the
    same a year (x 365 / those days), as the optimisation's total_cost annualises it."""
    from sim.experiments.optimise import per_year
    from sim.outputs.findings import cost_lines
    from sim.statistics.metrics import summarise

    days, warm = 120, 20
    scen = from_dict(_priced_queue(2.0, 3, 250_000.0, days, warm))
    summary = summarise([run_replication(scen, 5, i) for i in range(3)])
    line = cost_lines(summary, days=days - warm)[0]
    total = summary[(summary.gate == "all") & (summary.direction == "all") & (summary.metric == "cost_total_vnd")
                    & (summary["class"].fillna("") == "") & (summary.stage.fillna("") == "")]["mean"].iloc[0]
    assert f"over the {days - warm} days after the warm-up" in line
    a_year = float(line.split("about VND ")[1].split(" bn a year")[0].replace(",", ""))
    assert a_year == pytest.approx(total / 1e9 * per_year(scen), abs=0.01)
    assert per_year(scen) == 365 / (days - warm)


def test_a_scenario_without_costs_has_no_cost_rows():
    r = run_replication(from_dict(single_queue(0.5, 1, {"dist": "exponential", "mean": 60.0}, days=20, warmup_days=0)), 1, 0)
    assert not [row for row in r.rows if row[2].startswith("cost_")] and not r.daily_cost


def _by(table: pd.DataFrame, **keys) -> pd.Series:
    sel = table
    for k, v in keys.items():
        sel = sel[sel[k] == v]
    return sel.set_index(["gate", "direction", "metric", "class"])["value"]


def test_costs_add_up_by_component_class_gate_direction_and_day():
    """Every priced figure of a replication of the 2022 baseline's first weeks: the components
    add up to the total; the classes to their group; the gates to all gates; the directions to
    both; the days of daily.csv to the run's figure; and each class's time cost over its rate is
    its share of the waiting truck-hours (the same waiting)."""
    res = run(load(SMALL), reps=2, seed=3, workers=1, progress=False)
    t = res.per_replication
    t = t[(t.stage == "") & (t.rep == 0)]
    v = t.set_index(["gate", "direction", "metric", "class"])["value"]
    groups = t[t.metric == "cost_total_vnd"][["gate", "direction"]].drop_duplicates().itertuples(index=False)
    classes = sorted(set(t[(t.metric == "cost_total_vnd")]["class"]) - {""})
    checked = 0
    for g, d in groups:
        for c in ["", *[c for c in classes if (g, d, "cost_total_vnd", c) in v.index]]:
            assert v[(g, d, "cost_total_vnd", c)] == pytest.approx(sum(v[(g, d, m, c)] for m in COST_PARTS), rel=1e-12)
        for m in COST_METRICS:
            assert v[(g, d, m, "")] == pytest.approx(sum(v.get((g, d, m, c), 0.0) for c in classes), rel=1e-12)
            if d == "all":
                assert v[(g, "all", m, "")] == pytest.approx(
                    sum(v.get((g, x, m, ""), 0.0) for x in ("exit", "entry")), rel=1e-12)
            checked += 1
    gates = [g for g in dict.fromkeys(t.gate) if g != "all" and (g, "all", "cost_total_vnd", "") in v.index]
    for m in COST_METRICS:
        assert v[("all", "all", m, "")] == pytest.approx(sum(v[(g, "all", m, "")] for g in gates), rel=1e-12)
    assert checked > 50 and v[("all", "all", "cost_total_vnd", "")] > 0
    assert all(v[("all", "all", m, "")] > 0 for m in COST_PARTS), "every component is priced in the baseline"
    daily = daily_table(res.results, res.scenario.nominal.horizon.start)
    summary = res.summary.set_index(["gate", "direction", "metric", "stage", "class"])["mean"]
    for g, d in daily[["gate", "direction"]].drop_duplicates().itertuples(index=False):
        by_day = daily[(daily.metric == "cost_total_vnd") & (daily.gate == g) & (daily.direction == d)]["mean"].sum()
        assert by_day == pytest.approx(summary[(g, d, "cost_total_vnd", "", "")], rel=1e-9)
    inputs = res.results[0].inputs
    hours = sum(v[("all", "all", "cost_time_vnd", c)] / inputs[f"classes.{c}.costs.truck_hour_vnd"] for c in classes)
    assert hours == pytest.approx(v[("all", "all", "waiting_truck_hours", "")], rel=1e-9)


def _two_backlog_trucks(shelf_days: float, engine: str = "fast"):
    """Two trucks queued at the start for one lane whose service takes 10 days; no other
    arrivals in 30 days (demand 1e-9 a day): one waits 0 days, the other 10."""
    raw = single_queue(1e-9 / 24, 1, {"dist": "deterministic", "value": 14_400.0}, days=30, warmup_days=0)
    raw["gates"]["g"]["exit"]["initial_backlog"] = {"truck": 2}
    raw["classes"]["truck"]["costs"] = {**COSTS, "truck_hour_vnd": 1_000.0, "parking_day_vnd": 24_000.0,
                                        "goods_value_vnd": 600e6, "shelf_life_days": shelf_days}
    return run_replication(from_dict(raw), 1, 0, engine)


def test_spoilage_is_each_vehicle_s_own_and_matches_a_hand_computation():
    """Waits of 0 and 10 days, goods of VND 600 million, a shelf life of 5 days: the second
    truck's goods are lost (600 million), the first's whole; the loss of the mean wait (5 days)
    would be both trucks' goods (1.2 billion). The hours are priced by the hour and the day:
    240 h at VND 1,000 and 10 days at VND 24,000."""
    r = _two_backlog_trucks(5.0)
    assert metric(r, "g", "exit", "arrivals") == 2 and metric(r, "g", "exit", "crossings") == 2
    assert metric(r, "g", "exit", "cost_spoilage_vnd") == pytest.approx(600e6, rel=1e-12)
    mean_wait_days = 5.0
    assert 2 * 600e6 * min(1.0, mean_wait_days / 5.0) != pytest.approx(600e6)  # the mean's loss differs
    assert metric(r, "g", "exit", "cost_time_vnd") == pytest.approx(240 * 1_000.0, rel=1e-12)
    assert metric(r, "g", "exit", "cost_parking_vnd") == pytest.approx(10 * 24_000.0, rel=1e-12)
    assert metric(r, "g", "exit", "cost_total_vnd") == pytest.approx(600e6 + 240_000 + 240_000, rel=1e-12)
    # by day: a fifth of the goods on each of the first five days, 24 h at VND 1,000 and a day's
    # parking on each of the first ten
    np.testing.assert_allclose(r.daily_cost[("g", "exit")], [120e6 + 48_000] * 5 + [48_000] * 5 + [0.0] * 20,
                               rtol=1e-12)


def test_pricing_pass_by_hand():
    """The kernel alone: a truck that came 2 days before the start (a backlog with an age), waits
    from 0 to 30 h before its first stage, is served to 31 h, gives up at 40 h; another still
    waiting at the horizon's end (72 h); a warm-up of 12 h. Hours after the warm-up by day, and
    the first's goods, 3-day shelf life, lost by its own cumulative wait (48 h before the start),
    each component at rates that show it (1 VND an hour, 24 and 48 a day, goods of 1 VND, 1 VND
    for giving up)."""
    arrival = np.array([-48.0, 50.0])
    start = np.array([[30.0, np.nan], [np.nan, np.nan]])
    end = np.array([[31.0, np.nan], [np.nan, np.nan]])
    left = np.array([40.0, np.nan])
    days, horizon = 3, 72.0
    rates = np.zeros((1, len(COST_FIELDS)))
    for name, value in {"truck_hour_vnd": 1.0, "parking_day_vnd": 24.0, "reefer_day_vnd": 48.0,
                        "goods_value_vnd": 1.0, "shelf_life_days": 3.0, "gave_up_vnd": 1.0}.items():
        rates[0, COST_FIELDS.index(name)] = value
    cost = np.zeros((1, len(COST_PARTS), days))
    cal_ends = np.array([horizon])
    flow_pass(arrival, np.zeros(2, np.int64), start, end, left, -1, np.zeros(0, np.int64), 12.0, horizon, days,
              np.array([0.0]), cal_ends, np.searchsorted(cal_ends, 24.0 * np.arange(days), side="right"),
              np.zeros((1, N_COUNTS)), np.zeros((1, 2)), np.zeros(days), np.zeros(2), np.zeros(N_HIST),
              np.zeros(N_HIST), np.zeros(days, np.int64), np.zeros((1, N_MONTHLY)), *np.zeros((3, int(horizon))),
              np.zeros(2), BIN_TABLE, BIN_EDGES, rates, cost)
    by = dict(zip(COST_PARTS, cost[0]))
    # truck 1: 12-24 (12 h) and 24-30 (6 h), then 31-40 (9 h); truck 2: 50-72 (22 h, day 2)
    hours = [12.0, 6.0 + 9.0, 22.0]
    np.testing.assert_allclose(by["cost_time_vnd"], hours)
    np.testing.assert_allclose(by["cost_parking_vnd"], hours)
    np.testing.assert_allclose(by["cost_reefer_vnd"], 2 * np.array(hours))
    np.testing.assert_allclose(by["cost_gave_up_vnd"], [0.0, 1.0, 0.0])
    # truck 1 had waited 48 + 12 h at the warm-up's end (60/72 of its goods lost, unpriced), all
    # 72 h by 24 h: 12/72 on day 0, nothing more; truck 2: 22/72 on day 2
    np.testing.assert_allclose(by["cost_spoilage_vnd"], [12 / 72, 0.0, 22 / 72], rtol=1e-12)


def test_engines_equal_on_costs():
    """The SimPy engine's vehicles give the fast engine's costs (the same statistics)."""
    fast_r, des_r = _two_backlog_trucks(5.0, "fast"), _two_backlog_trucks(5.0, "des")
    for m in COST_METRICS:
        assert metric(des_r, "g", "exit", m) == pytest.approx(metric(fast_r, "g", "exit", m), rel=1e-9)
    scen = load(SMALL)
    des_run = run(scen, reps=1, seed=5, engine="des", workers=1, progress=False).per_replication
    fast_run = run(scen, reps=1, seed=5, engine="fast", workers=1, progress=False).per_replication
    priced = fast_run.metric.str.startswith("cost_")
    assert priced.sum() > 100 and des_run[priced].metric.equals(fast_run[priced].metric)
    np.testing.assert_allclose(des_run[priced]["value"], fast_run[priced]["value"], rtol=1e-9)


def test_diverted_trucks_are_priced_per_corridor():
    """A corridor's trucks that left the province, at their class's cost of leaving."""
    raw = single_queue(0.5, 1, {"dist": "exponential", "mean": 30.0}, days=30)
    g2 = {**raw["gates"]["g"], "name": "second"}
    raw["gates"]["h"] = g2
    raw["corridors"] = {"c": {"gates": ["g", "h"], "exit": {"rule": "open", "outside_share": 0.3}}}
    raw["classes"]["truck"]["costs"] = {**COSTS, "diverted_vnd": 5e6}
    r = run_replication(from_dict(raw), 4, 0)
    out = metric(r, "c", "all", "diverted_out")
    assert out > 0 and metric(r, "c", "all", DIVERTED_COST) == pytest.approx(5e6 * out)
    assert metric(r, "c", "exit", DIVERTED_COST, vclass="truck") == pytest.approx(5e6 * out)


PRICED_TINY = TINY.replace("[classes.truck]\npriority = 1", "[classes.truck]\npriority = 1\n\n[classes.truck.costs]\n"
                           + "\n".join(f"{k} = {v:g}" for k, v in {**COSTS, "truck_hour_vnd": 200_000}.items()), 1)
COST_CASES = [
    ("negative cost", "truck_hour_vnd = 200000", "truck_hour_vnd = -1", "classes.truck.costs.truck_hour_vnd",
     "greater than or equal to 0"),
    ("cost nan", "parking_day_vnd = 0", "parking_day_vnd = nan", "classes.truck.costs.parking_day_vnd",
     "finite number"),
    ("cost range reaching a negative", "gave_up_vnd = 0", "gave_up_vnd = {uniform = [-5, 10]}",
     "classes.truck.costs.gave_up_vnd", "greater than or equal to 0"),
    ("cost above its range", "diverted_vnd = 0", "diverted_vnd = 1e12", "classes.truck.costs.diverted_vnd",
     "less than or equal to 100000000000"),
    ("unknown cost key", "truck_hour_vnd = 200000", "truck_hour_vnd = 200000\ncost_per_truck_hour_vnd = 5",
     "classes.truck.costs.cost_per_truck_hour_vnd", "allowed: truck_hour_vnd"),
    ("goods without a shelf life", "gave_up_vnd = 0", "gave_up_vnd = 0\ngoods_value_vnd = 5e8",
     "classes.truck.costs", "shelf_life_days"),
    ("shelf life of 0", "gave_up_vnd = 0", "gave_up_vnd = 0\ngoods_value_vnd = 5e8\nshelf_life_days = 0",
     "classes.truck.costs.shelf_life_days", "greater than 0"),
    ("a class without costs", "[classes.truck.costs]", "[classes.green]\npriority = 0\n\n[classes.truck.costs]",
     "classes.green.costs", "every class needs costs"),
]


@pytest.mark.parametrize("what,old,new,field,words", COST_CASES, ids=[c[0] for c in COST_CASES])
def test_a_bad_cost_gives_one_line_and_exit_2(tmp_path, capsys, what, old, new, field, words):
    assert_run_refused(tmp_path, capsys, PRICED_TINY, old, new, field, words)


def test_the_priced_tiny_scenario_of_the_bad_cost_tests_runs(tmp_path):
    """The scenario the cost cases change is itself valid: each case fails by its change alone."""
    path = tmp_path / "priced.toml"
    path.write_text(PRICED_TINY, encoding="utf-8")
    assert main(["run", str(path), "--reps", "2", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    assert set(COST_METRICS) <= set(summary.metric)
