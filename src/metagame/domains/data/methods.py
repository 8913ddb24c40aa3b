"""Data-attribution methods with closed forms or parameter gradients (players = training points).

Leave-one-out, Data Shapley and Data Banzhaf are the generic ``occlusion``, ``shapley`` and
``banzhaf`` methods run on a data adapter. This module adds:

* :class:`KNNShapley` — the exact Shapley value of the K-nearest-neighbour utility by the recursion
  of Jia et al. (2019), for every coalition of a batch at once (numpy, no training);
* :class:`GradientInfluence` — gradient dot product / TracIn for torch models:
  φ_i = −Σ_c η_c ∇_θ U(θ_c) · ∇_θ ℓ(z_i; θ_c) (first-order change of the utility U from one
  gradient step on z_i; with U = −test loss this is TracIn), computed on the model trained on S.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from ...errors import MetagameError
from ...methods.base import AttributionMethod
from ...models.base import ModelAdapter
from ...models.contract import KNNTables, TrainingRuns, require_capability

#: coalitions per vectorised KNN-Shapley block
_KNN_BLOCK = 256


def knn_shapley_batch(coalitions: np.ndarray, order: np.ndarray, match: np.ndarray, k: int) -> np.ndarray:
    """Exact KNN-Shapley of every coalition: ``[m, n]`` (0 outside S), averaged over test points.

    Within S sorted by distance (ranks q = 1..N), Jia et al.'s recursion
    s_N = a_N c(N), s_q = s_{q+1} + (a_q − a_{q+1}) c(q), c(q) = min(K, q)/(qK), a = label match,
    is summed in closed form: s_q = a_q c(q−1) + Σ_{r ≥ q} a_r (c(r) − c(r−1)).
    """
    coalitions = np.asarray(coalitions, dtype=bool)
    m, n = coalitions.shape
    t = order.shape[0]
    inv = np.argsort(order, axis=1)  # position of each training point in each test point's order
    q_all = np.arange(n + 1, dtype=np.float64)
    c = np.empty(n + 1)
    c[0] = 1.0 / k
    c[1:] = np.minimum(k, q_all[1:]) / (q_all[1:] * k)
    dc = np.zeros(n + 1)
    dc[1:] = c[1:] - c[:-1]
    out = np.zeros((m, n))
    for start in range(0, m, _KNN_BLOCK):
        block = coalitions[start : start + _KNN_BLOCK]
        members = block[:, order]  # [b, t, n] in distance order
        rank = np.cumsum(members, axis=2)
        e = np.where(members, match[None] * dc[rank], 0.0)
        tail = np.cumsum(e[:, :, ::-1], axis=2)[:, :, ::-1]  # Σ_{r ≥ q}
        s = np.where(members, tail + match[None] * c[np.maximum(rank - 1, 0)], 0.0)
        back = np.take_along_axis(s, np.broadcast_to(inv[None], s.shape), axis=2)  # original player order
        out[start : start + len(block)] = back.sum(axis=1) / t
    return out


class KNNShapley(AttributionMethod):
    """KNN-Shapley (Jia et al., 2019): exact Shapley value of the K-nearest-neighbour utility restricted
    to S, φ_i = Shapley_i(T ↦ (1/K) Σ_{k ≤ min(K,|T|)} 1[y_{α_k(T)} = y_test]), vectorised over coalitions.

    On a :class:`~metagame.domains.data.adapter.KNNDataModel` it is the Shapley value of the adapter's own game
    (K taken from the adapter); on another data adapter it is the KNN proxy of Data Shapley (pass ``k``).

    Args:
        k: number of neighbours; default: the adapter's K (required for non-KNN adapters).
    """

    name = "knn_shapley"
    applications = ("data", "feature_data")
    family = "perturbation"

    def __init__(self, k: int | None = None):
        if k is not None and int(k) < 1:
            raise MetagameError(f"k must be >= 1; got {k}")
        self.k = None if k is None else int(k)

    def params(self):
        return {"k": self.k}

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        require_capability(model, KNNTables, "method 'knn_shapley'",
                           f"knn_shapley values training points and {type(model).__name__} is not a data adapter. "
                           f"Use metagame.domains.data.adapter.KNNDataModel (or DataModel) with X, y, X_test, y_test")
        order, match, k = model.knn_tables(self.k)
        phi = knn_shapley_batch(np.asarray(coalitions, dtype=bool), order, match, k)
        return torch.as_tensor(phi, dtype=torch.float64)


def _default_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example loss: cross-entropy for class logits ``[n, C]`` with integer labels, else squared error."""
    if out.ndim == 2 and out.shape[1] > 1:
        return torch.nn.functional.cross_entropy(out, y.reshape(-1).long(), reduction="none")
    return (out.reshape(-1) - y.reshape(-1).to(out.dtype)) ** 2


class GradientInfluence(AttributionMethod):
    """Gradient influence / TracIn: φ_i = −Σ_c η_c ∇_θ U(θ_c) · ∇_θ ℓ(z_i; θ_c) for i ∈ S, θ_c the
    checkpoints of the torch model trained on S (one checkpoint with η = 1: the gradient dot product).

    The training function returns the model (gradient dot product at the final parameters) or
    :class:`~metagame.domains.data.adapter.Checkpoints` (TracIn over saved checkpoints). U must be
    differentiable (``utility="neg_log_loss"``/``"neg_mse"`` or a callable returning a tensor).

    Args:
        loss: per-example training loss ``loss(outputs, targets) -> [n]``; default cross-entropy for
            class logits, squared error otherwise.
    """

    name = "gradient_influence"
    applications = ("data",)
    family = "gradient"
    needs_gradients = False  # differentiates model parameters, not the coalition

    def __init__(self, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None):
        self.loss = loss or _default_loss

    def params(self):
        return {"loss": getattr(self.loss, "__name__", "callable")}

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        coalitions = np.asarray(coalitions, dtype=bool)
        out = np.zeros(coalitions.shape)
        require_capability(model, TrainingRuns, "method 'gradient_influence'",
                           "gradient_influence needs a DataModel with a torch training function train(X_sub, y_sub, "
                           "seed) -> torch module")
        for r, row in enumerate(coalitions):
            run = model.training_runs(row)
            members = np.flatnonzero(row)
            for module, lr in run.checkpoints:
                out[r, members] += lr * self._dots(run, module)
        return torch.as_tensor(out, dtype=torch.float64)

    def _dots(self, run: Any, module: torch.nn.Module) -> np.ndarray:
        """−∇U · ∇ℓ(z_i) for each training example of the subset."""
        if not isinstance(module, torch.nn.Module):
            raise MetagameError(f"gradient_influence needs torch modules from the training function; got {type(module).__name__}")
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise MetagameError("the trained model has no parameters that require gradients")
        was_training = module.training
        module.eval()
        try:
            with torch.enable_grad():
                u = run.utility(module)
                if not u.requires_grad:
                    raise MetagameError("the utility does not depend differentiably on the model parameters; use 'neg_log_loss' or 'neg_mse'")
                g_u = torch.cat([g.reshape(-1) for g in torch.autograd.grad(u, params, allow_unused=False)])
                X = run.X if isinstance(run.X, torch.Tensor) else torch.as_tensor(np.asarray(run.X))
                if X.is_floating_point():
                    X = X.to(params[0].dtype)
                y = run.y if isinstance(run.y, torch.Tensor) else torch.as_tensor(np.asarray(run.y))
                dots = np.zeros(len(y))
                for i in range(len(y)):
                    li = self.loss(module(X[i : i + 1]), y[i : i + 1]).sum()
                    g_i = torch.cat([g.reshape(-1) for g in torch.autograd.grad(li, params)])
                    dots[i] = -float(g_u.double() @ g_i.double())
        finally:
            module.train(was_training)
        return dots
