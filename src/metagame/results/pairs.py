"""The items that ``top_pairs`` / ``top_triples`` return on every result type: indices in the order of the
matrix's own indices (target first), then the value."""

from __future__ import annotations

from typing import NamedTuple


class Pair(NamedTuple):
    """One entry M[target, source] = φ_{source→target} (for a symmetric index: the pair, target < source)."""

    target: int
    source: int
    value: float


class Triple(NamedTuple):
    """One third-order entry T[target, source, mover]: how ``mover`` moves the push of ``source`` on ``target``."""

    target: int
    source: int
    mover: int
    value: float


__all__ = ["Pair", "Triple"]
