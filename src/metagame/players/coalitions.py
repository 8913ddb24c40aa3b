"""Coalitions as boolean matrices and as bitmask integers.

Convention everywhere in metagame: a coalition is a row of a ``bool[m, d]`` matrix; in the
integer encoding player ``i`` is bit ``i`` (player 0 is the least significant bit), so the
table of all ``2**d`` coalitions is indexed by ``sum_i 2**i [i in S]``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: Largest number of players for exact enumeration (2**20 coalitions).
EXACT_MAX_PLAYERS = 20


def check_exact_size(d: int, limit: int = EXACT_MAX_PLAYERS, what: str = "exact computation") -> None:
    """Raise a clear error when ``2**d`` coalitions are too many to enumerate."""
    from ..errors import MetagameError

    if d > limit:
        raise MetagameError(
            f"d={d} is too large for {what} (2^{d} coalitions; the exact limit is d <= {limit}); "
            f"pass budget=... (a number of attribution calls) to estimate by sampling instead"
        )


def coalition_bits(start: int, stop: int, d: int) -> np.ndarray:
    """Coalitions with bitmask indices ``start .. stop-1`` as ``bool[stop-start, d]``."""
    idx = np.arange(start, stop, dtype=np.int64)
    return ((idx[:, None] >> np.arange(d, dtype=np.int64)) & 1).astype(bool)


def all_coalitions(d: int) -> np.ndarray:
    """All ``2**d`` coalitions as ``bool[2**d, d]``; row ``s`` holds the bits of ``s``."""
    return coalition_bits(0, 2**d, d)


def coalition_index(coalitions: np.ndarray) -> np.ndarray:
    """Bitmask integer of each row of ``bool[m, d]`` (valid for d <= 62)."""
    coalitions = np.asarray(coalitions, dtype=bool)
    d = coalitions.shape[1]
    if d > 62:
        raise ValueError("coalition_index needs d <= 62; use coalition_keys for larger games")
    weights = np.left_shift(np.int64(1), np.arange(d, dtype=np.int64))
    return coalitions.astype(np.int64) @ weights


def coalition_keys(coalitions: np.ndarray) -> list[bytes]:
    """Hashable key per row (packed bits), for caches of any d."""
    packed = np.packbits(np.asarray(coalitions, dtype=bool), axis=1)
    return [row.tobytes() for row in packed]


def popcount(index: np.ndarray) -> np.ndarray:
    """Number of set bits of each integer in ``index`` (coalition sizes)."""
    index = np.asarray(index, dtype=np.uint64)
    count = np.zeros(index.shape, dtype=np.int64)
    while np.any(index):
        count += (index & np.uint64(1)).astype(np.int64)
        index = index >> np.uint64(1)
    return count


def sizes_of_all(d: int) -> np.ndarray:
    """Coalition size of every bitmask in ``range(2**d)``."""
    sizes = np.zeros(1, dtype=np.int64)
    for _ in range(d):
        sizes = np.concatenate([sizes, sizes + 1])
    return sizes


def as_coalitions(coalitions, d: int) -> np.ndarray:
    """Validate and convert to ``bool[m, d]`` (a single coalition becomes one row)."""
    from ..errors import MetagameError

    arr = np.asarray(coalitions)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != d:
        raise MetagameError(f"coalitions must have shape (m, {d}) (one column per player); got {arr.shape}")
    if arr.dtype != bool:
        if not np.all((arr == 0) | (arr == 1)):
            raise MetagameError("coalitions must be boolean (or 0/1) matrices")
        arr = arr.astype(bool)
    return arr


def format_coalition(coalition: np.ndarray, players: Sequence[str] | None = None, limit: int = 12) -> str:
    """Human-readable coalition, e.g. ``{0:'not', 2:'bad'}`` for error messages."""
    members = np.flatnonzero(np.asarray(coalition, dtype=bool))
    if players is None:
        items = [str(int(i)) for i in members[:limit]]
    else:
        items = [f"{int(i)}:{players[int(i)]!r}" for i in members[:limit]]
    more = f", ... ({len(members)} players)" if len(members) > limit else ""
    return "{" + ", ".join(items) + more + "}"


def chunks_of_all(d: int, chunk: int):
    """Yield ``(start, bool[c, d])`` blocks covering all ``2**d`` coalitions in bitmask order."""
    n = 2**d
    for start in range(0, n, chunk):
        yield start, coalition_bits(start, min(n, start + chunk), d)
