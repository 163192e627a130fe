"""The plan: a scenario compiled once, whose program gives each replication the numbers that
validating the scenario at that replication's values gives, to the bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim import from_dict, load
from sim.model.calendar import fixed_calendar, with_closures
from sim.engines.draws import hourly_rates, model_schedules, stage_schedules, unit_rates
from sim.model.plan import compile_plan
from sim.base.rng import replication_seed, stream

from .strategies import scenarios

ROOT = Path(__file__).parent.parent
LIBRARY = sorted((ROOT / "scenarios").glob("*.toml")) + [ROOT / "calibration" / "fitted_2022.toml",
                                                         ROOT / "calibration" / "stage1_2022.toml"]


def _same(a, b) -> bool:
    """Equal to the bit: numbers of the same type and value, arrays of the same dtype and values."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    kinds = [tuple(isinstance(x, t) for t in (bool, int, float)) for x in (a, b)]  # a Sampled float is a float
    return kinds[0] == kinds[1] and a == b


def assert_numbers_as_validated(scen, seed: int, index: int) -> None:
    """Every number the replication's inputs are built from, as the plan gives it and as the
    model that validation builds at the replication's values (Scenario.model_for) has it."""
    plan = compile_plan(scen)
    seq = replication_seed(seed, index)
    drawn = scen.draw(lambda name: stream(seq, name))
    v = plan.values(drawn)
    model = scen.model_for(drawn)
    h = model.horizon
    assert _same(plan.warmup_days.of(v), h.warmup_days)
    assert [p.of(v) for p in plan.priority] == [c.priority for c in model.classes.values()]
    for gp in plan.gates:
        gate = model.gates[gp.gate]
        for rc_plan, rc in zip(gp.closures, gate.random_closures):
            assert _same(rc_plan.daily_probability.of(v), rc.daily_probability)
            assert rc_plan.duration_h.of(v) == rc.duration_h
        for fp in gp.flows:
            spec = gate.spec(fp.direction)
            where = f"{scen.path} {fp.gate} {fp.direction}"
            for ci, c in enumerate(fp.classes):
                assert _same(fp.demand[ci].of(v) if fp.demand[ci] else None, spec.demand.get(c)), (where, c)
                assert _same(fp.backlog[ci].of(v) if fp.backlog[ci] else None, spec.initial_backlog.get(c)), where
                rates = unit_rates(fp, ci, v, h.days)[0]
                if c in spec.demand:
                    assert _same(spec.demand[c] * rates, hourly_rates(model, fp.gate, fp.direction, c)), (where, c)
                cls = model.classes[c]
                if fp.patience[ci] is not None:
                    assert _same(fp.patience[ci][0].of(v), cls.patience_days)
                    assert _same(fp.patience[ci][1].of(v), cls.patience_cv)
                for stp, stage in zip(fp.stages, spec.stages):
                    assert stp.service[ci].of(v) == stage.service_for(c), (where, stage.name, c)
            assert _same(fp.limit.of(v) if fp.limit else None, spec.acceptance_limit), where
            assert (fp.backlog_age.of(v) if fp.backlog_age else None) == spec.backlog_age_days
            cal = with_closures(fp.fixed, [])
            assert np.array_equal(fp.fixed, fixed_calendar(gate, fp.direction, h, _overrides(model, fp.gate)))
            mine, theirs = stage_schedules(fp, v, cal, h.days), model_schedules(model, fp.gate, fp.direction, cal)
            for part, (a, b) in enumerate(zip(mine, theirs)):
                for x, y in zip(a, b):
                    if part == 2:  # lane calendars
                        assert (x is None) == (y is None)
                        for p, q in zip(x or [], y or []):
                            assert np.array_equal(p.starts, q.starts) and np.array_equal(p.ends, q.ends)
                    else:
                        assert _same(x, y), (where, part)


def _overrides(model, gate: str):
    from sim.model.adjust import hour_overrides

    return hour_overrides(model, gate)


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_a_plan_gives_each_replication_the_numbers_validation_gives(path):
    """The library's scenarios (the fitted one takes whole ensemble rows; others sample ranges,
    some through static adjustments that multiply, round and cap them): the plan's program
    replays the validating code's arithmetic, so the numbers are the same to the bit."""
    scen = load(path)
    for i in range(4):
        assert_numbers_as_validated(scen, 11, i)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=scenarios(), seed=st.integers(0, 2**32 - 1))
def test_the_numbers_hold_on_random_scenarios(raw, seed):
    assert_numbers_as_validated(from_dict(raw), seed, 0)


def test_ranges_through_static_adjustments_are_traced_step_by_step(tmp_path):
    """A sampled number of lanes multiplied by a sampled factor, rounded and held at 1 at least,
    a sampled limit set by a static adjustment and a sampled service time multiplied: each
    replication's values as validation computes them (a second definition of the arithmetic
    would drift from it)."""
    raw = load(ROOT / "tests" / "data" / "tiny.toml").raw
    text = (ROOT / "tests" / "data" / "tiny.toml").read_text(encoding="utf-8")
    extra = '''
[[adjust]]
id = "lanes_more"
what = "lanes"
multiply = {uniform = [0.2, 2.6]}

[[adjust]]
id = "limit"
what = "acceptance_limit"
set = {uniform = [10.0, 40.0]}

[[adjust]]
id = "faster"
what = "service"
multiply = {uniform = [0.5, 0.9]}
'''
    path = tmp_path / "traced.toml"
    path.write_text(text + extra, encoding="utf-8")
    scen = load(path)
    assert raw  # tiny.toml loads
    plan = compile_plan(scen)
    assert {k for k, *_ in plan.program.steps} >= {"mul", "round", "at_least", "count"}
    for i in range(20):
        assert_numbers_as_validated(scen, 5, i)


def test_a_scenario_is_compiled_once_per_process():
    scen = load(ROOT / "tests" / "data" / "tiny.toml")
    assert compile_plan(scen) is compile_plan(load(ROOT / "tests" / "data" / "tiny.toml"))
    other = load(ROOT / "tests" / "data" / "tiny.toml", sets=["gates.hoanh_mo.exit.acceptance_limit=50"])
    assert compile_plan(other) is not compile_plan(scen)


def test_a_replications_numbers_outside_the_schema_are_refused_naming_the_field(tmp_path):
    """Both ends of each range are valid (checked at load), but values together can give a
    number no scenario may have (a sweep's point, ranges between the ends of others, a
    distribution's low above its high): the replication is refused, naming the field."""
    from sim.base.errors import ScenarioError

    text = (ROOT / "tests" / "data" / "tiny.toml").read_text(encoding="utf-8")
    text = text.replace('service_min = {dist = "lognormal", mean = 12, cv = 0.5}',
                        'service_min = {dist = "uniform", low = {uniform = [1, 10]}, high = {uniform = [5, 20]}}')
    path = tmp_path / "product.toml"
    path.write_text(text + '''
[[adjust]]
id = "more"
what = "demand"
multiply = {uniform = [1.0, 100.0]}
''', encoding="utf-8")
    scen = load(path)
    plan = compile_plan(scen)
    ok = {r.name(): r.nominal() for r in scen.ranges}
    plan.values(ok)
    with pytest.raises(ScenarioError, match=r"gates\.hoanh_mo\.exit\.demand\.truck.*must be > 0 and <= 100000"):
        plan.values(dict(ok, **{"adjust.more.multiply": 1e6}))
    flow = plan.flows[0]
    v = plan.values(dict(ok, **{"gates.hoanh_mo.exit.stages.customs.service_min.low": 10.0,
                                "gates.hoanh_mo.exit.stages.customs.service_min.high": 5.0}))
    with pytest.raises(ScenarioError, match="service_min.*low < high") as exc:
        flow.stages[0].service[0].of(v)
    assert exc.value.file == str(path)
