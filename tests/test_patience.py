"""Vehicles that give up waiting (a class's patience_days): against the Erlang-A queue, and the
rules of when they leave (at their deadline, while turned away, never before the start).

The engines' equality on random scenarios with patience is in test_engines_agree.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import stats

from sim import from_dict
from sim.engines import des, fast
from sim.engines.draws import replication_inputs
from sim.statistics.metrics import replication_metrics
from sim.base.rng import replication_seed
from sim.experiments.run import run_replication

from .helpers import deadlines_in_service, metric, single_queue


def erlang_a(lam: float, mu: float, theta: float, servers: int = 1, n_max: int = 400) -> tuple[float, float]:
    """M/M/c+M (exponential patience of rate theta while queued): the probability that an
    arrival gives up and the mean number queued, from the birth-death chain (birth lam, death
    min(n, c) mu + max(n - c, 0) theta in state n), truncated where its terms are negligible."""
    logp = [0.0]
    for n in range(1, n_max):
        logp.append(logp[-1] + math.log(lam / (min(n, servers) * mu + max(n - servers, 0) * theta)))
    p = np.exp(np.array(logp) - max(logp))
    p /= p.sum()
    queued = float(np.sum(np.maximum(np.arange(n_max) - servers, 0) * p))
    return theta * queued / lam, queued


def _assert_inside_t_interval(name: str, xs: list[float], expected: float) -> None:
    """The replications' mean within their 99 % t-interval of the closed form, and the interval
    informative (under a tenth of the value), or the check could not fail."""
    xs = np.array(xs)
    half = stats.t.ppf(0.995, xs.size - 1) * xs.std(ddof=1) / math.sqrt(xs.size)
    assert abs(xs.mean() - expected) <= half, f"{name}: simulated {xs.mean():.4f} +- {half:.4f}, chain {expected:.4f}"
    assert half < 0.1 * expected


def _patient(raw: dict, days: float) -> dict:
    raw = copy.deepcopy(raw)
    raw["classes"]["truck"]["patience_days"] = days
    return raw


@pytest.mark.parametrize("engine,days,reps", [("fast", 200, 20), ("des", 60, 12)])
def test_single_lane_with_patience_matches_erlang_a(engine, days, reps):
    """Load 1 (it is stable only because vehicles give up): the share that gives up and the mean
    queue must lie in the replications' 99 % t-intervals around the chain's values."""
    lam, mu, patience_h = 1.0, 1.0, 1.5
    raw = _patient(single_queue(lam, 1, {"dist": "exponential", "mean": 60.0}, days=days, warmup_days=0),
                   patience_h / 24.0)
    scen = from_dict(raw)
    share, queue = [], []
    for i in range(reps):
        res = run_replication(scen, 31, i, engine)
        share.append(metric(res, "g", "exit", "gave_up") / metric(res, "g", "exit", "arrivals"))
        queue.append(float(np.mean(res.daily_queue_mean[("g", "exit")])))
    p_expected, q_expected = erlang_a(lam, mu, 1.0 / patience_h)
    _assert_inside_t_interval("share giving up", share, p_expected)
    _assert_inside_t_interval("mean queue", queue, q_expected)
    # without patience the same queue is critically loaded: far longer (the mechanism matters)
    res = run_replication(from_dict(single_queue(lam, 1, {"dist": "exponential", "mean": 60.0}, days=days,
                                                 warmup_days=0)), 31, 0, engine)
    assert metric(res, "g", "exit", "gave_up") == 0
    assert float(np.mean(res.daily_queue_mean[("g", "exit")])) > 3 * q_expected


@pytest.mark.parametrize("engine,days,reps", [("fast", 150, 12), ("des", 50, 8)])
def test_patience_runs_out_only_while_waiting_with_an_acceptance_step_after_the_stage(engine, days, reps):
    """M/M/2+M followed by the far side's acceptance step (no time, no lanes, a limit never
    reached): a truck whose deadline passes while it is in service finishes it and crosses, so
    the share that gives up is Erlang-A's (27 % here), not that of trucks whose deadline falls
    before their service ends (64 %, when they gave up as their service ended)."""
    lam, mu, patience_h, lanes = 2.0, 1.0, 1.0, 2
    raw = _patient(single_queue(lam, lanes, {"dist": "exponential", "mean": 60.0}, days=days, warmup_days=0),
                   patience_h / 24.0)
    raw["gates"]["g"]["exit"]["acceptance_limit"] = 100_000
    raw["gates"]["g"]["exit"]["acceptance_position"] = "last"
    scen = from_dict(raw)
    assert scen.nominal.gates["g"].exit.acceptance_limit == 100_000  # the step is there, with no lanes to wait for
    share = []
    for i in range(reps):
        res = run_replication(scen, 32, i, engine)
        share.append(metric(res, "g", "exit", "gave_up") / metric(res, "g", "exit", "arrivals"))
    _assert_inside_t_interval("share giving up", share, erlang_a(lam, mu, 1.0 / patience_h, lanes)[0])


def test_a_deadline_in_service_gives_up_only_if_the_next_step_cannot_start_at_once():
    """Patience shorter than the services: many deadlines pass in service. Such a vehicle starts
    its next step (a lane stage, or the acceptance step with its daily limit) the instant it
    reaches it, or gives up at that instant; both happen at both kinds of step, in both engines."""
    rep = replication_inputs(from_dict(deadlines_in_service()), replication_seed(3, 0))
    for rec in (des.simulate(rep)[0], fast.simulate(rep)[0]):
        deadline = rec.inputs.deadline
        for k in (1, 2):  # stage b, then the acceptance step
            reached = ~np.isnan(rec.end[:, k - 1])
            since = rec.end[:, k - 1]
            late = reached & (deadline < np.where(reached, since, -np.inf))
            went_on = late & (rec.start[:, k] == since)
            gave_up = late & np.isnan(rec.start[:, k]) & (rec.left == since)
            np.testing.assert_array_equal(went_on | gave_up, late)  # at once, one way or the other
            assert went_on.sum() >= 5 and gave_up.sum() >= 5, (k, went_on.sum(), gave_up.sum())
        # nobody leaves in service: one that gave up did so after the last service it started
        for i in np.flatnonzero(~np.isnan(rec.left)):
            started = np.flatnonzero(~np.isnan(rec.start[i]))
            assert started.size == 0 or rec.left[i] >= rec.end[i, started[-1]], i


def test_at_a_closed_gate_each_vehicle_leaves_after_its_exponential_patience():
    raw = _patient(single_queue(2.0, 1, {"dist": "exponential", "mean": 10.0}, days=30, warmup_days=0), 0.5)
    raw["gates"]["g"]["closures"] = [{"start": "2022-01-01", "end": "2022-01-30", "reason": "test"}]
    rep = replication_inputs(from_dict(raw), replication_seed(5, 0))
    for rec in (des.simulate(rep)[0], fast.simulate(rep)[0]):
        assert np.isnan(rec.start).all()  # nobody was served
        came = np.maximum(rec.inputs.arrival, 0.0)
        gone = ~np.isnan(rec.left)
        # everyone whose deadline fell inside the horizon left, exactly then
        np.testing.assert_array_equal(gone, rec.inputs.deadline < rep.horizon_h)
        waited = (rec.left - came)[gone] / 24.0
        assert stats.kstest(waited[came[gone] < rep.horizon_h - 24 * 5], "expon", args=(0, 0.5)).pvalue > 1e-3
    res = replication_metrics(rep, fast.simulate(rep))
    # the queue holds exactly those that have neither crossed nor given up
    left = metric(res, "g", "exit", "gave_up")
    assert left == int(np.sum(rep.flows[0].deadline < rep.horizon_h)) > 1000
    assert res.daily_queue_end[("g", "exit")][-1] == metric(res, "g", "exit", "arrivals") - left


def test_a_refused_vehicle_gives_up_while_turned_away_and_no_backlog_vehicle_before_the_start():
    raw = _patient(single_queue(1.0, 2, {"dist": "exponential", "mean": 20.0}, days=10, warmup_days=0), 1.0)
    raw["gates"]["g"]["exit"]["initial_backlog"] = {"truck": 40}
    raw["gates"]["g"]["exit"]["backlog_age_days"] = {"dist": "uniform", "low": 0.0, "high": 20.0}
    raw["adjust"] = [{"id": "refused", "what": "refuse", "classes": ["truck"], "from": "2022-01-03",
                      "until": "2022-01-05", "source": "test"}]
    rep = replication_inputs(from_dict(raw), replication_seed(8, 0))
    f = rep.flows[0]
    assert np.all(f.deadline >= 0.0)  # a backlog vehicle still waiting at the start has its patience from then
    end_refusal = 24.0 * 5
    turned_away = f.available > f.arrival
    assert turned_away.sum() > 20
    for rec in (des.simulate(rep)[0], fast.simulate(rep)[0]):
        quit_outside = turned_away & (f.deadline <= f.available)
        assert quit_outside.sum() > 5 and (turned_away & ~quit_outside).sum() > 5
        np.testing.assert_allclose(rec.left[quit_outside], f.deadline[quit_outside], rtol=0, atol=1e-9)
        assert np.isnan(rec.start[quit_outside]).all()
        served = ~np.isnan(rec.start[:, 0])
        assert np.all(rec.start[turned_away & served, 0] >= end_refusal)
        assert np.all(rec.left[~np.isnan(rec.left)] >= 0.0)
        # a vehicle either crossed, gave up or is still there: never two of these
        assert not np.any(served & ~np.isnan(rec.left))


def test_lognormal_patience_and_a_backlog_that_has_waited_already():
    """A lognormal patience: vehicles that came during the horizon wait a lognormal time at a
    closed gate; a backlog vehicle's whole patience, counted from when it came, is the lognormal
    given that it exceeds the age it had at the start."""
    mean_d, cv = 2.0, 1.5
    raw = _patient(single_queue(2.0, 1, {"dist": "exponential", "mean": 10.0}, days=40, warmup_days=0), mean_d)
    raw["classes"]["truck"]["patience_cv"] = cv
    raw["gates"]["g"]["exit"]["initial_backlog"] = {"truck": 3000}
    raw["gates"]["g"]["exit"]["backlog_age_days"] = {"dist": "uniform", "low": 0.0, "high": 6.0}
    raw["gates"]["g"]["closures"] = [{"start": "2022-01-01", "end": "2022-02-09", "reason": "test"}]
    rep = replication_inputs(from_dict(raw), replication_seed(6, 0))
    rec = fast.simulate(rep)[0]
    f = rec.inputs
    sigma = math.sqrt(math.log1p(cv * cv))
    law = stats.lognorm(sigma, scale=24.0 * mean_d * math.exp(-sigma * sigma / 2))
    late = f.arrival > 0
    early = late & (f.arrival < rep.horizon_h - 24 * 25)  # their deadlines nearly all inside the horizon
    assert np.all(~np.isnan(rec.left[~late]) | (f.deadline[~late] >= rep.horizon_h))
    assert stats.kstest(f.deadline[early] - f.arrival[early], law.cdf).pvalue > 1e-3
    age = -f.arrival[~late]
    total = f.deadline[~late] - f.arrival[~late]
    assert np.all(total >= age) and np.all(f.deadline >= 0)
    u = (law.cdf(total) - law.cdf(age)) / law.sf(age)  # uniform if the condition is right
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    # unconditioned, the backlog would have given up before the start in about a third of cases
    assert np.mean(law.cdf(age)) > 0.2
