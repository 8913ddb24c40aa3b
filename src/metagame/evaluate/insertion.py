"""Pair insertion/deletion of the model output: does the order a result implies find the players that move f?

An order π of the players gives the prefixes S_k = {π_1, …, π_k}. The insertion curve is
ins(k) = f(x_{S_k}) (players added to the baseline), the deletion curve del(k) = f(x_{N∖S_k}) (players
removed from the input), k = 0 … d. The area between them,

    AID = (1/d) Σ_{k=0}^{d−1} ½ [(ins(k) − del(k)) + (ins(k+1) − del(k+1))]      (trapezoid over k/d),

is large when the first players carry f up on insertion and down on deletion. For a uniformly random order
E[AID] = 0 exactly (ins(k) and del(d−k) are then averages of f over same-size coalitions), so a random order is
the zero line and the first-order ranking is the baseline an order from meta-attributions has to beat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import MetagameError
from ..games.base import Game
from ..models.base import ModelAdapter
from ..models.state import keeps_model_argument
from ..results.result import MetaAttribution
from ._shared import value_game

PlayerOrder = Literal["meta", "rows", "columns", "pairs", "first_order"]


def _descending(scores: np.ndarray) -> np.ndarray:
    """Indices by score, highest first; ties keep the lower index first."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def pair_player_order(matrix: np.ndarray) -> np.ndarray:
    """Player order from directed pairs: the d(d−1) off-diagonal entries M[i, j] (source j → target i) sorted by
    signed value, highest first (ties by row-major index); walking down that list, each pair appends its
    source j and then its target i, skipping players already placed. Every player is in some pair, so the
    walk places all of them (a player whose pairs are all negative comes late)."""
    m = np.asarray(matrix, dtype=np.float64)
    d = m.shape[0]
    if d == 1:
        return np.zeros(1, dtype=np.int64)
    flat = np.where(~np.eye(d, dtype=bool), m, -np.inf).reshape(-1)
    placed: list[int] = []
    seen = np.zeros(d, dtype=bool)
    for f in _descending(flat)[: d * (d - 1)]:
        i, j = divmod(int(f), d)
        for k in (j, i):
            if not seen[k]:
                seen[k] = True
                placed.append(k)
        if len(placed) == d:
            break
    return np.asarray(placed, dtype=np.int64)


def player_order(result: MetaAttribution | np.ndarray, order: PlayerOrder = "meta", first_order: np.ndarray | None = None) -> np.ndarray:
    """A permutation of the players (most important first) read off a result.

    * ``"meta"``: s_j = Σ_k M[j, k] + Σ_k M[k, j] (row + column mass, diagonal in both). With the quadratic
      surrogate F̃(S) = Σ_{i,k∈S} M[i, k] of f(x_S) − f(∅) (Σ_{k∈S} M[i, k] predicts φ_i(x_S)), one has
      F̃(S) − F̃(N∖S) = Σ_{j∈S} s_j − F̃(N), so sorting by s_j maximises the surrogate's insertion-minus-deletion
      gap at every k at once: the AID-optimal order under the result's own model.
    * ``"rows"``: Σ_k M[j, k] (for the metagame variant, the first-order score φ_j).
    * ``"columns"``: Σ_k M[k, j]: how much j raises every attribution, its own included.
    * ``"pairs"``: directed pairs by signed M[i, j], see :func:`pair_player_order`.
    * ``"first_order"``: the first-order scores φ_j (``result.first_order``).

    Ties keep the lower player index first.
    """
    if isinstance(result, MetaAttribution):
        m, fo = result.matrix, result.first_order
    else:
        m, fo = np.asarray(result, dtype=np.float64), first_order
    if order == "meta":
        return _descending(m.sum(axis=1) + m.sum(axis=0))
    if order == "rows":
        return _descending(m.sum(axis=1))
    if order == "columns":
        return _descending(m.sum(axis=0))
    if order == "pairs":
        return pair_player_order(m)
    if order == "first_order":
        if fo is None:
            raise MetagameError("order='first_order' needs first-order scores: pass a MetaAttribution or first_order=...")
        return _descending(fo)
    raise MetagameError(f"unknown order {order!r}; use 'meta', 'rows', 'columns', 'pairs' or 'first_order'")


def area_between(insertion: np.ndarray, deletion: np.ndarray) -> float:
    """AID = trapezoid area of ins − del over the player fraction k/d, k = 0 … d."""
    gap = np.asarray(insertion, dtype=np.float64) - np.asarray(deletion, dtype=np.float64)
    d = len(gap) - 1
    if d < 1:
        raise MetagameError("insertion/deletion curves need at least two points (one player)")
    return float((gap[:-1] + gap[1:]).sum() / (2 * d))


@dataclass
class InsertionDeletion:
    """Insertion and deletion curves of one player order.

    Attributes:
        order: the permutation (most important first).
        insertion: ``(d+1,)`` f(x_{S_k}); deletion: ``(d+1,)`` f(x_{N∖S_k}).
        aid: area between the curves (:func:`area_between`), in units of f.
        aid_normalized: ``aid / |f(x) − f(∅)|`` (NaN when f(x) = f(∅)).
    """

    order: np.ndarray
    insertion: np.ndarray
    deletion: np.ndarray
    aid: float
    aid_normalized: float


def prefix_coalitions(order: np.ndarray, d: int) -> np.ndarray:
    """``bool[d+1, d]``: row k holds the first k players of ``order``."""
    order = np.asarray(order, dtype=np.int64)
    if sorted(order.tolist()) != list(range(d)):
        raise MetagameError(f"an order must be a permutation of the {d} players; got {order.tolist()}")
    rank = np.empty(d, dtype=np.int64)
    rank[order] = np.arange(d)
    return rank[None, :] < np.arange(d + 1)[:, None]


@keeps_model_argument
def insertion_deletion(model: ModelAdapter | Game, order: np.ndarray) -> InsertionDeletion:
    """Insertion and deletion curves of f for one player order (2(d+1) forward values, one batch).

    ``model`` is the adapter (f through its masking rule) or a one-output game S ↦ f(x_S).
    """
    order = np.asarray(order, dtype=np.int64)
    d = len(order)
    game = value_game(model, d)
    prefixes = prefix_coalitions(order, d)
    v = game(np.concatenate([prefixes, ~prefixes]))[:, 0]
    ins, dele = v[: d + 1], v[d + 1 :]
    aid = area_between(ins, dele)
    span = abs(ins[-1] - ins[0])
    return InsertionDeletion(order=order, insertion=ins, deletion=dele, aid=aid,
                             aid_normalized=aid / span if span > 0 else float("nan"))


@dataclass
class InsertionReport:
    """AID of a result's order next to the first-order ranking and random orders.

    Attributes:
        order_name: which :data:`PlayerOrder` the result's curves use.
        result: curves of the result's order; first_order: curves of ranking by φ.
        random_aid: ``(n_random,)`` AID of uniformly random orders (mean ≈ 0).
    """

    order_name: str
    result: InsertionDeletion
    first_order: InsertionDeletion
    random_aid: np.ndarray

    @property
    def random_mean(self) -> float:
        return float(self.random_aid.mean()) if self.random_aid.size else float("nan")

    @property
    def random_std(self) -> float:
        return float(self.random_aid.std(ddof=1)) if self.random_aid.size > 1 else float("nan")

    def to_dict(self) -> dict:
        """JSON-ready: the order, its insertion/deletion areas and the random-order comparison."""
        return {
            "order": self.order_name, "aid": self.result.aid, "aid_normalized": _num(self.result.aid_normalized),
            "aid_first_order": self.first_order.aid, "aid_random_mean": self.random_mean,
            "aid_random_std": _num(self.random_std), "n_random": int(self.random_aid.size),
            "order_players": self.result.order.tolist(),
        }


def _num(v: float):
    return None if not np.isfinite(v) else float(v)


@keeps_model_argument
def pair_insertion(
    result: MetaAttribution,
    model: ModelAdapter | Game,
    *,
    order: PlayerOrder = "meta",
    n_random: int = 32,
    seed: int | None = 0,
) -> InsertionReport:
    """AID of the order read off ``result`` (:func:`player_order`), of its first-order ranking, and of
    ``n_random`` random orders, all on the same model values (a cached value game, so shared prefixes are paid once).

    Args:
        result: meta-attributions (or a baseline result).
        model: the adapter the result was computed with, or a one-output game S ↦ f(x_S).
        order: how the result orders the players (default ``"meta"``: row + column mass).
        n_random: random permutations for the chance level.
        seed: seed of the random permutations.

    Example:
        >>> rep = pair_insertion(res, adapter)          # doctest: +SKIP
        >>> rep.result.aid, rep.first_order.aid, rep.random_mean
    """
    d = result.n_players
    game = value_game(model, d)
    rng = np.random.default_rng(seed)
    randoms = np.array([insertion_deletion(game, rng.permutation(d)).aid for _ in range(int(n_random))])
    return InsertionReport(
        order_name=order,
        result=insertion_deletion(game, player_order(result, order)),
        first_order=insertion_deletion(game, player_order(result, "first_order")),
        random_aid=randoms,
    )


__all__ = [
    "InsertionDeletion", "InsertionReport", "PlayerOrder", "area_between", "insertion_deletion", "pair_insertion",
    "pair_player_order", "player_order", "prefix_coalitions",
]
