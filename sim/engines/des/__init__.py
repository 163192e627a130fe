"""The SimPy discrete-event engine."""

from .corridor import simulate_corridor
from .replication import simulate

__all__ = ["simulate", "simulate_corridor"]
