"""Named random streams: one SeedSequence per replication, one child per named stream.

A stream's randomness depends only on the run seed, the replication index and the
stream's name (for example ``arrivals/bac_luan_2/exit/truck``), never on the number of
workers, the order in which streams are used or which other gates a scenario has. Two
scenarios that share a gate therefore share its randomness (common random numbers).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numba as nb
import numpy as np
from numpy.random.bit_generator import ISeedSequence


def replication_seed(seed: int, index: int) -> np.random.SeedSequence:
    """Replication ``index``'s SeedSequence: the same as ``SeedSequence(seed).spawn(n)[index]``
    for any n > index, so a replication does not depend on how many are run."""
    return np.random.SeedSequence(seed, spawn_key=(index,))


def derived_seed(seed: int, name: str, *index: int) -> int:
    """A root seed for another use of a run's seed, named by what it is for (and indexed):
    ``SeedSequence(seed, spawn_key=(key of name, *index))``'s first 63 bits. Its streams are
    not the run's (the run's replications spawn from ``seed`` itself), and it depends only on
    the seed, the name and the index."""
    words = np.random.SeedSequence(seed, spawn_key=(_name_key(name), *index)).generate_state(2, np.uint32)
    return (int(words[0]) | int(words[1]) << 32) >> 1


@lru_cache(maxsize=4096)
def _name_key(name: str) -> int:
    # A stable 32-bit key for the stream name (Python's hash() is salted per process).
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:4], "little")


def stream(rep_seq: np.random.SeedSequence, name: str) -> np.random.Generator:
    """The generator of the named stream within one replication: a PCG64 seeded by the
    SeedSequence child ``SeedSequence(rep_seq.entropy, spawn_key=rep_seq.spawn_key + (key,))``,
    key a 32-bit hash of the name. A replication opens ~100 streams, so the usual case (an
    integer seed, a one-element spawn key) mixes the child's entropy in compiled code, to the
    same words; anything else builds the SeedSequence itself."""
    key = _name_key(name)
    spawn = rep_seq.spawn_key
    entropy = rep_seq.entropy
    if len(spawn) == 1 and isinstance(entropy, int) and 0 <= entropy and 0 <= spawn[0] < 2**32:
        pool, seed64 = _mix_words(*_run_prefix(entropy), np.uint64(spawn[0]), np.uint64(key))
        return np.random.Generator(np.random.PCG64(_MixedPool(pool, seed64)))
    child = np.random.SeedSequence(entropy=entropy, spawn_key=tuple(spawn) + (key,))
    return np.random.Generator(np.random.PCG64(child))


# SeedSequence's mixing (M. E. O'Neill's seed_seq design as NumPy implements it), for a pool of
# four 32-bit words: the constants of its two hash chains and of its mixing function.
_M32 = 0xFFFFFFFF
_INIT_A, _MULT_A = 0x43B0D7E5, 0x931E8875
_INIT_B, _MULT_B = 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R = 0xCA01F9DD, 0x4973F715


@nb.njit(cache=True, inline="always")
def _hashmix(value, h):
    """One step of the first hash chain: the hashed value and the chain's next multiplier."""
    m32 = np.uint64(_M32)
    value ^= h
    h = (h * np.uint64(_MULT_A)) & m32
    value = (value * h) & m32
    return value ^ (value >> np.uint64(16)), h


@nb.njit(cache=True, inline="always")
def _mix(x, y):
    r = (np.uint64(_MIX_L) * x - np.uint64(_MIX_R) * y) & np.uint64(_M32)
    return r ^ (r >> np.uint64(16))


@nb.njit(cache=True)
def _mix_in(pool, h, words):
    """Mix further 32-bit words into the pool (in place), each into every pool word; returns
    the hash chain's state."""
    for w in words:
        for dst in range(4):
            v, h = _hashmix(w, h)
            pool[dst] = _mix(pool[dst], v)
    return h


@nb.njit(cache=True)
def _pool_of(words):
    """The pool and hash state after the first four words (the run entropy, padded) and any
    further run-entropy words are mixed in."""
    h = np.uint64(_INIT_A)
    pool = np.empty(4, np.uint64)
    for i in range(4):
        pool[i], h = _hashmix(words[i], h)
    for src in range(4):
        for dst in range(4):
            if src != dst:
                v, h = _hashmix(pool[src], h)
                pool[dst] = _mix(pool[dst], v)
    return pool, _mix_in(pool, h, words[4:])


@lru_cache(maxsize=64)
def _run_prefix(entropy: int) -> tuple:
    """The pool and hash state after the run entropy (padded to the pool size, as a spawned
    SeedSequence pads it) is mixed in: the part shared by every stream of every replication."""
    words = []
    n = entropy
    while True:
        words.append(n & _M32)
        n >>= 32
        if n == 0:
            break
    words += [0] * (4 - len(words))
    pool, h = _pool_of(np.array(words, dtype=np.uint64))
    pool.setflags(write=False)
    return pool, np.uint64(h)


@nb.njit(cache=True)
def _mix_words(prefix_pool, h, w1, w2):
    """The pool after two more 32-bit words (the spawn key: replication index, name key), and
    the seed words PCG64 asks for (generate_state(4, uint64))."""
    pool = prefix_pool.copy()
    words = np.empty(2, np.uint64)
    words[0], words[1] = w1, w2
    _mix_in(pool, h, words)
    state = _state_words(pool, 8)
    seed64 = np.empty(4, np.uint64)
    for j in range(4):
        seed64[j] = np.uint64(state[2 * j]) | (np.uint64(state[2 * j + 1]) << np.uint64(32))
    return pool, seed64


@nb.njit(cache=True)
def _state_words(pool, n_words):
    """SeedSequence.generate_state(n_words) (32-bit words) from a mixed pool."""
    m32 = np.uint64(0xFFFFFFFF)
    out = np.empty(n_words, np.uint32)
    h = np.uint64(_INIT_B)
    for i in range(n_words):
        v = pool[i % 4] ^ h
        h = (h * np.uint64(_MULT_B)) & m32
        v = (v * h) & m32
        v ^= v >> np.uint64(16)
        out[i] = np.uint32(v)
    return out


class _MixedPool(ISeedSequence):
    """A seed sequence given by its mixed pool: generate_state as SeedSequence's."""

    def __init__(self, pool: np.ndarray, seed64: np.ndarray):
        self.pool = pool
        self.seed64 = seed64  # generate_state(4, np.uint64), ready

    def generate_state(self, n_words, dtype=np.uint32):
        if n_words == 4 and dtype is np.uint64:
            return self.seed64.copy()
        kind = np.dtype(dtype)
        if kind == np.uint32:
            return _state_words(self.pool, n_words)
        if kind == np.uint64:
            return _state_words(self.pool, 2 * n_words).astype("<u4").view("<u8").astype(np.uint64)
        raise ValueError("only support uint32 or uint64")
