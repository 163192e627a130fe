"""The baseline and the library's scenarios against their own sources: what a file's comments
and header say it does, the model does (dates, units, lanes, queues)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim import load, run
from sim.engines import fast
from sim.engines.draws import replication_inputs
from sim.base.rng import replication_seed
from sim.experiments.targets import BOARD_RATIO, Target, target_values

ROOT = Path(__file__).parent.parent
FITTED = ROOT / "calibration" / "fitted_2022.toml"
SCENARIOS = ROOT / "scenarios"


def _flow(rep, gate: str, direction: str):
    return next(f for f in rep.flows if (f.gate, f.direction) == (gate, direction))


def test_hoanh_mo_carries_no_goods_from_the_stop_of_24_february_2022():
    """Dongzhong stopped goods clearance on 24 February 2022 and resumed it on 8 January 2023
    (vsrkeppt.cn; investinquangninh.vn, the Bình Liêu article), letting only the stranded empty
    vehicles go home on 26 April (producereport.com 2022-05-04): in the calibrated baseline no
    vehicle comes to Hoành Mô after the stop, exits never open again, entries open on 26 April
    alone, every vehicle that crossed came before the stop, and none is left queued at a gate
    closed for the rest of the year (each crossed or gave up)."""
    scen = load(FITTED)
    start = scen.nominal.horizon.start
    stop, empties = (24.0 * (day - start).days for day in (dt.date(2022, 2, 24), dt.date(2022, 4, 26)))
    for i in range(3):
        rep = replication_inputs(scen, replication_seed(20221130, i))
        for direction in ("exit", "entry"):
            rec = fast.simulate_flow(_flow(rep, "hoanh_mo", direction), rep.horizon_h)
            cal = rec.inputs.calendar
            if direction == "exit":
                assert cal.next_open(stop) == math.inf
            else:
                assert empties <= cal.next_open(stop) < empties + 24 and cal.next_open(empties + 24) == math.inf
            assert np.all(rec.inputs.arrival < stop)
            crossed = ~np.isnan(rec.depart)
            assert crossed.sum() > 300 and np.all(rec.depart[crossed] < (stop if direction == "exit" else empties + 24))
            assert np.all(crossed | ~np.isnan(rec.left))


def test_normal_operations_2023_reads_its_counts_in_its_own_unit_and_has_no_standing_queue():
    """Its demand is set from board counts with one ratio of crossings per board vehicle, the
    fitted 2022 one, which also reads its crossings back as board vehicles: Bắc Luân II's
    nine months then come out at 2023's count. And, as no queue was reported in 2023, the
    Móng Cái crossings keep none: few wait over the day, customs lanes are not near full, and
    few trucks give up."""
    scen = load(SCENARIOS / "normal_operations_2023.toml")
    fitted_ratio = pd.read_csv(ROOT / "calibration" / "fitted_2022_ensemble.csv")[BOARD_RATIO].mean()
    assert scen.nominal.observation.crossings_per_board_vehicle == pytest.approx(fitted_ratio, abs=0.005)
    res = run(scen, reps=8, seed=20221130, workers=1, progress=False)
    nine_months = Target(
        name="bac_luan_2_9m_2023", observed=32569, unit="board_vehicles", tolerance=0.08,
        source="thoibaotaichinhvietnam.vn 2023-10-06 (9M 2023 at Bắc Luân II: 32,569 vehicles)",
        period=(dt.date(2023, 1, 1), dt.date(2023, 9, 30)),
        output={"gate": "bac_luan_2", "direction": "all", "metric": "crossings"})
    simulated = target_values(res.results, [nine_months], scen.nominal)[:, 0].mean()
    assert abs(simulated / nine_months.observed - 1) <= nine_months.tolerance, simulated
    s = res.summary
    for gate in ("bac_luan_2", "km3_4"):
        for direction in ("exit", "entry"):
            waiting = np.mean([r.daily_queue_mean[(gate, direction)].mean() for r in res.results])
            assert waiting < 30, (gate, direction, waiting)
            rows = s[(s.gate == gate) & (s.direction == direction) & (s["class"] == "")]
            busy = rows[(rows.metric == "utilisation") & (rows.stage == "customs")]["mean"].item()
            assert busy < 0.7, (gate, direction, busy)
            gave_up, crossed = (rows[(rows.metric == m) & (rows.stage == "")]["mean"].item()
                                for m in ("gave_up", "crossings"))
            assert gave_up < 0.01 * crossed, (gate, direction, gave_up, crossed)


def test_bac_luan_2_more_lanes_adds_one_or_two_customs_lanes_each_way():
    """Its header promises one or two more customs lanes each way than the calibrated baseline."""
    base = load(FITTED)
    alt = load(SCENARIOS / "bac_luan_2_more_lanes_longer_hours.toml")
    added = set()
    for i in range(16):
        rep_base = replication_inputs(base, replication_seed(7, i))
        rep_alt = replication_inputs(alt, replication_seed(7, i))
        for direction in ("exit", "entry"):
            f_base, f_alt = _flow(rep_base, "bac_luan_2", direction), _flow(rep_alt, "bac_luan_2", direction)
            k = f_base.stage_names.index("customs")
            added.add(f_alt.lanes[k] - f_base.lanes[k])
    assert added == {1, 2}


@pytest.mark.parametrize("name, gate, first, last", [
    ("bac_luan_2_closed_month", "bac_luan_2", dt.date(2022, 7, 1), dt.date(2022, 7, 31)),
    ("km3_4_storm_season", "km3_4", dt.date(2022, 7, 1), dt.date(2022, 9, 30))])
def test_a_closed_crossings_trucks_go_to_the_others_and_none_is_lost(name, gate, first, last):
    """The corridor scenarios of the library: no truck comes to the closed crossing while it is
    closed (those queued before stay) but on a day no crossing of the corridor opens (their
    trucks then queue for their own crossing: none_open = "queue"), and the Móng Cái crossings
    keep their trucks: their arrivals plus those that left the province (diverted_out) are the
    calibrated baseline's arrivals, within 1 % over paired replications (each an expected number
    drawn as Poisson)."""
    scen, base = load(SCENARIOS / f"{name}.toml"), load(FITTED)
    start = scen.nominal.horizon.start
    lo, hi = 24.0 * (first - start).days, 24.0 * ((last - start).days + 1)
    days = scen.nominal.horizon.days
    for i in range(3):
        rep = replication_inputs(scen, replication_seed(20221130, i))
        for direction in ("exit", "entry"):
            flow = _flow(rep, gate, direction)
            # trucks: every crossing takes them (perishables, which Bắc Luân I refuses, queue for
            # their own crossing on a day Km3+4 is shut by a storm too: no crossing serves them)
            t = flow.arrival[flow.vclass == flow.classes.index("truck")]
            came = np.unique((t[(t >= lo) & (t < hi)] // 24).astype(int))
            some_open = np.logical_or.reduce([_flow(rep, g, direction).calendar.open_days(days)
                                              for g in ("mong_cai", "bac_luan_2", "km3_4")])
            assert not some_open[came].any(), (direction, i, came[some_open[came]])
    crossings = ["mong_cai", "bac_luan_2", "km3_4"]
    totals = []
    for s in (scen, base):
        s_ = run(s, reps=4, seed=11, workers=1, progress=False, allow_overload=True).summary
        main = s_[(s_.stage == "") & (s_["class"] == "") & (s_.direction == "all")].set_index(["gate", "metric"])["mean"]
        totals.append(sum(main[(g, "arrivals")] for g in crossings)
                      + main.get(("mong_cai_crossings", "diverted_out"), 0.0))
    assert totals[0] == pytest.approx(totals[1], rel=0.01), totals
