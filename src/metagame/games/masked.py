"""Games built from a model adapter: model values v(S) = f(x_S) and attribution games S -> φ(f, x_S)."""

from __future__ import annotations

import numpy as np

from ..errors import ModelOutputError
from ..methods.base import AttributionMethod
from ..models.base import ModelAdapter
from ..players.coalitions import format_coalition
from .base import Game


def checked_attributions(phi: np.ndarray, coalitions: np.ndarray, model: ModelAdapter, method: AttributionMethod) -> np.ndarray:
    """``phi`` (``float64[m, ...]``, one row per coalition) unchanged, or an error naming the first coalition and
    player whose attribution is not finite (e.g. a 0/0 gradient of sqrt at a baseline where its argument is 0)."""
    bad = ~np.isfinite(phi)
    if bad.any():
        r, *rest = np.argwhere(bad)[0]
        col = int(np.ravel_multi_index(rest, phi.shape[1:])) if rest else 0
        d = model.n_players
        target = model.players[col] if col < d and not model.attribution_shape else f"output {col}"
        raise ModelOutputError(
            f"method '{method.name}' gave a non-finite attribution ({phi[tuple([r, *rest])]}) to {target!r} at coalition "
            f"S = {format_coalition(coalitions[r], model.players)}: the model's gradient or output is undefined there "
            f"(e.g. 0/0 in the derivative of sqrt or log at the baseline). Choose baselines where the model is "
            f"differentiable, make the model safe there (e.g. sqrt(t + eps)), or use a perturbation method"
        )
    return phi


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
        phi = self.model.attribute(self.method, coalitions).detach().cpu().double().numpy()
        return checked_attributions(phi, coalitions, self.model, self.method)
