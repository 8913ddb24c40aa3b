"""Vector-valued cooperative games: ``coalitions bool[m, d] -> values float[m, k]``.

A game evaluates batches, counts the rows it evaluated (``n_evaluations``) and can cache rows by
coalition content so that repeated coalitions are never paid for twice.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..players.coalitions import CoalitionCache, as_coalitions


class Game:
    """Base class; subclasses implement :meth:`_evaluate` on a batch ``bool[m, d]`` -> ``[m, k]``.

    Args:
        n_players: d.
        n_outputs: k.
        cache: keep evaluated rows by coalition content (:class:`~metagame.players.CoalitionCache`).
        batch_size: coalitions per ``_evaluate`` call.
    """

    def __init__(self, n_players: int, n_outputs: int = 1, *, cache: bool = False, batch_size: int = 4096, players: Sequence[str] | None = None):
        self.n_players = int(n_players)
        self.n_outputs = int(n_outputs)
        self.batch_size = int(batch_size)
        self.players = list(players) if players is not None else [f"x{i}" for i in range(self.n_players)]
        self.n_evaluations = 0
        self.cache = CoalitionCache() if cache else None

    def __call__(self, coalitions) -> np.ndarray:
        """Values ``float64[m, k]`` of a batch of coalitions."""
        coalitions = as_coalitions(coalitions, self.n_players)
        if self.cache is None:
            return self._batched(coalitions)
        return self.cache.fill(coalitions, self._batched).reshape(len(coalitions), self.n_outputs)

    def map_unordered(self, batches: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """``(k, self(batches[k]))`` for every batch as it finishes: here one at a time, in order; a distributed game
        (:class:`~metagame.run.backend.RayAttributionGame`) evaluates several at once and yields them as they complete."""
        for k, rows in enumerate(batches):
            yield k, self(rows)

    def _batched(self, coalitions: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(coalitions), self.batch_size):
            chunk = coalitions[start : start + self.batch_size]
            vals = np.asarray(self._evaluate(chunk), dtype=np.float64).reshape(len(chunk), self.n_outputs)
            self.n_evaluations += len(chunk)
            parts.append(vals)
        return np.concatenate(parts) if parts else np.zeros((0, self.n_outputs))

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def table(self) -> np.ndarray:
        """All ``2**d`` values in bitmask order, ``[2**d, k]`` (exact solvers' input)."""
        from ..players.coalitions import all_coalitions, check_exact_size

        check_exact_size(self.n_players, what="a full value table")
        return self(all_coalitions(self.n_players))


class FunctionGame(Game):
    """A game from a Python function ``fn(bool[m, d]) -> [m]`` or ``[m, k]``."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], n_players: int, n_outputs: int = 1, **kwargs):
        super().__init__(n_players, n_outputs, **kwargs)
        self.fn = fn

    def _evaluate(self, coalitions):
        return self.fn(coalitions)


class MoebiusGame(Game):
    """A synthetic game with known Möbius coefficients: v(S) = Σ_{A⊆S} m(A).

    Args:
        coefficients: ``{tuple_of_players: value}`` (value a scalar or a length-k vector).
        n_players: d.
    """

    def __init__(self, coefficients: Mapping[tuple[int, ...], float | Sequence[float]], n_players: int, **kwargs):
        coeffs = {tuple(sorted(k)): np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in coefficients.items()}
        k = max((len(v) for v in coeffs.values()), default=1)
        super().__init__(n_players, k, **kwargs)
        self.coefficients = coeffs

    def _evaluate(self, coalitions):
        out = np.zeros((len(coalitions), self.n_outputs))
        for members, value in self.coefficients.items():
            inside = coalitions[:, list(members)].all(axis=1) if members else np.ones(len(coalitions), dtype=bool)
            out[inside] += value
        return out
