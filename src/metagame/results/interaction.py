"""A labelled interaction index (e.g. the exact order-2 Shapley-Taylor index returned by ``metagame.shapley_taylor``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .pairs import Pair


@dataclass
class InteractionResult:
    """A symmetric ``(d, d)`` pairwise interaction index with its players.

    Indexes and converts like its matrix (``res[i, j]``, ``np.asarray(res)``, ``res.shape``).

    Attributes:
        matrix: ``(d, d)``; off the diagonal the pair interaction, on the diagonal the order-1 terms.
        players: labels, one per player.
        index: the index's name (``"STII"``).
        value_full, value_empty: f(x) and f(∅).
        n_model_rows: rows pushed through the model.
        model: the adapter's description.
    """

    matrix: np.ndarray
    players: list[str]
    index: str = "STII"
    value_full: float | None = None
    value_empty: float | None = None
    n_model_rows: int | None = None
    model: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.matrix = np.asarray(self.matrix, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.matrix.shape

    def __getitem__(self, item: Any) -> Any:
        return self.matrix[item]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.matrix if dtype is None else self.matrix.astype(dtype)

    def __len__(self) -> int:
        return len(self.matrix)

    def top_pairs(self, n: int = 10) -> list[Pair]:
        """The ``n`` strongest pairs ``(i, j, value)`` with i < j, by absolute value (the same item
        :class:`~metagame.results.pairs.Pair` as :meth:`MetaAttribution.top_pairs`; the index is symmetric)."""
        d = len(self.players)
        iu = np.triu_indices(d, 1)
        vals = self.matrix[iu]
        order = np.argsort(-np.abs(vals), kind="stable")[: max(0, n)]
        return [Pair(int(iu[0][k]), int(iu[1][k]), float(vals[k])) for k in order]

    def to_shapiq(self):
        """A shapiq ``InteractionValues`` (index ``STII``, order 2): order-1 terms from the diagonal, pairs from
        the upper triangle, the empty coalition f(∅) (:func:`metagame.results.interop.stii_to_shapiq`)."""
        from .interop import stii_to_shapiq

        return stii_to_shapiq(self)

    def __repr__(self) -> str:
        return f"InteractionResult(index={self.index!r}, d={len(self.players)})"


__all__ = ["InteractionResult"]
