"""Coalitions as boolean matrices and as bitmask integers.

Convention everywhere in metagame: a coalition is a row of a ``bool[m, d]`` matrix; in the
integer encoding player ``i`` is bit ``i`` (player 0 is the least significant bit), so the
table of all ``2**d`` coalitions is indexed by ``sum_i 2**i [i in S]``.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

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


def coalitions_from_index(indices: np.ndarray, d: int) -> np.ndarray:
    """The coalitions with the given bitmask indices as ``bool[len(indices), d]`` (inverse of :func:`coalition_index`)."""
    idx = np.asarray(indices, dtype=np.int64)
    return ((idx[:, None] >> np.arange(d, dtype=np.int64)) & 1).astype(bool)


def coalition_bits(start: int, stop: int, d: int) -> np.ndarray:
    """Coalitions with bitmask indices ``start .. stop-1`` as ``bool[stop-start, d]``."""
    return coalitions_from_index(np.arange(start, stop, dtype=np.int64), d)


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


def require_unique(labels: Sequence[str], option: str = "players") -> list[str]:
    """``labels`` as strings, or an error naming the repeated ones: tables, reports and ``res["a", "b"]`` look players
    up by label, so two players may not share one."""
    from ..errors import MetagameError

    labels = [str(p) for p in labels]
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    repeated = [label for label, n in seen.items() if n > 1]
    if repeated:
        raise MetagameError(
            f"{option} repeats the label(s) {repeated}: every player needs its own label; pass distinct labels "
            f"(e.g. '{repeated[0]}#1', '{repeated[0]}#2')"
        )
    return labels


def player_labels(
    players: Sequence[str] | None, d: int, prefix: str = "x", what: str = "player labels", of: str = "players"
) -> list[str]:
    """Default player labels ``x0 .. x{d-1}``, or the given ones (unique, exactly ``d`` of them: ``what`` for ``d``
    ``of`` names them in the error)."""
    if players is None:
        return [f"{prefix}{i}" for i in range(d)]
    labels = require_unique(players)
    if len(labels) != d:
        from ..errors import MetagameError

        raise MetagameError(f"got {len(labels)} {what} for {d} {of}")
    return labels


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


class CoalitionCache:
    """Rows of numbers stored by coalition *content* (packed bits), for any d: the one cache of metagame.

    Adapters cache model values f(x_S), games cache value or attribution rows, and estimators read
    their coalitions through a game's cache; checkpoints fill it on resume. A key is the coalition
    itself, never an object id.
    """

    def __init__(self) -> None:
        self._store: dict[bytes, Any] = {}
        #: rows :meth:`fill` served from the store / computed (logged by :func:`metagame.explain`)
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, coalition) -> bool:
        return coalition_keys(np.asarray(coalition, dtype=bool).reshape(1, -1))[0] in self._store

    def fresh(self, coalitions: np.ndarray) -> np.ndarray:
        """``bool[m]``: rows neither cached nor repeated earlier in the batch (what :meth:`fill` would compute)."""
        out = np.zeros(len(coalitions), dtype=bool)
        seen: set[bytes] = set()
        for r, key in enumerate(coalition_keys(coalitions)):
            if key not in self._store and key not in seen:
                out[r] = True
                seen.add(key)
        return out

    def get_or_compute(self, coalition: np.ndarray, compute: Callable[[np.ndarray], Any]) -> Any:
        """The object stored for one coalition ``bool[d]`` (e.g. a trained model), computed and stored once."""
        key = coalition_keys(np.asarray(coalition, dtype=bool).reshape(1, -1))[0]
        if key not in self._store:
            self._store[key] = compute(coalition)
        return self._store[key]

    def put(self, coalitions: np.ndarray, rows: np.ndarray) -> None:
        """Store ``rows[r]`` under coalition ``coalitions[r]``."""
        for key, row in zip(coalition_keys(coalitions), np.asarray(rows, dtype=np.float64)):
            self._store[key] = row

    def fill(self, coalitions: np.ndarray, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Rows for every coalition: cached ones looked up, each distinct missing one computed once by
        ``compute(bool[u, d]) -> [u, ...]`` (in batch order) and stored. Returns ``float64[m, ...]``."""
        keys = coalition_keys(coalitions)
        todo: dict[bytes, int] = {}
        first: list[int] = []
        for r, key in enumerate(keys):
            if key not in self._store and key not in todo:
                todo[key] = len(first)
                first.append(r)
        self.misses += len(first)
        self.hits += len(keys) - len(first)
        if first:
            new = np.asarray(compute(coalitions[first]), dtype=np.float64)
            for key, pos in todo.items():
                self._store[key] = new[pos]
        if not keys:
            return np.zeros((0,), dtype=np.float64)
        return np.stack([self._store[k] for k in keys])

    def packed_items(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything stored, as ``(packed coalitions uint8[n, ceil(d/8)], rows float64[n, ...])`` in insertion
        order; :func:`unpack_keys` turns the packed rows back into ``bool[n, d]``."""
        if not self._store:
            return np.zeros((0, 0), dtype=np.uint8), np.zeros((0,), dtype=np.float64)
        packed = np.stack([np.frombuffer(k, dtype=np.uint8) for k in self._store])
        return packed, np.stack(list(self._store.values()))


def unpack_keys(packed: np.ndarray, d: int) -> np.ndarray:
    """Coalitions ``bool[n, d]`` from packed-bit rows (as stored by :class:`CoalitionCache` and checkpoints)."""
    packed = np.asarray(packed, dtype=np.uint8)
    if packed.size == 0:
        return np.zeros((0, d), dtype=bool)
    return np.unpackbits(packed, axis=1, count=d).astype(bool)
