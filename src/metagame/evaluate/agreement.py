"""Agreement with human annotations: Recall@K of annotated pairs, the pointing game, IoU and AP of maps.

Pair metrics rank the d(d−1) directed pairs (matrix entries M[i, j], source j → target i, i ≠ j). Map metrics
work on any ``[..., H, W]`` array of maps against boolean masks of the same trailing shape, so patch maps of
vision-language results and concept maps of diffusion models use the same functions.

Annotation files (JSON, ``format: "metagame.annotations/1"``)::

    {"format": "metagame.annotations/1",
     "pairs": [["man", "Someone"], ["plays", "playing"], [0, 7]],   # players by label or index
     "directed": false,                     # true: each pair is [source, target]
     "regions": {"cat": [[0, 1], [0, 1]]}}  # word -> 0/1 mask over the patch grid (or a multiple of it)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from ..errors import MetagameError
from ..results.result import MetaAttribution
from ._shared import off_diagonal, player_index, role

ANNOTATIONS_FORMAT = "metagame.annotations/1"
PairScore = Literal["meta", "first_order"]


# ------------------------------------------------------------------------------------------------ annotations
@dataclass
class Annotations:
    """Human annotations of one input.

    Attributes:
        pairs: player pairs, each ``(p, q)`` by index or label (``(source, target)`` when ``directed``).
        directed: whether a pair names a direction.
        regions: player label -> boolean mask ``[H, W]`` (the region a word refers to, for patch maps).
    """

    pairs: list[tuple[int | str, int | str]] = field(default_factory=list)
    directed: bool = False
    regions: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Annotations":
        fmt = data.get("format", ANNOTATIONS_FORMAT)
        if fmt != ANNOTATIONS_FORMAT:
            raise MetagameError(f"not a metagame annotation file (format {fmt!r}; expected {ANNOTATIONS_FORMAT!r})")
        pairs = []
        for k, pair in enumerate(data.get("pairs") or []):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise MetagameError(f"annotation pair {k} must be a list of two players (label or index); got {pair!r}")
            pairs.append((pair[0], pair[1]))
        regions = {}
        for name, mask in (data.get("regions") or {}).items():
            arr = np.asarray(mask)
            if arr.ndim != 2:
                raise MetagameError(f"region {name!r} must be a 2-D 0/1 mask [H][W]; got shape {arr.shape}")
            regions[str(name)] = arr.astype(bool)
        return cls(pairs=pairs, directed=bool(data.get("directed", False)), regions=regions)

    def to_dict(self) -> dict:
        """JSON-ready dictionary (the format :meth:`load_annotations` reads)."""
        return {
            "format": ANNOTATIONS_FORMAT,
            "pairs": [list(p) for p in self.pairs],
            "directed": self.directed,
            "regions": {k: v.astype(int).tolist() for k, v in self.regions.items()},
        }

    def save(self, path: str | Path) -> Path:
        """Write the annotations as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    def pair_indices(self, players: Sequence[str]) -> list[tuple[int, int]]:
        """The pairs as player indices of a result."""
        out = []
        for a, b in self.pairs:
            i, j = player_index(list(players), a), player_index(list(players), b)
            if i == j:
                raise MetagameError(f"annotation pair ({a!r}, {b!r}) names one player twice; a pair needs two players")
            out.append((i, j))
        return out


def load_annotations(source: str | Path | Mapping[str, Any] | Annotations) -> Annotations:
    """Annotations from a JSON file, a dictionary in the file format, or an :class:`Annotations` (returned as is)."""
    if isinstance(source, Annotations):
        return source
    if isinstance(source, Mapping):
        return Annotations.from_dict(source)
    path = Path(source)
    if not path.is_file():
        raise MetagameError(f"no annotation file at {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MetagameError(f"{path} is not valid JSON ({e}); write annotations as {{\"pairs\": [[a, b], ...]}}") from None
    return Annotations.from_dict(data)


# ------------------------------------------------------------------------------------------------ pair scores
def pair_scores(result: MetaAttribution, score: PairScore | None = None) -> np.ndarray:
    """Directed pair scores ``S[i, j]`` (source j → target i) that :func:`recall_at_k` ranks; the diagonal is ignored.

    ``"meta"``: |M[i, j]|. ``"first_order"``: the baseline |r_i| + |r_j| from the first-order scores r = φ(x).
    Default: ``"first_order"`` for a :func:`first_order_baseline` result, else ``"meta"``.
    """
    if score is None:
        score = "first_order" if role(result) == "first_order" else "meta"
    if score == "meta":
        return np.abs(result.matrix)
    if score == "first_order":
        r = np.abs(result.first_order)
        return r[:, None] + r[None, :]
    raise MetagameError(f"unknown pair score {score!r}; use 'meta' or 'first_order'")


@dataclass
class RecallCurve:
    """Recall@K of annotated pairs for K = 0 … K_max directed pairs.

    Attributes:
        k: ``(K_max+1,)`` numbers of top directed pairs; recall: ``(K_max+1,)`` fraction of annotated pairs found.
        ranks: rank (1 = best) of each annotated pair (its better direction unless directed).
        n_pairs: d(d−1).
        auc: mean recall over K = 1 … K_max (the area under the curve on the 0–max_fraction range).
    """

    k: np.ndarray
    recall: np.ndarray
    ranks: np.ndarray
    n_pairs: int

    @property
    def auc(self) -> float:
        return float(self.recall[1:].mean()) if len(self.recall) > 1 else float("nan")

    def at_fraction(self, fraction: float) -> float:
        """Recall with the top ``ceil(fraction · d(d−1))`` directed pairs (clipped to the curve)."""
        k = min(len(self.recall) - 1, int(math.ceil(fraction * self.n_pairs - 1e-9)))
        return float(self.recall[k])

    def to_dict(self) -> dict:
        """JSON-ready: k, recall@k, the annotated pairs' ranks, their number and the area under the curve."""
        return {"k": self.k.tolist(), "recall": self.recall.tolist(), "ranks": self.ranks.tolist(),
                "n_pairs": self.n_pairs, "auc": self.auc}


def pair_ranks(scores: np.ndarray, pairs: Sequence[tuple[int, int]], directed: bool = False) -> np.ndarray:
    """Rank (1-based) of each annotated pair among the d(d−1) directed pairs sorted by score, highest first.

    A pair ``(p, q)`` is the entry S[q, p] (source p → target q) when ``directed``; otherwise it is found in
    either direction and gets the better (smaller) rank of S[p, q] and S[q, p]. Ties are broken against the
    annotation (an annotated entry ranks after every unannotated entry with the same score), so a score that
    cannot separate pairs earns no recall.
    """
    s = np.asarray(scores, dtype=np.float64)
    d = s.shape[0]
    if s.shape != (d, d):
        raise MetagameError(f"pair scores must be a square matrix; got shape {s.shape}")
    annotated = np.zeros((d, d), dtype=bool)
    for p, q in pairs:
        annotated[q, p] = True
        if not directed:
            annotated[p, q] = True
    off = off_diagonal(s)
    ii, jj = np.nonzero(off)
    vals = s[ii, jj]
    if np.isnan(vals).any():
        raise MetagameError("pair scores contain NaN; the result has undefined entries")
    order = np.lexsort((annotated[ii, jj], -vals))  # primary: score descending; then unannotated first
    rank = np.empty((d, d), dtype=np.int64)
    rank[ii[order], jj[order]] = np.arange(1, len(order) + 1)
    out = []
    for p, q in pairs:
        r = rank[q, p] if directed else min(rank[q, p], rank[p, q])
        out.append(r)
    return np.asarray(out, dtype=np.int64)


def recall_at_k(
    scores: np.ndarray | MetaAttribution,
    pairs: Sequence[tuple[int, int]],
    *,
    max_fraction: float = 0.15,
    directed: bool = False,
) -> RecallCurve:
    """Recall@K = |{annotated pairs with rank ≤ K}| / |annotated pairs| for K = 0 … ceil(max_fraction · d(d−1)).

    Args:
        scores: directed pair scores ``[d, d]`` (:func:`pair_scores`) or a result (scored by :func:`pair_scores`).
        pairs: annotated pairs as player indices (``(source, target)`` when ``directed``).
        max_fraction: the largest K as a fraction of the d(d−1) directed pairs (0.15: the top 15%).
        directed: count only the annotated direction; default takes the better direction of each pair.

    Example:
        >>> recall_at_k(np.array([[0, 3, 1], [2, 0, 0], [0, 5, 0]]), [(0, 1)], max_fraction=0.5).recall.tolist()
        [0.0, 0.0, 1.0, 1.0]
    """
    if isinstance(scores, MetaAttribution):
        scores = pair_scores(scores)
    if not pairs:
        raise MetagameError("Recall@K needs at least one annotated pair")
    s = np.asarray(scores, dtype=np.float64)
    d = s.shape[0]
    n = d * (d - 1)
    if not 0 < max_fraction <= 1:
        raise MetagameError(f"max_fraction must be in (0, 1]; got {max_fraction}")
    k_max = max(1, int(math.ceil(max_fraction * n - 1e-9)))
    ranks = pair_ranks(s, pairs, directed)
    k = np.arange(k_max + 1)
    recall = (ranks[None, :] <= k[:, None]).mean(axis=1)
    return RecallCurve(k=k, recall=recall, ranks=ranks, n_pairs=n)


def direction_accuracy(matrix: np.ndarray, pairs: Sequence[tuple[int, int]], rtol: float = 1e-9) -> float:
    """Fraction of directed pairs (source p → target q) with |M[q, p]| > |M[p, q]|; a tie (within ``rtol``) counts ½."""
    m = np.abs(np.asarray(matrix, dtype=np.float64))
    score = []
    for p, q in pairs:
        a, b = m[q, p], m[p, q]
        if abs(a - b) <= rtol * max(a, b, 1e-300):
            score.append(0.5)
        else:
            score.append(1.0 if a > b else 0.0)
    return float(np.mean(score)) if score else float("nan")


# ------------------------------------------------------------------------------------------------ maps
def _maps_masks(maps, masks) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(maps, dtype=np.float64)
    k = np.asarray(masks)
    if m.ndim < 2:
        raise MetagameError(f"maps must have shape [..., H, W]; got {m.shape}")
    if k.shape[-2:] != m.shape[-2:]:
        raise MetagameError(f"masks {k.shape} and maps {m.shape} differ in their last two (H, W) axes; resize the masks")
    return m, np.broadcast_to(k.astype(bool), np.broadcast_shapes(k.shape, m.shape))


def pointing_game(maps, masks) -> np.ndarray:
    """Pointing-game ratio (Σ_{in} m⁺ + Σ_{out} m⁻) / Σ |m| per map, over the last two axes.

    Positive mass inside the annotated region plus negative mass outside, over all absolute mass: 1 when the map
    is positive exactly on the region and negative (or 0) elsewhere, 0 for the reverse; NaN for an all-zero map.
    """
    m, k = _maps_masks(maps, masks)
    good = np.where(k, np.maximum(m, 0.0), np.maximum(-m, 0.0)).sum(axis=(-2, -1))
    total = np.abs(m).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, good / np.where(total > 0, total, 1.0), np.nan)


def iou(maps, masks, threshold: float | Literal["mean"] = "mean") -> np.ndarray:
    """IoU = |{m > τ} ∩ R| / |{m > τ} ∪ R| per map; τ = the map's own mean (``"mean"``) or a fixed number.

    NaN where both the thresholded map and the mask are empty.
    """
    m, k = _maps_masks(maps, masks)
    tau = m.mean(axis=(-2, -1), keepdims=True) if threshold == "mean" else float(threshold)
    pred = m > tau
    inter = (pred & k).sum(axis=(-2, -1))
    union = (pred | k).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def average_precision(maps, masks) -> np.ndarray:
    """Average precision of the map's values ranking the mask's pixels: AP = Σ_n (R_n − R_{n−1}) P_n over the
    distinct thresholds n (highest value first; tied values enter together). NaN for an empty mask."""
    m, k = _maps_masks(maps, masks)
    lead = m.shape[:-2]
    flat_m = m.reshape(-1, m.shape[-2] * m.shape[-1])
    flat_k = k.reshape(-1, k.shape[-2] * k.shape[-1])
    out = np.full(flat_m.shape[0], np.nan)
    for r in range(flat_m.shape[0]):
        pos = flat_k[r].sum()
        if pos == 0:
            continue
        order = np.argsort(-flat_m[r], kind="stable")
        vals, hits = flat_m[r][order], flat_k[r][order]
        tp = np.cumsum(hits)
        last = np.r_[vals[1:] != vals[:-1], True]  # last index of each group of tied values
        tp_n = tp[last]
        seen = np.flatnonzero(last) + 1
        precision = tp_n / seen
        recall = tp_n / pos
        out[r] = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return out.reshape(lead)


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A mask at ``shape``: as is, or block-averaged (≥ ½ covered) when its size is a multiple of ``shape``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == tuple(shape):
        return mask
    h, w = mask.shape
    rows, cols = shape
    if h % rows or w % cols:
        raise MetagameError(
            f"a region mask of shape {mask.shape} does not fit the {rows}×{cols} map; give it at the map's size or a multiple of it"
        )
    blocks = mask.reshape(rows, h // rows, cols, w // cols).mean(axis=(1, 3))
    return blocks >= 0.5


def patch_maps(result: MetaAttribution) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Per-word maps over the patch grid and the word-independent first-order heatmap of a vision-language result.

    * ``patch_maps`` mode (``result.patch_maps`` ``[W, rows, cols]``): word w's map is its effect on every
      patch's attribution; the first-order map is ``result.heatmap``.
    * scalar mode (patch and word players, ``context["grid"]``): word w's map is M[patch, w] (w as the source
      moving each patch's attribution); the first-order map is φ of the patches.

    Returns:
        ``({word label: [rows, cols]}, first-order map or None)``.
    """
    maps = result.patch_maps
    if maps is not None:
        words = [p for p, kind in zip(result.players, result.player_kinds or ["word"] * result.n_players) if kind == "word"]
        if len(words) != maps.shape[0]:
            words = list(result.players)
        return {w: maps[k] for k, w in enumerate(words)}, result.heatmap
    kinds = np.asarray(result.player_kinds or [])
    patches = np.flatnonzero(kinds == "patch")
    words = np.flatnonzero(kinds == "word")
    grid = result.context.get("grid")
    if not len(patches) or not len(words) or grid is None:
        raise MetagameError(
            "patch maps need a vision-language result (patch and word players with context['grid'], or extras['patch_maps'])"
        )
    rows, cols = int(grid[0]), int(grid[1])
    if rows * cols != len(patches):
        raise MetagameError(f"context grid {rows}×{cols} does not match the {len(patches)} patch players")
    maps = {result.players[w]: result.matrix[patches, w].reshape(rows, cols) for w in words}
    return maps, result.first_order[patches].reshape(rows, cols)


@dataclass
class MapAgreement:
    """Pointing game, IoU and AP of each annotated word's patch map, and of the first-order heatmap for the same regions."""

    words: list[str]
    pointing: np.ndarray
    iou: np.ndarray
    ap: np.ndarray
    pointing_first_order: np.ndarray
    iou_first_order: np.ndarray
    ap_first_order: np.ndarray

    def summary(self) -> dict[str, float]:
        """The mean of each agreement metric over its entries (NaN entries left out), with the first-order baselines."""

        def mean(a):
            a = np.asarray(a, dtype=np.float64)
            return float(np.nanmean(a)) if np.isfinite(a).any() else float("nan")

        return {"pointing": mean(self.pointing), "iou": mean(self.iou), "ap": mean(self.ap),
                "pointing_first_order": mean(self.pointing_first_order), "iou_first_order": mean(self.iou_first_order),
                "ap_first_order": mean(self.ap_first_order)}


def map_agreement(result: MetaAttribution, regions: Mapping[str, np.ndarray], threshold: float | Literal["mean"] = "mean") -> MapAgreement:
    """Score the word→patch maps of a vision-language result (:func:`patch_maps`) against annotated regions."""
    maps, heat = patch_maps(result)
    words, ours, masks = [], [], []
    for word, region in regions.items():
        if word not in maps:
            raise MetagameError(f"region {word!r} names no word of the result; its words are {sorted(maps)}")
        words.append(word)
        ours.append(maps[word])
        masks.append(resize_mask(region, maps[word].shape))
    if not words:
        raise MetagameError("no annotated regions to score; add \"regions\": {word: mask} to the annotations")
    ours_a, masks_a = np.stack(ours), np.stack(masks)
    base = np.broadcast_to(heat, ours_a.shape) if heat is not None else np.full(ours_a.shape, np.nan)
    return MapAgreement(
        words=words, pointing=pointing_game(ours_a, masks_a), iou=iou(ours_a, masks_a, threshold),
        ap=average_precision(ours_a, masks_a), pointing_first_order=pointing_game(base, masks_a),
        iou_first_order=iou(base, masks_a, threshold), ap_first_order=average_precision(base, masks_a),
    )


__all__ = [
    "ANNOTATIONS_FORMAT", "Annotations", "MapAgreement", "PairScore", "RecallCurve", "average_precision",
    "direction_accuracy", "iou", "load_annotations", "map_agreement", "pair_ranks", "pair_scores", "patch_maps",
    "pointing_game", "recall_at_k", "resize_mask",
]
