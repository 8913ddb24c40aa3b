"""Meta-attributions of similarity encoders: sentence-embedding pairs and CLIP/SigLIP image–text pairs.

Text pairs: players are the words of text A followed by the words of text B, f = cos(e(A), e(B));
M[i, j] = Shapley value of word j in u_i(T) = φ_i(f, x_{T∪{i}}). The cross blocks say how a word of
one text moves the attribution of a word of the other.

Vision-language: players are image patches and caption words, f = the image–text logit. In the
vector-valued ``"patch_maps"`` mode the players are the words only and the inner attribution is the
whole patch heatmap (k = number of patches): patch_maps[w] = Shapley value of word w in the game
T ↦ heatmap(image, words T), exact over all word subsets.

    >>> from metagame.applications.encoders import explain_text_pair, cross_blocks
    >>> res = explain_text_pair(path, "A man plays the guitar", "Someone is playing music")
    >>> cross_blocks(res)["a_to_b"]     # [n_b, n_a]: how word j of A moves word i of B
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any, Literal, Sequence

import numpy as np

from ..api import Estimator
from ..errors import MetagameError
from ..games.masked import AttributionGame
from ..meta.tables import Value, Variant, metagame_from_table
from ..methods.base import AttributionMethod
from ..methods.registry import MethodName, get_method
from ..models.text_pair import Pooling, TextMasking, TextPairModel, load_sentence_encoder, sentence_transformers_pooling
from ..models.vision import PatchMasking, VisionLanguageModel, load_vision_language
from ..players.coalitions import all_coalitions, check_exact_size
from ..results.result import MetaAttribution
from ..solvers.exact import banzhaf_values, shapley_values
from .common import explain_adapter

#: the most players explained exactly by default (2^16 coalitions, each one attribution call)
ENCODER_EXACT_MAX_PLAYERS = 16
VisionMode = Literal["scalar", "patch_maps"]


# ------------------------------------------------------------------------------------------------ text pairs
def text_pair_adapter(
    model,
    text_a: str,
    text_b: str,
    *,
    tokenizer=None,
    masking: TextMasking = "attention",
    pooling: Pooling | Sequence[str] = "auto",
    normalize: bool | None = None,
    batch_size: int = 256,
    trust_remote_code: bool = False,
) -> TextPairModel:
    """Build a :class:`TextPairModel` from a model name/path (pooling read from its sentence-transformers files)
    or from a loaded ``(model, tokenizer)``."""
    name = None
    if isinstance(model, (str, os.PathLike)):
        model = name = str(model)
        model, tok, modes, norm = load_sentence_encoder(model, trust_remote_code=trust_remote_code)
        tokenizer = tokenizer or tok
    else:
        if tokenizer is None:
            raise MetagameError("a loaded model needs its tokenizer: pass tokenizer=..., or pass the model name/path")
        path = getattr(getattr(model, "config", None), "_name_or_path", "")
        modes, norm = sentence_transformers_pooling(path) if path else (["mean"], False)
    if pooling != "auto":
        modes = [pooling] if isinstance(pooling, str) else list(pooling)
    if normalize is not None:
        norm = normalize
    return TextPairModel(
        model, tokenizer, text_a, text_b, masking=masking, pooling=modes, normalize=norm, name=name, batch_size=batch_size
    )


def cross_blocks(result: MetaAttribution) -> dict[str, np.ndarray]:
    """The two cross blocks of a text-pair result: ``a_to_b`` = M[B, A] ``[n_b, n_a]`` (sources in A,
    targets in B) and ``b_to_a`` = M[A, B] ``[n_a, n_b]``."""
    kinds = np.asarray(result.player_kinds or [])
    a = np.flatnonzero(kinds == "word_a")
    b = np.flatnonzero(kinds == "word_b")
    if len(a) == 0 or len(b) == 0:
        raise MetagameError("cross_blocks needs a text-pair result (player kinds 'word_a' and 'word_b')")
    return {"a_to_b": result.matrix[np.ix_(b, a)].copy(), "b_to_a": result.matrix[np.ix_(a, b)].copy()}


def explain_text_pair_adapter(
    adapter: TextPairModel,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    *,
    method_kwargs: dict | None = None,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    estimator: Estimator = "auto",
    exact_max_players: int = ENCODER_EXACT_MAX_PLAYERS,
    progress: bool | None = None,
) -> MetaAttribution:
    """Run :func:`metagame.explain` on a built :class:`TextPairModel`; adds the texts, f(x), f(∅) and the cross blocks."""
    result = explain_adapter(
        adapter, method, exact_max_players=exact_max_players,
        what=f"exact meta-attributions of {adapter.n_players} words",
        method_kwargs=method_kwargs, variant=variant, value=value, budget=budget, seed=seed, estimator=estimator,
        progress=progress,
    )
    result.extras.update(cross_blocks(result))
    return result


def explain_text_pair(
    model,
    text_a: str,
    text_b: str,
    *,
    tokenizer=None,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    method_kwargs: dict | None = None,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    estimator: Estimator = "auto",
    masking: TextMasking = "attention",
    pooling: Pooling | Sequence[str] = "auto",
    batch_size: int = 256,
    trust_remote_code: bool = False,
    exact_max_players: int = ENCODER_EXACT_MAX_PLAYERS,
    progress: bool | None = None,
) -> MetaAttribution:
    """Meta-attributions over the words of two texts; f = cos(e(A), e(B)) of a sentence encoder.

    Rows sum to the first-order attribution φ_i(f, x); ``extras["a_to_b"]`` / ``extras["b_to_a"]`` hold the
    cross blocks (see :func:`cross_blocks`).
    """
    adapter = text_pair_adapter(
        model, text_a, text_b, tokenizer=tokenizer, masking=masking, pooling=pooling, batch_size=batch_size,
        trust_remote_code=trust_remote_code,
    )
    return explain_text_pair_adapter(
        adapter, method, method_kwargs=method_kwargs, variant=variant, value=value, budget=budget, seed=seed,
        estimator=estimator, exact_max_players=exact_max_players, progress=progress,
    )


# ------------------------------------------------------------------------------------------------ vision-language
def vision_adapter(
    model,
    image,
    text: str,
    *,
    image_processor=None,
    tokenizer=None,
    grid: int | tuple[int, int] | None = None,
    patch_masking: PatchMasking = "mean",
    batch_size: int = 32,
    trust_remote_code: bool = False,
) -> VisionLanguageModel:
    """Build a :class:`VisionLanguageModel` from a CLIP/SigLIP name/path or a loaded model + processor parts."""
    if isinstance(model, (str, os.PathLike)):
        model = name = str(model)
        model, ip, tok = load_vision_language(model, trust_remote_code=trust_remote_code)
        image_processor = image_processor or ip
        tokenizer = tokenizer or tok
        model.config._name_or_path = model.config._name_or_path or name
    elif image_processor is None or tokenizer is None:
        raise MetagameError("a loaded model needs image_processor=... and tokenizer=...; or pass the model name/path")
    return VisionLanguageModel(
        model, image_processor, tokenizer, image, text, grid=grid, patch_masking=patch_masking, batch_size=batch_size
    )


def explain_vision_adapter(
    adapter: VisionLanguageModel,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    *,
    method_kwargs: dict | None = None,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    estimator: Estimator = "auto",
    exact_max_players: int = ENCODER_EXACT_MAX_PLAYERS,
    progress: bool | None = None,
) -> MetaAttribution:
    """Scalar mode: patches and words as players, f = the image–text logit; adds the display context and image."""
    result = explain_adapter(
        adapter, method, exact_max_players=exact_max_players,
        what=f"exact meta-attributions of {adapter.n_patches} patches + {adapter.n_words} words "
        f"(use a coarser grid, or mode='patch_maps')",
        method_kwargs=method_kwargs, variant=variant, value=value, budget=budget, seed=seed, estimator=estimator,
        progress=progress,
    )
    result.extras["image"] = adapter.small_image()
    return result


def explain_patch_maps(
    adapter: VisionLanguageModel,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    *,
    method_kwargs: dict | None = None,
    value: Value = "shapley",
    exact_max_players: int = ENCODER_EXACT_MAX_PLAYERS,
) -> MetaAttribution:
    """Vector-valued mode: players = words; patch_maps[w] = value of word w in T ↦ heatmap(image, words T).

    One attribution call per word subset (2^W in all) returns the heatmap over the k patches and the word
    scores; the k-output table gives ``extras["patch_maps"]`` ``[W, rows, cols]`` (each word's effect on every
    patch's attribution; Σ_w patch_maps[w] = heatmap(all words) − heatmap(no words)), and the word columns give
    the word-to-word metagame matrix with the image always present.
    """
    if not (adapter.include_patches and adapter.include_words):
        raise MetagameError("patch maps need an adapter with both patch and word players")
    if value not in ("shapley", "banzhaf"):
        raise MetagameError(f"unknown value {value!r}; use 'shapley' or 'banzhaf'")
    w, p = adapter.n_words, adapter.n_patches
    check_exact_size(w, limit=exact_max_players, what=f"patch maps over {w} words (exact over all word subsets)")
    inner = get_method(method, method_kwargs)
    rows_before = adapter.n_model_rows
    coalitions = adapter.word_coalitions(all_coalitions(w))
    game = AttributionGame(adapter, inner)
    table = game(coalitions)  # [2^W, P + W]
    solve = shapley_values if value == "shapley" else banzhaf_values
    maps = solve(table[:, :p])  # [W, P]
    words = table[:, p:]
    rows, cols = adapter.grid
    full = 2**w - 1
    ends = adapter.word_coalitions(np.array([[True] * w, [False] * w]))  # every patch present; all / no words
    context = {**adapter.display_context(), **adapter.endpoint_values(ends[0], ends[1]), "mode": "patch_maps"}
    return MetaAttribution(
        matrix=metagame_from_table(words, value),
        first_order=words[full].copy(),
        players=adapter.players[p:],
        method=inner.name,
        variant="metagame",
        value=value,
        exact=True,
        n_evaluations=int(game.n_calls),
        n_model_rows=int(adapter.n_model_rows - rows_before),
        player_kinds=["word"] * w,
        metadata={
            "parameters": {"method": inner.name, "method_params": inner.params(), "variant": "metagame",
                           "value": value, "budget": None, "seed": None, "route": "patch_maps"},
            "model": adapter.describe(),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
        context=context,
        extras={
            "patch_maps": maps.reshape(w, rows, cols),
            "heatmap": table[full, :p].reshape(rows, cols),
            "heatmap_no_words": table[0, :p].reshape(rows, cols),
            "image": adapter.small_image(),
        },
    )


def explain_vision(
    model,
    image,
    text: str,
    *,
    image_processor=None,
    tokenizer=None,
    grid: int | tuple[int, int] | None = None,
    mode: VisionMode = "scalar",
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    method_kwargs: dict | None = None,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    estimator: Estimator = "auto",
    patch_masking: PatchMasking = "mean",
    batch_size: int = 32,
    trust_remote_code: bool = False,
    exact_max_players: int = ENCODER_EXACT_MAX_PLAYERS,
    progress: bool | None = None,
) -> MetaAttribution:
    """Meta-attributions of a CLIP/SigLIP image–text logit.

    ``mode="scalar"``: players = patches (model grid, or G×G groups with ``grid=G``) and words.
    ``mode="patch_maps"``: players = words, ``extras["patch_maps"]`` = each word's effect on the patch heatmap.
    """
    if mode not in ("scalar", "patch_maps"):
        raise MetagameError(f"unknown mode {mode!r}; use 'scalar' or 'patch_maps'")
    adapter = vision_adapter(
        model, image, text, image_processor=image_processor, tokenizer=tokenizer, grid=grid,
        patch_masking=patch_masking, batch_size=batch_size, trust_remote_code=trust_remote_code,
    )
    if mode == "patch_maps":
        if budget is not None:
            raise MetagameError("mode='patch_maps' is exact over all word subsets; drop budget (or use mode='scalar')")
        if variant != "metagame":
            raise MetagameError("mode='patch_maps' computes the metagame variant only; drop variant")
        return explain_patch_maps(adapter, method, method_kwargs=method_kwargs, value=value, exact_max_players=exact_max_players)
    return explain_vision_adapter(
        adapter, method, method_kwargs=method_kwargs, variant=variant, value=value, budget=budget, seed=seed,
        estimator=estimator, exact_max_players=exact_max_players, progress=progress,
    )


__all__ = [
    "ENCODER_EXACT_MAX_PLAYERS",
    "VisionMode",
    "cross_blocks",
    "explain_patch_maps",
    "explain_text_pair",
    "explain_text_pair_adapter",
    "explain_vision",
    "explain_vision_adapter",
    "text_pair_adapter",
    "vision_adapter",
]
