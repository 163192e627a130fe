"""The SimPy discrete-event engine."""

from .engine import FlowRecord, simulate

__all__ = ["FlowRecord", "simulate"]
