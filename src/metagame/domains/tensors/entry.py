"""Entry points for tensor models: ``meta_attributions``, ``attribute`` and ``shapley_taylor``.

One argument order everywhere (Captum's): ``(model, inputs, baselines, method, *, method_kwargs, ...)``; run
options (variant, value, budget, seed, estimator, tol, checkpoint, progress, order, ...) are the fields of
:class:`~metagame.run.RunOptions`, passed whole (``options=``) or as keywords.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch

from ...applications.common import build_adapter, explain_application
from ...applications.sets import SetItem, explain_inputs
from ...errors import MetagameError
from ...games.masked import AttributionGame
from ...methods.base import AttributionMethod
from ...methods.registry import MethodName, get_method
from ...models.state import kept_as_given
from ...players.coalitions import check_exact_size
from ...results.interaction import InteractionResult
from ...results.result import MetaAttribution
from ...results.result_set import ResultSet
from ...run.exact import value_table
from ...run.options import RunOptions
from ...solvers.exact import shapley_taylor as _stii_table
from .adapter import TensorModel
from .set_function import SetFunctionModel, is_set_function


def meta_attributions(
    model: Callable,
    inputs=None,
    baselines=None,
    method: MethodName | AttributionMethod | Any = None,
    *,
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    batch: bool = False,
    **kwargs: Any,
) -> MetaAttribution | ResultSet:
    """Meta-attributions of a tensor model ``model(x[n, *shape]) -> [n]`` at ``inputs``, or of a set function.

    M[i, j] = Shapley value of j in u_i(T) = φ_i(f, x_{T∪{i}}), M[i, i] = φ_i(f, x_{{i}}); Σ_j M[i, j] = φ_i(f, x).

    Args:
        model: callable on float tensors, one scalar per row (a ``torch.nn.Module`` gets inputs in its dtype); or,
            with ``inputs=None``, a set function such as a shapiq ``Game`` (called on ``bool[m, d]`` coalitions,
            with an integer ``n_players``; only value methods apply, :class:`~metagame.domains.tensors.SetFunctionModel`).
        inputs: the explained input x (``(d,)`` or any shape with ``feature_mask``), without a batch dimension; or a
            list of such inputs (a :class:`~metagame.ResultSet` comes back, one result per input).
        baselines: baseline b (default zeros) used both for masking and by the inner method; with a list of inputs
            one baseline for all or a list with one per input.
        method: inner method name, an :class:`~metagame.methods.AttributionMethod`, or a Captum object/class
            (default: ``"integrated_gradients"`` for tensor models, ``"shapley"`` for set functions).
        method_kwargs: options of a named inner method, e.g. ``{"n_steps": 64}``.
        options, **kwargs: the adapter's options (:class:`~metagame.domains.tensors.TensorModel`: ``feature_mask`` — player
            id per input coordinate, ``players`` — labels, ``batch_size`` — rows per model call) and the run options
            (:class:`~metagame.run.RunOptions`: ``budget=None`` for exact enumeration, else attribution calls for an
            estimator; ``variant``, ``value``, ``seed``, ``order``, ``checkpoint``, ...).
        batch: True: ``inputs`` is a batch, each row ``inputs[k]`` one input (never guessed from the shape).

    Returns:
        :class:`~metagame.MetaAttribution` (float64 matrices, whatever the model's dtype); a
        :class:`~metagame.ResultSet` for a list of inputs or ``batch=True`` (``checkpoint=`` is then a folder).

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
    method = method or "integrated_gradients"
    if batch or _is_tensor_list(inputs):
        items = tensor_items(inputs, baselines, batch)
        return explain_inputs(TensorModel, "meta_attributions", model, items, method, method_kwargs, options, kwargs)
    return explain_application(TensorModel, "meta_attributions", (model, inputs, baselines), method, method_kwargs,
                               options, kwargs)


def _is_tensor_list(inputs: Any) -> bool:
    """A list/tuple of inputs (tensors, arrays or nested lists); a flat list of numbers stays one input."""
    return isinstance(inputs, (list, tuple)) and len(inputs) > 0 and all(
        isinstance(x, (torch.Tensor, np.ndarray, list, tuple)) for x in inputs)


def tensor_items(inputs: Any, baselines: Any, batch: bool) -> list[SetItem]:
    """The items of a tensor set: rows of a batch (``batch=True``) or the list's elements, each with its baseline."""
    entry = "meta_attributions"
    if batch:
        if not isinstance(inputs, (torch.Tensor, np.ndarray)) or inputs.ndim < 2:
            raise MetagameError(f"{entry}: batch=True needs a tensor with a batch dimension (n, ...); got "
                                f"{type(inputs).__name__} of shape {tuple(getattr(inputs, 'shape', ()))}")
        rows = [inputs[k] for k in range(inputs.shape[0])]
    else:
        rows = list(inputs)
    if not rows:
        raise MetagameError(f"{entry}: the list of inputs is empty; pass at least one input")
    per_input = isinstance(baselines, (list, tuple)) or (batch and baselines is not None and
                                                         getattr(baselines, "ndim", 0) == getattr(inputs, "ndim", 0))
    if per_input and len(baselines) != len(rows):
        raise MetagameError(f"{entry}: {len(rows)} inputs but {len(baselines)} baselines; pass one baseline for all "
                            f"or one per input")
    items = []
    for k, x in enumerate(rows):
        if getattr(x, "numel", lambda: getattr(x, "size", len(x)))() == 0:
            raise MetagameError(f"{entry}: input {k} of the list is empty; each input needs at least one feature")
        b = baselines[k] if per_input else baselines
        items.append(SetItem((x, b), describe={"shape": list(np.shape(x))}))
    return items


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
    with kept_as_given(model, method):
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
    with kept_as_given(model):
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


__all__ = ["attribute", "meta_attributions", "shapley_taylor"]
