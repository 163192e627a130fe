"""Scenario loading: extends, ranges, the baseline's validity; calendars; distributions; streams."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim import from_dict, load
from sim.experiments import capacity
from sim.model.calendar import build_calendar
from sim.base.errors import OverloadError
from sim.model.distributions import Deterministic, Exponential, Gamma, LogNormal, Triangular, Uniform
from sim.engines.draws import poisson_arrivals, replication_inputs
from sim.base.rng import stream
from sim.base.rng import replication_seed

from .helpers import OVERLOADED, single_queue

ROOT = Path(__file__).parent.parent
BASELINE = ROOT / "scenarios" / "baseline_2022.toml"
SMALL = Path(__file__).parent / "data" / "small_2022.toml"


def test_every_scenario_in_the_library_loads_and_is_stable():
    for path in sorted((ROOT / "scenarios").glob("*.toml")):
        scen = load(path)
        if path.stem in OVERLOADED:  # its header: run it with --allow-overload
            with pytest.raises(OverloadError):
                capacity.check(scen)
        else:
            assert capacity.check(scen) == []  # raises on an unstable load
        assert scen.nominal.flows()


def test_baseline_has_the_five_gates():
    m = load(BASELINE).nominal
    assert list(m.gates) == ["mong_cai", "bac_luan_2", "km3_4", "hoanh_mo", "bac_phong_sinh"]
    assert m.horizon.start == dt.date(2022, 1, 1) and m.horizon.end == dt.date(2022, 11, 30)
    assert all(set(g.directions()) == {"exit", "entry"} for g in m.gates.values())


def test_extends_overrides_only_what_it_names():
    base, child = load(BASELINE), load(SMALL)
    assert child.name == "small_2022"
    assert child.nominal.horizon.end == dt.date(2022, 2, 18)
    assert child.nominal.horizon.start == base.nominal.horizon.start
    assert child.nominal.gates == base.nominal.gates
    assert [r.name() for r in child.ranges] == [r.name() for r in base.ranges]


def test_ranges_are_sampled_within_bounds_and_vary_between_replications():
    """Each replication's numbers (the plan's program run on its draws) lie in their ranges, a
    count as a whole number, and differ between replications."""
    from sim.model.plan import compile_plan
    from sim.base.rng import stream

    scen = load(BASELINE)
    plan = compile_plan(scen)
    bac_luan_2 = next(f for f in plan.flows if (f.gate, f.direction) == ("bac_luan_2", "exit"))
    km3_4 = next(f for f in plan.flows if (f.gate, f.direction) == ("km3_4", "exit"))
    limits = []
    for i in range(30):
        seq = replication_seed(4, i)
        v = plan.values(scen.draw(lambda name: stream(seq, name)))
        limit = bac_luan_2.limit.of(v)
        assert isinstance(limit, int) and 80 <= limit <= 110
        mean = km3_4.stages[0].service[0].of(v).mean
        assert 10 <= mean <= 15
        limits.append(limit)
    assert len(set(limits)) > 5


def test_named_streams_give_common_random_numbers_across_scenarios():
    """Adding a gate does not change the arrivals or service times drawn at another gate."""
    one = single_queue(1.0, 1, {"dist": "exponential", "mean": 30.0}, days=5, warmup_days=0)
    two = copy.deepcopy(one)
    two["gates"]["other"] = copy.deepcopy(two["gates"]["g"])
    two["gates"]["other"]["name"] = "other"
    a = replication_inputs(from_dict(one), replication_seed(1, 0)).flows[0]
    b = replication_inputs(from_dict(two), replication_seed(1, 0)).flows[0]
    np.testing.assert_array_equal(a.arrival, b.arrival)
    np.testing.assert_array_equal(a.service, b.service)


def test_scaled_demand_keeps_the_underlying_draws():
    """Inversion: doubling a constant rate halves every arrival time of the same stream."""
    rates = np.full(48, 2.0)
    a = poisson_arrivals(rates, stream(np.random.SeedSequence(3), "x"))
    b = poisson_arrivals(2 * rates, stream(np.random.SeedSequence(3), "x"))
    np.testing.assert_allclose(b[: len(a) // 2], a[: len(a) // 2] / 2)


def test_poisson_arrivals_follow_the_rate_profile():
    rates = np.tile(np.r_[np.zeros(8), np.full(8, 6.0), np.full(8, 2.0)], 200)
    t = poisson_arrivals(rates, stream(np.random.SeedSequence(5), "x"))
    hour = (t % 24).astype(int)
    assert np.sum(hour < 8) == 0
    counts = np.array([np.sum((hour >= 8) & (hour < 16)), np.sum(hour >= 16)])
    expected = np.array([6.0 * 8 * 200, 2.0 * 8 * 200])
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected))


def test_calendar_applies_hours_weekdays_and_closures():
    raw = single_queue(1.0, 1, {"dist": "exponential", "mean": 30.0}, days=7, warmup_days=0)
    gate = raw["gates"]["g"]
    gate["hours"] = {"default": ["07:00-11:30", "13:00-17:00"], "sun": []}
    gate["closures"] = [{"start": dt.datetime(2022, 1, 4, 9), "end": dt.date(2022, 1, 4), "directions": ["exit"]}]
    m = from_dict(raw).nominal
    cal = build_calendar(m.gates["g"], "exit", m.horizon)
    # 2022-01-01 is a Saturday, 01-02 a Sunday (closed); 01-04 closed from 09:00 to the day's end
    assert cal.next_open(0.0) == 7.0
    assert cal.next_open(11.5) == 13.0
    # a time a rounding error before an opening is moved to the opening, never left before it
    assert cal.next_open(13.0 - 1e-12) == 13.0 and not cal.is_open(13.0 - 1e-12)
    assert cal.next_open(17.0) == 24 * 2 + 7.0
    assert cal.is_open(24 * 3 + 8.9) and not cal.is_open(24 * 3 + 9.0)
    assert cal.next_open(24 * 3 + 9.0) == 24 * 4 + 7.0
    assert cal.next_open(24 * 7) == float("inf")
    assert cal.open_hours() == pytest.approx(8.5 * 5 + 2.0)


@settings(max_examples=30, deadline=None)
@given(mean=st.floats(1.0, 100.0), cv=st.floats(0.1, 2.0))
def test_distributions_have_the_stated_mean_and_variance(mean, cv):
    rng = np.random.default_rng(0)
    dists = [
        Exponential(dist="exponential", mean=mean),
        LogNormal(dist="lognormal", mean=mean, cv=cv),
        Gamma(dist="gamma", mean=mean, cv=cv),
        Triangular(dist="triangular", low=mean / 2, mode=mean, high=2 * mean),
        Uniform(dist="uniform", low=mean / 2, high=2 * mean),
        Deterministic(dist="deterministic", value=mean),
    ]
    n = 200_000
    for d in dists:
        x = d.draw(rng, n)
        assert np.all(x >= 0)
        se = np.sqrt(d.variance() / n)
        assert abs(x.mean() - d.expected()) <= 5 * se + 1e-9 * mean, d
        if d.variance() > 0 and d.scv() < 1.5:  # heavy lognormal tails make the variance too noisy
            assert x.var() == pytest.approx(d.variance(), rel=0.1), d


@pytest.mark.parametrize("sizes", [(5, 0), (0, 4), (30, 70), (10, 10, 3), (0, 0)])
def test_class_runs_merge_as_a_stable_sort(sizes):
    # vehicles of several classes, each run sorted, with ties (backlog at 0, equal times)
    from sim.engines.draws import _merge_runs

    rng = np.random.default_rng(sum(sizes))
    runs = [np.sort(np.r_[np.zeros(s // 3), rng.integers(0, 6, s - s // 3)].astype(float)) for s in sizes]
    arrival = np.concatenate(runs)
    service = rng.random((3, arrival.size))
    merged, cls, svc = _merge_runs(arrival, np.cumsum([0, *sizes]), service)
    order = np.argsort(arrival, kind="stable")
    np.testing.assert_array_equal(merged, arrival[order])
    np.testing.assert_array_equal(svc, service[:, order])
    np.testing.assert_array_equal(cls, np.repeat(np.arange(len(sizes)), sizes)[order])


@settings(max_examples=200, deadline=None)
@given(
    opens=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 6)), max_size=8),
    closed=st.lists(st.tuples(st.integers(-5, 45), st.integers(-2, 12)), max_size=6),
)
def test_calendar_subtraction_is_set_difference(opens, closed):
    # open intervals [s, s + len) (made disjoint and sorted) less closures, against a point test
    from sim.model.calendar import _merge, _subtract

    o = np.array(_merge([(s, s + n) for s, n in opens if n > 0]), dtype=float).reshape(-1, 2)
    c = np.array([(s, s + n) for s, n in closed], dtype=float).reshape(-1, 2)
    got = _subtract(o, c)
    assert np.all(got[:, 1] > got[:, 0]) and np.all(got[1:, 0] > got[:-1, 1])  # sorted, apart
    for t in np.arange(-6, 50, 0.25):
        inside = lambda iv: bool(np.any((iv[:, 0] <= t) & (t < iv[:, 1])))  # noqa: E731
        assert inside(got) == (inside(o) and not inside(c[c[:, 1] > c[:, 0]])), t


def test_an_uncertain_input_is_one_distribution_for_sampling_sweeping_and_fitting():
    """A range's inverse distribution function (what a sweep's design and a fit's prior use) is
    the distribution its replications sample from; a range of one value is that value."""
    from scipy import stats

    from sim.experiments.sweep import Param
    from sim.model.ranges import Range

    rng = np.random.default_rng(5)
    for r in (Range(("a",), "uniform", (2.0, 5.0)), Range(("a",), "triangular", (1.0, 1.5, 4.0)),
              Range(("a",), "triangular", (1.0, 1.0, 4.0))):
        drawn = np.array([r.sample(rng) for _ in range(4000)])
        assert stats.kstest(drawn, lambda x, r=r: r.distribution().cdf(x)).pvalue > 1e-3, r
        u = np.linspace(0, 1, 21)
        np.testing.assert_allclose(r.distribution().cdf(r.ppf(u)), u, atol=1e-12)
        assert r.ppf(0.0) == r.low() and r.ppf(1.0) == r.high()
        assert r.central_width() == pytest.approx(np.subtract(*np.quantile(drawn, [0.95, 0.05])), rel=0.06)
        swept = Param("a", "range", r.values, dist=r.kind)
        np.testing.assert_array_equal(swept.from_unit(u), r.ppf(u))
    point = Range(("a",), "uniform", (3.0, 3.0))
    assert point.distribution() is None and list(point.ppf([0.2, 0.9])) == [3.0, 3.0] and point.central_width() == 0
