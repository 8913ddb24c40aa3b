"""Surrogate faithfulness: how well a meta-attribution matrix predicts the metagame it summarises.

For target i the metagame is u_i(T) = φ_i(f, x_{T∪{i}}), T ⊆ N∖{i}. A matrix M claims the additive model

    ũ_i(T) = M[i, i] + Σ_{j∈T} M[i, j],

(the Shapley value of an additive game reproduces it exactly, so R² = 1 whenever u_i is additive in T). The
metric draws T with every other player present independently with probability p, evaluates the true
u_i(T) with the model and the inner method, and reports a weighted R². One attribution call at a coalition
S gives φ_i(x_S) for every i ∈ S, so one call serves every target it contains (docs/mathematics.md, "Cost").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import MetagameError
from ..games.base import Game
from ..methods.base import AttributionMethod
from ..models.base import ModelAdapter
from ..models.state import keeps_model_argument
from ..players.coalitions import all_coalitions, check_exact_size
from ..results.result import MetaAttribution
from ._shared import attribution_game, inner_method

#: enumerate all coalitions (exact expectation) instead of sampling up to this many players
FAITHFULNESS_EXACT_MAX_PLAYERS = 16


@dataclass
class Faithfulness:
    """Weighted surrogate R² of one matrix at one presence probability p.

    Attributes:
        p: probability that each non-target player is present in T.
        r2: overall R² = 1 − Σ_i SSE_i / Σ_i SST_i (targets weighted by the variance of their game).
        r2_per_target: ``(d,)`` R²_i = 1 − SSE_i / SST_i; NaN where u_i does not vary (SST_i ≈ 0).
        sse: ``(d,)`` SSE_i = E_T[(u_i(T) − ũ_i(T))²] under the design's weights.
        sst: ``(d,)`` SST_i = E_T[(u_i(T) − E u_i)²]; the overall R² weights target i by SST_i / Σ SST.
        n_coalitions: distinct coalitions in the design (one attribution call each with a caching game).
        exact: True when every coalition was enumerated with its exact probability.
        budget, seed: the sampling design (``budget`` = coalitions drawn; None when exact).
    """

    p: float
    r2: float
    r2_per_target: np.ndarray
    sse: np.ndarray
    sst: np.ndarray
    n_coalitions: int
    exact: bool
    budget: int | None = None
    seed: int | None = None
    players: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (NaN as None)."""

        def num(v: float):
            return None if not np.isfinite(v) else float(v)

        return {
            "p": self.p, "r2": num(self.r2), "r2_per_target": [num(v) for v in self.r2_per_target],
            "n_coalitions": self.n_coalitions, "exact": self.exact, "budget": self.budget, "seed": self.seed,
        }


def metagame_design(d: int, p: float, budget: int | None, seed: int | None = 0) -> tuple[np.ndarray, np.ndarray, bool]:
    """Coalitions S and weights ``w[s, i]`` (0 unless i ∈ S, Σ_s w[s, i] = 1) for the targets' games.

    Target i's distribution is S = {i} ∪ T with every j ≠ i in T independently with probability p, i.e.
    P_i(S) = p^{|S|−1} (1−p)^{d−|S|} for S ∋ i.

    * Exact (``budget`` None, or ``budget ≥ 2^d − 1``; d ≤ 16): all non-empty coalitions with w[s, i] = P_i(S).
    * Sampled: coalition b forces an anchor player k_b in (anchors cycle through random permutations of the
      players, so each is forced budget/d times) and draws the others with probability p. Its distribution is
      the mixture q(S) = (|S|/d) p^{|S|−1}(1−p)^{d−|S|}, so P_i(S)/q(S) = d/|S| and every target i ∈ S uses the
      draw with importance weight ∝ 1/|S| (self-normalised per target).

    Returns:
        ``(coalitions bool[m, d], weights float[m, d], exact)``.
    """
    if not 0.0 < p < 1.0:
        raise MetagameError(f"p must lie strictly between 0 and 1 (each player present with probability p); got {p}")
    if budget is None or (d <= FAITHFULNESS_EXACT_MAX_PLAYERS and budget >= 2**d - 1):
        check_exact_size(d, limit=FAITHFULNESS_EXACT_MAX_PLAYERS, what="an exact faithfulness expectation")
        coalitions = all_coalitions(d)[1:]
        sizes = coalitions.sum(axis=1)
        prob = p ** (sizes - 1) * (1.0 - p) ** (d - sizes)
        return coalitions, np.where(coalitions, prob[:, None], 0.0), True
    budget = int(budget)
    if budget < d:
        raise MetagameError(f"budget={budget} is smaller than the {d} players; give each target at least one coalition")
    rng = np.random.default_rng(seed)
    anchors = np.concatenate([rng.permutation(d) for _ in range(-(-budget // d))])[:budget]
    coalitions = rng.random((budget, d)) < p
    coalitions[np.arange(budget), anchors] = True
    w = np.where(coalitions, 1.0 / coalitions.sum(axis=1, keepdims=True), 0.0)
    return coalitions, w / w.sum(axis=0, keepdims=True), False


def surrogate_predictions(matrix: np.ndarray, coalitions: np.ndarray) -> np.ndarray:
    """ũ_i(S∖{i}) = Σ_{j∈S} M[i, j] = M[i, i] + Σ_{j∈S∖{i}} M[i, j] for every coalition row and target, ``[m, d]``
    (meaningful where i ∈ S)."""
    return np.asarray(coalitions, dtype=np.float64) @ np.asarray(matrix, dtype=np.float64).T


def weighted_r2(truth: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted R² per column and pooled: R²_i = 1 − Σ_s w(u − ũ)² / Σ_s w(u − ū_i)², overall 1 − ΣSSE/ΣSST.

    ``weights[:, i]`` must sum to 1 (a distribution over rows). Returns ``(overall, per_column, sse, sst)``;
    a column whose weighted variance is ≤ 1e-12 of its mean square (or exactly 0) gets R² NaN.
    """
    truth, pred, w = (np.asarray(a, dtype=np.float64) for a in (truth, pred, weights))
    mean = (w * truth).sum(axis=0)
    sse = (w * (truth - pred) ** 2).sum(axis=0)
    sst = (w * (truth - mean) ** 2).sum(axis=0)
    scale = (w * truth**2).sum(axis=0)
    ok = (sst > 1e-12 * scale) & (sst > 0)
    per = np.full(sst.shape, np.nan)
    per[ok] = 1.0 - sse[ok] / sst[ok]
    total = float(sst.sum())
    overall = 1.0 - float(sse.sum()) / total if total > 0 and ok.any() else float("nan")
    return overall, per, sse, sst


@keeps_model_argument
def surrogate_r2(
    result: MetaAttribution,
    model: ModelAdapter | Game,
    *,
    p: float = 0.5,
    budget: int | None = 512,
    seed: int | None = 0,
    method: AttributionMethod | str | None = None,
    method_kwargs: dict | None = None,
) -> Faithfulness:
    """Weighted R² of the additive surrogate ũ_i(T) = M[i, i] + Σ_{j∈T} M[i, j] against u_i(T) = φ_i(f, x_{T∪{i}}).

    T holds every player j ≠ i independently with probability ``p`` (use 0.5 and a sparse p such as 0.1);
    see :func:`metagame_design` for the exact and the sampled design. Works for exact and sampled results
    of either variant: every matrix is scored against the metagame's u_i (so the serial variant's diagonal
    leak shows as a lower R²).

    Args:
        result: the meta-attributions (any :class:`MetaAttribution`, including :func:`first_order_baseline` and
            :func:`stii_result` matrices).
        model: the adapter the result was computed with, or a ready attribution game S ↦ φ(f, x_S) whose first d
            outputs are the player attributions (a :class:`~metagame.games.base.Game`; reuse one with a cache to
            share evaluated coalitions between calls).
        p: presence probability of every non-target player.
        budget: coalitions to draw (each one attribution call; repeats are cached); None enumerates all
            2^d − 1 coalitions (d ≤ 16), as does any budget that covers them.
        seed: seed of the draw.
        method: inner method φ; default rebuilt from ``result`` (name and stored parameters).

    Returns:
        A :class:`Faithfulness` with the overall and per-target R².

    Example:
        >>> fa = surrogate_r2(res, adapter, p=0.1, budget=256)   # doctest: +SKIP
        >>> fa.r2, fa.r2_per_target
    """
    d = result.n_players
    game = attribution_game(model, inner_method(result, method, method_kwargs) if not isinstance(model, Game) else None, d)
    coalitions, weights, exact = metagame_design(d, p, budget, seed)
    truth = game(coalitions)[:, :d]  # an adapter's always-present side targets follow the d player columns
    pred = surrogate_predictions(result.matrix, coalitions)
    overall, per, sse, sst = weighted_r2(truth, pred, weights)
    return Faithfulness(
        p=float(p), r2=overall, r2_per_target=per, sse=sse, sst=sst,
        n_coalitions=len({c.tobytes() for c in coalitions}), exact=exact, budget=None if exact else int(budget), seed=None if exact else seed, players=list(result.players),
    )


__all__ = ["FAITHFULNESS_EXACT_MAX_PLAYERS", "Faithfulness", "metagame_design", "surrogate_predictions", "surrogate_r2", "weighted_r2"]
