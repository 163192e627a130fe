"""The SimPy discrete-event engine."""

from .corridor import simulate_corridor
from .engine import simulate

__all__ = ["simulate", "simulate_corridor"]
