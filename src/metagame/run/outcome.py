"""What every engine returns: one :class:`Outcome` (exact engine, estimator driver, on any backend), which
:func:`metagame.explain` copies into a :class:`~metagame.MetaAttribution`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Outcome:
    """The numbers of one run: M[i, j] = φ_{j→i} and, with ``order=3``, T[i, j, k] (Σ_k T[i, j, k] = M[i, j]).

    Attributes:
        matrix: M ``[d, d]`` (vector-valued attributions: the weighted sum of ``extras["maps"]``).
        first_order: φ(x) ``[d]``, the row totals of a Shapley metagame.
        n_evaluations: attribution calls the run used (resumed ones included).
        stderr: standard error of every entry (0: exact, inf: not identified); None for an exact run.
        params: what the engine adds to ``metadata["parameters"]`` (exact: ``route``; sampled: ``estimator``,
            ``n_evaluations``, ``seed_used``, ...).
        extras: arrays the result keeps in its ``extras`` (``maps``, ``side_matrix``, ``attribution_at_baseline``, ...).
        tensor: T ``[d, d, d]`` (T[i, j, k]: target i, source j, mover k) when ``order=3``, else None.
        tensor_stderr: standard errors of ``tensor`` (a sampled ``order=3`` run), else None.
        value_full: f(x) when the engine read it off its value table, else None.
        value_empty: f(∅) likewise.
    """

    matrix: np.ndarray
    first_order: np.ndarray
    n_evaluations: int
    stderr: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    tensor: np.ndarray | None = None
    tensor_stderr: np.ndarray | None = None
    value_full: float | None = None
    value_empty: float | None = None

    @property
    def endpoints(self) -> dict[str, float] | None:
        """``{"value_full": f(x), "value_empty": f(∅)}`` when the engine knows them, else None."""
        if self.value_full is None or self.value_empty is None:
            return None
        return {"value_full": self.value_full, "value_empty": self.value_empty}


__all__ = ["Outcome"]
