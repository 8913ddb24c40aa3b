"""Meta-attributions of similarity encoders: sentence-embedding pairs and CLIP/SigLIP image–text pairs.

Text pairs: players are the words of text A followed by the words of text B, f = cos(e(A), e(B));
M[i, j] = Shapley value of word j in u_i(T) = φ_i(f, x_{T∪{i}}). The cross blocks say how a word of
one text moves the attribution of a word of the other.

Vision-language: players are image patches and caption words, f = the image–text logit. In the
vector-valued ``"patch_maps"`` mode the players are the words only and the inner attribution is the
whole patch heatmap (k = number of patches): patch_maps[w] = Shapley value of word w in the game
T ↦ heatmap(image, words T), exact over all word subsets.

    >>> from metagame.domains.encoders.entry import explain_text_pair, cross_blocks
    >>> res = explain_text_pair(path, "A man plays the guitar", "Someone is playing music")
    >>> cross_blocks(res)["a_to_b"]     # [n_b, n_a]: how word j of A moves word i of B
"""

from __future__ import annotations

import os
from typing import Any, Literal, Mapping, Sequence, get_args

import torch

from ...applications.common import check_texts, explain_application
from ...applications.sets import SetItem, check_pair, check_text, explain_inputs, is_input_list, item_error
from ...errors import MetagameError, one_of
from ...methods.base import AttributionMethod
from ...methods.registry import MethodName
from ...models.loaded import shared_load
from ...results.result import MetaAttribution
from ...results.result_set import ResultSet
from ...run.options import RunOptions
from ..components.options import ComponentKind
from ..hf.loading import check_device, resolve_dtype
from ..hf.sources import resolve_source
from .defaults import TEXT_PAIR_DEFAULT_METHOD
from .patch_maps import PatchMapsModel
from .sentence_models import is_sentence_transformer, unpack_sentence_transformer
from .text_pair import (
    Pooling,
    TextMasking,
    TextPairModel,
    cross_blocks,
    load_sentence_encoder,
    sentence_transformers_pooling,
)
from .two_tower import EmptySide
from .vision import PatchMasking, VisionLanguageModel, load_vision_language

VisionMode = Literal["scalar", "patch_maps"]


def _load_named(name: str, loader, trust_remote_code: bool, device, dtype) -> tuple:
    """``loader(source, trust_remote_code, dtype)`` for a model named by hub name or path, its model (first item) on
    ``device``; loaded once per (loader, source content, options) and reused by later calls (:func:`_load_on`)."""
    check_device(device)
    return _load_on(loader, resolve_source(name), trust_remote_code, resolve_dtype(dtype), device)


@shared_load(kept=True)
def _load_on(loader, source: str, trust_remote_code: bool, dtype, device) -> tuple:
    """The load behind :func:`_load_named`, kept between calls (:mod:`metagame.models.loaded`: keyed by the source
    folder's content and the options)."""
    loaded = loader(source, trust_remote_code, dtype)
    return loaded if device is None else (loaded[0].to(device), *loaded[1:])


def _explain_pair_entry(entry: str, adapter, model, first, second, names: tuple[str, str], check, missing: str,
                        method, method_kwargs, options, kwargs: dict, components) -> MetaAttribution | ResultSet:
    """One encoder entry point: a list of pairs as ``first`` (and no ``second``) explained as a set, else one pair."""
    from ..components.extension import component_extension, encoder_components

    extension = component_extension(encoder_components, entry)
    kwargs = {**kwargs, "components": components}
    if is_input_list(first):
        items = pair_items(entry, first, second, names, check)
        return explain_inputs(adapter, entry, model, items, method, method_kwargs, options, kwargs, extension)
    if second is None:
        raise MetagameError(missing)
    return explain_application(adapter, entry, (model, first, second), method, method_kwargs, options, kwargs,
                               extension)


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
    empty: EmptySide = "zero",
    halves: bool = True,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> TextPairModel:
    """Build a :class:`TextPairModel` from a model name/path (pooling read from its sentence-transformers files;
    loaded once and reused by later calls with the same path, device and dtype), a loaded ``SentenceTransformer``,
    or a loaded ``(model, tokenizer)``. ``device`` / ``dtype`` apply to a model loaded from a name or path."""
    name = None
    check_texts(text_a=text_a, text_b=text_b)
    if is_sentence_transformer(model):
        name = str(getattr(getattr(model[0], "auto_model", None), "name_or_path", "") or "") or None
        model, tok, modes, norm = unpack_sentence_transformer(model)
        name = name or getattr(model.config, "_name_or_path", None)
        tokenizer = tokenizer or tok
    elif isinstance(model, (str, os.PathLike)):
        name = str(model)
        model, tok, modes, norm = _load_named(name, load_sentence_encoder, trust_remote_code, device, dtype)
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
        model, tokenizer, text_a, text_b, masking=masking, pooling=modes, normalize=norm, name=name, empty=empty,
        halves=halves, batch_size=batch_size,
    )


def explain_text_pair(
    model,
    text_a: str | Sequence[tuple[str, str]],
    text_b: str | None = None,
    *,
    method: MethodName | AttributionMethod | Any = TEXT_PAIR_DEFAULT_METHOD,
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    components: ComponentKind | Sequence[str] | None = None,
    **kwargs: Any,
) -> MetaAttribution | ResultSet:
    """Meta-attributions over the words of two texts; f = cos(e(A), e(B)) of a sentence encoder.

    The default inner method is the Shapley value (:data:`~metagame.domains.encoders.defaults.TEXT_PAIR_DEFAULT_METHOD`:
    exact Meta-SV from 2^|A| + 2^|B| encodings; the most faithful and best-aligned method on sentence pairs).

    ``kwargs``: :func:`text_pair_adapter`'s options (tokenizer, masking, pooling, normalize, batch_size,
    trust_remote_code) and the run options. Rows sum to the first-order attribution φ_i(f, x);
    ``extras["a_to_b"]`` / ``extras["b_to_a"]`` hold the cross blocks (see :func:`cross_blocks`).

    ``components`` (``"heads"``, ...) adds the encoder's components as players of the same game
    (:func:`metagame.joint`; keywords ``layers``, ``ablation`` = ``"zero"`` or ``"mean"`` over ``reference`` texts,
    ``neuron_groups``, ``architecture``); the cross blocks are then ``extras["{kind}_to_{kind}"]``, e.g.
    ``head_to_word_a``.

    A list of ``(text_a, text_b)`` pairs as ``text_a`` (and no ``text_b``) returns a :class:`~metagame.ResultSet`,
    one result per pair equal to the separate call, the model loaded once; ``checkpoint=`` is then a folder.
    """
    return _explain_pair_entry(
        "explain_text_pair", text_pair_adapter, model, text_a, text_b, ("text_a", "text_b"), check_text,
        "explain_text_pair needs text_b (or a list of (text_a, text_b) pairs as text_a)",
        method, method_kwargs, options, kwargs, components)


# ------------------------------------------------------------------------------------------------ vision-language
def vision_adapter(
    model,
    image,
    text: str,
    *,
    mode: VisionMode = "scalar",
    image_processor=None,
    tokenizer=None,
    grid: int | tuple[int, int] | None = None,
    patch_masking: PatchMasking = "mean",
    empty: EmptySide = "model",
    halves: bool = True,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
) -> VisionLanguageModel | PatchMapsModel:
    """Build a :class:`VisionLanguageModel` (``mode="scalar"``: patches and words as players) or its
    :class:`PatchMapsModel` view (``mode="patch_maps"``: words as players, one map per word) from a CLIP/SigLIP
    name/path (loaded once and reused by later calls with the same path, device and dtype) or a loaded model +
    processor parts. ``device`` / ``dtype`` apply to a model loaded from a name or path."""
    if mode not in get_args(VisionMode):
        raise MetagameError(f"unknown mode {mode!r}; use {one_of(VisionMode)}")
    check_texts(text=text)
    if isinstance(model, (str, os.PathLike)):
        name = str(model)
        model, ip, tok = _load_named(name, load_vision_language, trust_remote_code, device, dtype)
        image_processor = image_processor or ip
        tokenizer = tokenizer or tok
        model.config._name_or_path = model.config._name_or_path or name
    elif image_processor is None or tokenizer is None:
        raise MetagameError("a loaded model needs image_processor=... and tokenizer=...; or pass the model name/path")
    adapter = VisionLanguageModel(
        model, image_processor, tokenizer, image, text, grid=grid, patch_masking=patch_masking, empty=empty,
        halves=halves, batch_size=batch_size,
    )
    return PatchMapsModel(adapter) if mode == "patch_maps" else adapter


def explain_vision(
    model,
    image,
    text: str | None = None,
    *,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    components: ComponentKind | Sequence[str] | None = None,
    **kwargs: Any,
) -> MetaAttribution | ResultSet:
    """Meta-attributions of a CLIP/SigLIP image–text logit.

    ``mode="scalar"`` (default): players = patches (model grid, or G×G groups with ``grid=G``) and words.
    ``mode="patch_maps"``: players = words, ``extras["patch_maps"]`` = each word's effect on the patch heatmap
    (exact over all word subsets). ``kwargs``: :func:`vision_adapter`'s options and the run options.

    ``components`` (``"heads"``, ...; CLIP vision tower, scalar mode) adds the components as players of the same game
    (:func:`metagame.joint`; keywords ``layers``, ``ablation`` = ``"zero"`` or ``"mean"`` over ``reference`` inputs,
    ``neuron_groups``); cross blocks in ``extras``, e.g. ``head_to_patch`` and ``word_to_head``.

    A list of ``(image, caption)`` pairs as ``image`` (and no ``text``) returns a :class:`~metagame.ResultSet`, one
    result per pair equal to the separate call, the model loaded once; ``checkpoint=`` is then a folder.
    """
    return _explain_pair_entry(
        "explain_vision", vision_adapter, model, image, text, ("image", "caption"), _check_image_or_caption,
        "explain_vision needs the caption text (or a list of (image, caption) pairs as image)",
        method, method_kwargs, options, kwargs, components)


def _check_image_or_caption(entry: str, k: int, value: Any, name: str) -> Any:
    if name != "image":
        return check_text(entry, k, value, name)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise item_error(entry, k, f"has no {name}; give an image (array, PIL image or file path)")
    return value


def pair_items(entry: str, pairs: Sequence[Any], second: Any, names: tuple[str, str], check) -> list[SetItem]:
    """The items of a set of pairs, checked before any work (an error names the bad item's index)."""
    if second is not None:
        raise MetagameError(f"{entry}: with a list of ({names[0]}, {names[1]}) pairs leave the second argument out "
                            f"(each pair holds its own {names[1]})")
    items = []
    for k, pair in enumerate(pairs):
        a, b = check_pair(entry, k, pair, names)
        check(entry, k, a, names[0])
        check(entry, k, b, names[1])
        items.append(SetItem((a, b), describe={names[0]: a if isinstance(a, str) else f"<{type(a).__name__}>",
                                               names[1]: b}))
    return items


__all__ = [
    "pair_items",
    "VisionMode",
    "cross_blocks",
    "explain_text_pair",
    "explain_vision",
    "text_pair_adapter",
    "vision_adapter",
]
