"""Multimodal diffusion transformers (diffusers ``FluxTransformer2DModel``, ``SD3Transformer2DModel``) seen
through ConceptAttention (Helbling et al., 2025).

ConceptAttention adds concept tokens as an extra stream that runs through the joint-attention blocks with the
*text* stream's weights (adaptive norm, q/k/v projections and q/k norms, output projection, feed-forward).
Concept queries attend to [concepts; image patches]; the image never attends to the concepts, so the image and
the model's output are unchanged. In block b at denoising step t, o_c is a concept's attention output and o_p a
patch's (both before the output projection, heads concatenated); the concept map is

    φ_c(x_S)[p] = mean over the chosen (t, b) of softmax_{c' ∈ S} ⟨o_{c'}, o_p⟩ [c]      (c ∈ S; 0 for c ∉ S).

Concepts are embedded like prompt tokens (the first T5 token of each concept encoded on its own, as in the
paper's code) and placed at text position 0 (Flux RoPE ids of zero, like the prompt). Their adaptive norms use the
block's own time embedding (timestep + pooled prompt), so a concept's stream depends on the coalition only
through attention; the authors' diffusers port modulates with a pooled embedding of the joined concept words,
which would make every stream depend on which concepts are present.

Players are the concepts (the coalition S says which concepts enter the stream and the softmax) or, in word
mode, the words of the prompt (absent words are removed from every joint attention by the attention mask,
text embeddings and image latents held fixed; the map of word w uses the mean attention output of its tokens).

Routes for the concept players, both exact:

* ``"decoupled"``: concept tokens do not attend to each other, so one forward gives every concept's raw
  concept–patch scores and a coalition only changes which concepts enter the softmax: all 2^d coalitions
  cost one partial forward per denoising step.
* ``"coupled"``: concepts attend to each other (the paper's default); each coalition has its own concept
  stream (only its present concepts, packed; attention masked per coalition). The image stream is shared by
  all coalitions (it never sees the concepts), so one partial forward per step serves every coalition, in
  chunks.

The transformer is re-run on the inputs it saw during generation (captured by :func:`generate`), only up to
the last joint block that is read. Hooks and swapped attention processors are removed after every run, also
when the run fails.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np
import torch

from ..errors import MetagameError
from ..players.coalitions import as_coalitions
from .base import ModelAdapter

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
    if route not in ("auto", "decoupled", "coupled"):
        raise MetagameError(f"unknown route {route!r}; use 'auto', 'decoupled' or 'coupled'")
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


# ------------------------------------------------------------------------------------------------ maps
def masked_softmax(scores: torch.Tensor, present: torch.Tensor, softmax: bool = True) -> torch.Tensor:
    """Softmax over the players axis (−2) of ``scores[n, d, P]`` restricted to ``present[n, d]``; absent rows are 0.

    With ``softmax=False`` the raw scores of present players (0 for absent ones).
    """
    keep = present[:, :, None]
    if not softmax:
        return torch.where(keep, scores, torch.zeros((), dtype=scores.dtype, device=scores.device))
    s = scores.masked_fill(~keep, float("-inf"))
    mx = s.amax(dim=-2, keepdim=True)
    mx = torch.where(torch.isfinite(mx), mx, torch.zeros_like(mx))
    e = torch.exp(s - mx)
    z = e.sum(dim=-2, keepdim=True)
    return torch.where(z > 0, e / z.clamp_min(torch.finfo(e.dtype).tiny), torch.zeros_like(e))


def _concept_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    k_img: torch.Tensor,
    v_img: torch.Tensor,
    row: torch.Tensor,
    col: torch.Tensor,
    n_rows: int,
    n_concepts: int,
    self_attention: bool,
) -> torch.Tensor:
    """softmax(q [k_S; k_img]ᵀ/√e) [v_S; v_img] for packed concept tokens.

    q, k, v: ``[N, H, e]``, one entry per present (row, concept) pair (``row[N]``, ``col[N]``); a query sees the
    image keys ``k_img [H, P, e]`` (shared by every row) and the concept keys of its own row: all of them with
    ``self_attention``, else only its own. Returns ``[N, H·e]`` (heads concatenated, as the model's processors).
    """
    n_tok, h, e = q.shape
    scale = e**-0.5
    li = torch.bmm(q.transpose(0, 1), k_img.transpose(1, 2)) * scale  # [H, N, P]
    pad_q = q.new_zeros(n_rows, n_concepts, h, e)
    pad_k, pad_v = torch.zeros_like(pad_q), torch.zeros_like(pad_q)
    pad_q[row, col], pad_k[row, col], pad_v[row, col] = q, k, v
    present = torch.zeros(n_rows, n_concepts, dtype=torch.bool, device=q.device)
    present[row, col] = True
    lc = torch.einsum("nqhe,nkhe->hnqk", pad_q, pad_k)[:, row, col] * scale  # [H, N, d]: own row's concept keys
    allowed = present[row]
    if not self_attention:
        allowed = allowed & (torch.arange(n_concepts, device=q.device)[None, :] == col[:, None])
    lc = lc.masked_fill(~allowed[None], float("-inf"))
    mx = torch.maximum(li.amax(dim=-1), lc.amax(dim=-1))
    ei = torch.exp(li - mx[..., None])
    ec = torch.exp(lc - mx[..., None])
    z = ei.sum(dim=-1) + ec.sum(dim=-1)
    pad_ec = ec.new_zeros(h, n_rows, n_concepts, n_concepts)
    pad_ec[:, row, col] = ec
    out = torch.bmm(ei, v_img)  # [H, N, e]
    out = out + torch.einsum("hnqk,nkhe->hnqe", pad_ec, pad_v)[:, row, col]
    out = out / z[..., None]
    return out.transpose(0, 1).reshape(n_tok, h * e)


class ConceptStreams:
    """Hooks that run ConceptAttention concept streams alongside one transformer forward.

    ``present[m, d]``: one concept stream per row (a coalition); concept c of row r attends to the image
    patches, to itself and, with ``self_attention``, to the other present concepts of its row. After every
    block in ``read`` the raw scores ⟨o_c, o_p⟩ ``[n, d, P]`` of rows ``start:start+n`` go to
    ``on_scores(block, start, scores)``. The forward stops after the last block read.
    """

    def __init__(
        self,
        transformer: Any,
        concept_embeds: torch.Tensor,
        present: np.ndarray,
        *,
        self_attention: bool,
        read: Sequence[int],
        on_scores: Callable[[int, int, torch.Tensor], None],
        rows_per_chunk: int | None = None,
    ) -> None:
        self.transformer = transformer
        self.family = transformer_family(transformer)
        self.blocks = joint_blocks(transformer)
        _check_unfused(self.blocks)
        self.read = sorted(set(int(b) for b in read))
        if not self.read or self.read[0] < 0 or self.read[-1] >= len(self.blocks):
            raise MetagameError(f"blocks must be joint-block indices in 0..{len(self.blocks) - 1}; got {list(read)}")
        self.present = torch.as_tensor(np.asarray(present, dtype=bool))
        self.self_attention = bool(self_attention)
        self.on_scores = on_scores
        self.concept_embeds = concept_embeds
        self.rows_per_chunk = rows_per_chunk
        self.hooks = HookSet()
        self._seen: dict[str, Any] = {}
        self.h: torch.Tensor | None = None

    # -------------------------------------------------------------- hooks
    def __enter__(self) -> "ConceptStreams":
        try:
            self._register()
        except BaseException:
            self.hooks.remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.hooks.remove()
        self.h = None
        self._seen.clear()

    def _register(self) -> None:
        last = self.read[-1]
        for b, blk in enumerate(self.blocks[: last + 1]):
            attn = blk.attn
            self.hooks.add(blk.register_forward_pre_hook(self._block_inputs, with_kwargs=True))
            self.hooks.add(attn.to_k.register_forward_hook(lambda m, a, out: self._seen.__setitem__("k", out)))
            self.hooks.add(attn.to_v.register_forward_hook(lambda m, a, out: self._seen.__setitem__("v", out)))
            self.hooks.add(attn.to_out[0].register_forward_pre_hook(lambda m, a: self._seen.__setitem__("o", a[0])))
            self.hooks.add(blk.register_forward_hook(lambda m, a, out, b=b: self._advance(b)))

    def _block_inputs(self, module, args, kwargs) -> None:
        self._seen.clear()
        self._seen["temb"] = _arg(args, kwargs, "temb", 2)
        self._seen["rope"] = _arg(args, kwargs, "image_rotary_emb", 3) if self.family == "flux" else None
        self._seen["n_text"] = _arg(args, kwargs, "encoder_hidden_states", 1).shape[1]

    # -------------------------------------------------------------- the concept stream of one block
    def _image_kv(self, attn) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        k, v, o = self._seen["k"][-1], self._seen["v"][-1], self._seen["o"][-1]  # the (last) image row
        p, inner = k.shape
        heads = inner // _head_dim(attn)
        k = k.view(p, heads, -1)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if self.family == "flux" and self._seen["rope"] is not None:
            from diffusers.models.embeddings import apply_rotary_emb

            cos, sin = self._seen["rope"]
            t = self._seen["n_text"]
            k = apply_rotary_emb(k[None], (cos[t:], sin[t:]), sequence_dim=1)[0]
        v = v.view(p, heads, -1)
        return k.float().permute(1, 0, 2).contiguous(), v.float().permute(1, 0, 2).contiguous(), o.float()

    def _advance(self, b: int) -> None:
        blk = self.blocks[b]
        attn = blk.attn
        dtype = self.transformer.dtype
        temb = self._seen["temb"][-1:]
        m, d = self.present.shape
        if self.h is None:  # the concept stream starts at the context embedder; only present concepts are kept
            h0 = self.transformer.context_embedder(self.concept_embeds.to(device=temb.device, dtype=dtype))
            rows, cols = torch.nonzero(self.present, as_tuple=True)
            self._row, self._col = rows.to(temb.device), cols.to(temb.device)
            self._offsets = torch.cat([torch.zeros(1, dtype=torch.long), self.present.sum(1).cumsum(0)]).tolist()
            self.h = h0[self._col].clone()  # [N, D], packed in row order
        k_img, v_img, o_img = self._image_kv(attn)
        heads, p = k_img.shape[:2]
        pre_only = bool(getattr(blk, "context_pre_only", False))
        is_read, is_last = b in self.read, b == self.read[-1]
        tokens = max(1, CHUNK_FLOATS // max(1, heads * (p + d)))
        start = 0
        while start < m:
            if self.rows_per_chunk:
                stop = min(m, start + self.rows_per_chunk)
            else:  # as many rows as fit ``tokens`` concept tokens (at least one row)
                stop = start + 1
                while stop < m and self._offsets[stop + 1] - self._offsets[start] <= tokens:
                    stop += 1
            a, z = self._offsets[start], self._offsets[stop]
            if z > a:
                self._chunk(blk, attn, temb, dtype, start, stop, a, z, k_img, v_img, o_img, pre_only, is_read, is_last, b)
            start = stop
        if is_last:
            raise _Stop()

    def _chunk(self, blk, attn, temb, dtype, start, stop, a, z, k_img, v_img, o_img, pre_only, is_read, is_last, b):
        n, d = stop - start, self.present.shape[1]
        heads = k_img.shape[0]
        h = self.h[a:z][None]  # [1, N, D]: the adaptive norms broadcast the one time embedding
        if pre_only:
            nh, gates = blk.norm1_context(h, temb), None
        else:
            nh, *gates = blk.norm1_context(h, emb=temb)
        q = attn.add_q_proj(nh)[0].view(z - a, heads, -1)
        k = attn.add_k_proj(nh)[0].view(z - a, heads, -1)
        v = attn.add_v_proj(nh)[0].view(z - a, heads, -1)
        if attn.norm_added_q is not None:
            q = attn.norm_added_q(q)
        if attn.norm_added_k is not None:
            k = attn.norm_added_k(k)
        row, col = self._row[a:z] - start, self._col[a:z]
        o = _concept_attention(q.float(), k.float(), v.float(), k_img, v_img, row, col, n, d, self.self_attention)
        if is_read:
            scores = o.new_zeros(n, d, o_img.shape[0])
            scores[row, col] = o @ o_img.T
            self.on_scores(b, start, scores)
        if not is_last and not pre_only:
            g_msa, shift_mlp, scale_mlp, g_mlp = gates
            h = h + g_msa[:, None] * attn.to_add_out(o.to(dtype))[None]
            nh2 = blk.norm2_context(h) * (1 + scale_mlp[:, None]) + shift_mlp[:, None]
            h = h + g_mlp[:, None] * blk.ff_context(nh2)
            if h.dtype == torch.float16:
                h = h.clip(-65504, 65504)
            self.h[a:z] = h[0]


def _head_dim(attn) -> int:
    hd = getattr(attn, "head_dim", None)
    if hd:
        return int(hd)
    return int(attn.to_k.out_features // attn.heads)


# ------------------------------------------------------------------------------------------------ prompt-word masking
class MaskedJointAttnProcessor:
    """SD3 joint attention ([image; text], as diffusers' ``JointAttnProcessor2_0``) that honours a key mask
    ``attention_mask[n, P + T]`` (True = attend) and can report the raw attention outputs (before the output
    projections) to ``record(image_out [n, P, inner], text_out [n, T, inner])``."""

    def __init__(self, record: Callable[[torch.Tensor, torch.Tensor], None] | None = None) -> None:
        self.record = record

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        import torch.nn.functional as F

        n, p = hidden_states.shape[:2]
        heads = attn.heads

        def split(x):
            return x.view(n, -1, heads, x.shape[-1] // heads).transpose(1, 2)

        q, k, v = split(attn.to_q(hidden_states)), split(attn.to_k(hidden_states)), split(attn.to_v(hidden_states))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if encoder_hidden_states is not None:
            eq = split(attn.add_q_proj(encoder_hidden_states))
            ek = split(attn.add_k_proj(encoder_hidden_states))
            ev = split(attn.add_v_proj(encoder_hidden_states))
            if attn.norm_added_q is not None:
                eq = attn.norm_added_q(eq)
            if attn.norm_added_k is not None:
                ek = attn.norm_added_k(ek)
            q, k, v = torch.cat([q, eq], dim=2), torch.cat([k, ek], dim=2), torch.cat([v, ev], dim=2)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.to(torch.bool).view(n, 1, 1, -1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(n, -1, out.shape[1] * out.shape[-1]).to(q.dtype)
        if encoder_hidden_states is None:
            return attn.to_out[1](attn.to_out[0](out))
        img, txt = out[:, :p], out[:, p:]
        if self.record is not None:
            self.record(img, txt)
        if not attn.context_pre_only:
            txt = attn.to_add_out(txt)
        img = attn.to_out[1](attn.to_out[0](img))
        return img, txt


@contextmanager
def text_masking(
    transformer: Any,
    keep_text: torch.Tensor,
    n_image: int,
    *,
    read: Sequence[int] = (),
    on_outputs: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
    stop_after_read: bool = False,
) -> Iterator[dict]:
    """Remove text tokens from every joint attention: yields the ``joint_attention_kwargs`` to pass.

    ``keep_text[n, T]`` (True = present); ``n_image`` = P image tokens. Flux: the stock processors' key mask over [text; image] (also used by
    the single-stream blocks). SD3: :class:`MaskedJointAttnProcessor` on the joint blocks (key mask over
    [image; text]). For the blocks in ``read``, ``on_outputs(block, image_out [n, P, inner], text_out [n, T, inner])``
    gets the raw attention outputs; with ``stop_after_read`` the forward stops after the last of them.
    """
    family = transformer_family(transformer)
    blocks = joint_blocks(transformer)
    _check_unfused(blocks)
    read = sorted(set(int(b) for b in read))
    hooks = HookSet()
    state: dict[str, Any] = {}
    n = keep_text.shape[0]
    try:
        if family == "flux":
            for b in read:
                attn = blocks[b].attn
                hooks.add(attn.to_out[0].register_forward_pre_hook(lambda m, a: state.__setitem__("img", a[0])))
                hooks.add(attn.to_add_out.register_forward_pre_hook(lambda m, a: state.__setitem__("txt", a[0])))
                hooks.add(blocks[b].register_forward_hook(
                    lambda m, a, out, b=b: on_outputs(b, state["img"], state["txt"]) if on_outputs else None))
            mask = torch.cat([keep_text, torch.ones(n, n_image, dtype=torch.bool, device=keep_text.device)], 1)
        else:
            last = read[-1] if read else len(blocks) - 1
            for b, blk in enumerate(blocks):
                rec = None
                if b in read and on_outputs is not None:
                    rec = lambda img, txt, b=b: on_outputs(b, img, txt)  # noqa: E731
                if b <= last or not stop_after_read:
                    hooks.swap_processor(blk.attn, MaskedJointAttnProcessor(rec))
            mask = torch.cat([torch.ones(n, n_image, dtype=torch.bool, device=keep_text.device), keep_text], 1)
        if stop_after_read and read:
            def stop(m, a, out):
                raise _Stop()

            hooks.add(blocks[read[-1]].register_forward_hook(stop))
        yield {"attention_mask": mask}
    finally:
        hooks.remove()


def masked_text_forward(
    transformer: Any, kwargs: dict[str, Any], keep_text: torch.Tensor, **masking
) -> torch.Tensor | None:
    """Forward of single-row ``kwargs`` for each row of ``keep_text[n, T]`` (absent text tokens masked out of
    every joint attention). Returns the model output ``[n, ...]`` (None when stopped early)."""
    family = transformer_family(transformer)
    p = _n_image_tokens(family, kwargs, transformer)
    keep_text = keep_text.to(device=kwargs["hidden_states"].device, dtype=torch.bool)
    with text_masking(transformer, keep_text, p, **masking) as joint_attention_kwargs:
        return run_transformer(transformer, kwargs, keep_text.shape[0], joint_attention_kwargs)


def _n_image_tokens(family: Family, kwargs: dict[str, Any], transformer: Any) -> int:
    r, c = patch_grid(family, kwargs, transformer)
    return r * c


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


# ------------------------------------------------------------------------------------------------ the adapter
def _tensor_hash(h: "hashlib._Hash", t: torch.Tensor) -> None:
    t = t.detach().cpu()
    h.update(str((tuple(t.shape), str(t.dtype))).encode())
    dense = torch.empty(t.numel(), dtype=t.dtype)
    dense.copy_(t.reshape(-1))
    h.update(dense.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


class DiffusionConceptModel(ModelAdapter):
    """A diffusers MM-DiT transformer at fixed denoising inputs; players = concepts or prompt words.

    The inner attribution is vector-valued: :meth:`maps` returns φ(x_S) ``[m, d, P]`` (one map over the P image
    patches per player; 0 for absent players). There is no scalar f: :meth:`values` raises.

    Args:
        transformer: ``FluxTransformer2DModel`` or ``SD3Transformer2DModel``.
        steps: the transformer inputs at the denoising steps whose maps are averaged (see :func:`generate`).
        players: player labels (concepts, or prompt words).
        mode: ``"concepts"`` (concept streams) or ``"words"`` (prompt words masked in the joint attention).
        concept_embeds: ``[d, joint_attention_dim]`` concept embeddings (concept mode), before the context embedder.
        word_tokens: per word, its token positions in ``encoder_hidden_states`` (word mode).
        blocks: joint blocks whose maps are averaged (default: the last 4).
        route: ``"decoupled"``, ``"coupled"`` or ``"auto"`` (decoupled exactly when concept self-attention is off).
        concept_self_attention: whether concepts attend to each other (default True, except for route="decoupled").
        softmax: softmax over the present players per patch (ConceptAttention); False keeps the raw scores.
        rows_per_chunk: coalitions per chunk of the concept streams / per masked forward (default: by memory).
        image: the generated image ``[H, W, 3]`` (for reports), if any.
    """

    exact_max_players: int = 12
    differentiable = False

    def __init__(
        self,
        transformer: Any,
        steps: Sequence[StepInputs],
        players: Sequence[str],
        *,
        mode: PlayerMode = "concepts",
        concept_embeds: torch.Tensor | None = None,
        word_tokens: Sequence[Sequence[int]] | None = None,
        blocks: Sequence[int] | None = None,
        route: Route = "auto",
        concept_self_attention: bool | None = None,
        softmax: bool = True,
        rows_per_chunk: int | None = None,
        image: np.ndarray | None = None,
        prompt: str | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(batch_size=rows_per_chunk or 64, cache_values=False)
        self.model = transformer
        self.family = transformer_family(transformer)
        self.steps = list(steps)
        if not self.steps:
            raise MetagameError("no denoising steps to read; pass at least one timestep")
        self.players = [str(p) for p in players]
        self.n_players = len(self.players)
        if self.n_players < 1:
            raise MetagameError("need at least one player (a concept or a prompt word)")
        if mode not in ("concepts", "words"):
            raise MetagameError(f"unknown players mode {mode!r}; use 'concepts' or 'words'")
        self.mode = mode
        self.player_kinds = ["concept" if mode == "concepts" else "word"] * self.n_players
        self.blocks = check_blocks(transformer, blocks)
        self.route, self.concept_self_attention = resolve_route(route, concept_self_attention)
        self.softmax = bool(softmax)
        self.rows_per_chunk = rows_per_chunk
        self.image = image
        self.prompt = prompt
        self.name = name
        first = self.steps[0].kwargs
        self.grid = patch_grid(self.family, first, transformer)
        self.n_patches = self.grid[0] * self.grid[1]
        self.n_text = int(first["encoder_hidden_states"].shape[1])
        self.concept_embeds = None
        self.word_tokens = None
        if mode == "concepts":
            if concept_embeds is None:
                raise MetagameError("concept mode needs concept_embeds [d, joint_attention_dim] (or a pipeline to encode the concepts)")
            ce = torch.as_tensor(concept_embeds)
            jd = int(transformer.config.joint_attention_dim)
            if ce.ndim != 2 or ce.shape != (self.n_players, jd):
                raise MetagameError(f"concept_embeds must have shape ({self.n_players}, {jd}); got {tuple(ce.shape)}")
            self.concept_embeds = ce.detach()
        else:
            if word_tokens is None or len(word_tokens) != self.n_players:
                raise MetagameError("word mode needs word_tokens: one list of text-token positions per word")
            owner = np.full(self.n_text, -1, dtype=np.int64)
            for w, toks in enumerate(word_tokens):
                toks = [int(t) for t in toks]
                if not toks:
                    raise MetagameError(f"word {self.players[w]!r} has no tokens in the text sequence")
                for t in toks:
                    if not 0 <= t < self.n_text:
                        raise MetagameError(f"word {self.players[w]!r}: token {t} outside the {self.n_text} text tokens")
                    if owner[t] >= 0:
                        raise MetagameError(f"text token {t} belongs to two words")
                    owner[t] = w
            self.word_tokens = [list(map(int, t)) for t in word_tokens]
            self.token_owner = owner
        self._raw: torch.Tensor | None = None
        self.n_forward_rows = 0
        self.n_stream_rows = 0

    # -------------------------------------------------------------- protocol
    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        raise MetagameError("the diffusion adapter has no scalar output; its attribution is the concept map "
                            "(use maps(coalitions), or metagame.explain_diffusion)")

    @property
    def device(self) -> torch.device:
        return self.steps[0].kwargs["hidden_states"].device

    # -------------------------------------------------------------- maps
    def maps(self, coalitions) -> torch.Tensor:
        """φ(x_S) for each row of ``coalitions`` ``bool[m, d]``: ``[m, d, P]`` (float64, 0 for absent players)."""
        coalitions = as_coalitions(coalitions, self.n_players)
        if self.mode == "words":
            out = self._word_maps(coalitions)
        elif self.route == "decoupled":
            out = self._decoupled_maps(coalitions)
        else:
            out = self._coupled_maps(coalitions)
        return out.double().cpu()

    def raw_scores(self) -> torch.Tensor:
        """Decoupled concept–patch scores ⟨o_c, o_p⟩ ``[n_steps, n_blocks, d, P]`` (one partial forward per step)."""
        if self.mode != "concepts":
            raise MetagameError("raw concept scores exist for concept players only")
        if self._raw is None:
            d = self.n_players
            out = torch.zeros(len(self.steps), len(self.blocks), d, self.n_patches)
            pos = {b: i for i, b in enumerate(self.blocks)}
            for s, st in enumerate(self.steps):
                def keep(b, start, scores, s=s):
                    out[s, pos[b]] = scores[0].detach().float().cpu()

                streams = ConceptStreams(self.model, self.concept_embeds, np.ones((1, d), dtype=bool), self_attention=False,
                                         read=self.blocks, on_scores=keep, rows_per_chunk=self.rows_per_chunk)
                with streams:
                    run_transformer(self.model, st.kwargs)
                self.count(1)
                self.n_stream_rows += 1
            self._raw = out
        return self._raw

    def _decoupled_maps(self, coalitions: np.ndarray) -> torch.Tensor:
        raw = self.raw_scores()  # [T, B, d, P]
        t, b, d, p = raw.shape
        flat = raw.reshape(t * b, d, p)
        present = torch.as_tensor(coalitions)
        out = torch.zeros(len(coalitions), d, p, dtype=torch.float64)
        chunk = max(1, CHUNK_FLOATS // max(1, t * b * d * p))
        for start in range(0, len(coalitions), chunk):
            rows = present[start : start + chunk]
            n = rows.shape[0]
            s = flat[None].expand(n, t * b, d, p).reshape(n * t * b, d, p)
            pr = rows[:, None, :].expand(n, t * b, d).reshape(n * t * b, d)
            m = masked_softmax(s, pr, self.softmax).view(n, t * b, d, p).double().mean(dim=1)
            out[start : start + n] = m
        return out

    def _coupled_maps(self, coalitions: np.ndarray) -> torch.Tensor:
        m, d = coalitions.shape
        acc = torch.zeros(m, d, self.n_patches, dtype=torch.float64)
        present = torch.as_tensor(coalitions)

        def add(b, start, scores):
            n = scores.shape[0]
            rows = present[start : start + n].to(scores.device)
            acc[start : start + n] += masked_softmax(scores, rows, self.softmax).double().cpu()

        for st in self.steps:
            with ConceptStreams(self.model, self.concept_embeds, coalitions, self_attention=self.concept_self_attention,
                                read=self.blocks, on_scores=add, rows_per_chunk=self.rows_per_chunk):
                run_transformer(self.model, st.kwargs)
            self.count(1)
            self.n_stream_rows += m
        return acc / (len(self.steps) * len(self.blocks))

    def word_average(self) -> torch.Tensor:
        """``[W, T]`` averaging matrix: row w puts 1/|tokens(w)| on each token of word w."""
        a = torch.zeros(self.n_players, self.n_text)
        for w, toks in enumerate(self.word_tokens or []):
            a[w, toks] = 1.0 / len(toks)
        return a

    def keep_text(self, coalitions: np.ndarray) -> torch.Tensor:
        """``bool[m, T]``: text tokens kept at each coalition (tokens of no word are always kept)."""
        owner = torch.as_tensor(self.token_owner)
        present = torch.as_tensor(np.asarray(coalitions, dtype=bool))
        keep = torch.ones(present.shape[0], self.n_text, dtype=torch.bool)
        words = owner >= 0
        keep[:, words] = present[:, owner[words]]
        return keep

    def _word_maps(self, coalitions: np.ndarray) -> torch.Tensor:
        m, d = coalitions.shape
        acc = torch.zeros(m, d, self.n_patches, dtype=torch.float64)
        avg = self.word_average()
        keep_all = self.keep_text(coalitions)
        present = torch.as_tensor(coalitions)
        chunk = self.rows_per_chunk or max(1, min(64, CHUNK_FLOATS // max(1, (self.n_text + self.n_patches) ** 2)))
        for st in self.steps:
            for start in range(0, m, chunk):
                stop = min(m, start + chunk)

                def add(b, img, txt, start=start, stop=stop):
                    ow = torch.einsum("wt,nti->nwi", avg.to(txt.device), txt.float())
                    scores = torch.einsum("nwi,npi->nwp", ow, img.float())
                    rows = present[start:stop].to(scores.device)
                    acc[start:stop] += masked_softmax(scores, rows, self.softmax).double().cpu()

                masked_text_forward(self.model, st.kwargs, keep_all[start:stop], read=self.blocks, on_outputs=add,
                                    stop_after_read=True)
                self.count(stop - start)
        return acc / (len(self.steps) * len(self.blocks))

    # -------------------------------------------------------------- reports
    def display_context(self) -> dict:
        ctx: dict[str, Any] = {"grid": [int(self.grid[0]), int(self.grid[1])], "players_mode": self.mode}
        if self.prompt is not None:
            ctx["prompt"] = self.prompt
        if self.mode == "concepts":
            ctx["concepts"] = list(self.players)
        else:
            ctx["words"] = list(self.players)
        if self.name:
            ctx["model"] = self.name
        return ctx

    def describe(self) -> dict:
        cfg = self.model.config
        return {
            "adapter": type(self).__name__,
            "name": self.name,
            "family": self.family,
            "class": type(self.model).__name__,
            "joint_blocks": len(joint_blocks(self.model)),
            "num_attention_heads": int(cfg.num_attention_heads),
            "attention_head_dim": int(cfg.attention_head_dim),
            "dtype": str(self.model.dtype),
        }

    def settings(self) -> dict:
        """The settings that define the game (recorded in result metadata)."""
        return {
            "players": self.mode,
            "route": self.route if self.mode == "concepts" else "masked_forward",
            "concept_self_attention": self.concept_self_attention if self.mode == "concepts" else None,
            "softmax": self.softmax,
            "blocks": list(self.blocks),
            "timesteps": [int(s.step) for s in self.steps],
        }

    def fingerprint(self) -> dict:
        """Content hashes of what determines the numbers: step inputs, concept embeddings / word tokens, model
        weights (each tensor's shape, dtype and first 64 KiB), and the settings."""
        inputs = hashlib.sha256()
        for st in self.steps:
            inputs.update(str(st.step).encode())
            for k in sorted(st.kwargs):
                v = st.kwargs[k]
                inputs.update(k.encode())
                if isinstance(v, torch.Tensor):
                    _tensor_hash(inputs, v)
        players = hashlib.sha256("\x1f".join(self.players).encode())
        if self.concept_embeds is not None:
            _tensor_hash(players, self.concept_embeds)
        if self.word_tokens is not None:
            players.update(repr(self.word_tokens).encode())
        weights = hashlib.sha256()
        for name, t in self.model.state_dict().items():
            weights.update(name.encode())
            flat = t.detach().reshape(-1)
            _tensor_hash(weights, flat[: max(1, 65536 // max(1, flat.element_size()))] if flat.numel() else flat)
        return {"inputs": inputs.hexdigest(), "players": players.hexdigest(), "model": weights.hexdigest(),
                "settings": repr(sorted(self.settings().items()))}

    def finalize(self, result) -> None:
        """Add the generated image to ``result.extras`` (the maps are added by the result builder)."""
        if self.image is not None:
            result.extras["image"] = np.asarray(self.image, dtype=np.float64)


__all__ = [
    "BATCHED_KEYS",
    "ConceptStreams",
    "DiffusionConceptModel",
    "check_blocks",
    "resolve_route",
    "Family",
    "HookSet",
    "MaskedJointAttnProcessor",
    "PlayerMode",
    "Route",
    "STEP_KEYS",
    "StepInputs",
    "default_blocks",
    "generate",
    "joint_blocks",
    "masked_softmax",
    "masked_text_forward",
    "patch_grid",
    "run_transformer",
    "single_row",
    "text_masking",
    "transformer_family",
]
