"""Ray-backed games with the interface of the local ones."""


from __future__ import annotations

import math
from typing import Any, Iterable, Iterator

import numpy as np

from ...games.masked import AttributionGame, MaskedModelGame
from ...methods.base import AttributionMethod
from ...models.base import ModelAdapter
from .common import PIECES_PER_WORKER
from .pool import WorkerPool


# ------------------------------------------------------------------------------------------------ Ray games
class _RayGame:
    """The Ray half of a game: the local game's calls (``batch_size`` coalitions each), cut into pieces at multiples
    of ``cut`` (None: never cut), evaluated on the pool."""

    pool: WorkerPool
    cut: int | None
    call: str
    batch_size: int
    n_outputs: int
    n_evaluations: int
    cache: Any

    def _arg(self) -> Any:
        return None

    def _pieces(self, unit: np.ndarray) -> list[np.ndarray]:
        if self.cut is None or len(unit) <= self.cut:
            return [unit]
        workers = max(1, len(self.pool.slots))
        size = self.cut * max(1, math.ceil(len(unit) / (PIECES_PER_WORKER * workers * self.cut)))
        return [unit[s : s + size] for s in range(0, len(unit), size)]

    def _units(self, coalitions: np.ndarray) -> list[np.ndarray]:
        return [coalitions[s : s + self.batch_size] for s in range(0, len(coalitions), self.batch_size)]

    def _join(self, parts: list[np.ndarray], n: int) -> np.ndarray:
        if not parts:
            return np.zeros((n, self.n_outputs))
        return np.concatenate([np.asarray(p, dtype=np.float64).reshape(len(p), self.n_outputs) for p in parts])

    def _batched(self, coalitions: np.ndarray) -> np.ndarray:
        self.pool.start()
        units = self._units(coalitions)
        out: list[np.ndarray | None] = [None] * len(units)
        jobs = ((k, self._pieces(u)) for k, u in enumerate(units))
        for k, parts in self.pool.run(self.call, self._arg(), jobs):
            out[k] = self._join(parts, len(units[k]))
        self.n_evaluations += len(coalitions)
        return np.concatenate(out) if out else np.zeros((0, self.n_outputs))  # type: ignore[arg-type]

    def map_unordered(self, batches: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """``(k, values of batches[k])`` as batches finish, many in flight at once over the workers."""
        if self.cache is not None:
            for k, rows in enumerate(batches):
                yield k, self(rows)  # type: ignore[operator]
            return
        self.pool.start()
        sizes: dict[int, int] = {}
        units_left: dict[int, int] = {}
        done: dict[int, list[np.ndarray | None]] = {}

        def jobs() -> Iterator[tuple[tuple[int, int], list[np.ndarray]]]:
            for k, rows in enumerate(batches):
                units = self._units(np.asarray(rows, dtype=bool))
                sizes[k], units_left[k], done[k] = len(rows), len(units), [None] * len(units)
                if not units:
                    yield (k, -1), []
                for u, unit in enumerate(units):
                    yield (k, u), self._pieces(unit)

        for (k, u), parts in self.pool.run(self.call, self._arg(), jobs()):
            if u >= 0:
                done[k][u] = self._join(parts, sum(len(p) for p in parts))
                units_left[k] -= 1
            if units_left[k] == 0:
                vals = np.concatenate(done.pop(k)) if sizes[k] else np.zeros((0, self.n_outputs))  # type: ignore[arg-type]
                del units_left[k]
                self.n_evaluations += sizes.pop(k)
                yield k, vals


class RayAttributionGame(_RayGame, AttributionGame):
    """:class:`~metagame.games.AttributionGame` whose calls run on Ray workers (same interface, same numbers)."""

    call = "attribute"

    def __init__(self, pool: WorkerPool, model: ModelAdapter, method: AttributionMethod, **kwargs: Any):
        super().__init__(model, method, **kwargs)
        self.pool = pool
        default_hook = type(model).attribute is ModelAdapter.attribute
        self.cut = method.coalitions_per_pass(model) if default_hook else None
        self._method_ref: Any = None

    def _arg(self) -> Any:
        if self._method_ref is None:
            self._method_ref = self.pool.ray.put(self.method)
        return self._method_ref

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self._batched(coalitions)


class RayValueGame(_RayGame, MaskedModelGame):
    """:class:`~metagame.games.MaskedModelGame` whose calls run on Ray workers (cut at multiples of the adapter's
    ``batch_size``, where :meth:`~metagame.models.base.ModelAdapter.values` cuts)."""

    call = "values"

    def __init__(self, pool: WorkerPool, model: ModelAdapter, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.pool = pool
        self.cut = max(1, int(model.batch_size))

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self._batched(coalitions)
