"""Games built from a model adapter: model values v(S) = f(x_S) and attribution games S -> φ(f, x_S)."""

from __future__ import annotations

import numpy as np

from ..methods.base import AttributionMethod
from ..models.base import ModelAdapter
from .base import Game


class MaskedModelGame(Game):
    """v(S) = f(x_S) through the adapter's masking rule (k = 1)."""

    def __init__(self, model: ModelAdapter, **kwargs):
        kwargs.setdefault("batch_size", max(model.batch_size, 1) * 16)
        super().__init__(model.n_players, 1, players=model.players, **kwargs)
        self.model = model

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self.model.values(coalitions).detach().cpu().double().numpy()[:, None]


class AttributionGame(Game):
    """The vector-valued game S -> φ(f, x_S) ∈ R^d of an inner attribution method (k = d, or d × prod of the adapter's
    ``attribution_shape`` for map-valued attributions, plus its always-present ``side_targets`` after the players).

    ``n_evaluations`` counts attribution calls (one per coalition); the model's own counters
    (``model.n_model_rows``) count the rows the method pushed through the model.
    """

    def __init__(self, model: ModelAdapter, method: AttributionMethod, **kwargs):
        kwargs.setdefault("batch_size", 256)
        width = model.n_players * int(np.prod(model.attribution_shape)) + len(model.side_targets)
        super().__init__(model.n_players, width, players=model.players, **kwargs)
        self.model = model
        self.method = method

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self.model.attribute(self.method, coalitions).detach().cpu().double().numpy()
