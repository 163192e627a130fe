"""Distributions of durations: each draws from a Generator and knows its mean and variance.

Parameters are in the unit the scenario key names (``service_min``: minutes,
``duration_h``: hours); ``draw`` returns values in that unit. Every parameter is finite and at
most MAX_DURATION in that unit, and a cv at most MAX_CV, so that every draw is a finite number.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

import numba as nb
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_DURATION = 100_000.0
"""Largest mean, value, low, mode or high of a duration, in its own unit (minutes or hours)."""
MAX_CV = 10.0
"""Largest coefficient of variation (a lognormal's sigma is then 2.1, a gamma's shape 0.01)."""


class _Dist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    source: str | None = None

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n values in the distribution's own unit."""
        raise NotImplementedError

    def expected(self) -> float:
        raise NotImplementedError

    def variance(self) -> float:
        raise NotImplementedError

    def scv(self) -> float:
        """Squared coefficient of variation."""
        return self.variance() / self.expected() ** 2


class Exponential(_Dist):
    dist: Literal["exponential"]
    mean: float = Field(gt=0, le=MAX_DURATION)

    def draw(self, rng, n):
        return rng.exponential(self.mean, n)

    def expected(self):
        return self.mean

    def variance(self):
        return self.mean**2


class LogNormal(_Dist):
    """Lognormal given by its mean and coefficient of variation (not the log-scale mu, sigma)."""

    dist: Literal["lognormal"]
    mean: float = Field(gt=0, le=MAX_DURATION)
    cv: float = Field(gt=0, le=MAX_CV, description="standard deviation / mean")

    def draw(self, rng, n):
        sigma2 = math.log1p(self.cv**2)
        # = rng.lognormal(mu, sigma, n) draw for draw (exp of a normal), with a vectorized exp
        z = rng.standard_normal(n)
        z *= math.sqrt(sigma2)
        z += math.log(self.mean) - sigma2 / 2
        return np.exp(z, out=z)

    def expected(self):
        return self.mean

    def variance(self):
        return (self.cv * self.mean) ** 2


class Gamma(_Dist):
    """Gamma given by its mean and coefficient of variation."""

    dist: Literal["gamma"]
    mean: float = Field(gt=0, le=MAX_DURATION)
    cv: float = Field(gt=0, le=MAX_CV, description="standard deviation / mean")

    def draw(self, rng, n):
        shape = 1.0 / self.cv**2
        return rng.gamma(shape, self.mean / shape, n)

    def expected(self):
        return self.mean

    def variance(self):
        return (self.cv * self.mean) ** 2


class Triangular(_Dist):
    dist: Literal["triangular"]
    low: float = Field(ge=0, le=MAX_DURATION)
    mode: float = Field(ge=0, le=MAX_DURATION)
    high: float = Field(gt=0, le=MAX_DURATION)

    @model_validator(mode="after")
    def _ordered(self):
        if not (self.low <= self.mode <= self.high and self.low < self.high):
            raise ValueError("triangular needs low <= mode <= high and low < high")
        return self

    def draw(self, rng, n):
        # = rng.triangular(low, mode, high, n) draw for draw (inversion of one uniform), compiled
        return _triangular(rng.random(n), self.low, self.mode, self.high)

    def expected(self):
        return (self.low + self.mode + self.high) / 3

    def variance(self):
        a, c, b = self.low, self.mode, self.high
        return (a * a + b * b + c * c - a * b - a * c - b * c) / 18


class Deterministic(_Dist):
    dist: Literal["deterministic"]
    value: float = Field(gt=0, le=MAX_DURATION)

    def draw(self, rng, n):
        return np.full(n, float(self.value))

    def expected(self):
        return self.value

    def variance(self):
        return 0.0


class Uniform(_Dist):
    dist: Literal["uniform"]
    low: float = Field(ge=0, le=MAX_DURATION)
    high: float = Field(gt=0, le=MAX_DURATION)

    @model_validator(mode="after")
    def _ordered(self):
        if not self.low < self.high:
            raise ValueError("uniform needs low < high")
        return self

    def draw(self, rng, n):
        return rng.uniform(self.low, self.high, n)

    def expected(self):
        return (self.low + self.high) / 2

    def variance(self):
        return (self.high - self.low) ** 2 / 12


@nb.njit(cache=True)
def _triangular(u, left, mode, right):
    """NumPy's triangular inversion (random_triangular), in place on the uniforms u."""
    base = right - left
    leftbase = mode - left
    ratio = leftbase / base
    leftprod = leftbase * base
    rightprod = (right - mode) * base
    for i in range(u.size):
        if u[i] <= ratio:
            u[i] = left + np.sqrt(u[i] * leftprod)
        else:
            u[i] = right - np.sqrt((1.0 - u[i]) * rightprod)
    return u


Duration = Annotated[
    Union[Exponential, LogNormal, Gamma, Triangular, Deterministic, Uniform],
    Field(discriminator="dist"),
]

DIST_NAMES = ("exponential", "lognormal", "gamma", "triangular", "deterministic", "uniform")
