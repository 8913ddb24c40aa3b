"""Entry points for tensor models: ``meta_attributions``, ``attribute`` and ``shapley_taylor``.

One argument order everywhere (Captum's): ``(model, inputs, baselines, method, *, method_kwargs, ...)``; run
options (variant, value, budget, seed, estimator, tol, checkpoint, progress, order, ...) are the fields of
:class:`~metagame.run.RunOptions`, passed whole (``options=``) or as keywords.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from .applications.common import build_adapter, explain_application
from .games.masked import AttributionGame
from .methods.base import AttributionMethod
from .methods.registry import MethodName, get_method
from .errors import MetagameError
from .models.set_function import SetFunctionModel, is_set_function
from .models.tensor import TensorModel
from .players.coalitions import check_exact_size
from .results.interaction import InteractionResult
from .results.result import MetaAttribution
from .run.exact import value_table
from .run.explain import explain
from .run.options import RunOptions
from .solvers.exact import shapley_taylor as _stii_table


def meta_attributions(
    model: Callable,
    inputs=None,
    baselines=None,
    method: MethodName | AttributionMethod | Any = None,
    *,
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MetaAttribution:
    """Meta-attributions of a tensor model ``model(x[n, *shape]) -> [n]`` at ``inputs``, or of a set function.

    M[i, j] = Shapley value of j in u_i(T) = φ_i(f, x_{T∪{i}}), M[i, i] = φ_i(f, x_{{i}}); Σ_j M[i, j] = φ_i(f, x).

    Args:
        model: callable on float tensors, one scalar per row (a ``torch.nn.Module`` gets inputs in its dtype); or,
            with ``inputs=None``, a set function such as a shapiq ``Game`` (called on ``bool[m, d]`` coalitions,
            with an integer ``n_players``; only value methods apply, :class:`~metagame.models.SetFunctionModel`).
        inputs: the explained input x (``(d,)`` or any shape with ``feature_mask``), without a batch dimension.
        baselines: baseline b (default zeros) used both for masking and by the inner method.
        method: inner method name, an :class:`~metagame.methods.AttributionMethod`, or a Captum object/class
            (default: ``"integrated_gradients"`` for tensor models, ``"shapley"`` for set functions).
        method_kwargs: options of a named inner method, e.g. ``{"n_steps": 64}``.
        options, **kwargs: the adapter's options (:class:`~metagame.models.TensorModel`: ``feature_mask`` — player
            id per input coordinate, ``players`` — labels, ``batch_size`` — rows per model call) and the run options
            (:class:`~metagame.run.RunOptions`: ``budget=None`` for exact enumeration, else attribution calls for an
            estimator; ``variant``, ``value``, ``seed``, ``order``, ``checkpoint``, ...).

    Returns:
        :class:`~metagame.MetaAttribution` (float64 matrices, whatever the model's dtype).

    Example:
        >>> f = lambda x: x[:, 0] + x[:, 0] * x[:, 1] ** 2
        >>> meta_attributions(f, torch.tensor([2.0, 3.0], dtype=torch.float64)).matrix   # [[2, 6], [12, 0]]
    """
    if inputs is None and is_set_function(model):
        if baselines is not None:
            raise MetagameError("a set function has no baselines: its value at the empty coalition plays that role")
        return explain_application(SetFunctionModel, "meta_attributions", (model,), method or "shapley",
                                   method_kwargs, options, kwargs)
    if inputs is None:
        raise MetagameError(
            "meta_attributions needs the explained input: meta_attributions(model, x). (A set function such as a "
            "shapiq Game is explained without inputs, but it must have an integer n_players.)")
    return explain_application(TensorModel, "meta_attributions", (model, inputs, baselines),
                               method or "integrated_gradients", method_kwargs, options, kwargs)


def attribute(
    model: Callable,
    inputs,
    baselines=None,
    method: MethodName | AttributionMethod | Any = "shapley",
    *,
    method_kwargs: dict | None = None,
    **adapter_options: Any,
) -> np.ndarray:
    """First-order attribution φ(f, x) ``(d,)`` of a tensor model (one attribution call at the full coalition);
    ``adapter_options`` as in :func:`meta_attributions` (``feature_mask``, ``batch_size``).

    Example:
        >>> attribute(lambda x: x[:, 0] * x[:, 1], torch.tensor([2.0, 3.0]), method="shapley")   # [3, 3]
    """
    adapter = build_adapter(TensorModel, "attribute", model, inputs, baselines, **adapter_options)
    game = AttributionGame(adapter, get_method(method, method_kwargs))
    return game(np.ones((1, adapter.n_players), dtype=bool))[0]


def shapley_taylor(
    model: Callable, inputs, baselines=None, *, progress: bool | None = None, **adapter_options: Any
) -> InteractionResult:
    """Exact order-2 Shapley-Taylor interaction index of v(S) = f(x_S), as a labelled ``(d, d)`` result.

    Off the diagonal STII_ij = Σ_{A⊇{i,j}} m(A)/C(|A|, 2); the diagonal holds the order-1 terms m({i}). The result
    indexes like the matrix (``res[i, j]``) and converts with ``np.asarray(res)``; ``adapter_options`` as in
    :func:`meta_attributions` (``feature_mask``, ``players``, ``batch_size``).

    Example:
        >>> shapley_taylor(lambda x: x[:, 0] * x[:, 1], torch.ones(2))[0, 1]   # 1.0
    """
    adapter = build_adapter(TensorModel, "shapley_taylor", model, inputs, baselines, **adapter_options)
    check_exact_size(adapter.n_players, what="the exact Shapley-Taylor index")
    rows_before = adapter.n_model_rows
    v = value_table(adapter, progress)
    return InteractionResult(
        matrix=_stii_table(v),
        players=list(adapter.players),
        index="STII",
        value_full=float(v[-1]),
        value_empty=float(v[0]),
        n_model_rows=int(adapter.n_model_rows - rows_before),
        model=adapter.describe(),
    )


__all__ = ["attribute", "explain", "meta_attributions", "shapley_taylor"]
