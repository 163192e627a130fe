"""The fast engine and the SimPy engine compute the same thing.

Fed identical inputs (same arrivals, service times, closures and sampled parameters), they
give the same start and end time for every vehicle at every stage, to float rounding, on
random scenarios that use every feature (priorities, multi-lane stages, split opening hours,
fixed and random closures, daily acceptance limits before or after the stages, backlogs,
deterministic services that create simultaneous events, classes that give up waiting, among
them vehicles whose patience runs out in service).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import from_dict, load, run
from sim.engines import des, fast
from sim.engines.draws import replication_inputs
from sim.base.rng import replication_seed

from .helpers import assert_same_times, deadlines_in_service
from .strategies import scenarios

SMALL = Path(__file__).parent / "data" / "small_2022.toml"


def assert_same_records(rep) -> None:
    for a, b in zip(des.simulate(rep), fast.simulate(rep), strict=True):
        assert_same_times(a, b)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=scenarios(), seed=st.integers(0, 2**32 - 1))
def test_engines_give_identical_vehicle_times(raw, seed):
    assert_same_records(replication_inputs(from_dict(raw), replication_seed(seed, 0)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=scenarios(corridor=True), seed=st.integers(0, 2**32 - 1))
def test_engines_give_identical_vehicle_times_in_a_corridor(raw, seed):
    """Gates in a corridor ('open' or 'shares', some demand leaving the province): the demand a
    closed gate's days send to the others is the same vehicles in both engines."""
    assert_same_records(replication_inputs(from_dict(raw), replication_seed(seed, 0)))


def test_engines_identical_on_the_2022_baseline():
    scen = load(SMALL)
    for i in range(3):
        assert_same_records(replication_inputs(scen, replication_seed(2022, i)))


def test_engines_identical_with_simultaneous_events():
    """Deterministic services, a backlog at t=0 and a zero-time acceptance step first: many ties."""
    raw = {
        "name": "ties",
        "horizon": {"start": "2022-03-01", "end": "2022-03-04"},
        "classes": {"green": {"priority": 0}, "truck": {"priority": 1}},
        "gates": {"g": {
            "name": "g", "classes": ["green", "truck"], "hours": {"default": ["06:00-12:00", "13:00-18:00"]},
            "entry": {
                "demand": {"green": 20.0, "truck": 40.0},
                "initial_backlog": {"green": 10, "truck": 25},
                "acceptance_limit": 30,
                "acceptance_position": "first",
                "stages": [
                    {"name": "a", "lanes": 2, "service_min": {"dist": "deterministic", "value": 15.0}},
                    {"name": "b", "lanes": 3, "service_min": {"dist": "deterministic", "value": 20.0}},
                ],
            },
        }},
    }
    assert_same_records(replication_inputs(from_dict(raw), replication_seed(1, 0)))


@pytest.mark.parametrize("stage_b", [None, {"dist": "deterministic", "value": 10.0}])
def test_engines_identical_when_deadlines_pass_in_service(stage_b):
    """Patience shorter than the services: vehicles whose deadline passed in service reach the
    next stage or the acceptance step and start at that instant or give up then, among ties
    (deterministic services at both stages in the second case)."""
    raw = deadlines_in_service(stage_b)
    for seed in range(4):
        rep = replication_inputs(from_dict(raw), replication_seed(seed, 0))
        assert_same_records(rep)
        rec = fast.simulate(rep)[0]
        late = rec.inputs.deadline[:, None] < rec.end[:, :2]  # deadlines passed in service at a or b
        assert late.sum() > 20 and np.sum(rec.start[:, 1:][late] == rec.end[:, :2][late]) > 5


def test_a_run_gives_the_same_tables_on_either_engine():
    """Through run(), the whole way from the scenario to the tables, the SimPy engine gets the
    fast engine's replication inputs and its records give the same figures (which is why no
    other test needs to run the SimPy engine beside the fast one, the calibration check's
    full year included)."""
    scen = load(SMALL)
    des_run = run(scen, reps=2, seed=5, engine="des", workers=1, progress=False).per_replication
    fast_run = run(scen, reps=2, seed=5, engine="fast", workers=1, progress=False).per_replication
    keys = [c for c in fast_run.columns if c != "value"]
    assert len(fast_run) > 1000 and des_run[keys].equals(fast_run[keys])
    np.testing.assert_allclose(des_run["value"], fast_run["value"], rtol=1e-9, atol=1e-9)


def test_no_start_a_rounding_error_before_a_reopening():
    """Found by hypothesis: a service must not start 1 ulp before a random closure ends."""
    from sim.engines.fast.kernels import next_open_from

    starts, ends = np.array([0.0, 7.184532704697305]), np.array([0.8669932959450506, 8.0])
    t, i = next_open_from(7.184532704697304, starts, ends, 0)
    assert t == 7.184532704697305 and i == 1
