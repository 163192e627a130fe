"""The exact two-gate chain (tests/two_gates.py) that the corridor's `wait` rule is tested against:
it meets the closed form where one exists, and its truncation is checked."""

from __future__ import annotations

import math

import pytest

from .two_gates import logit, mm1_in_system, split, two_gates


def mm2_in_system(lam: float, mu: float) -> float:
    """The mean number in system of M/M/2: one queue for both lanes, a lower bound for any routing."""
    rho = lam / (2 * mu)
    return 2 * rho / (1 - rho * rho)


@pytest.mark.parametrize("lam, mu1, mu2, p1, p2", [(1.6, 1.0, 1.0, 0.5, 0.5), (1.2, 0.8, 1.5, 0.3, 0.7),
                                                  (0.9, 1.0, 2.0, 0.5, 0.3)])  # the last: a fifth leave
def test_a_random_split_is_two_mm1_queues(lam, mu1, mu2, p1, p2):
    res = two_gates(lam, mu1, mu2, split(p1, p2))
    assert math.isclose(res.in_system_1, mm1_in_system(lam * p1, mu1), rel_tol=1e-9)
    assert math.isclose(res.in_system_2, mm1_in_system(lam * p2, mu2), rel_tol=1e-9)


def test_shortest_queue_lies_between_one_pooled_queue_and_a_random_split():
    lam, mu = 1.6, 1.0
    jsq = two_gates(lam, mu, mu, logit(mu, mu, math.inf)).in_system
    assert mm2_in_system(lam, mu) < jsq < 2 * mm1_in_system(lam / 2, mu)
    # symmetric gates hold the same on average
    res = two_gates(lam, mu, mu, logit(mu, mu, math.inf))
    assert math.isclose(res.in_system_1, res.in_system_2, rel_tol=1e-9)


def test_a_sensitivity_of_zero_is_the_split_by_weights():
    lam, mu1, mu2 = 1.2, 1.0, 0.9
    res = two_gates(lam, mu1, mu2, logit(mu1, mu2, 0.0, weight=(0.6, 0.4)))
    ref = two_gates(lam, mu1, mu2, split(0.6, 0.4))
    assert math.isclose(res.in_system, ref.in_system, rel_tol=1e-12)


def test_a_finite_sensitivity_lies_between_the_split_and_the_shortest_queue():
    lam, mu = 1.6, 1.0
    at = {s: two_gates(lam, mu, mu, logit(mu, mu, s)).in_system for s in (0.0, 0.5, 2.0, math.inf)}
    assert at[0.0] > at[0.5] > at[2.0] > at[math.inf]


def test_a_truncation_that_matters_is_refused():
    with pytest.raises(ValueError, match="truncation"):
        two_gates(1.9, 1.0, 1.0, split(0.5, 0.5), size=30)
