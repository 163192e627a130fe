"""The SimPy discrete-event engine."""

from .engine import simulate

__all__ = ["simulate"]
