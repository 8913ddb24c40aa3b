"""Every named array the library stores in ``MetaAttribution.extras``, declared once with its shape and meaning.

Writers (the exact and sampled runs, adapters' ``finalize`` hooks) spell a key through the constants below, so a
misspelt key is a ``NameError`` instead of a picture that silently never appears. Readers (pictures, reports,
evaluation) use :class:`~metagame.results.result.MetaAttribution`'s typed properties of the same names
(``res.image``, ``res.patch_maps``, ``res.heatmap``, ``res.concept_maps``, ``res.meta_maps``, ``res.stii``,
``res.tensor``, ``res.tensor_stderr``), each None when the result does not hold that array.

Results with players of several kinds hold one more family of keys, the cross blocks
``"{source kind}_to_{target kind}"`` (:func:`cross_block_key`), e.g. ``head_to_word``. Any other key is the user's
own: it is saved and loaded like the declared ones and has no typed property. :data:`EXTRAS` lists the declared
keys; :func:`is_declared` tells a key of a result apart from a user's own.

Shapes: d = number of players, rows × cols = the patch grid, W = number of words, k = number of side targets,
``*shape`` = an adapter's ``attribution_shape``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence


@dataclass(frozen=True)
class Extra:
    """One declared key of ``MetaAttribution.extras``.

    Attributes:
        key: the key in ``extras`` and in the saved JSON / ``.npz`` side-car.
        shape: the array's axes, e.g. ``"[d, d, rows, cols]"``.
        meaning: what the array holds.
        written_by: where the library writes it.
        sidecar: always saved to the ``.npz`` side-car, whatever its size (higher-order tensors and map stacks).
    """

    key: str
    shape: str
    meaning: str
    written_by: str
    sidecar: bool = False


TENSOR = "tensor"
TENSOR_STDERR = "tensor_stderr"
ATTRIBUTION_AT_BASELINE = "attribution_at_baseline"
MAPS = "maps"
FIRST_ORDER_MAPS = "first_order_maps"
SIDE_MATRIX = "side_matrix"
SIDE_FIRST_ORDER = "side_first_order"
SIDE_AT_EMPTY = "side_at_empty"
IMAGE = "image"
PATCH_MAPS = "patch_maps"
HEATMAP = "heatmap"
HEATMAP_NO_WORDS = "heatmap_no_words"
CONCEPT_MAPS = "concept_maps"
META_MAPS = "meta_maps"
REGION = "region"
STII = "stii"
A_TO_B = "a_to_b"
B_TO_A = "b_to_a"

#: the declared keys, ``key -> Extra`` (cross blocks aside: see :func:`cross_block_key`)
EXTRAS: Mapping[str, Extra] = {e.key: e for e in (
    Extra(TENSOR, "[d, d, d]", "meta-meta-attributions T[i, j, k]: how k moves the push of j on i; "
          "Σ_k T[i, j, k] = M[i, j]", "order=3 runs (exact and sampled)", sidecar=True),
    Extra(TENSOR_STDERR, "[d, d, d]", "standard errors of tensor", "sampled order=3 runs", sidecar=True),
    Extra(ATTRIBUTION_AT_BASELINE, "[d]", "the attribution at the empty coalition (the serial variant's baseline "
          "term, summarised like first_order)", "serial-variant runs (exact and sampled)"),
    Extra(MAPS, "[d, d, *shape]", "meta-attributions of a vector-valued attribution; matrix = their weighted sum "
          "over the trailing axes", "exact runs of adapters with an attribution_shape", sidecar=True),
    Extra(FIRST_ORDER_MAPS, "[d, *shape]", "the vector-valued first-order attribution φ(x)",
          "exact runs of adapters with an attribution_shape"),
    Extra(SIDE_MATRIX, "[k, d]", "value of each player for each always-present side target",
          "exact runs of adapters with side_targets (turned into patch_maps by the patch-maps view)"),
    Extra(SIDE_FIRST_ORDER, "[k]", "each side target's attribution with every player present",
          "exact runs of adapters with side_targets (turned into heatmap)"),
    Extra(SIDE_AT_EMPTY, "[k]", "each side target's attribution with no player present",
          "exact runs of adapters with side_targets (turned into heatmap_no_words)"),
    Extra(IMAGE, "[H, W, 3] in [0, 1]", "the input or generated image the maps are drawn over (pictures also "
          "take [H, W], [H, W, 1], [3, H, W] and 0–255 values)", "vision-language and diffusion adapters"),
    Extra(PATCH_MAPS, "[W, rows, cols]", "how each word moves every patch's attribution; Σ_w patch_maps[w] = "
          "heatmap − heatmap_no_words", "the patch-maps view of vision-language models"),
    Extra(HEATMAP, "[rows, cols]", "first-order patch attribution with all words present",
          "the patch-maps view of vision-language models"),
    Extra(HEATMAP_NO_WORDS, "[rows, cols]", "first-order patch attribution with no word present",
          "the patch-maps view of vision-language models"),
    Extra(CONCEPT_MAPS, "[d, rows, cols]", "each concept's full map φ_i(x) over the patches",
          "diffusion (ConceptAttention)"),
    Extra(META_MAPS, "[d, d, rows, cols]", "meta-maps: how concept j moves concept i's map at each patch; "
          "meta_maps.sum(axis=1) = concept_maps", "diffusion (ConceptAttention)", sidecar=True),
    Extra(REGION, "[rows, cols]", "the weights of the region the matrix summarises the maps over",
          "diffusion runs given a region"),
    Extra(STII, "[d, d]", "a Shapley-Taylor interaction index to draw next to M in the comparison picture",
          "the user (no run writes it)"),
    Extra(A_TO_B, "[n_b, n_a]", "cross block M[B, A]: how each word of text A moves each word of text B",
          "text-pair encoders"),
    Extra(B_TO_A, "[n_a, n_b]", "cross block M[A, B]: how each word of text B moves each word of text A",
          "text-pair encoders"),
)}


def cross_block_key(source: str, target: str) -> str:
    """The key of the cross block with sources of kind ``source`` and targets of kind ``target``:
    ``"{source}_to_{target}"``, an array ``[n_target, n_source]`` (e.g. ``head_to_word[i, j]`` = how head j moves
    the attribution of word i); written by joint adapters and the feature × data game."""
    return f"{source}_to_{target}"


def is_declared(key: str, player_kinds: Sequence[str] | None = None) -> bool:
    """Whether ``key`` is one the library writes: a key of :data:`EXTRAS`, or the cross block of two different
    kinds among ``player_kinds`` (a result's ``player_kinds``)."""
    if key in EXTRAS:
        return True
    kinds = set(player_kinds or ())
    return any(key == cross_block_key(a, b) for a in kinds for b in kinds if a != b)


__all__ = [
    "A_TO_B", "ATTRIBUTION_AT_BASELINE", "B_TO_A", "CONCEPT_MAPS", "EXTRAS", "Extra", "FIRST_ORDER_MAPS", "HEATMAP",
    "HEATMAP_NO_WORDS", "IMAGE", "MAPS", "META_MAPS", "PATCH_MAPS", "REGION", "SIDE_AT_EMPTY", "SIDE_FIRST_ORDER",
    "SIDE_MATRIX", "STII", "TENSOR", "TENSOR_STDERR", "cross_block_key", "is_declared",
]
