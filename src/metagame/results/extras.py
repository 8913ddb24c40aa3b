"""Every named array the library stores in ``MetaAttribution.extras``, declared once with its shape and meaning.

Adapters' ``finalize`` hooks spell a key through the constants below, so a misspelt key is a ``NameError`` instead
of a picture that silently never appears. Readers (pictures, reports, evaluation) use
:class:`~metagame.results.result.MetaAttribution`'s typed properties of the same names (``res.image``,
``res.patch_maps``, ``res.heatmap``, ``res.concept_maps``, ``res.meta_maps``, ``res.stii``, ``res.tensor``,
``res.tensor_stderr``), each None when the result does not hold that array.

Results with players of several kinds hold one more family of keys, the cross blocks
``"{source kind}_to_{target kind}"`` (:func:`cross_block_key`), e.g. ``head_to_word``. Any other key is the user's
own: it is saved and loaded like the declared ones and has no typed property. :data:`EXTRAS` lists the declared
keys; :func:`is_declared` tells a key of a result apart from a user's own.

The declared keys (shapes: d = number of players, rows × cols = the patch grid, W = number of words, k = number of
side targets, ``*shape`` = an adapter's ``attribution_shape``; the same as :data:`EXTRAS`):

* ``tensor`` ``[d, d, d]``: meta-meta-attributions T[i, j, k]: how k moves the push of j on i;
  Σ_k T[i, j, k] = M[i, j]. Written by order=3 runs, exact and sampled. Always saved to the side-car.
* ``tensor_stderr`` ``[d, d, d]``: standard errors of tensor. Written by sampled order=3 runs. Always saved to the
  side-car.
* ``attribution_at_baseline`` ``[d]``: the attribution at the empty coalition (the serial variant's baseline term,
  summarised like first_order). Written by serial-variant runs, exact and sampled.
* ``maps`` ``[d, d, *shape]``: meta-attributions of a vector-valued attribution; matrix = their weighted sum over the
  trailing axes. Written by exact runs of adapters with an attribution_shape. Always saved to the side-car.
* ``first_order_maps`` ``[d, *shape]``: the vector-valued first-order attribution φ(x). Written by exact runs of
  adapters with an attribution_shape.
* ``side_matrix`` ``[k, d]``: value of each player for each always-present side target. Written by exact runs of
  adapters with side_targets; the patch-maps view turns it into patch_maps.
* ``side_first_order`` ``[k]``: each side target's attribution with every player present. Written by exact runs of
  adapters with side_targets; the patch-maps view turns it into heatmap.
* ``side_at_empty`` ``[k]``: each side target's attribution with no player present. Written by exact runs of adapters
  with side_targets; the patch-maps view turns it into heatmap_no_words.
* ``image`` ``[H, W, 3] in [0, 1]``: the input or generated image the maps are drawn over (pictures also take [H, W],
  [H, W, 1], [3, H, W] and 0–255 values). Written by the vision-language and diffusion adapters.
* ``patch_maps`` ``[W, rows, cols]``: how each word moves every patch's attribution;
  Σ_w patch_maps[w] = heatmap − heatmap_no_words. Written by the patch-maps view of vision-language adapters.
* ``heatmap`` ``[rows, cols]``: first-order patch attribution with all words present. Written by the patch-maps view
  of vision-language adapters.
* ``heatmap_no_words`` ``[rows, cols]``: first-order patch attribution with no word present. Written by the patch-maps
  view of vision-language adapters.
* ``concept_maps`` ``[d, rows, cols]``: each concept's full map φ_i(x) over the patches. Written by the diffusion
  adapter (ConceptAttention).
* ``meta_maps`` ``[d, d, rows, cols]``: meta-maps: how concept j moves concept i's map at each patch;
  meta_maps.sum(axis=1) = concept_maps. Written by the diffusion adapter (ConceptAttention). Always saved to the
  side-car.
* ``region`` ``[rows, cols]``: the weights of the region the matrix summarises the maps over. Written by the diffusion
  adapter, given a region.
* ``stii`` ``[d, d]``: a Shapley-Taylor interaction index to draw next to M in the comparison picture. Written by the
  caller only; no run writes it.
* ``a_to_b`` ``[n_b, n_a]``: cross block M[B, A]: how each word of text A moves each word of text B. Written by the
  text-pair adapter.
* ``b_to_a`` ``[n_a, n_b]``: cross block M[A, B]: how each word of text B moves each word of text A. Written by the
  text-pair adapter.
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
          "Σ_k T[i, j, k] = M[i, j]", "order=3 runs, exact and sampled", sidecar=True),
    Extra(TENSOR_STDERR, "[d, d, d]", "standard errors of tensor", "sampled order=3 runs", sidecar=True),
    Extra(ATTRIBUTION_AT_BASELINE, "[d]", "the attribution at the empty coalition (the serial variant's baseline "
          "term, summarised like first_order)", "serial-variant runs, exact and sampled"),
    Extra(MAPS, "[d, d, *shape]", "meta-attributions of a vector-valued attribution; matrix = their weighted sum "
          "over the trailing axes", "exact runs of adapters with an attribution_shape", sidecar=True),
    Extra(FIRST_ORDER_MAPS, "[d, *shape]", "the vector-valued first-order attribution φ(x)",
          "exact runs of adapters with an attribution_shape"),
    Extra(SIDE_MATRIX, "[k, d]", "value of each player for each always-present side target",
          "exact runs of adapters with side_targets; the patch-maps view turns it into patch_maps"),
    Extra(SIDE_FIRST_ORDER, "[k]", "each side target's attribution with every player present",
          "exact runs of adapters with side_targets; the patch-maps view turns it into heatmap"),
    Extra(SIDE_AT_EMPTY, "[k]", "each side target's attribution with no player present",
          "exact runs of adapters with side_targets; the patch-maps view turns it into heatmap_no_words"),
    Extra(IMAGE, "[H, W, 3] in [0, 1]", "the input or generated image the maps are drawn over (pictures also "
          "take [H, W], [H, W, 1], [3, H, W] and 0–255 values)", "the vision-language and diffusion adapters"),
    Extra(PATCH_MAPS, "[W, rows, cols]", "how each word moves every patch's attribution; Σ_w patch_maps[w] = "
          "heatmap − heatmap_no_words", "the patch-maps view of vision-language adapters"),
    Extra(HEATMAP, "[rows, cols]", "first-order patch attribution with all words present",
          "the patch-maps view of vision-language adapters"),
    Extra(HEATMAP_NO_WORDS, "[rows, cols]", "first-order patch attribution with no word present",
          "the patch-maps view of vision-language adapters"),
    Extra(CONCEPT_MAPS, "[d, rows, cols]", "each concept's full map φ_i(x) over the patches",
          "the diffusion adapter (ConceptAttention)"),
    Extra(META_MAPS, "[d, d, rows, cols]", "meta-maps: how concept j moves concept i's map at each patch; "
          "meta_maps.sum(axis=1) = concept_maps", "the diffusion adapter (ConceptAttention)", sidecar=True),
    Extra(REGION, "[rows, cols]", "the weights of the region the matrix summarises the maps over",
          "the diffusion adapter, given a region"),
    Extra(STII, "[d, d]", "a Shapley-Taylor interaction index to draw next to M in the comparison picture",
          "the caller only; no run writes it"),
    Extra(A_TO_B, "[n_b, n_a]", "cross block M[B, A]: how each word of text A moves each word of text B",
          "the text-pair adapter"),
    Extra(B_TO_A, "[n_a, n_b]", "cross block M[A, B]: how each word of text B moves each word of text A",
          "the text-pair adapter"),
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
