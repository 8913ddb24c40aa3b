"""``explain``: the one place that runs the metagame on an adapter and builds a :class:`MetaAttribution`.

Every entry point (``meta_attributions``, ``explain_lm``, ``explain_text_pair``, ``explain_vision``,
``explain_data``, ``explain_components``, the commands) ends here, so every result carries the same fields:
``metadata["parameters"]`` (the method, its parameters and every run option), ``metadata["model"]`` (the
adapter's description), ``metadata["recipe"]`` (how to build the adapter again, when its inputs are plain data) and
``context`` (the adapter's display context plus f(x) and f(∅)).
"""

from __future__ import annotations

import datetime as _dt
import logging
from typing import Any, Mapping

from ..errors import NotDifferentiableError
from ..methods.base import AttributionMethod
from ..methods.registry import METHODS, MethodName, get_method
from ..models.base import ModelAdapter
from ..models.state import kept_as_given
from ..players.coalitions import check_exact_size, require_unique
from ..results.extras import TENSOR, TENSOR_STDERR
from ..results.result import MetaAttribution
from .backend import AdapterRecipe, backend_metadata, backend_session
from .checkpoint import Checkpoint, run_fingerprint
from .exact import exact_meta_attributions
from .options import RunOptions
from .third_order import check_order

log = logging.getLogger(__name__)


def _check_gradients(model: ModelAdapter, inner: AttributionMethod) -> None:
    if inner.needs_gradients and not model.differentiable:
        usable = ", ".join(n for n, cls in METHODS.items() if not cls.needs_gradients)
        raise NotDifferentiableError(
            f"method '{inner.name}' needs gradients, but {type(model).__name__} has no gradient path; "
            f"use a method without gradients instead: {usable}"
        )


def _check_size(model: ModelAdapter, options: RunOptions) -> None:
    if options.budget is None:
        hint = model.exact_hint()
        check_exact_size(
            model.n_players, limit=model.exact_max_players,
            what=f"exact meta-attributions of {model.n_players} {_noun(model)}" + (f" ({hint})" if hint else ""),
        )


def _noun(model: ModelAdapter) -> str:
    kinds = sorted(set(model.player_kinds or ["player"]))
    if len(kinds) == 1:
        return {"word_a": "words", "word_b": "words", "data": "training points"}.get(kinds[0], kinds[0] + "s")
    return "players"


def explain(
    model: ModelAdapter,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    *,
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    **run_options: Any,
) -> MetaAttribution:
    """Meta-attributions M[i, j] = φ_{j→i} for any model adapter (features, tokens, patches, data, components).

    M[i, j] = Shapley (or Banzhaf) value of j in u_i(T) = φ_i(f, x_{T∪{i}}), M[i, i] = φ_i(f, x_{{i}}).
    Exact (``budget=None``) enumerates the 2^d − 1 non-empty coalitions once; with ``budget`` (attribution calls)
    a shared-sample estimator runs instead and ``stderr`` is filled.

    Args:
        model: a :class:`~metagame.models.base.ModelAdapter` (players + masking + model).
        method: inner method name, an :class:`~metagame.methods.AttributionMethod`, or a Captum object/class.
        method_kwargs: options of a named inner method, e.g. ``{"n_steps": 64}``.
        options: a whole :class:`~metagame.run.RunOptions` (or dict); keywords override its fields.
        **run_options: any :class:`~metagame.run.RunOptions` field (variant, value, budget, seed, estimator, tol,
            checkpoint, checkpoint_mode, checkpoint_every, progress, order, backend, ray_address, num_workers,
            num_gpus_per_worker).

    Returns:
        The :class:`~metagame.MetaAttribution`.

    Example:
        >>> from metagame.domains.tensors import TensorModel
        >>> res = explain(TensorModel(lambda x: x[:, 0] * x[:, 1], torch.ones(2)), "gradient_x_input")
        >>> res.matrix            # [[0, 1], [1, 0]]
    """
    opts = RunOptions.build(options, **run_options)
    with kept_as_given(model, method):  # the user's modules run in eval mode and are restored exactly afterwards
        return _explain(model, method, method_kwargs, opts)


def _explain(model: ModelAdapter, method: Any, method_kwargs: dict | None, opts: RunOptions) -> MetaAttribution:
    inner = get_method(method, method_kwargs)
    require_unique(model.players, f"{type(model).__name__}'s players")
    _check_gradients(model, inner)
    _check_size(model, opts)
    if not opts.exact:
        from .estimators.driver import check_sampled

        check_sampled(model, opts)  # vector-valued attributions are exact only: refuse a budget before any work
    check_order(opts)
    checkpoint_for = _checkpoint_factory(model, inner, opts)  # probes the model before the run's rows are counted
    rows_before = model.n_model_rows
    hits_before, misses_before = model.value_cache.hits, model.value_cache.misses
    log.info("Meta-%s of %d players (%s): %s", inner.name, model.n_players, type(model).__name__,
             "exact enumeration" if opts.exact else f"estimate with budget {opts.budget} ({opts.estimator} estimator)")
    params: dict[str, Any] = {"method": inner.name, "method_params": inner.params(), **opts.as_params()}
    with backend_session(model, opts) as backend:  # the workers of backend='ray' live for this block
        if opts.exact:
            out = exact_meta_attributions(model, inner, opts, checkpoint_for)
        else:
            from .estimators import estimate_meta_attributions

            out = estimate_meta_attributions(model, inner, opts, checkpoint_for)
    params.update(out.params)
    n_rows = model.n_model_rows - rows_before
    if opts.exact:
        log.info("exact route %r: %d attribution calls", params.get("route"), out.n_evaluations)
    else:
        log.info("estimator %r: %d attribution calls (%d resumed from a checkpoint), %d entries not identified",
                 params.get("estimator"), out.n_evaluations, params.get("resumed_evaluations", 0), params.get("unidentified_entries", 0))
    log.info("model values: %d computed (%d model rows), %d served from the cache",
             model.value_cache.misses - misses_before, n_rows, model.value_cache.hits - hits_before)
    endpoints = out.endpoints
    if endpoints is None:
        endpoints = model.endpoint_values()  # two forward rows (cached), not counted in n_model_rows
    reference = inner.reference_value(model)  # one forward row, not counted either
    if reference is not None:
        endpoints = {**endpoints, "value_reference": reference[0], "reference": reference[1]}
    extras = dict(out.extras)
    if out.tensor is not None:
        extras[TENSOR] = out.tensor
        if out.tensor_stderr is not None:
            extras[TENSOR_STDERR] = out.tensor_stderr
    result = MetaAttribution(
        matrix=out.matrix,
        first_order=out.first_order,
        players=list(model.players),
        method=inner.name,
        variant=opts.variant,
        value=opts.value,
        exact=opts.exact,
        stderr=out.stderr,
        n_evaluations=int(out.n_evaluations),
        n_model_rows=int(n_rows),
        player_kinds=list(model.player_kinds) if model.player_kinds is not None else None,
        metadata={
            "parameters": params,
            "model": model.describe(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "backend": backend_metadata(backend),
            "explained": {**model.explained(), "method": _method_words(inner), "estimator": _estimator_words(opts, params)},
            **_stored_recipe(model),
        },
        context={**model.display_context(), **endpoints},
        extras=extras,
    )
    model.finalize(result)
    return result


def _stored_recipe(model: ModelAdapter) -> dict[str, Any]:
    """``{"recipe": ...}``: the JSON form of the adapter's recipe, which rebuilds it from the result file
    (:func:`metagame.evaluate.rebuild_adapter`); empty when the adapter has none (built from Python objects)."""
    recipe = getattr(model, "recipe", None)
    stored = recipe.to_json() if isinstance(recipe, AdapterRecipe) else None
    return {} if stored is None else {"recipe": stored}


def _method_words(inner: AttributionMethod) -> str:
    """``name (option=value, ...)`` of the inner method."""
    params = inner.params()
    inside = ", ".join(f"{k}={v}" for k, v in params.items() if not isinstance(v, dict))
    captum = params.get("captum")
    name = inner.name if not isinstance(captum, dict) else _captum_words(captum)
    return f"{name} ({inside})" if inside else name


def _captum_words(settings: dict) -> str:
    cls = str(settings.get("class", "")).rsplit(".", 1)[-1]
    inner = [(_captum_words(v) if isinstance(v, dict) else f"{k}={v}") for k, v in settings.items() if k != "class"]
    return f"captum {cls}({', '.join(inner)})"


def _estimator_words(opts: RunOptions, params: dict[str, Any]) -> str:
    """How the matrix was computed: exact enumeration, or the estimator with its budget and seed."""
    order = "" if opts.order == 2 else f"; order {opts.order}"
    if opts.exact:
        return f"exact: {opts.variant} game, {opts.value} value over all coalitions (route {params.get('route')}){order}"
    if opts.auto_budget:
        reached = "reached" if params.get("tol_reached") else "not reached"
        budget = (f"budget auto: {params.get('n_evaluations')} attribution calls for tol {params.get('tol_target', 0):.3g} "
                  f"({reached}; cap {params.get('max_budget')})")
    else:
        budget = f"budget {opts.budget} attribution calls"
    return (f"estimated by {params.get('estimator', opts.estimator)}: {opts.variant} game, {opts.value} value, {budget}, "
            f"seed {opts.seed}{order}")


def _checkpoint_factory(model: ModelAdapter, inner: AttributionMethod, opts: RunOptions):
    """``what -> Checkpoint`` for this run (None without a checkpoint path)."""
    if opts.checkpoint is None:
        return None
    base = run_fingerprint(model, inner, opts, "")

    def make(what: str) -> Checkpoint:
        fp = {**base, "what": what}
        return Checkpoint(opts.checkpoint, fp, mode=opts.checkpoint_mode, every=opts.checkpoint_every)

    return make


__all__ = ["explain"]
