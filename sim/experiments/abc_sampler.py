"""pyabc's mapping sampler with seeds, so that an ABC-SMC calibration depends only on its seed; and
importance weights truncated, so that a fit does not fall on one parameter set.

pyabc's MappingSampler runs a generation's tasks through any map (here a local pool of bordersim
workers), each task drawing until it has one accepted parameter set; but each task reseeds numpy
from the operating system, so results change from run to run. Here each task's seed comes from
the calibration's seed, the generation and the task's place, and the results are collected in
task order, so the same seed gives the same populations whatever the number of workers. (Written
as a subclass because pyabc's samplers that take a seed run in one process only; a module of its
own, importing pyabc, because the worker processes must find the class by name to unpickle it.)
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
from pyabc.sampler import MappingSampler
from pyabc.transition import MultivariateNormalTransition


class SeededMappingSampler(MappingSampler):
    """``budget``: simulations at most over the whole calibration, the prior sample included.
    pyabc checks its own budget only between generations, so a generation could run past it;
    here a generation's tasks draw in rounds, each round giving every task still without an
    accepted parameter set an equal share of the budget left, and each task goes on with its own
    generator where it stopped. So the draws are those of a run without a budget, the result
    depends on the seed alone (not on which worker was quicker), and a generation the budget
    cannot complete stops short of it (pyabc then stops, and the fit is the generation before)."""

    def __init__(self, seed: int, map_=map, budget: float = math.inf):
        super().__init__(map_=map_)
        self.seed = seed
        self.budget = budget
        self.used = 0  # simulations run so far, by every call

    def __getstate__(self):
        return (*super().__getstate__(), self.seed, self.budget, self.used)

    def __setstate__(self, state):
        super().__setstate__(state[:-3])
        self.seed, self.budget, self.used = state[-3:]

    def map_function(self, simulate_one, share, task):
        """One task: draw and simulate until one parameter set is accepted (as MappingSampler's)
        or ``share`` simulations are done, from a generator seeded with the task's seed, or
        where an earlier round left it. Returns the particles, the simulations done, and the
        generators' states if none was accepted (None if one was)."""
        task_seed, state = task
        simulate_one = self.unpickle(simulate_one)
        if state is None:
            np.random.seed(task_seed)
            random.seed(int(task_seed))
        else:
            np.random.set_state(state[0])
            random.setstate(state[1])
        n_sims = 0
        sample = self._create_empty_sample()
        while n_sims < share:
            particle = simulate_one()
            n_sims += 1
            sample.append(particle)
            if particle.accepted:
                return sample, n_sims, None
        return sample, n_sims, (np.random.get_state(), random.getstate())

    def sample_until_n_accepted(self, n, simulate_one, t, **_kwargs):
        seeds = np.random.SeedSequence([self.seed, t + 2]).generate_state(n)  # t is -1 for the first sample
        pickled = self.pickle(simulate_one)
        samples = [self._create_empty_sample() for _ in range(n)]
        states: list = [None] * n
        todo, evaluations = list(range(n)), 0
        while todo:
            left = self.budget - self.used - evaluations
            share = math.inf if math.isinf(left) else left // len(todo)
            if share < 1:
                break
            task = functools.partial(self.map_function, pickled, share)
            results = list(self.map_(task, [(int(seeds[i]), states[i]) for i in todo]))
            for i, (s, k, state) in zip(todo, results):
                samples[i] += s
                evaluations += k
                states[i] = state
            todo = [i for i in todo if states[i] is not None]
        self.nr_evaluations_ = evaluations
        self.used += evaluations
        sample = self._create_empty_sample()
        for s in samples:
            sample += s
        sample.ok = not todo  # else the budget ran out within this generation
        return sample


def truncated_weights(w: np.ndarray) -> np.ndarray:
    """Importance weights truncated (Ionides 2008, J. Comput. Graph. Stat. 17:295): none above
    sqrt(n) times the mean of the truncated weights, so that at least sqrt(n) parameter sets
    share the largest weight. Normalised to sum 1. Written here: pyabc has no truncation.

    Why: ABC-SMC's weights (prior / proposal density) fall on one or two parameter sets within a
    few generations in this calibration (an effective sample size of 1.6 of 150 in generation 4
    of 13 inputs: the proposal, fitted to weights that had already narrowed, makes the next
    generation's weights narrower still), and the fit is then one parameter set. The cap is the
    fixed point c = sqrt(n) x mean(min(w, c)), found by bisection on log c."""
    w = np.asarray(w, dtype=float)
    n = len(w)
    if n == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all 0 (got {w[:5]}...)")
    w = w / w.max()  # relative to the largest (one below 1e-300 of it counts as 0), then normalised
    w = np.where(w < 1e-300, 0.0, w)
    w = w / w.sum()
    root = np.sqrt(n)
    if w.max() <= root * w.mean():
        return w
    positive = w[w > 0]
    if len(positive) <= root:  # too few sets to share the cap: they share the weight alike
        return (w > 0) / float(len(positive))
    lo, hi = positive.min(), w.max()  # at lo sqrt(n) x the capped mean exceeds lo; at hi it is below hi
    for _ in range(100):
        c = np.exp(0.5 * (np.log(lo) + np.log(hi)))  # geometric midpoint, without underflow
        if root * np.minimum(w, c).mean() > c:
            lo = c
        else:
            hi = c
    out = np.minimum(w, hi)
    return out / out.sum()


class TruncatedWeightTransition(MultivariateNormalTransition):
    """pyabc's multivariate normal proposal, fitted to the last population with its weights
    truncated (``truncated_weights``), so that the next generation is proposed around many
    parameter sets, not the one or two that the raw weights fall on. Any proposal gives valid
    importance weights (pyabc divides the prior by this proposal's density), so only the
    proposal changes, not what the weights mean."""

    def fit(self, X, w) -> None:
        super().fit(X, truncated_weights(w))
