"""Attribution calls for the estimators: a hard budget, coalitions paid once per run, resumed work served from the
checkpoint (through the game's content-keyed cache)."""

from __future__ import annotations

import numpy as np

from ...errors import MetagameError
from ...games.masked import AttributionGame
from ...players.coalitions import CoalitionCache

#: largest d for which repeated coalitions are looked up instead of paid again (beyond, duplicates are negligible
#: and the per-row key costs more than it saves)
DEDUPLICATE_MAX_PLAYERS = 32


class Evaluator:
    """Budgeted attribution calls.

    ``used`` counts the distinct coalitions this run asked for (the budget), whether they were computed now or
    served from a checkpoint of the same run (which fills ``game.cache`` before the run starts);
    ``game.n_evaluations`` counts those computed now.
    """

    def __init__(self, game: AttributionGame, budget: int, d: int):
        self.game = game
        self.budget = budget
        self.d = d
        self.used = 0
        self.paid = CoalitionCache() if d <= DEDUPLICATE_MAX_PLAYERS else None  # keys only: what this run paid for

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def fresh(self, rows: np.ndarray) -> np.ndarray:
        """``bool[m]``: rows this run has not paid for yet (first occurrence within the batch)."""
        return np.ones(len(rows), dtype=bool) if self.paid is None else self.paid.fresh(rows)

    def cost(self, rows: np.ndarray) -> np.ndarray:
        """Cumulative number of calls needed to evaluate ``rows[:r+1]``."""
        return np.cumsum(self.fresh(rows))

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """Attribution vectors ``[m, d]`` of ``rows``; pays for the fresh ones (error if the budget would be exceeded)."""
        fresh = self.fresh(rows)
        n_new = int(fresh.sum())
        if n_new > self.remaining:  # pragma: no cover - callers truncate first
            raise MetagameError("internal error: attribution budget would be exceeded")
        out = self.game(rows)
        self.used += n_new
        if self.paid is not None:
            self.paid.put(rows[fresh], np.zeros(int(n_new)))
        return out[:, : self.d]


__all__ = ["DEDUPLICATE_MAX_PLAYERS", "Evaluator"]
