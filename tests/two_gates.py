"""Exact reference values for two single-lane gates fed by one Poisson stream.

Two gates, each one lane with exponential service (rates mu1, mu2), arrivals Poisson at rate
lam, each arrival routed on what it sees, (n1, n2) the vehicles in each gate's system (waiting
or in service): to gate 1, to gate 2, or out of the system, with probabilities route(n1, n2).
The pair (n1, n2) is a two-dimensional birth-death chain; its stationary law is solved
numerically (scipy's sparse solver) on the states up to ``size`` vehicles a gate, and an
arrival that would pass the edge is dropped. The probability of the edge states says whether
that truncation matters: a result is refused unless it is below ``EDGE_MASS``.

With routing that ignores the state (a random split) each gate is an M/M/1 queue at its share
of the arrivals, which ``mm1_in_system`` gives in closed form: the check of the solver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

EDGE_MASS = 1e-10  # the most stationary probability the truncated edge may hold

Route = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class TwoGates:
    """The stationary means of the chain: vehicles in each gate's system, and the mass at the edge."""

    in_system_1: float
    in_system_2: float
    edge_mass: float

    @property
    def in_system(self) -> float:
        return self.in_system_1 + self.in_system_2


def two_gates(lam: float, mu1: float, mu2: float, route: Route, size: int = 120) -> TwoGates:
    """The exact stationary mean numbers in system of the two gates under ``route`` (which maps
    arrays of n1 and n2 to the probabilities of joining gate 1 and gate 2; the rest leaves)."""
    side = size + 1
    n1, n2 = np.divmod(np.arange(side * side), side)
    p1, p2 = (np.broadcast_to(np.asarray(p, dtype=float), n1.shape) for p in route(n1, n2))
    if np.any(p1 < 0) or np.any(p2 < 0) or np.any(p1 + p2 > 1 + 1e-12):
        raise ValueError("route must give probabilities in [0, 1] that sum to at most 1")
    state = np.arange(side * side)
    moves = [  # (from, to, rate) for each kind of transition where it is possible
        (n1 < size, state + side, lam * p1),  # an arrival joins gate 1
        (n2 < size, state + 1, lam * p2),  # an arrival joins gate 2
        (n1 > 0, state - side, np.full(n1.shape, mu1)),  # gate 1 ends a service
        (n2 > 0, state - 1, np.full(n1.shape, mu2)),  # gate 2 ends a service
    ]
    rows = np.concatenate([state[ok] for ok, _to, _rate in moves])
    cols = np.concatenate([to[ok] for ok, to, _rate in moves])
    rates = np.concatenate([rate[ok] for ok, _to, rate in moves])
    keep = rates > 0
    q = sparse.csr_matrix((rates[keep], (rows[keep], cols[keep])), shape=(side * side,) * 2)
    q = q - sparse.diags(np.asarray(q.sum(axis=1)).ravel())
    # pi Q = 0 with sum(pi) = 1: the transposed system with its last equation replaced by the sum
    a = q.T.tolil()
    a[side * side - 1, :] = np.ones(side * side)
    b = np.zeros(side * side)
    b[-1] = 1.0
    pi = spsolve(a.tocsc(), b)
    edge = float(pi[(n1 == size) | (n2 == size)].sum())
    if not edge < EDGE_MASS:
        raise ValueError(f"the truncation at {size} vehicles a gate holds {edge:.2e} of the probability "
                         f"(at most {EDGE_MASS:g}): take a larger size")
    return TwoGates(float(pi @ n1), float(pi @ n2), edge)


def mm1_in_system(lam: float, mu: float) -> float:
    """The mean number in system of an M/M/1 queue."""
    rho = lam / mu
    if not rho < 1:
        raise ValueError(f"load {rho} >= 1: no stationary law")
    return rho / (1 - rho)


def split(p1: float, p2: float) -> Route:
    """A random split: gate 1 with probability p1, gate 2 with p2, whatever the gates hold."""
    return lambda n1, n2: (np.full(n1.shape, p1), np.full(n1.shape, p2))


def logit(mu1: float, mu2: float, sensitivity: float, detour: tuple[float, float] = (0.0, 0.0),
          weight: tuple[float, float] = (0.5, 0.5), outside: tuple[float, float] = (0.0, 0.0)) -> Route:
    """The `wait` rule between two single-lane gates open around the clock: cost n_g / mu_g +
    detour_g (the expected wait: the vehicles in the gate's system over its service rate),
    probabilities proportional to weight_g x exp(-sensitivity x cost_g); outside = (weight,
    cost) of leaving. Sensitivity inf: the lowest cost, ties in proportion to the weights (join
    the shortest queue where mu1 = mu2, no detour and equal weights)."""
    def route(n1, n2):
        cost = np.stack([n1 / mu1 + detour[0], n2 / mu2 + detour[1], np.full(n1.shape, float(outside[1]))])
        w = np.array([weight[0], weight[1], outside[0]], dtype=float)[:, None]
        best = np.min(np.where(w > 0, cost, np.inf), axis=0)  # over the options that may be taken
        if np.isinf(sensitivity):
            x = np.where(cost == best, w, 0.0)
        else:
            x = w * np.exp(-sensitivity * np.maximum(cost - best, 0.0))  # >= 0 where w > 0: no overflow
        x = x / x.sum(axis=0)
        return x[0], x[1]
    return route
