"""One replication on the SimPy engine: its flows, then each corridor on 'wait' (which runs on its
own, its gates being in no other flow), each gate's record in its flow's place."""

from __future__ import annotations

from ..draws import ReplicationInputs, with_corridors
from ..records import FlowRecord
from .corridor import simulate_corridor
from .engine import simulate_flows


def simulate(rep: ReplicationInputs) -> list[FlowRecord]:
    """The per-vehicle record of every flow of one replication, in the order of rep.flows."""
    return with_corridors(rep, simulate_flows(rep), simulate_corridor)
