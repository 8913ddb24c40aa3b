"""Comparison results: the first-order baseline and the Shapley-Taylor interaction index (STII) as matrices.

Both are returned as :class:`~metagame.MetaAttribution` objects (marked in ``metadata["evaluate_role"]``) so that
every metric takes them like any meta-attribution result.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from ..errors import MetagameError
from ..games.base import Game
from ..models.base import ModelAdapter
from ..models.contract import Adapter, provides
from ..players.coalitions import check_exact_size
from ..results.result import MetaAttribution
from ..solvers.exact import shapley_taylor
from ._shared import ROLE_KEY, role, value_game


def first_order_baseline(result: MetaAttribution) -> MetaAttribution:
    """The first-order baseline of a metagame result: what can be said without any pair information.

    Its matrix keeps each player's own effect M[i, i] = φ_i(x_{{i}}) and spreads the rest of φ_i(x) evenly over the
    other players, M[i, j] = (φ_i(x) − M[i, i]) / (d − 1): the additive surrogate that knows u_i(∅) and u_i(N∖{i})
    but not which source matters. Its pair score for Recall@K is |r_i| + |r_j| and its insertion order is the
    first-order ranking (:func:`~metagame.evaluate.pair_scores`, :func:`~metagame.evaluate.player_order`).
    """
    if role(result) != "metagame":
        raise MetagameError(
            f"the first-order baseline is built from a metagame-variant result (its diagonal is φ_i(x_{{i}})); got a "
            f"{role(result)} result"
        )
    d = result.n_players
    diag = result.diagonal
    matrix = np.diag(diag)
    if d > 1:
        spread = (result.first_order - diag) / (d - 1)
        matrix = matrix + np.where(np.eye(d, dtype=bool), 0.0, spread[:, None])
    return MetaAttribution(
        matrix=matrix, first_order=result.first_order.copy(), players=list(result.players), method=result.method,
        variant="first_order", value=result.value, exact=result.exact, n_evaluations=0,
        player_kinds=None if result.player_kinds is None else list(result.player_kinds),
        metadata={**result.metadata, ROLE_KEY: "first_order"}, context=dict(result.context),
        extras={k: v.copy() for k, v in result.extras.items()},
    )


def stii_result(
    source: ModelAdapter | Game | np.ndarray,
    players: list[str] | None = None,
    *,
    player_kinds: list[str] | None = None,
    context: dict | None = None,
) -> MetaAttribution:
    """The order-2 Shapley-Taylor interaction index as a meta-attribution matrix.

    ``M[i, i] = STII_ii = m({i})`` and ``M[i, j] = STII_ij / 2`` for j ≠ i, so rows sum to the Shapley value
    (Σ_j M[i, j] = m({i}) + Σ_{A∋i, |A|≥2} m(A)/|A|), the symmetric split that Theorem 2 says Meta-SV equals.

    Args:
        source: the adapter (the exact index from its 2^d values, d ≤ 20), a one-output value game, or a ready
            ``[d, d]`` index such as the output of :func:`metagame.shapley_taylor`.
        players: labels (default: the adapter's players, or ``x0 … x{d-1}``).
        player_kinds, context: copied into the result.
    """
    ctx = dict(context or {})
    if isinstance(source, Game) or provides(source, Adapter):
        d = source.n_players
        check_exact_size(d, what="the exact Shapley-Taylor index")
        game = value_game(source, d)
        table = game.table()[:, 0]
        stii = shapley_taylor(table)
        players = players or list(getattr(source, "players", None) or [f"x{i}" for i in range(d)])
        player_kinds = player_kinds or getattr(source, "player_kinds", None)
        ctx.setdefault("value_full", float(table[-1]))
        ctx.setdefault("value_empty", float(table[0]))
        n_eval = 2**d
    else:
        stii = np.asarray(source, dtype=np.float64)
        if stii.ndim != 2 or stii.shape[0] != stii.shape[1]:
            raise MetagameError(f"a Shapley-Taylor index must be a square matrix [d, d]; got shape {stii.shape}")
        d = stii.shape[0]
        players = players or [f"x{i}" for i in range(d)]
        n_eval = 0
    matrix = np.where(np.eye(d, dtype=bool), stii, stii / 2.0)
    return MetaAttribution(
        matrix=matrix, first_order=matrix.sum(axis=1), players=list(players), method="shapley", variant="stii",
        value="shapley", exact=True, n_evaluations=n_eval,
        player_kinds=None if player_kinds is None else list(player_kinds),
        metadata={ROLE_KEY: "stii", "parameters": {"method": "shapley", "method_params": {}, "route": "shapley_taylor"},
                  "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        context=ctx,
    )


__all__ = ["first_order_baseline", "stii_result"]
