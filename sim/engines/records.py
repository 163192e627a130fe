"""What an engine hands back for a flow: each vehicle's times at each stage, when it gave up.

Both engines return these records, and the statistics (sim.statistics) read them, so neither
engine is the other's dependency."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .inputs import FlowInputs


@dataclass
class FlowRecord:
    """Per-vehicle times (hours) of one flow; NaN where the event did not happen in the horizon."""

    inputs: FlowInputs
    start: np.ndarray  # (n, stages)
    end: np.ndarray  # (n, stages)
    lane: np.ndarray  # (n, stages): the lane taken where lanes have calendars of their own, else -1
    left: np.ndarray  # (n,): when a vehicle gave up waiting, NaN if it did not

    @property
    def depart(self) -> np.ndarray:
        return self.end[:, -1]
