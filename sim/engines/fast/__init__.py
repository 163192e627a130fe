"""The fast engine: compiled per-flow recursions, identical in its rules to the SimPy engine."""

from .engine import simulate, simulate_flow

__all__ = ["simulate", "simulate_flow"]
