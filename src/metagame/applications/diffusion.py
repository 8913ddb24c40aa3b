"""Meta-ConceptAttention: meta-attributions of concept maps in diffusion transformers (Flux, SD3 via diffusers).

The inner attribution at a coalition S of concepts is the ConceptAttention map φ(x_S) ∈ R^{d×P} (one map per
concept over the P image patches; 0 rows for absent concepts; see :mod:`metagame.models.diffusion`). The
metagame is taken per patch:

    M[i, j, p] = Shapley value of j in u_{i,p}(T) = φ_{i,p}(x_{T∪{i}}),    M[i, i, p] = φ_{i,p}(x_{{i}}),

so Σ_j M[i, j, p] = φ_{i,p}(x_N): the meta-maps decompose every concept map, patch by patch, into how each
concept moves it. ``result.matrix`` is the patch-mean (or region-mean) of M[i, j, :].

    >>> res = metagame.explain_diffusion("black-forest-labs/FLUX.1-schnell", "a cat under a tree",
    ...                                  concepts=["cat", "tree", "sky"], steps=4)
    >>> res.extras["meta_maps"][i, j]   # [H, W]: how concept j moves concept i's map, per patch
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping, Sequence

import numpy as np
import torch

from ..errors import MetagameError
from ..methods.base import AttributionMethod
from ..models.diffusion import (
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
from ..players.coalitions import all_coalitions, check_exact_size
from ..players.text import group_words, unique_labels
from ..results.result import MetaAttribution
from ..solvers.exact import shapley_weights

Value = Literal["shapley", "banzhaf"]
#: most players explained exactly by default (2^12 coalitions; each coupled coalition is one concept-stream row)
DIFFUSION_EXACT_MAX_PLAYERS = 12
#: tokens of each concept encoded by the text encoder (the first one is used, as in ConceptAttention)
CONCEPT_MAX_TOKENS = 16
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


# ------------------------------------------------------------------------------------------------ the metagame of maps
def _outer_weights(d: int, value: Value) -> tuple[np.ndarray, np.ndarray]:
    """Weights by |S| of φ_i(x_S) (i ∈ S) in M[i, j]: ``w_in`` when j ∈ S, ``w_out`` (subtracted) when j ∉ S."""
    n = d - 1
    w_in, w_out = np.zeros(d + 1), np.zeros(d + 1)
    if n == 0:
        return w_in, w_out
    if value == "shapley":
        w = shapley_weights(n)  # w[t] for a size-t coalition T of the (d−1)-player game
        w_in[2:] = w  # S = T ∪ {i, j}: |S| = t + 2
        w_out[1:d] = w  # S = T ∪ {i}:    |S| = t + 1
    elif value == "banzhaf":
        w_in[2:] = w_out[1:d] = 1.0 / 2 ** (n - 1)
    else:
        raise MetagameError(f"unknown value {value!r}; use 'shapley' or 'banzhaf'")
    return w_in, w_out


def metagame_maps_from_table(phi_table: np.ndarray, value: Value = "shapley") -> np.ndarray:
    """Meta-maps ``M[d, d, P]`` (row = target i, column = source j) from ``phi_table[2**d, d, P]``.

    Row s of the table is the coalition whose bits are s (player 0 = least-significant bit), holding φ(x_S).
    M[i, j, p] = value of j in u_{i,p}(T) = φ_{i,p}(x_{T∪{i}}) (j ≠ i), M[i, i, p] = φ_{i,p}(x_{{i}}); with the
    Shapley value Σ_j M[i, j, p] = φ_{i,p}(x_N).
    """
    phi = np.asarray(phi_table, dtype=np.float64)
    if phi.ndim != 3:
        raise MetagameError(f"phi_table must be [2**d, d, P]; got shape {phi.shape}")
    n, d, p = phi.shape
    if n != 2**d:
        raise MetagameError(f"phi_table has {n} rows for d={d} players; expected 2**d = {2**d} (one per coalition)")
    bits = all_coalitions(d)
    sizes = bits.sum(axis=1)
    w_in, w_out = _outer_weights(d, value)
    q = np.where(bits, w_in[sizes][:, None], -w_out[sizes][:, None])  # [2^d, d]: weight of φ_i(x_S) in M[i, j]
    out = np.empty((d, d, p))
    for i in range(d):
        rows = bits[:, i]
        out[i] = q[rows].T @ phi[rows, i, :]
        out[i, i] = phi[1 << i, i]
    return out


def region_weights(region: Any, grid: tuple[int, int]) -> np.ndarray:
    """Patch weights ``[P]`` from a mask on the patch grid ``[rows, cols]`` or on the image (``[H, W]``, averaged
    over each patch's pixels); non-negative, not all zero."""
    rows, cols = grid
    r = np.asarray(region, dtype=np.float64)
    if r.ndim == 3 and r.shape[2] in (1, 3, 4):
        r = r[..., :3].mean(axis=2)
    if r.shape == (rows, cols):
        w = r
    elif r.ndim == 2 and r.shape[0] % rows == 0 and r.shape[1] % cols == 0:
        w = r.reshape(rows, r.shape[0] // rows, cols, r.shape[1] // cols).mean(axis=(1, 3))
    else:
        raise MetagameError(f"region has shape {r.shape}; pass a mask on the {rows}x{cols} patch grid or on the "
                            f"image (a multiple of it, e.g. {rows * 16}x{cols * 16})")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise MetagameError("region must be a non-negative mask with at least one patch inside")
    return w.reshape(-1)


def diffusion_result(
    phi_table: np.ndarray,
    *,
    players: Sequence[str],
    grid: tuple[int, int],
    player_kinds: Sequence[str] | None = None,
    value: Value = "shapley",
    region: Any = None,
    method: str = "concept_attention",
    context: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    extras: Mapping[str, np.ndarray] | None = None,
    n_evaluations: int | None = None,
    n_model_rows: int | None = None,
) -> MetaAttribution:
    """The :class:`MetaAttribution` of vector-valued (map) attributions from their full table ``[2**d, d, P]``.

    ``matrix[i, j]`` = Σ_p w_p M[i, j, p] / Σ_p w_p (w = ``region`` weights, default every patch), so rows sum to
    ``first_order[i]`` = the same mean of the full map φ_i(x_N). Extras: ``concept_maps`` ``[d, rows, cols]``
    (φ(x_N)), ``meta_maps`` ``[d, d, rows, cols]`` (M), ``region`` when given, plus ``extras``.
    """
    table = np.asarray(phi_table, dtype=np.float64)
    meta = metagame_maps_from_table(table, value)
    d, _, p = meta.shape
    rows, cols = grid
    if rows * cols != p:
        raise MetagameError(f"grid {rows}x{cols} does not match the {p} patches of the maps")
    w = np.ones(p) if region is None else region_weights(region, grid)
    wn = w / w.sum()
    full = table[2**d - 1]
    matrix = meta @ wn
    first_order = full @ wn
    out_extras = {"concept_maps": full.reshape(d, rows, cols), "meta_maps": meta.reshape(d, d, rows, cols)}
    if region is not None:
        out_extras["region"] = w.reshape(rows, cols)
    out_extras.update({k: np.asarray(v, dtype=np.float64) for k, v in (extras or {}).items()})
    ctx = dict(context or {})
    ctx.setdefault("grid", [int(rows), int(cols)])
    ctx.update(value_full=float(first_order.sum()), value_empty=float((table[0] @ wn).sum()),
               summary="region mean" if region is not None else "mean over all patches")
    md = dict(metadata or {})
    md.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    return MetaAttribution(
        matrix=matrix,
        first_order=first_order,
        players=list(players),
        method=method,
        variant="metagame",
        value=value,
        exact=True,
        n_evaluations=int(2**d if n_evaluations is None else n_evaluations),
        n_model_rows=n_model_rows,
        player_kinds=list(player_kinds) if player_kinds is not None else ["concept"] * d,
        metadata=md,
        context=ctx,
        extras=out_extras,
    )


class ConceptAttentionMethod(AttributionMethod):
    """The inner attribution of :class:`DiffusionConceptModel`: φ(x_S) = its ConceptAttention maps ``[m, d, P]``.

    Vector-valued (one map over the P patches per player), forward-only; for an engine that accepts
    ``[m, d, P]`` attributions. The settings (route, blocks, timesteps, softmax) live on the adapter.
    """

    name: ClassVar[str] = "concept_attention"
    family: ClassVar[str] = "attention"  # type: ignore[assignment]  # a readout of attention outputs
    needs_gradients: ClassVar[bool] = False

    def attribute(self, model: Any, coalitions: np.ndarray) -> torch.Tensor:
        """``[m, d, P]`` maps of the coalitions (rows of ``bool[m, d]``)."""
        if not isinstance(model, DiffusionConceptModel):
            raise MetagameError("concept_attention explains a DiffusionConceptModel (see metagame.explain_diffusion)")
        return model.maps(coalitions)


# ------------------------------------------------------------------------------------------------ loading
def _dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if str(dtype) in DTYPES:
        return DTYPES[str(dtype)]
    raise MetagameError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")


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
    seed: int = 0,
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
    elif players != "words":
        raise MetagameError(f"unknown players {players!r}; use 'concepts' or 'words'")
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
            pipeline, prompt, steps=steps, seed=seed, keep_steps=timesteps, height=height, width=width,
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
        rows_per_chunk=batch_size, image=image, prompt=prompt, name=name,
    )


def explain_diffusion_adapter(
    adapter: DiffusionConceptModel,
    *,
    value: Value = "shapley",
    region: Any = None,
    exact_max_players: int = DIFFUSION_EXACT_MAX_PLAYERS,
) -> MetaAttribution:
    """The exact metagame of the adapter's maps over all 2^d coalitions, as a :class:`MetaAttribution`."""
    d = adapter.n_players
    check_exact_size(d, limit=exact_max_players,
                     what=f"exact Meta-ConceptAttention over {d} {adapter.mode} (use fewer concepts)")
    rows_before, streams_before = adapter.n_model_rows, adapter.n_stream_rows
    table = ConceptAttentionMethod().attribute(adapter, all_coalitions(d)).numpy()  # φ(x_S) for all 2^d S
    settings = adapter.settings()
    result = diffusion_result(
        table,
        players=adapter.players,
        grid=adapter.grid,
        player_kinds=adapter.player_kinds,
        value=value,
        region=region,
        context={**adapter.display_context(), "route": settings["route"], "timesteps": settings["timesteps"],
                 "blocks": settings["blocks"], "concept_rows": int(adapter.n_stream_rows - streams_before)},
        metadata={
            "parameters": {"method": "concept_attention", "variant": "metagame", "value": value, "budget": None,
                           "seed": None, **settings},
            "model": adapter.describe(),
            "fingerprint": adapter.fingerprint(),
        },
        n_evaluations=2**d,
        n_model_rows=int(adapter.n_model_rows - rows_before),
    )
    adapter.finalize(result)
    return result


def explain_diffusion(
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
    seed: int = 0,
    height: int | None = None,
    width: int | None = None,
    guidance_scale: float | None = None,
    max_sequence_length: int | None = None,
    pipeline_kwargs: Mapping[str, Any] | None = None,
    softmax: bool = True,
    value: Value = "shapley",
    region: Any = None,
    device: Any = None,
    dtype: Any = None,
    batch_size: int | None = None,
    inputs: Any = None,
    concept_embeds: Any = None,
    words: Sequence[tuple[str, Sequence[int]]] | None = None,
    exact_max_players: int = DIFFUSION_EXACT_MAX_PLAYERS,
) -> MetaAttribution:
    """Meta-ConceptAttention of a text-to-image diffusion transformer (diffusers Flux or SD3).

    M[i, j, p] = Shapley value of concept j in u_{i,p}(T) = φ_{i,p}(x_{T∪{i}}), φ = the ConceptAttention maps;
    rows sum to the full concept map per patch. Exact over all 2^d coalitions.

    Args:
        model_or_pipeline: a diffusers Flux / SD3 pipeline or transformer (object, local folder or cached hub
            name; safetensors weights only).
        prompt: the prompt of the generated image.
        concepts: concept words (a list, or one comma-separated string); the players in concept mode.
        players: ``"concepts"`` or ``"words"`` (the prompt's words, removed through the joint-attention mask with
            the text embeddings and image latents held fixed).
        route: ``"decoupled"`` (one forward per step; needs concept_self_attention=False), ``"coupled"`` (one
            concept stream per coalition, all coalitions in one partial forward per step) or ``"auto"``.
        concept_self_attention: whether concept tokens attend to each other (default True, the paper's setting;
            False for route="decoupled").
        steps: denoising steps of the generation (default: the pipeline's).
        timesteps: indices of the denoising steps whose maps are averaged (default: all).
        blocks: joint-attention blocks whose maps are averaged (default: the last 4).
        seed, height, width, guidance_scale, max_sequence_length, pipeline_kwargs: passed to the pipeline.
        softmax: softmax over the present players per patch (ConceptAttention); False keeps raw scores.
        value: ``"shapley"`` (rows sum to the maps) or ``"banzhaf"``.
        region: optional mask (patch grid or image size); ``matrix`` is the region mean of the meta-maps.
        device, dtype: where and in which precision to run (e.g. ``"cuda"``, ``"bfloat16"``).
        batch_size: coalitions per chunk of concept streams / per masked forward (default: by memory).
        inputs: for a bare transformer, its keyword arguments (one dict per denoising step).
        concept_embeds: ``[d, joint_attention_dim]`` concept embeddings (needed with a bare transformer).
        words: for word players of a bare transformer, ``[(label, token positions), ...]``.
        exact_max_players: refuse more players than this.

    Returns:
        A :class:`MetaAttribution`: ``matrix[i, j]`` = mean over the patches (or region) of M[i, j, :];
        ``first_order`` = the same mean of the full maps; ``extras["concept_maps"]`` ``[d, rows, cols]``,
        ``extras["meta_maps"]`` ``[d, d, rows, cols]``, ``extras["image"]`` (the generated image).

    Example:
        >>> res = explain_diffusion(pipe, "a cat under a tree", concepts=["cat", "tree", "sky"], steps=4)
        >>> res.extras["meta_maps"].sum(axis=1)  # == res.extras["concept_maps"]
    """
    n_concepts = len([c for c in concepts.split(",") if c.strip()]) if isinstance(concepts, str) else len(concepts or [])
    if players == "concepts":  # fail before generating the image
        check_exact_size(n_concepts, limit=exact_max_players, what=f"exact Meta-ConceptAttention over {n_concepts} "
                         "concepts (use fewer concepts)")
    adapter = diffusion_adapter(
        model_or_pipeline, prompt, concepts, players=players, route=route,
        concept_self_attention=concept_self_attention, steps=steps, timesteps=timesteps, blocks=blocks, seed=seed,
        height=height, width=width, guidance_scale=guidance_scale, max_sequence_length=max_sequence_length,
        pipeline_kwargs=pipeline_kwargs, softmax=softmax, device=device, dtype=dtype, batch_size=batch_size,
        inputs=inputs, concept_embeds=concept_embeds, words=words,
    )
    result = explain_diffusion_adapter(adapter, value=value, region=region, exact_max_players=exact_max_players)
    result.context.setdefault("seed", int(seed))
    return result


__all__ = [
    "DIFFUSION_EXACT_MAX_PLAYERS",
    "ConceptAttentionMethod",
    "diffusion_adapter",
    "diffusion_result",
    "encode_concepts",
    "explain_diffusion",
    "explain_diffusion_adapter",
    "load_diffusion",
    "metagame_maps_from_table",
    "prompt_words",
    "region_weights",
]
