"""pyabc's mapping sampler with seeds, so that an ABC-SMC calibration depends only on its seed.

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
import random

import numpy as np
from pyabc.sampler import MappingSampler


class SeededMappingSampler(MappingSampler):
    def __init__(self, seed: int, map_=map):
        super().__init__(map_=map_)
        self.seed = seed

    def __getstate__(self):
        return (*super().__getstate__(), self.seed)

    def __setstate__(self, state):
        super().__setstate__(state[:-1])
        self.seed = state[-1]

    def map_function(self, simulate_one, task_seed):
        """One task: draw and simulate until one parameter set is accepted (as MappingSampler's),
        from a generator seeded with task_seed."""
        simulate_one = self.unpickle(simulate_one)
        np.random.seed(task_seed)
        random.seed(int(task_seed))
        n_sims = 0
        sample = self._create_empty_sample()
        while True:
            particle = simulate_one()
            n_sims += 1
            sample.append(particle)
            if particle.accepted:
                return sample, n_sims

    def sample_until_n_accepted(self, n, simulate_one, t, **_kwargs):
        seeds = np.random.SeedSequence([self.seed, t + 2]).generate_state(n)  # t is -1 for the first sample
        task = functools.partial(self.map_function, self.pickle(simulate_one))
        results = list(self.map_(task, [int(s) for s in seeds]))
        self.nr_evaluations_ = sum(k for _s, k in results)
        sample = self._create_empty_sample()
        for s, _k in results:
            sample += s
        return sample
