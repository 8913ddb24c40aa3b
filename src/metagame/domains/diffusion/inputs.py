"""Diffusion transformers: the architecture (Flux / SD3), the captured inputs of each denoising step, partial
forwards and the one generation run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence, get_args

import numpy as np
import torch

from ...errors import MetagameError, one_of

Family = Literal["flux", "sd3"]
Route = Literal["auto", "decoupled", "coupled"]
PlayerMode = Literal["concepts", "words"]

#: the transformer keyword arguments kept per denoising step, by family
STEP_KEYS: dict[str, tuple[str, ...]] = {
    "flux": ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "img_ids", "txt_ids", "guidance"),
    "sd3": ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep"),
}
#: keyword arguments with a leading batch dimension
BATCHED_KEYS = ("hidden_states", "encoder_hidden_states", "pooled_projections", "timestep", "guidance")
#: default cap on logits held at once in the concept attention (floats)
CHUNK_FLOATS = 1 << 25


# ------------------------------------------------------------------------------------------------ architecture
def transformer_family(transformer: Any) -> Family:
    """``"flux"`` or ``"sd3"`` for a diffusers MM-DiT transformer; a clear error for anything else."""
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    if isinstance(transformer, FluxTransformer2DModel):
        return "flux"
    if isinstance(transformer, SD3Transformer2DModel):
        return "sd3"
    raise MetagameError(
        f"{type(transformer).__name__} is not a supported diffusion transformer; pass a diffusers "
        "FluxTransformer2DModel or SD3Transformer2DModel (or a Flux / Stable Diffusion 3 pipeline)"
    )


def joint_blocks(transformer: Any) -> list[torch.nn.Module]:
    """The joint-attention (double-stream / MM-DiT) blocks, in order."""
    return list(transformer.transformer_blocks)


def _check_unfused(blocks: Sequence[torch.nn.Module]) -> None:
    for b in blocks:
        attn = b.attn
        if getattr(attn, "fused_projections", False) or hasattr(attn, "to_qkv") and not hasattr(attn, "to_k"):
            raise MetagameError("the transformer uses fused q/k/v projections; call transformer.unfuse_qkv_projections() first")


def default_blocks(transformer: Any, n: int = 4) -> list[int]:
    """The last ``n`` joint blocks (ConceptAttention reads the late double-stream blocks of Flux)."""
    k = len(joint_blocks(transformer))
    return list(range(max(0, k - n), k))


def check_blocks(transformer: Any, blocks: Sequence[int] | None) -> list[int]:
    """Sorted joint-block indices (default: the last 4); a clear error for indices out of range."""
    n_joint = len(joint_blocks(transformer))
    out = sorted(set(int(b) for b in (default_blocks(transformer) if blocks is None else blocks)))
    if not out or out[0] < 0 or out[-1] >= n_joint:
        raise MetagameError(f"blocks must be joint-block indices in 0..{n_joint - 1}; got {list(blocks or [])}")
    return out


def resolve_route(route: Route, concept_self_attention: bool | None) -> tuple[Literal["decoupled", "coupled"], bool]:
    """``(route, concept_self_attention)``: self-attention defaults to on (off for the decoupled route), and
    ``"auto"`` is decoupled exactly when it is off."""
    if route not in get_args(Route):
        raise MetagameError(f"unknown route {route!r}; use {one_of(Route)}")
    if concept_self_attention is None:
        concept_self_attention = route != "decoupled"
    if route == "decoupled" and concept_self_attention:
        raise MetagameError("the decoupled route needs concepts that do not attend to each other; "
                            "pass concept_self_attention=False (or route='coupled')")
    if route == "auto":
        route = "coupled" if concept_self_attention else "decoupled"
    return route, bool(concept_self_attention)  # type: ignore[return-value]


@dataclass
class StepInputs:
    """The transformer's keyword arguments at one denoising step, cut to the explained batch row (batch size 1)."""

    step: int
    kwargs: dict[str, Any] = field(repr=False)


def single_row(kwargs: dict[str, Any], family: Family, row: int = -1) -> dict[str, Any]:
    """Keep the family's transformer arguments, batched tensors cut to ``row`` (the conditional row under CFG)."""
    out: dict[str, Any] = {}
    for k in STEP_KEYS[family]:
        v = kwargs.get(k)
        if v is None:
            continue
        if isinstance(v, torch.Tensor):
            v = v.detach()
            if k in BATCHED_KEYS:
                r = row % v.shape[0]
                v = v[r : r + 1]
            v = v.clone()
        out[k] = v
    if "hidden_states" not in out or "encoder_hidden_states" not in out:
        raise MetagameError("transformer inputs need at least hidden_states and encoder_hidden_states")
    return out


def patch_grid(family: Family, kwargs: dict[str, Any], transformer: Any) -> tuple[int, int]:
    """(rows, cols) of the image-token grid, row-major as the transformer orders the patches."""
    if family == "flux":
        ids = kwargs.get("img_ids")
        if ids is None:
            raise MetagameError("Flux inputs need img_ids (the latent image ids of the pipeline)")
        ids = ids[0] if ids.ndim == 3 else ids
        rows = int(ids[:, 1].max().item()) + 1
        cols = int(ids[:, 2].max().item()) + 1
        if rows * cols != ids.shape[0]:
            raise MetagameError(f"img_ids do not form a full {rows}x{cols} grid ({ids.shape[0]} patches)")
        return rows, cols
    h, w = kwargs["hidden_states"].shape[-2:]
    ps = int(transformer.config.patch_size)
    return int(h) // ps, int(w) // ps


def _expand(kwargs: dict[str, Any], n: int) -> dict[str, Any]:
    out = {}
    for k, v in kwargs.items():
        if k in BATCHED_KEYS and isinstance(v, torch.Tensor) and v.shape[0] != n:
            v = v.expand(n, *v.shape[1:])
        out[k] = v
    return out


class _Stop(Exception):
    """Raised by a hook after the last joint block that is read: the rest of the forward is not needed."""


def run_transformer(transformer: Any, kwargs: dict[str, Any], n: int = 1, joint_attention_kwargs: dict | None = None):
    """One forward of ``transformer`` on single-row ``kwargs`` repeated ``n`` times; returns the output tensor,
    or None when a hook stopped the forward early."""
    kw = _expand(kwargs, n)
    if joint_attention_kwargs is not None:
        kw["joint_attention_kwargs"] = joint_attention_kwargs
    try:
        with torch.no_grad():
            return transformer(**kw, return_dict=False)[0]
    except _Stop:
        return None


def _n_image_tokens(family: Family, kwargs: dict[str, Any], transformer: Any) -> int:
    r, c = patch_grid(family, kwargs, transformer)
    return r * c


class HookSet:
    """Forward hooks and swapped attention processors that are all undone by :meth:`remove` (idempotent)."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.processors: list[tuple[Any, Any]] = []

    def add(self, handle: Any) -> None:
        self.handles.append(handle)

    def swap_processor(self, attn: Any, processor: Any) -> None:
        self.processors.append((attn, attn.processor))
        attn.processor = processor

    def remove(self) -> None:
        while self.handles:
            self.handles.pop().remove()
        while self.processors:
            attn, old = self.processors.pop()
            attn.processor = old

    def __enter__(self) -> "HookSet":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _arg(args: tuple, kwargs: dict, name: str, pos: int):
    if name in kwargs:
        return kwargs[name]
    return args[pos] if len(args) > pos else None


# ------------------------------------------------------------------------------------------------ generation
def generate(
    pipeline: Any,
    prompt: str,
    *,
    steps: int | None = None,
    seed: int = 0,
    keep_steps: Sequence[int] | None = None,
    height: int | None = None,
    width: int | None = None,
    guidance_scale: float | None = None,
    max_sequence_length: int | None = None,
    pipeline_kwargs: dict | None = None,
) -> tuple[np.ndarray, list[StepInputs]]:
    """Run ``pipeline(prompt)`` once; return the image ``[H, W, 3]`` in [0, 1] and the transformer's inputs at the
    denoising steps ``keep_steps`` (default: all), the explained (conditional) batch row only.

    A read-only pre-hook on the transformer records its first call of each step; it is removed afterwards.
    """
    transformer = pipeline.transformer
    family = transformer_family(transformer)
    captured: list[StepInputs] = []
    step = [0]
    keep = None if keep_steps is None else set(int(s) for s in keep_steps)

    def record(module, args, kwargs):
        i = step[0]
        if (keep is None or i in keep) and not (captured and captured[-1].step == i):
            captured.append(StepInputs(i, single_row(kwargs, family)))

    def on_step_end(pipe, i, t, callback_kwargs):
        step[0] = int(i) + 1
        return {}

    call: dict[str, Any] = dict(pipeline_kwargs or {})
    if int(call.get("num_images_per_prompt") or 1) != 1 or not isinstance(prompt, str):
        raise MetagameError("explain one image at a time: pass one prompt string and num_images_per_prompt=1")
    call.update(prompt=prompt, output_type="np", callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=[], generator=torch.Generator(device="cpu").manual_seed(int(seed)))
    for k, v in (("num_inference_steps", steps), ("height", height), ("width", width),
                 ("guidance_scale", guidance_scale), ("max_sequence_length", max_sequence_length)):
        if v is not None:
            call[k] = v
    with HookSet() as hooks:
        hooks.add(transformer.register_forward_pre_hook(record, with_kwargs=True))
        out = pipeline(**call)
    images = out.images if hasattr(out, "images") else out[0]
    image = np.clip(np.asarray(images[0], dtype=np.float64), 0.0, 1.0)
    if keep is not None:
        missing = sorted(keep - {c.step for c in captured})
        if missing:
            raise MetagameError(f"denoising steps {missing} were not run (the pipeline ran {step[0]} steps); "
                                f"choose timesteps in 0..{step[0] - 1}")
    return image, captured


