"""Named random streams: one SeedSequence per replication, one child per named stream.

A stream's randomness depends only on the run seed, the replication index and the
stream's name (for example ``arrivals/bac_luan_2/exit/truck``), never on the number of
workers, the order in which streams are used or which other gates a scenario has. Two
scenarios that share a gate therefore share its randomness (common random numbers).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np


def replication_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Replication ``index``'s SeedSequence: the same as ``SeedSequence(seed).spawn(n)[index]``
    for any n > index, so a replication does not depend on how many are run."""
    return np.random.SeedSequence(seed, spawn_key=(index,))


@lru_cache(maxsize=4096)
def _name_key(name: str) -> int:
    # A stable 32-bit key for the stream name (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "little")


def stream(rep_seq: np.random.SeedSequence, name: str) -> np.random.Generator:
    """The generator of the named stream within one replication."""
    child = np.random.SeedSequence(
        entropy=rep_seq.entropy,
        spawn_key=tuple(rep_seq.spawn_key) + (_name_key(name),),
    )
    return np.random.Generator(np.random.PCG64(child))
