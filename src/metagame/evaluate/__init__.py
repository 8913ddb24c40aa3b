"""Evaluate meta-attributions: faithfulness to the metagame, insertion/deletion of f, agreement with annotations,
and side-by-side comparisons.

    >>> from metagame.evaluate import compare, surrogate_r2, pair_insertion, recall_at_k
    >>> fa = surrogate_r2(res, adapter, p=0.1)                  # R² of ũ_i(T) = M[i,i] + Σ_{j∈T} M[i,j]
    >>> cmp = compare([ig, sv], adapter, annotations="pairs.json", stii=True, out="eval")

* :func:`surrogate_r2`: weighted R² of the additive surrogate against u_i(T) = φ_i(f, x_{T∪{i}}) (needs the model).
* :func:`pair_insertion`: area between the insertion and deletion curves of f (AID) for the order a result implies,
  next to the first-order ranking and random orders (needs the model).
* :func:`recall_at_k`, :func:`pointing_game`, :func:`iou`, :func:`average_precision`: agreement with annotations.
* :func:`compare`: all of these for several results of one input, as a table and a plot.
"""

from .agreement import (
    ANNOTATIONS_FORMAT,
    Annotations,
    MapAgreement,
    RecallCurve,
    average_precision,
    direction_accuracy,
    iou,
    load_annotations,
    map_agreement,
    pair_ranks,
    pair_scores,
    patch_maps,
    pointing_game,
    recall_at_k,
)
from .baselines import first_order_baseline, stii_result
from .compare import Comparison, compare, evaluate_result
from .faithfulness import Faithfulness, metagame_design, surrogate_predictions, surrogate_r2, weighted_r2
from .insertion import (
    InsertionDeletion,
    InsertionReport,
    PlayerOrder,
    area_between,
    insertion_deletion,
    pair_insertion,
    pair_player_order,
    player_order,
)
from .rebuild import rebuild_adapter, verify_adapter

__all__ = [
    "ANNOTATIONS_FORMAT",
    "Annotations",
    "Comparison",
    "Faithfulness",
    "InsertionDeletion",
    "InsertionReport",
    "MapAgreement",
    "PlayerOrder",
    "RecallCurve",
    "area_between",
    "average_precision",
    "compare",
    "direction_accuracy",
    "evaluate_result",
    "first_order_baseline",
    "insertion_deletion",
    "iou",
    "load_annotations",
    "map_agreement",
    "metagame_design",
    "pair_insertion",
    "pair_player_order",
    "pair_ranks",
    "pair_scores",
    "patch_maps",
    "player_order",
    "pointing_game",
    "rebuild_adapter",
    "recall_at_k",
    "stii_result",
    "surrogate_predictions",
    "surrogate_r2",
    "verify_adapter",
    "weighted_r2",
]
