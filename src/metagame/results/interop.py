"""Results as shapiq ``InteractionValues``.

The mapping (documented in docs/interop.md): a metagame result with the Shapley outer value splits
Σ_i φ_i(x) = Σ_i M[i, i] + Σ_{i<j} (M[i, j] + M[j, i]) into order-1 terms M[i, i] (the own effect φ_i(f, x_{{i}}))
and order-2 terms M[i, j] + M[j, i]. For the Shapley inner method that is exactly the order-2 Shapley-Taylor
index of v(S) = f(x_S) (M[i, i] = f({i}) − f(∅), and M + Mᵀ = STII off the diagonal), labelled ``"STII"``; for
any other inner method the index is labelled ``"Meta-<method>"``, a name shapiq does not interpret.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import MetagameError

if TYPE_CHECKING:  # pragma: no cover
    from .interaction import InteractionResult
    from .result import MetaAttribution


def _interaction_values(order1: np.ndarray, order2: np.ndarray, index: str, empty: Any, estimated: bool,
                        budget: int | None) -> Any:
    try:
        from shapiq import InteractionValues
    except ImportError:  # pragma: no cover - optional dependency
        raise MetagameError("to_shapiq needs shapiq: pip install 'metagame[shapiq]'") from None
    d = len(order1)
    values: dict[tuple[int, ...], float] = {}
    known_empty = isinstance(empty, (int, float)) and math.isfinite(empty)
    if known_empty:
        values[()] = float(empty)
    for i in range(d):
        values[(i,)] = float(order1[i])
    for i in range(d):
        for j in range(i + 1, d):
            values[(i, j)] = float(order2[i, j])
    lookup = {key: k for k, key in enumerate(values)}
    with warnings.catch_warnings():  # shapiq warns that a "Meta-<method>" index is not one of its own: it is not
        warnings.filterwarnings("ignore", message=r"Index `Meta-", category=UserWarning)
        return InteractionValues(
            np.array(list(values.values()), dtype=np.float64), index=index, max_order=2, n_players=d,
            min_order=0 if known_empty else 1, interaction_lookup=lookup, estimated=estimated,
            estimation_budget=budget, baseline_value=float(empty) if known_empty else 0.0,
        )


def to_shapiq(result: MetaAttribution) -> Any:
    """``InteractionValues`` (order 2) of a metagame result: order 1 = M[i, i], order 2 = M[i, j] + M[j, i],
    empty coalition = f(∅); index ``"STII"`` for the Shapley inner method (Theorem 2), else ``"Meta-<method>"``.

    Refused (``MetagameError``) for the serial variant and the Banzhaf outer value (their rows do not split
    φ_i(x), so no order-2 index holds them), for non-finite entries, and for estimates whose standard errors are
    unknown or infinite (entries the calls could not pin down).
    """
    if result.variant != "metagame" or result.value != "shapley":
        raise MetagameError(
            f"to_shapiq maps the metagame variant with the Shapley value (rows split φ_i(x) into an order-2 index); "
            f"this result is variant={result.variant!r}, value={result.value!r}, for which shapiq has no matching "
            f"index. Use np.asarray(result) for the matrix, or rerun with variant='metagame', value='shapley'"
        )
    m = result.matrix
    if not np.all(np.isfinite(m)):
        raise MetagameError("to_shapiq: the matrix has non-finite entries; rerun the explanation with a larger budget")
    if not result.exact:
        se = result.stderr
        if se is None:
            raise MetagameError("to_shapiq: this estimated result has no standard errors, so its entries cannot be "
                                "told from exact ones; rerun with budget=None (exact) or keep res.stderr")
        bad = ~np.isfinite(se)
        if bad.any():
            i, j = map(int, np.argwhere(bad)[0])
            raise MetagameError(
                f"to_shapiq: {int(bad.sum())} entries have an unknown error (stderr = inf), e.g. "
                f"{result.players[j]!r} → {result.players[i]!r}; raise budget= until every entry is identified")
    index = "STII" if result.method == "shapley" else f"Meta-{result.method}"
    params = (result.metadata.get("parameters") or {}).get("method_params") or {}
    limit = params.get("exact_limit")
    sampled_inner = isinstance(limit, int) and result.n_players > limit  # the inner value itself was sampled
    estimated = not result.exact or sampled_inner
    return _interaction_values(np.diag(m), m + m.T, index, result.context.get("value_empty"),
                               estimated=estimated, budget=result.n_evaluations if estimated else None)


def stii_to_shapiq(result: InteractionResult) -> Any:
    """``InteractionValues`` of an exact Shapley-Taylor result: order 1 from the diagonal m({i}), order 2 from
    the upper triangle, the empty coalition f(∅)."""
    if result.index != "STII":
        raise MetagameError(f"stii_to_shapiq converts a Shapley-Taylor result; this one is {result.index!r}")
    m = result.matrix
    return _interaction_values(np.diag(m), m, "STII", result.value_empty, estimated=False, budget=None)


__all__ = ["stii_to_shapiq", "to_shapiq"]
