"""The step every application helper ends with: check the exact size, then :func:`metagame.explain`."""

from __future__ import annotations

from typing import Any

from ..api import Estimator, explain
from ..meta.tables import Value, Variant
from ..methods.base import AttributionMethod
from ..methods.registry import MethodName
from ..models.base import ModelAdapter
from ..players.coalitions import check_exact_size
from ..results.result import MetaAttribution


def explain_adapter(
    adapter: ModelAdapter,
    method: MethodName | AttributionMethod | Any,
    *,
    exact_max_players: int,
    what: str,
    method_kwargs: dict | None = None,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    estimator: Estimator = "auto",
    progress: bool | None = None,
) -> MetaAttribution:
    """M[i, j] = φ_{j→i} of a built adapter via :func:`metagame.explain`, with the application's context.

    Exact runs (``budget=None``) are refused beyond ``exact_max_players`` players; ``what`` names them in the
    error (which tells the user to pass ``budget``). The result's context is the adapter's
    ``display_context()`` plus f(x) and f(∅) (``endpoint_values()``), computed after that check, so a refused
    run costs no model call.
    """
    if budget is None:
        check_exact_size(adapter.n_players, limit=exact_max_players, what=what)
    return explain(
        adapter, method, variant=variant, value=value, budget=budget, seed=seed, method_kwargs=method_kwargs,
        estimator=estimator, progress=progress, context={**adapter.display_context(), **adapter.endpoint_values()},
    )


__all__ = ["explain_adapter"]
