"""Public entry points: ``meta_attributions``, ``attribute``, ``shapley_taylor`` and ``explain``."""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable, Literal, Sequence

import numpy as np

from .games.masked import AttributionGame
from .meta.exact import exact_meta_attributions, value_table
from .meta.tables import Value, Variant
from .methods.base import AttributionMethod
from .methods.registry import MethodName, get_method
from .models.base import ModelAdapter
from .models.tensor import TensorModel
from .players.coalitions import check_exact_size
from .results.result import MetaAttribution
from .solvers.exact import shapley_taylor as _stii_table

Estimator = Literal["auto", "stratified", "regression", "montecarlo"]


def explain(
    model: ModelAdapter,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    *,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    method_kwargs: dict | None = None,
    estimator: Estimator = "auto",
    tol: float | None = None,
    progress: bool | None = None,
    checkpoint: str | None = None,
    context: dict | None = None,
) -> MetaAttribution:
    """Meta-attributions M[i, j] = φ_{j→i} for any model adapter (features, tokens, patches, data, components).

    Exact (``budget=None``) enumerates the 2^d − 1 non-empty coalitions once; with ``budget`` (a number of
    attribution calls) a shared-sample estimator runs instead and ``stderr`` is filled.
    """
    inner = get_method(method, method_kwargs)
    if inner.needs_gradients and not getattr(model, "differentiable", True):
        from .errors import NotDifferentiableError
        from .methods.registry import METHODS

        usable = ", ".join(n for n, cls in METHODS.items() if not cls.needs_gradients)
        raise NotDifferentiableError(
            f"method '{inner.name}' needs gradients, but {type(model).__name__} has no gradient path; "
            f"use a method without gradients instead: {usable}"
        )
    rows_before = model.n_model_rows
    params: dict[str, Any] = {
        "method": inner.name,
        "method_params": inner.params(),
        "variant": variant,
        "value": value,
        "budget": budget,
        "seed": seed,
    }
    if budget is None:
        check_exact_size(model.n_players)
        out = exact_meta_attributions(
            model, inner, variant=variant, value=value, progress=progress, checkpoint=checkpoint
        )
        matrix, first, stderr, calls, exact = out.matrix, out.first_order, None, out.n_attribution_calls, True
        params["route"] = out.route
        ctx = {"value_full": out.value_full, "value_empty": out.value_empty}
        extras = out.extras
    else:
        from .meta.sampling import estimate_meta_attributions

        est = estimate_meta_attributions(
            model, inner, variant=variant, value=value, budget=budget, seed=seed, estimator=estimator,
            tol=tol, progress=progress, checkpoint=checkpoint,
        )
        matrix, first, stderr, calls, exact = est.matrix, est.first_order, est.stderr, est.n_attribution_calls, False
        params.update(est.params)
        ctx = {}
        extras = dict(est.extras)
    ctx.update(context or {})
    return MetaAttribution(
        matrix=matrix,
        first_order=first,
        players=list(model.players),
        method=inner.name,
        variant=variant,
        value=value,
        exact=exact,
        stderr=stderr,
        n_evaluations=int(calls),
        n_model_rows=int(model.n_model_rows - rows_before),
        player_kinds=list(model.player_kinds) if model.player_kinds is not None else None,
        metadata={
            "parameters": params,
            "model": model.describe(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
        context=ctx,
        extras=extras,
    )


def meta_attributions(
    model: Callable,
    inputs,
    baselines=None,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    method_kwargs: dict | None = None,
    *,
    feature_mask=None,
    players: Sequence[str] | None = None,
    estimator: Estimator = "auto",
    tol: float | None = None,
    batch_size: int | None = None,
    progress: bool | None = None,
    checkpoint: str | None = None,
) -> MetaAttribution:
    """Meta-attributions of a tensor model ``model(x[n, *shape]) -> [n]`` at ``inputs``.

    M[i, j] = Shapley value of j in u_i(T) = φ_i(f, x_{T∪{i}}), M[i, i] = φ_i(f, x_{{i}}); Σ_j M[i, j] = φ_i(f, x).

    Args:
        model: callable on float tensors, one scalar per row.
        inputs: the explained input x (``(d,)`` or any shape with ``feature_mask``).
        baselines: baseline b (default zeros) used both for masking and by the inner method.
        method: inner method name, an :class:`~metagame.methods.AttributionMethod`, or a Captum object/class.
        variant: ``"metagame"`` (target always present, SPEC default) or ``"serial"``.
        value: outer value, ``"shapley"`` or ``"banzhaf"``.
        budget: None for exact enumeration; else the number of attribution calls for an estimator.
        seed: seed of the estimator.
        method_kwargs: options of a named inner method, e.g. ``{"n_steps": 64}``.
        feature_mask: player id per input coordinate (players that span several coordinates).
        players: player labels.
        batch_size: rows per model call (None: chosen from the input size, at most 8192).
    """
    adapter = TensorModel(model, inputs, baselines, feature_mask=feature_mask, players=players, batch_size=batch_size)
    return explain(
        adapter, method, variant=variant, value=value, budget=budget, seed=seed, method_kwargs=method_kwargs,
        estimator=estimator, tol=tol, progress=progress, checkpoint=checkpoint,
    )


def attribute(
    model: Callable,
    inputs,
    baselines=None,
    method: MethodName | AttributionMethod | Any = "shapley",
    method_kwargs: dict | None = None,
    *,
    feature_mask=None,
    batch_size: int | None = None,
) -> np.ndarray:
    """First-order attribution φ(f, x) ``(d,)`` of a tensor model (one attribution call at the full coalition)."""
    adapter = TensorModel(model, inputs, baselines, feature_mask=feature_mask, batch_size=batch_size)
    game = AttributionGame(adapter, get_method(method, method_kwargs))
    return game(np.ones((1, adapter.n_players), dtype=bool))[0]


def shapley_taylor(
    model: Callable, inputs, baselines=None, *, feature_mask=None, batch_size: int | None = None, progress: bool | None = None
) -> np.ndarray:
    """Exact order-2 Shapley-Taylor interaction index ``(d, d)`` of v(S) = f(x_S).

    Off the diagonal STII_ij = Σ_{A⊇{i,j}} m(A)/C(|A|, 2); the diagonal holds the order-1 terms m({i}).
    """
    adapter = TensorModel(model, inputs, baselines, feature_mask=feature_mask, batch_size=batch_size)
    check_exact_size(adapter.n_players, what="the exact Shapley-Taylor index")
    return _stii_table(value_table(adapter, progress))
