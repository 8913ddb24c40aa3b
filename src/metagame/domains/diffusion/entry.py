"""Meta-ConceptAttention: meta-attributions of concept maps in diffusion transformers (Flux, SD3 via diffusers).

The inner attribution at a coalition S of concepts is the ConceptAttention map φ(x_S) ∈ R^{d×P} (one map per
concept over the P image patches; 0 rows for absent concepts; see :mod:`metagame.domains.diffusion`). The
metagame is taken per patch:

    M[i, j, p] = Shapley value of j in u_{i,p}(T) = φ_{i,p}(x_{T∪{i}}),    M[i, i, p] = φ_{i,p}(x_{{i}}),

so Σ_j M[i, j, p] = φ_{i,p}(x_N): the meta-maps decompose every concept map, patch by patch, into how each
concept moves it. ``result.matrix`` is the patch-mean (or region-mean) of M[i, j, :].

    >>> res = metagame.explain_diffusion("black-forest-labs/FLUX.1-schnell", "a cat under a tree",
    ...                                  concepts=["cat", "tree", "sky"], steps=4)
    >>> res.extras["meta_maps"][i, j]   # [H, W]: how concept j moves concept i's map, per patch
"""

from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence, get_args

import torch

from ...applications.common import exact_limit, explain_application
from ...applications.sets import SetItem, check_text, explain_inputs, is_input_list
from ...errors import MetagameError, one_of
from ...models.loaded import shared_load
from ...players.coalitions import check_exact_size
from ...players.text import group_words, unique_labels
from ...results.result import MetaAttribution
from ...results.result_set import ResultSet
from ...run.options import RunOptions, split_run_options
from . import (
    DiffusionConceptModel,
    PlayerMode,
    Route,
    StepInputs,
    check_blocks,
    generate,
    resolve_route,
    single_row,
    transformer_family,
)

#: tokens of each concept encoded by the text encoder (the first one is used, as in ConceptAttention)
CONCEPT_MAX_TOKENS = 16
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


# ------------------------------------------------------------------------------------------------ loading
def _dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) in DTYPES:
        return DTYPES[str(dtype)]
    raise MetagameError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")


@shared_load
def load_diffusion(model: Any, *, device: Any = None, dtype: Any = None) -> tuple[Any, Any, str | None]:
    """``(pipeline or None, transformer, name)`` from a diffusers pipeline / transformer object, a local folder
    (a pipeline with ``model_index.json`` or a transformer with ``config.json``) or a cached hub name.
    Weights are read from safetensors files only."""
    from diffusers import DiffusionPipeline, FluxTransformer2DModel, SD3Transformer2DModel

    torch_dtype = _dtype(dtype)
    name = None
    if isinstance(model, (str, os.PathLike)):
        name = str(model)
        path = Path(name)
        kw: dict[str, Any] = {"use_safetensors": True}
        if torch_dtype is not None:
            kw["torch_dtype"] = torch_dtype
        if path.exists() and not path.is_dir():
            raise MetagameError(f"{name!r} is a file; pass a diffusers folder (model_index.json or config.json) or a hub name")
        try:
            if path.is_dir() and not (path / "model_index.json").exists():
                if not (path / "config.json").exists():
                    raise MetagameError(f"{name!r} holds neither model_index.json (a pipeline) nor config.json (a transformer)")
                cls_name = json.loads((path / "config.json").read_text()).get("_class_name")
                classes = {"FluxTransformer2DModel": FluxTransformer2DModel, "SD3Transformer2DModel": SD3Transformer2DModel}
                if cls_name not in classes:
                    raise MetagameError(f"{name!r} holds a {cls_name}; pass a FluxTransformer2DModel or "
                                        "SD3Transformer2DModel folder, or a Flux / SD3 pipeline")
                model = classes[cls_name].from_pretrained(name, **kw)
            else:
                model = DiffusionPipeline.from_pretrained(name, **kw)
        except MetagameError:
            raise
        except (OSError, ValueError, EnvironmentError) as e:
            raise MetagameError(
                f"could not load {name!r} as a diffusers pipeline or transformer with safetensors weights "
                f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); pass a local folder or a cached hub name"
            ) from None
    elif torch_dtype is not None:
        model = model.to(dtype=torch_dtype) if hasattr(model, "transformer") else model.to(torch_dtype)
    if device is not None:
        model = model.to(device)
    if hasattr(model, "transformer"):
        transformer = model.transformer
        pipeline = model
    else:
        transformer, pipeline = model, None
    transformer_family(transformer)  # a clear error for other models
    transformer.eval()
    if name is None:
        name = getattr(getattr(transformer, "config", None), "_name_or_path", None) or None
    return pipeline, transformer, name


# ------------------------------------------------------------------------------------------------ text
def encode_concepts(pipeline: Any, concepts: Sequence[str], device: Any = None) -> torch.Tensor:
    """Concept embeddings ``[d, joint_attention_dim]``: each concept encoded on its own by the pipeline's text
    encoders; the first token of the T5 part (ConceptAttention), or the first CLIP token after BOS for an SD3
    pipeline without T5."""
    family = transformer_family(pipeline.transformer)
    device = device or getattr(pipeline, "_execution_device", None) or pipeline.transformer.device
    concepts = list(concepts)
    with torch.no_grad():
        if family == "flux":
            pe, _, _ = pipeline.encode_prompt(prompt=concepts, prompt_2=None, device=device,
                                              max_sequence_length=CONCEPT_MAX_TOKENS)
            return pe[:, 0].detach()
        pe, _, _, _ = pipeline.encode_prompt(prompt=concepts, prompt_2=None, prompt_3=None, device=device,
                                             do_classifier_free_guidance=False, max_sequence_length=CONCEPT_MAX_TOKENS)
    index = int(pipeline.tokenizer_max_length) if getattr(pipeline, "text_encoder_3", None) is not None else 1
    return pe[:, index].detach()


def _offsets(tokenizer: Any, text: str, length: int) -> tuple[list[tuple[int, int]], list[bool]]:
    try:
        enc = tokenizer(text, padding="max_length", max_length=length, truncation=True,
                        return_offsets_mapping=True, return_special_tokens_mask=True)
    except NotImplementedError:
        raise MetagameError(f"{type(tokenizer).__name__} gives no character offsets; word players need a fast "
                            "(tokenizers-backed) tokenizer") from None
    if len(enc["input_ids"]) != length:
        raise MetagameError(f"the tokenizer gave {len(enc['input_ids'])} tokens where the pipeline used {length}")
    special = enc.get("special_tokens_mask") or [0] * length
    return [tuple(o) for o in enc["offset_mapping"]], [bool(s) for s in special]


def prompt_words(pipeline: Any, prompt: str, n_text: int) -> tuple[list[str], list[list[int]]]:
    """Words of ``prompt`` and, per word, its positions in the transformer's text sequence.

    Flux: the T5 tokens. SD3: the CLIP tokens (first ``tokenizer_max_length`` positions) and the T5 tokens after
    them; a word owns every token whose characters lie in it.
    """
    family = transformer_family(pipeline.transformer)
    if family == "flux":
        offs, special = _offsets(pipeline.tokenizer_2, prompt, n_text)
        words = group_words(prompt, offs, special_mask=special)
        return unique_labels(words), [list(w.tokens) for w in words]
    clip_len = int(pipeline.tokenizer_max_length)
    offs, special = _offsets(pipeline.tokenizer, prompt, clip_len)
    words = group_words(prompt, offs, special_mask=special)
    tokens = [list(w.tokens) for w in words]
    if getattr(pipeline, "text_encoder_3", None) is not None and n_text > clip_len:
        offs3, special3 = _offsets(pipeline.tokenizer_3, prompt, n_text - clip_len)
        for t, ((a, b), sp) in enumerate(zip(offs3, special3)):
            if sp or b <= a:
                continue
            for w, word in enumerate(words):
                if a < word.end and b > word.start and prompt[max(a, word.start):min(b, word.end)].strip():
                    tokens[w].append(clip_len + t)
                    break
    return unique_labels(words), tokens


# ------------------------------------------------------------------------------------------------ entry points
def _steps_from_inputs(inputs: Any, family: str) -> list[StepInputs]:
    if isinstance(inputs, Mapping):
        inputs = [inputs]
    steps = []
    for i, kw in enumerate(inputs):
        if isinstance(kw, StepInputs):
            steps.append(kw)
        elif isinstance(kw, Mapping):
            steps.append(StepInputs(i, single_row(dict(kw), family)))  # type: ignore[arg-type]
        else:
            raise MetagameError("inputs must be a dict of transformer keyword arguments, or a list of them (one per step)")
    return steps


def diffusion_adapter(
    model_or_pipeline: Any,
    prompt: str | None = None,
    concepts: Sequence[str] | str | None = None,
    *,
    players: PlayerMode = "concepts",
    route: Route = "auto",
    concept_self_attention: bool | None = None,
    steps: int | None = None,
    timesteps: Sequence[int] | None = None,
    blocks: Sequence[int] | None = None,
    generation_seed: int = 0,
    height: int | None = None,
    width: int | None = None,
    guidance_scale: float | None = None,
    max_sequence_length: int | None = None,
    pipeline_kwargs: Mapping[str, Any] | None = None,
    softmax: bool = True,
    device: Any = None,
    dtype: Any = None,
    batch_size: int | None = None,
    inputs: Any = None,
    concept_embeds: Any = None,
    words: Sequence[tuple[str, Sequence[int]]] | None = None,
    region: Any = None,
) -> DiffusionConceptModel:
    """Build the :class:`DiffusionConceptModel` (see :func:`explain_diffusion` for the arguments): generate the
    image once with the pipeline (recording the transformer's inputs), or take ``inputs`` for a bare transformer."""
    pipeline, transformer, name = load_diffusion(model_or_pipeline, device=device, dtype=dtype)
    family = transformer_family(transformer)
    if isinstance(concepts, str):
        concepts = [c.strip() for c in concepts.split(",") if c.strip()]
    if players == "concepts":
        if not concepts:
            raise MetagameError("pass concepts=[...] (the concept words whose maps are explained)")
        if len(set(concepts)) != len(concepts):
            raise MetagameError(f"concepts must be distinct; got {list(concepts)}")
    elif players not in get_args(PlayerMode):
        raise MetagameError(f"unknown players {players!r}; use {one_of(PlayerMode)}")
    elif concepts or concept_embeds is not None:
        raise MetagameError("with players='words' the prompt's words are the players; drop concepts=... "
                            "(or use players='concepts')")
    resolve_route(route, concept_self_attention)  # settings errors before the (slow) generation
    check_blocks(transformer, blocks)
    image = None
    if inputs is not None:
        step_list = _steps_from_inputs(inputs, family)
        if timesteps is not None:
            keep = set(int(t) for t in timesteps)
            step_list = [s for s in step_list if s.step in keep]
        dev = transformer.device
        for s in step_list:
            s.kwargs = {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in s.kwargs.items()}
    else:
        if pipeline is None:
            raise MetagameError("a bare transformer needs inputs=... (its keyword arguments per denoising step); "
                                "or pass the whole pipeline to generate the image")
        if not prompt:
            raise MetagameError("pass the prompt of the image to generate")
        image, step_list = generate(
            pipeline, prompt, steps=steps, seed=generation_seed, keep_steps=timesteps, height=height, width=width,
            guidance_scale=guidance_scale, max_sequence_length=max_sequence_length,
            pipeline_kwargs=dict(pipeline_kwargs or {}),
        )
    if not step_list:
        raise MetagameError("no denoising step selected; check timesteps")
    n_text = int(step_list[0].kwargs["encoder_hidden_states"].shape[1])
    word_tokens = None
    labels: list[str]
    if players == "concepts":
        labels = list(concepts)  # type: ignore[arg-type]
        if concept_embeds is None:
            if pipeline is None:
                raise MetagameError("a bare transformer needs concept_embeds [d, joint_attention_dim]; or pass the pipeline")
            concept_embeds = encode_concepts(pipeline, labels)
        concept_embeds = torch.as_tensor(concept_embeds).to(transformer.device)
    else:
        if words is not None:
            labels = [str(w[0]) for w in words]
            word_tokens = [list(w[1]) for w in words]
        elif pipeline is not None and prompt:
            labels, word_tokens = prompt_words(pipeline, prompt, n_text)
        else:
            raise MetagameError("word players need the pipeline and the prompt, or words=[(label, token positions), ...]")
    return DiffusionConceptModel(
        transformer, step_list, labels, mode=players, concept_embeds=concept_embeds, word_tokens=word_tokens,
        blocks=blocks, route=route, concept_self_attention=concept_self_attention, softmax=softmax,
        rows_per_chunk=batch_size, image=image, prompt=prompt, name=name, region=region,
    )


def explain_diffusion(
    model_or_pipeline: Any,
    prompt: str | Sequence[str] | None = None,
    concepts: Sequence[str] | str | None = None,
    *,
    options: RunOptions | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MetaAttribution | ResultSet:
    """Meta-ConceptAttention of a text-to-image diffusion transformer (diffusers Flux or SD3).

    M[i, j, p] = Shapley value of concept j in u_{i,p}(T) = φ_{i,p}(x_{T∪{i}}), φ = the ConceptAttention maps;
    rows sum to the full concept map per patch. Exact over all 2^d coalitions (at most 12 players by default).

    ``kwargs`` are :func:`diffusion_adapter`'s options and the run options (``value``, ``checkpoint``, ...):

    Args:
        model_or_pipeline: a diffusers Flux / SD3 pipeline or transformer (object, local folder or cached hub
            name; safetensors weights only).
        prompt: the prompt of the generated image.
        concepts: concept words (a list, or one comma-separated string); the players in concept mode.
        players: ``"concepts"`` or ``"words"`` (the prompt's words, removed through the joint-attention mask with
            the text embeddings and image latents held fixed).
        route: ``"decoupled"`` (one forward per step; needs concept_self_attention=False), ``"coupled"`` (one
            concept stream per coalition, all coalitions in one partial forward per step) or ``"auto"``.
        concept_self_attention: whether concept tokens attend to each other (default True, the paper's setting).
        steps: denoising steps of the generation (default: the pipeline's).
        timesteps: indices of the denoising steps whose maps are averaged (default: all).
        blocks: joint-attention blocks whose maps are averaged (default: the last 4).
        generation_seed, height, width, guidance_scale, max_sequence_length, pipeline_kwargs: for the pipeline.
        softmax: softmax over the present players per patch (ConceptAttention); False keeps raw scores.
        region: optional mask (patch grid or image size); ``matrix`` is the region mean of the meta-maps.
        device, dtype: where and in which precision to run (e.g. ``"cuda"``, ``"bfloat16"``).
        batch_size: coalitions per chunk of concept streams / per masked forward (default: by memory).
        inputs: for a bare transformer, its keyword arguments (one dict per denoising step).
        concept_embeds: ``[d, joint_attention_dim]`` concept embeddings (needed with a bare transformer).
        words: for word players of a bare transformer, ``[(label, token positions), ...]``.

    Returns:
        A :class:`MetaAttribution`: ``matrix[i, j]`` = mean over the patches (or region) of M[i, j, :];
        ``first_order`` = the same mean of the full maps; ``extras["concept_maps"]`` ``[d, rows, cols]``,
        ``extras["meta_maps"]`` ``[d, d, rows, cols]``, ``extras["image"]`` (the generated image).

    Example:
        >>> res = explain_diffusion(pipe, "a cat under a tree", concepts=["cat", "tree", "sky"], steps=4)
        >>> res.extras["meta_maps"].sum(axis=1)  # == res.extras["concept_maps"]

    A list of prompts returns a :class:`~metagame.ResultSet` (the same concepts for each; the pipeline loaded once;
    ``checkpoint=`` is then a folder).
    """
    run, rest = split_run_options(kwargs)
    opts = RunOptions.build(options, **run)
    limit = exact_limit(rest, DiffusionConceptModel)
    names = concepts.split(",") if isinstance(concepts, str) else list(concepts or [])
    players = rest.get("players", inspect.signature(diffusion_adapter).parameters["players"].default)
    if players == "concepts" and opts.budget is None:  # fail before generating the image
        check_exact_size(len([c for c in names if str(c).strip()]), limit=limit,
                         what=f"exact Meta-ConceptAttention over {len(names)} concepts (use fewer concepts)")
    if is_input_list(prompt):
        items = [SetItem((check_text("explain_diffusion", k, p, "prompt"), concepts), describe={"prompt": p})
                 for k, p in enumerate(prompt)]
        return explain_inputs(diffusion_adapter, "explain_diffusion", model_or_pipeline, items, "concept_attention",
                              None, options, kwargs)
    return explain_application(diffusion_adapter, "explain_diffusion", (model_or_pipeline, prompt, concepts),
                               "concept_attention", None, opts, rest)


__all__ = [
    "diffusion_adapter",
    "encode_concepts",
    "explain_diffusion",
    "load_diffusion",
    "prompt_words",
]
