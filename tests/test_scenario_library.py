"""The baseline and the library's scenarios against their own sources: what a file's comments
and header say it does, the model does (dates, units, lanes, queues)."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np

from sim import fast, load
from sim.inputs import replication_inputs
from sim.rng import replication_seed

ROOT = Path(__file__).parent.parent
FITTED = ROOT / "calibration" / "fitted_2022.toml"
SCENARIOS = ROOT / "scenarios"


def _flow(rep, gate: str, direction: str):
    return next(f for f in rep.flows if (f.gate, f.direction) == (gate, direction))


def test_hoanh_mo_carries_no_goods_from_the_stop_of_24_february_2022():
    """Dongzhong stopped goods clearance on 24 February 2022 and resumed it on 8 January 2023
    (vsrkeppt.cn; investinquangninh.vn, the Bình Liêu article): in the calibrated baseline
    Hoành Mô is never open from the stop to the horizon's end, and every vehicle that crossed
    there did so before it (it did through January and February)."""
    scen = load(FITTED)
    stop = 24.0 * (dt.date(2022, 2, 24) - scen.nominal.horizon.start).days
    for i in range(3):
        rep = replication_inputs(scen, replication_seed(20221130, i))
        for direction in ("exit", "entry"):
            rec = fast.simulate_flow(_flow(rep, "hoanh_mo", direction), rep.horizon_h)
            assert rec.inputs.calendar.next_open(stop) == math.inf
            crossed = rec.depart[~np.isnan(rec.depart)]
            assert crossed.size > 300 and np.all(crossed < stop)
