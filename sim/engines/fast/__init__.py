"""The fast engine: compiled per-flow recursions, identical in its rules to the SimPy engine."""

from .corridor import simulate_corridor
from .engine import simulate_flow
from .replication import simulate

__all__ = ["simulate", "simulate_corridor", "simulate_flow"]
