"""What an engine takes for one flow (a gate and direction) in one replication: its vehicles and
its stages. Drawn by sim.engines.draws, or for a corridor's gate by sim.engines.corridor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..model.calendar import Calendar


@dataclass
class FlowInputs:
    """One gate and direction in one replication: its vehicles and its stages."""

    gate: str
    direction: str
    arrival: np.ndarray  # hours, sorted; initial backlog at 0, or before 0 if it has a history
    vclass: np.ndarray  # index into classes
    class_priority: np.ndarray  # priority of each class (lower is served first)
    service: np.ndarray  # (n, stages) hours, 0 for the acceptance step; a view of a stage-major array
    classes: list[str]
    stage_names: list[str]
    lanes: list[int | None]  # None: unlimited (the acceptance step); the most a stage has, if scheduled
    quota: list[np.ndarray | None]  # per stage: vehicles that may start it on each day (days + 1), or None
    calendar: Calendar
    n_backlog: int
    acceptance: int = -1  # the column of the far side's acceptance step (no time, no lanes), -1: none
    # per stage: a calendar per lane when its number of lanes follows a schedule (lane j serves
    # while the stage has more than j lanes), else None (every lane keeps the flow's calendar)
    lane_calendars: list[list[Calendar] | None] | None = None
    # per stage: service-time factors by class and day (classes x days + 1) when they change by
    # date (a service started on day d takes its drawn time x factor), else None
    service_factor: list[np.ndarray | None] | None = None
    # when each vehicle may join its first stage (a class turned away waits for the refusal's
    # end), or None: on arrival. Arrivals before 0 are a backlog's: queued at the start
    available: np.ndarray | None = None
    # when each vehicle gives up waiting (hours; inf: never), or None: no class has a patience.
    # It gives up at the first stage up to patience_stages it has not started by then (at the
    # end of a service it is in at that time), or while turned away before its first stage
    deadline: np.ndarray | None = None
    patience_stages: int = 0  # the stages (from the first) where a vehicle may give up

    def __post_init__(self):
        if self.lane_calendars is None:
            self.lane_calendars = [None] * len(self.stage_names)
        if self.service_factor is None:
            self.service_factor = [None] * len(self.stage_names)

    @property
    def n(self) -> int:
        return len(self.arrival)

    @property
    def priority(self) -> np.ndarray:
        """Each vehicle's priority (lower is served first)."""
        return self.class_priority[self.vclass]
